"""Does the teacher's sampler grid change its held-out picture? Run 6's teacher on the teacher evaluation's twelve
held-out clips (one per map, MAP21-MAP32), each sampled from the same noise with five Euler grids (timestep shift x
steps), decoded by the shipped tokenizer's tiny decoder and scored against the truth.

    python docs/runs/2026-12-03-run7/sampler_grid.py   # CPU box, 2 threads, 6 min -> sampler_grid.json beside it
"""
import json
from pathlib import Path

import numpy as np
import torch

from relickit.diffusion import SamplerConfig, sample_teacher
from relickit.evaluate.scoring import compare
from relickit.evaluate.teacher import evaluation_clips
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

GRIDS = {"s5_n32": SamplerConfig(shift=5, teacher_steps=32), "s5_n64": SamplerConfig(shift=5, teacher_steps=64),
         "s2_n32": SamplerConfig(shift=2, teacher_steps=32), "s10_n32": SamplerConfig(shift=10, teacher_steps=32),
         "s1_n32": SamplerConfig(shift=1, teacher_steps=32)}
METRICS = ("psnr", "ssim", "sharpness", "brightness")

torch.set_num_threads(2)
teacher = WorldModel.load("data/weights/world/teacher.safetensors").float().eval()
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
gen = torch.Generator().manual_seed(0)
rows = {k: [] for k in GRIDS}
with torch.no_grad():
    for _, clip in evaluation_clips("data/eval_tokenizer_f2", teacher.cfg.video_frames(13), 12):
        truth = to_uint8(clip["frames"].transpose(0, 1))
        lat = tok.encode(clip["frames"][None].transpose(1, 2))
        noise = torch.randn(lat.shape, generator=gen)
        ctx = teacher.encode_text([clip["caption"]])
        for k, grid in GRIDS.items():
            z, _ = sample_teacher(teacher, lat[:, :, :1], 13, ctx, clip["actions"][None], clip["poses"][None], grid,
                                  noise=noise)
            scores = compare({"model": to_uint8(tok.decode_tiny(z)[0].float())}, truth, fps=teacher.cfg.fps)["model"]
            rows[k].append({m: scores[m] for m in METRICS})
mean = {k: {m: float(np.mean([r[m] for r in v])) for m in METRICS} for k, v in rows.items()}
for k, v in rows.items():  # the PSNR change against the evaluation's grid, clip by clip
    d = np.array([a["psnr"] - b["psnr"] for a, b in zip(v, rows["s5_n32"])])
    mean[k]["dpsnr_stderr"] = float(d.std(ddof=1) / np.sqrt(len(d)))
print(json.dumps(mean, indent=1))
(Path(__file__).parent / "sampler_grid.json").write_text(json.dumps({"mean": mean, "rows": rows}, indent=1))
