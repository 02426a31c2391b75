"""A CPU pilot after tokenizer run 10b: does the encoder hold more than its 16 latent channels pass on?

Run 10b widened f4c16 to 32 channels (relickit.widen.widen_latent) and trained it 6 minutes on an H100: the decoders'
weights on the new channels stayed near their zero start (Wan decoder 0.0007 against 0.027 on the old ones) and the
KL fell 5.4 -> 4.3: the new channels carried nothing. Zero decoder weights give the encoder's new rows no gradient,
so the wide path starts at a saddle. This pilot asks the question without the saddle and without a GPU:

TRAIN_DIR: a training-map dataset (2026-12-06: run 18's clip_gap.py episodes, seed 1019, 24 x 600 frames).
    python wide_pilot.py encode TRAIN_DIR CACHE    # campaign encoder (run 9's tokenizer) once: frames, the
                                                   # features conv_out reads, the 16 latent channels
    python wide_pilot.py train CACHE OUT --arm control --minutes M   # play decoder on the 16 channels
    python wide_pilot.py train CACHE OUT --arm wide --minutes M      # + 16 channels from a new head on those features
    python wide_pilot.py eval OUT_A OUT_B ...      # held-out MAP21-MAP32 (49 frames each), paired with run 9, strip

Both arms continue run 9's play decoder with L1 + gradient L1 to the truth (the recipe's tiny loss less the Wan
decoder's guide, too slow on a CPU; the 2026-12-05 texture pilot's control), batch 2, Adam 2e-4, one thread each,
side by side, the same batches. `wide` adds a causal 3x3x3 convolution from the encoder's last features (what its
conv_out reads, frozen) to 16 new channels, and the play decoder's input convolution reads them. The start is the
one relickit.widen has used since (10b's was the other way round): the new channels' encoder weights start at zero
and the decoder's weights on them random at the old ones' scale, so the arm decodes exactly run 9's frames at step 0
and the encoder's new weights get a gradient from the first step (which 10b's zero decoder weights denied them). The new
channels get the old ones' posterior noise (standard deviation `NOISE` on normalised latents) and a KL-like penalty
on their size, so they cannot grow out of it.
What it cannot say: what training the encoder's body for the new channels adds (tokenizer run 10c on a GPU).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from relickit.adversarial import gradient_l1
from relickit.clip_pass import _layer
from relickit.dataset import load_episodes
from relickit.evaluate.tokenizer import TokenizerEvalConfig, held_out_clips, paired_change, score, strip
from relickit.play import to_uint8
from relickit.vae import Tokenizer

TOKENIZER = "data/weights/tokenizer/f4c16.safetensors"
CLIP, NEW, NOISE, SIZE_WEIGHT = 17, 16, 0.01, 1e-3  # frames per clip; new channels; their noise; size penalty
LR, BATCH, EVAL_FRAMES = 2e-4, 2, 49


@torch.no_grad()
def features(tok: Tokenizer, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 1 + 4k, H, W) -> what the encoder's conv_out reads, and the normalised latents (posterior means):
    relickit.clip_pass.encode_clip, stopped one layer early."""
    enc = tok.vae.encoder
    x = enc.conv_in(video)
    for layer in enc.down_blocks:
        x = _layer(layer, x)
    h = enc.nonlinearity(enc.norm_out(enc.mid_block(x)))
    mean, _ = tok.vae.quant_conv(enc.conv_out(h)).chunk(2, dim=1)
    return h, tok.normalize(mean)


