"""Does a stochastic sampler draw a sharper clip than the teacher's Euler ODE? Run 8's teacher on the teacher
evaluation's twelve held-out clips (one per map, MAP21-MAP32), each from the same start noise, sampled on the
evaluation's grid (shift 5, 32 steps) with churn c: at every step the predicted noise is renewed by a fraction c
(eps <- sqrt(1 - c^2) eps + c z, z fresh), c = 0 being Euler exactly and 1 an ancestral, re-noising sampler. Decoded by
tokenizer run 6's tiny decoder, scored against the truth.

    python docs/runs/2026-12-03-run8/sampler_churn.py 0 0.5 1   # CPU box, 2 threads, 5 min -> sampler_churn.json
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from relickit.diffusion import SamplerConfig, timesteps
from relickit.memory import bidirectional_visibility
from relickit.evaluate.scoring import compare
from relickit.evaluate.teacher import evaluation_clips
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

@torch.no_grad()
def sample(model, first, frames, ctx, actions, poses, grid, churn, gen, noise):
    """relickit.diffusion.sample_teacher's loop, the Euler step written as x0 and noise predictions recombined."""
    x = noise.clone()
    x[:, :, :1] = first
    vis = bidirectional_visibility(frames)
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
        sigma = torch.full((x.shape[0], frames), s)
        sigma[:, 0] = 0
        v = model(x, timesteps(sigma), ctx, actions, poses, vis)
        x0, eps = x - s * v, x + (1 - s) * v
        if churn and s_next > 0:
            eps = (1 - churn**2) ** 0.5 * eps + churn * torch.randn(x.shape, generator=gen)
        x = (1 - s_next) * x0 + s_next * eps
        x[:, :, :1] = first
    return x


torch.set_num_threads(2)
teacher = WorldModel.load("data/weights/world/teacher.safetensors").float().eval()
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors")
CH = [float(c) for c in sys.argv[1:]] or [0.0, 0.5, 1.0]
grid = SamplerConfig().teacher_grid()
gen0 = torch.Generator().manual_seed(0)
rows = {c: [] for c in CH}
t0 = time.time()
for i, (_, clip) in enumerate(evaluation_clips("data/eval_tokenizer_f2", teacher.cfg.video_frames(13), 12)):
    truth = to_uint8(clip["frames"].transpose(0, 1))
    lat = tok.encode(clip["frames"][None].transpose(1, 2))
    noise = torch.randn(lat.shape, generator=gen0)
    ctx = teacher.encode_text([clip["caption"]])
    for c in CH:
        z = sample(teacher, lat[:, :, :1], 13, ctx, clip["actions"][None], clip["poses"][None], grid, c,
                   torch.Generator().manual_seed(1000 + i), noise)
        s = compare({"model": to_uint8(tok.decode_tiny(z)[0].float())}, truth, fps=teacher.cfg.fps)["model"]
        rows[c].append({m: s[m] for m in ("psnr", "ssim", "sharpness", "brightness")})
    print(i, round(time.time() - t0), {c: round(rows[c][-1]["sharpness"], 3) for c in CH}, flush=True)
out = {}
for c in CH:
    out[c] = {m: float(np.mean([r[m] for r in rows[c]])) for m in ("psnr", "ssim", "sharpness", "brightness")}
    d = np.array([a["psnr"] - b["psnr"] for a, b in zip(rows[c], rows[CH[0]])])
    out[c]["dpsnr"] = float(d.mean())
    out[c]["dpsnr_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if c != CH[0] else 0.0
print(json.dumps(out, indent=1))
(Path(__file__).parent / "sampler_churn.json").write_text(json.dumps({"mean": out, "rows": {str(k): v for k, v in rows.items()}}, indent=1))
