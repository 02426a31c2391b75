"""A CPU pilot of tokenizer run 10a: does a texture discriminator sharpen the play decoder without moving colour?

    python pilot.py encode TRAIN_DIR LATENTS            # the campaign encoder over 17-frame clips of TRAIN_DIR, once

TRAIN_DIR was made with relickit.dataset.generate("runs/pilot/train", relickit.doom.map_names("train")[:16],
episodes=16, frames_per_episode=97, seed=777, workers=2) (MAP01-MAP16, training maps only).
    python pilot.py train LATENTS OUT --arm control --minutes 14
    python pilot.py train LATENTS OUT --arm texture --minutes 14 [--weight W] [--sigma S]
    python pilot.py eval OUT_A OUT_B ...                # scores on held-out clips, paired, and a strip

Two arms continue the campaign's play decoder (tokenizer run 9) on the same cached latents, batches and steps, with
the recipe's tiny-decoder loss less the Wan decoder's guide (too slow on a CPU): `control` L1 + gradient L1 to the
truth; `texture` adds relickit.adversarial's patch discriminator on frames minus their blur (texture_sigma 1,
hinge, adaptive weight, ramped in; scaled by 0.5 as the recipe does, or more), narrowed to 16 channels to fit a
2-core CPU. One thread each, side by side.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from relickit.adversarial import Adversarial, AdversarialConfig, adversarial_terms, gradient_l1
from relickit.clip_pass import encode_clip
from relickit.dataset import load_episodes
from relickit.evaluate.scoring import tokenizer_ceiling
from relickit.evaluate.tokenizer import TokenizerEvalConfig, held_out_clips, paired_change, score, strip
from relickit.vae import Tokenizer

TOKENIZER = "data/weights/tokenizer/f4c16.safetensors"
CLIP = 17  # frames per training clip: 5 latent frames, the first coded alone
ADV = AdversarialConfig(weight=0.5, start=0, ramp=100, channels=16, texture_sigma=1.0)
LR, BATCH, EVAL_CLIPS, EVAL_FRAMES = 2e-4, 2, (0, 3, 6, 9), 49


def encode(train: str, out: str) -> None:
    tok = Tokenizer.load(TOKENIZER, device="cpu").eval()
    video, latents = [], []
    for ep in load_episodes(train):
        for a in range(0, len(ep) - CLIP + 1, CLIP):
            x = torch.from_numpy(ep.frames(a, a + CLIP)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
            with torch.no_grad():
                latents.append(tok.normalize(encode_clip(tok.vae, x)[0]))
            video.append(x.to(torch.bfloat16))
    torch.save({"video": torch.cat(video), "latents": torch.cat(latents)}, out)
    print(f"{len(video)} clips encoded")


def train(latents: str, out: str, arm: str, minutes: float, weight: float, sigma: float, seed: int = 0) -> None:
    torch.set_num_threads(1)
    data = torch.load(latents)
    tok = Tokenizer.load(TOKENIZER, device="cpu")
    adv = dataclasses.replace(ADV, weight=weight, texture_sigma=sigma) if arm == "texture" else AdversarialConfig()
    pair = Adversarial(tok.tiny, adv)
    opt = torch.optim.Adam(pair.parameters(), LR, betas=(0.5, 0.99))
    g = torch.Generator().manual_seed(seed)
    log, start, step = [], time.time(), 0
    while time.time() - start < 60 * minutes:
        idx = torch.randint(len(data["video"]), (BATCH,), generator=g)
        video, z = data["video"][idx].float(), data["latents"][idx]
        pred = pair(z)
        l1 = F.l1_loss(pred, video)
        rec = l1 + gradient_l1(pred, video)
        adv, logs = adversarial_terms(pair, pred, video, rec, pair.generator.conv_out.weight, step)
        opt.zero_grad(set_to_none=True)
        (rec + adv).backward()
        opt.step()
        log.append({"step": step, "l1": l1.item(), **{k: float(v) for k, v in logs.items()}})
        step += 1
    Path(out).mkdir(parents=True, exist_ok=True)
    torch.save(pair.generator.state_dict(), Path(out) / "tiny.pt")
    (Path(out) / "log.json").write_text(json.dumps({"arm": arm, "weight": weight, "sigma": sigma, "steps": step,
                                                    "minutes": minutes, "log": log}))
    print(f"{arm}: {step} steps, l1 first/last 50: {np.mean([r['l1'] for r in log[:50]]):.4f} / "
          f"{np.mean([r['l1'] for r in log[-50:]]):.4f}")


def evaluate(outs: list[str]) -> None:
    torch.set_num_threads(2)
    cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
    truth = held_out_clips("data/eval_tokenizer_f2", cfg)[list(EVAL_CLIPS), :EVAL_FRAMES]
    tok = Tokenizer.load(TOKENIZER, device="cpu").eval()
    reports, rows = {}, {}
    for name in ["run9", *outs]:
        if name != "run9":
            tok.tiny.load_state_dict(torch.load(Path(name) / "tiny.pt"))
        rec = np.stack([tokenizer_ceiling(tok, c, "tiny") for c in truth])
        s = score(rec, truth)
        reports[name] = {"clips": list(truth.shape), "config": {}, "decoders": {"tiny": {"scores": s}}}
        rows[name] = rec
        print(f"{name:28s} " + " ".join(f"{k} {s[k]:.3f}" for k in
              ("psnr", "ssim", "sharpness", "edge_error", "brightness", "saturation_error", "colour_shift",
               "frame_change")))
    for name in outs:
        change = paired_change(reports["run9"], reports[name])["tiny"]
        print(f"{name} - run9: " + ", ".join(f"{k} {c['mean']:+.3f} +- {c['stderr']:.3f}" for k, c in change.items()))
    strip([v for i in range(len(truth)) for v in (truth[i], *(rows[n][i] for n in rows))],
          Path(outs[-1]).parent / "strip.png", 8)
    Path(outs[-1]).parent.joinpath("scores.json").write_text(json.dumps(
        {n: r["decoders"]["tiny"]["scores"] for n, r in reports.items()}, indent=1))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["encode", "train", "eval"])
    p.add_argument("paths", nargs="+")
    p.add_argument("--arm", choices=["control", "texture"], default="texture")
    p.add_argument("--minutes", type=float, default=12)
    p.add_argument("--weight", type=float, default=ADV.weight, help="the adversarial term's scale (texture arm)")
    p.add_argument("--sigma", type=float, default=ADV.texture_sigma, help="texture_sigma (texture arm)")
    a = p.parse_args()
    if a.what == "encode":
        encode(*a.paths)
    elif a.what == "train":
        train(*a.paths, a.arm, a.minutes, a.weight, a.sigma)
    else:
        evaluate(a.paths)
