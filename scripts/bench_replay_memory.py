"""Peak GPU memory of a DMD generator update: naive vs replayed back-propagation, against rollout length.

    python scripts/bench_replay_memory.py --preset small --lengths 1,2,4

Rollout lengths are multiples of the base horizon (13 latent frames). The naive update keeps every chunk's graph
until the end; the replayed one (relickit.distill.generator_step(replay=True)) holds one block's graph at a time.
Random weights; teacher and critic are copies of the student. Prints one JSON line per (length, mode); a mode that
runs out of memory reports "oom".
"""
from __future__ import annotations

import argparse
import copy
import json

import torch

from relickit.config import MemoryConfig, preset
from relickit.distill import DistillConfig, generator_step
from relickit.model import WorldModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--base", type=int, default=13)
    ap.add_argument("--lengths", default="1,2,4")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", type=int, default=0, help="override the preset's layer count")
    args = ap.parse_args()
    over = {"layers": args.layers} if args.layers else {}
    torch.manual_seed(0)
    for mult in map(int, args.lengths.split(",")):
        frames = 1 + (args.base - 1) * mult
        cfg = preset(args.preset, rope_frames=frames, **over)
        student = WorldModel(cfg).cuda().to(torch.bfloat16)
        teacher = copy.deepcopy(student).requires_grad_(False)
        critic = copy.deepcopy(teacher)
        dcfg = DistillConfig(memory=MemoryConfig(policy="compressed", capacity=frames + 1))
        lh, lw = cfg.latent_size
        first = torch.randn(args.batch, cfg.latent_channels, 1, lh, lw, device="cuda", dtype=torch.bfloat16)
        video = cfg.video_frames(frames)
        acts = torch.rand(args.batch, video, 13, device="cuda", dtype=torch.bfloat16)
        poses = torch.zeros(args.batch, video, 12, device="cuda", dtype=torch.bfloat16)
        chunk = (args.batch, cfg.latent_channels, cfg.chunk, lh, lw)
        n_chunks = (frames - 1) // cfg.chunk
        for replay in (False, True):
            student.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            try:
                generator_step(student, teacher, critic, first, ["a room"] * args.batch, acts, poses, frames, dcfg,
                               [3] * n_chunks, lambda j, i: torch.randn(chunk, device="cuda", dtype=torch.bfloat16),
                               torch.randn(args.batch, cfg.latent_channels, frames, lh, lw, device="cuda", dtype=torch.bfloat16),
                               torch.tensor([0.5], device="cuda"), replay=replay)
                peak = (torch.cuda.max_memory_allocated() - base) / 2**30
            except torch.OutOfMemoryError:
                peak = "oom"
            print(json.dumps({"preset": cfg.name, "layers": cfg.layers, "latent_frames": frames,
                              "mode": "replayed" if replay else "naive", "peak_gb_above_weights": peak,
                              "device": torch.cuda.get_device_name()}), flush=True)
        del student, teacher, critic
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
