"""Teacher against student on held-out clips: per-second PSNR/SSIM of generated frames against the engine's truth.

    python scripts/eval_teacher_vs_student.py --teacher runs/default/teacher/stage2.safetensors

Clips of 13 latent frames (49 frames, 3 s) from data/sample/eval (held-out maps MAP21 and E1M1). The teacher
samples each clip whole (Euler, --steps), from its first frame, caption, actions and poses; the student rolls it
out chunk by chunk with compressed memory (4 steps per chunk), from the same conditions. Both are decoded by
the tiny decoder; "reconstruction" is the tokenizer alone (encode + decode of the true clip), the ceiling.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from relickit.config import MemoryConfig
from relickit.dataset import ClipDataset
from relickit.diffusion import SamplerConfig, rollout, sample_teacher
from relickit.metrics import per_second, psnr_frames, ssim_frames
from relickit.model import WorldModel
from relickit.play import DEFAULT_MODEL, DEFAULT_TOKENIZER, to_uint8
from relickit.tutorial import sample_data
from relickit.vae import Tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", default=str(DEFAULT_MODEL))
    ap.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tok = Tokenizer.load(args.tokenizer)
    teacher = WorldModel.load(args.teacher).float().eval()
    student = WorldModel.load(args.student).float().eval()
    latent_frames = 13
    data = ClipDataset(sample_data("eval"), frames=student.cfg.video_frames(latent_frames), split="eval", stride=4)
    rows = np.linspace(0, len(data) - 1, args.clips).round().astype(int)
    scores = {k: {"psnr": [], "ssim": []} for k in ("reconstruction", "teacher", "student")}
    gen = torch.Generator().manual_seed(args.seed)
    chunk = (1, 16, student.cfg.chunk, *student.cfg.latent_size)
    with torch.no_grad():
        for r in rows:
            clip = data[int(r)]
            truth = to_uint8(clip["frames"].transpose(0, 1))
            lat = tok.encode(clip["frames"][None].transpose(1, 2))
            acts, poses = clip["actions"][None], clip["poses"][None]
            noise = torch.randn(lat.shape, generator=gen)
            t, _ = sample_teacher(teacher, lat[:, :, :1], latent_frames, teacher.encode_text([clip["caption"]]), acts,
                                  poses, SamplerConfig(teacher_steps=args.steps), noise=noise)
            table = [[torch.randn(chunk, generator=gen) for _ in range(4)] for _ in range(latent_frames)]
            s = rollout(student, student.new_cache(MemoryConfig()), lat[:, :, :1], student.encode_text([clip["caption"]]),
                        acts, poses, latent_frames, SamplerConfig().sigmas, lambda j, i: table[j][i]).latents
            for name, z in (("reconstruction", lat), ("teacher", t), ("student", s)):
                video = to_uint8(tok.decode_tiny(z)[0])
                scores[name]["psnr"].append(per_second(psnr_frames(video, truth), student.cfg.fps))
                scores[name]["ssim"].append(per_second(ssim_frames(video, truth), student.cfg.fps))
    for name, d in scores.items():
        print(json.dumps({"model": name, "clips": len(rows),
                          "psnr_per_second": np.mean(d["psnr"], 0).round(2).tolist(),
                          "ssim_per_second": np.mean(d["ssim"], 0).round(3).tolist(),
                          "psnr_mean": round(float(np.mean(d["psnr"])), 2)}))


if __name__ == "__main__":
    main()