class Head(torch.nn.Module):
    """The new channels: a causal 3x3x3 convolution (zeros before the video's start, as Wan's conv_out pads),
    starting at zero."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(dim, NEW, 3, padding=(0, 1, 1))
        torch.nn.init.zeros_(self.conv.weight)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(h, (0, 0, 0, 0, 2, 0)))


def widen_tiny(tok: Tokenizer, seed: int) -> None:
    """The play decoder's input convolution reads NEW more channels, their weights drawn at the old ones' scale."""
    old = tok.tiny.conv_in
    g = torch.Generator().manual_seed(seed)
    extra = torch.randn(old.out_channels, NEW, *old.kernel_size, generator=g) * old.weight.std()
    conv = torch.nn.Conv2d(old.in_channels + NEW, old.out_channels, old.kernel_size, padding=old.padding)
    conv.weight.data = torch.cat([old.weight.data, extra], 1)
    conv.bias.data = old.bias.data.clone()
    tok.tiny.conv_in = conv


def encode(train: str, out: str) -> None:
    torch.set_num_threads(2)
    tok = Tokenizer.load(TOKENIZER, device="cpu").eval()
    video, hidden, latents = [], [], []
    for ep in load_episodes(train):
        for a in range(0, len(ep) - CLIP + 1, CLIP):
            x = torch.from_numpy(ep.frames(a, a + CLIP)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
            h, z = features(tok, x)
            video.append(x.to(torch.bfloat16)), hidden.append(h.to(torch.bfloat16)), latents.append(z)
    torch.save({"video": torch.cat(video), "hidden": torch.cat(hidden), "latents": torch.cat(latents)}, out)
    print(f"{len(video)} clips encoded; features {tuple(hidden[0].shape)}")


def build(arm: str, seed: int = 0) -> tuple[Tokenizer, Head | None]:
    tok = Tokenizer.load(TOKENIZER, device="cpu")
    if arm == "control":
        return tok, None
    torch.manual_seed(seed)
    widen_tiny(tok, seed)
    return tok, Head(tok.vae.encoder.conv_out.in_channels)


def latents_of(head: Head | None, z: torch.Tensor, h: torch.Tensor, noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if head is None:
        return z, z.new_zeros(())
    new = head(h)
    size = new.pow(2).mean()  # the size penalty
    if noise:
        new = new + NOISE * torch.randn_like(new)
    return torch.cat([z, new], 1), size


def train(cache: str, out: str, arm: str, minutes: float, seed: int = 0) -> None:
    torch.set_num_threads(1)
    data = torch.load(cache)
    tok, head = build(arm, seed)
    params = list(tok.tiny.parameters()) + (list(head.parameters()) if head is not None else [])
    opt = torch.optim.Adam(params, LR, betas=(0.5, 0.99))
    g = torch.Generator().manual_seed(seed)
    log, start, step = [], time.time(), 0
    while time.time() - start < 60 * minutes:
        idx = torch.randint(len(data["video"]), (BATCH,), generator=g)
        video = data["video"][idx].float()
        z, size = latents_of(head, data["latents"][idx], data["hidden"][idx].float(), noise=True)
        pred = tok.tiny(z)
        l1 = F.l1_loss(pred, video)
        loss = l1 + gradient_l1(pred, video) + SIZE_WEIGHT * size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append({"step": step, "l1": l1.item(), "size": size.item()})
        step += 1
    Path(out).mkdir(parents=True, exist_ok=True)
    torch.save({"tiny": tok.tiny.state_dict(), "head": head.state_dict() if head else None}, Path(out) / "arm.pt")
    (Path(out) / "log.json").write_text(json.dumps({"arm": arm, "steps": step, "minutes": minutes, "log": log}))
    print(f"{arm}: {step} steps, l1 first/last 50: {np.mean([r['l1'] for r in log[:50]]):.4f} / "
          f"{np.mean([r['l1'] for r in log[-50:]]):.4f}")


@torch.no_grad()
def reconstruct(tok: Tokenizer, head: Head | None, truth: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(truth).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    h, z = features(tok, x)
    z, _ = latents_of(head, z, h, noise=False)
    return to_uint8(tok.tiny(z)[0].float())


def evaluate(outs: list[str]) -> None:
    torch.set_num_threads(2)
    cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
    truth = held_out_clips("data/eval_tokenizer_f2", cfg)[:, :EVAL_FRAMES]
    reports, rows = {}, {}
    for name in ["run9", *outs]:
        saved = torch.load(Path(name) / "arm.pt") if name != "run9" else None
        arm = "wide" if saved and saved["head"] else "control"
        tok, head = build(arm)
        if saved:
            tok.tiny.load_state_dict(saved["tiny"])
            if head is not None:
                head.load_state_dict(saved["head"])
        tok.eval()
        rec = np.stack([reconstruct(tok, head, c) for c in truth])
        s = score(rec, truth)
        reports[name] = {"clips": list(truth.shape), "config": {}, "decoders": {"tiny": {"scores": s}}}
        rows[name] = rec
        print(f"{name:28s} " + " ".join(f"{k} {s[k]:.3f}" for k in
              ("psnr", "ssim", "sharpness", "edge_error", "brightness", "saturation_error", "colour_shift")))
    for name in outs:
        change = paired_change(reports["run9"], reports[name])["tiny"]
        print(f"{name} - run9: " + ", ".join(f"{k} {c['mean']:+.3f} +- {c['stderr']:.3f}" for k, c in change.items()))
    if len(outs) == 2:
        change = paired_change(reports[outs[0]], reports[outs[1]])["tiny"]
        print(f"{outs[1]} - {outs[0]}: " + ", ".join(f"{k} {c['mean']:+.3f} +- {c['stderr']:.3f}"
                                                       for k, c in change.items()))
    shown = (0, 2, 4, 7)
    strip([v for i in shown for v in (truth[i], *(rows[n][i] for n in rows))], Path(outs[-1]).parent / "strip.png", 8)
    Path(outs[-1]).parent.joinpath("scores.json").write_text(json.dumps(
        {n: r["decoders"]["tiny"]["scores"] for n, r in reports.items()}, indent=1))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["encode", "train", "eval"])
    p.add_argument("paths", nargs="+")
    p.add_argument("--arm", choices=["control", "wide"], default="wide")
    p.add_argument("--minutes", type=float, default=20)
    a = p.parse_args()
    if a.what == "encode":
        encode(*a.paths)
    elif a.what == "train":
        train(*a.paths, a.arm, a.minutes)
    else:
        evaluate(a.paths)
