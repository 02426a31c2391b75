"""Time one teacher training step (flow matching of whole clips, forward + backward + AdamW) per model size.

    python scripts/bench_teacher_step.py --sizes 192x8 256x12 384x12 --latent-frames 13 49 --batch 64 --layout f4c16

Random latents, actions, poses and captions in the shapes relickit.latents batches have; bf16 autocast on CUDA, as
the recipe trains. `--layout` picks the tokenizer's latent grid (relickit.vae.LAYOUTS); relickit.config.model_for
builds the model of each size for it (the DiT patch that gives 48 tokens per latent frame), with a RoPE range that
covers the longest clip. Prints one line per size and clip length: ms per step, clips/s, peak memory.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relickit.config import model_for, parse_size  # noqa: E402
from relickit.controls import ACTION_DIM, POSE_DIM  # noqa: E402
from relickit.model import WorldModel  # noqa: E402
from relickit.teacher import TeacherConfig, teacher_loss  # noqa: E402
from relickit.vae import LAYOUTS  # noqa: E402


def batch_of(cfg, batch: int, latent_frames: int, device: torch.device) -> dict:
    frames = 1 + (latent_frames - 1) * cfg.temporal_down
    h, w = cfg.latent_size
    return {"latents": torch.randn(batch, cfg.latent_channels, latent_frames, h, w, device=device),
            "actions": torch.randn(batch, frames, ACTION_DIM, device=device),
            "poses": torch.randn(batch, frames, POSE_DIM, device=device),
            "caption": ["a corridor with green walls"] * batch}


def step_ms(model: WorldModel, batch: dict, steps: int, warmup: int = 2) -> float:
    cuda = batch["latents"].is_cuda
    loss_fn = teacher_loss(TeacherConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(batch["latents"].device.type, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = loss_fn(model, batch, i)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["192x8", "256x12"], help="DIMxLAYERS")
    p.add_argument("--latent-frames", nargs="+", type=int, default=[13, 49])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="f4c16")
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    for size in a.sizes:
        cfg = model_for(LAYOUTS[a.layout], *parse_size(size), rope_frames=max(a.latent_frames))
        model = WorldModel(cfg).to(device)
        params = sum(q.numel() for q in model.parameters()) / 1e6
        for f in a.latent_frames:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            ms = step_ms(model, batch_of(cfg, a.batch, f, device), a.steps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            print(f"{a.layout} {size:>7} ({params:5.1f}M)  batch {a.batch} x {f:2d} latent frames: {ms:8.1f} ms/step, "
                  f"{a.batch / ms * 1000:7.1f} clips/s, peak {peak:5.1f} GiB  ({device.type}, {torch.__version__})")


if __name__ == "__main__":
    main()
