"""Does drawing every window of a clip, not only its prefix, keep a teacher from over-fitting? A CPU-scale check
before GPU minutes go to it (run 5's 384 x 3 teacher: training loss 0.159, held out 0.195, from 4,096 prefixes).

Two small teachers (128 x 2, f4c16, velocity skip) train the same steps, from the same initial weights, on the same
96 encoded clips of 25 latent frames: one on each clip's 13-frame prefix (96 windows), one on every 13-frame
window (13 per clip: 1,248). Every `EVERY` steps both are scored by `held_out_loss` (the training noise
distribution) on the twelve held-out maps' clips of `relickit.evaluate.teacher --held-out` and on 12 training
prefixes: the gap between the two is over-fitting.

    python docs/runs/2026-12-02-windows/windows_check.py [OUT]   # OUT default runs/windows_check
"""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from relickit.config import LATENT_SIGMA, model_for
from relickit.dataset import ClipDataset, generate
from relickit.doom import TRAIN_MAPS
from relickit.evaluate.teacher import TeacherEvalConfig, held_out_loss
from relickit.latents import LatentClips, encode_clips
from relickit.model import WorldModel
from relickit.teacher import TeacherConfig, teacher_loss
from relickit.train import TrainConfig, train
from relickit.vae import LAYOUTS, Tokenizer

EPISODES, CLIPS, CLIP_LATENTS, WINDOW, STEPS, EVERY, BATCH = 24, 96, 25, 13, 900, 150, 8


def scored(tok: Tokenizer, picked: list[dict]) -> tuple:
    """Latents, captions, actions and poses of dataset clips."""
    lat = torch.cat([tok.encode(c["frames"][None].transpose(1, 2).to(tok.dtype)).float() for c in picked])
    acts, poses = torch.cat([c["actions"][None] for c in picked]), torch.cat([c["poses"][None] for c in picked])
    return lat, [c["caption"] for c in picked], acts, poses


def main() -> None:
    torch.set_num_threads(2)
    OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/windows_check")
    tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
    cfg = model_for(LAYOUTS["f4c16"], 128, 2, sigma_data=LATENT_SIGMA, rope_frames=WINDOW)
    frames = cfg.video_frames(CLIP_LATENTS)

    if not (OUT / "data").exists():
        generate(OUT / "data", [m for _, m in TRAIN_MAPS], EPISODES, 600, seed=99, workers=2)
    if not (OUT / "clips.safetensors").exists():
        data = ClipDataset(OUT / "data", frames=frames, split="train", palindrome=0.3, stride=4, seed=0)
        encode_clips(tok, data, CLIPS, images=True).save(OUT / "clips.safetensors")
    clips = LatentClips.load(OUT / "clips.safetensors")

    ev = ClipDataset("data/eval_tokenizer_f2", frames=cfg.video_frames(WINDOW), split="eval", stride=4)
    held_out = scored(tok, [ev[int(i)] for i in np.linspace(0, len(ev) - 1, 12).round().astype(int)])
    prefixes = dataclasses.replace(clips, images=None).batches(WINDOW, 12, seed=123)(0)  # 12 training prefixes
    train_set = (prefixes["latents"], prefixes["caption"], prefixes["actions"], prefixes["poses"])

    torch.manual_seed(0)
    init = WorldModel(cfg).state_dict()
    results = {}
    for mode in ("prefix", "windows"):
        model = WorldModel(cfg)
        model.load_state_dict(init)
        data = clips if mode == "windows" else dataclasses.replace(clips, images=None)
        rows = []

        def score(step, m, log):
            if step % EVERY:
                return
            m.eval()
            with torch.no_grad():
                row = {"step": step, "train_loss": log[-1]["loss"] if log else float("nan")}
                for name, (lat, caps, acts, poses) in (("held_out", held_out), ("train_prefixes", train_set)):
                    row[name] = held_out_loss(m, lat, m.encode_text(caps), acts, poses, TeacherConfig.shift)
            m.train()
            rows.append(row)
            print(mode, json.dumps(row), flush=True)

        tcfg = TrainConfig(steps=STEPS, lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01, warmup=50, batch_size=BATCH,
                           log_every=50, out_dir=str(OUT / mode))
        train(tcfg, model, teacher_loss(TeacherConfig()), data.batches(WINDOW, BATCH, seed=0), callback=score,
              resume=True)
        results[mode] = rows
    (OUT / "windows_check.json").write_text(json.dumps(results, indent=1))
    print(f"{'step':>5} | prefix: held-out / train prefixes | windows: held-out / train prefixes")
    for a, b in zip(results["prefix"], results["windows"]):
        print(f"{a['step']:5d} | {a['held_out']:.4f} / {a['train_prefixes']:.4f} | {b['held_out']:.4f} / {b['train_prefixes']:.4f}")


if __name__ == "__main__":  # the data stage's engine workers re-import this file
    main()
