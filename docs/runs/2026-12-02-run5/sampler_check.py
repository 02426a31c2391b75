"""Is the teacher's blur its sampler's or its own? The teacher's clips on the twelve held-out maps drawn four ways
from the same noise, each decoded by the tiny decoder and scored like `relickit.evaluate.teacher`:

- ode 32 / ode 8: Euler on the flow (the evaluation's sampler is ode 32), x_next = x + (s_next - s) v;
- ancestral 32: each step predicts x0 = x - s v and re-noises it to s_next with fresh noise, as the student's
  few-step sampler does between its sigmas;
- churn 32 (eta 0.5): the noise estimate x + (1 - s) v mixed with fresh noise, sqrt(1 - eta^2) : eta.

    python docs/runs/2026-12-02-run5/sampler_check.py data/weights/world/teacher.safetensors data/eval_tokenizer_f2
"""
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from relickit.dataset import ClipDataset
from relickit.diffusion import SamplerConfig, timesteps
from relickit.evaluate.scoring import compare, mean_pictures, references
from relickit.evaluate.teacher import TeacherEvalConfig
from relickit.memory import bidirectional_visibility
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

torch.set_num_threads(1)
cfg = TeacherEvalConfig()
model = WorldModel.load(sys.argv[1]).float().eval()
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
root = Path(sys.argv[2])
data = ClipDataset(root, frames=model.cfg.video_frames(cfg.latent_frames), split="eval", stride=cfg.stride)
picks = np.linspace(0, len(data) - 1, len(list(root.glob("ep*.npz")))).round().astype(int)


@torch.no_grad()
def sample(first, noise, ctx, acts, poses, steps: int, eta: float, gen) -> torch.Tensor:
    """eta 0: Euler on the flow; 1: ancestral (fresh noise each step); between: churn."""
    b, f = noise.shape[0], noise.shape[2]
    x = noise.clone()
    x[:, :, :1] = first
    grid = SamplerConfig(teacher_steps=steps).teacher_grid()
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
        sigma = torch.full((b, f), s)
        sigma[:, 0] = 0.0
        v = model(x, timesteps(sigma), ctx, acts, poses, bidirectional_visibility(f))
        x0, eps = x - s * v, x + (1 - s) * v
        if eta:
            eps = (1 - eta**2) ** 0.5 * eps + eta * torch.randn(x.shape, generator=gen)
        x = (1 - s_next) * x0 + s_next * eps
        x[:, :, :1] = first
    return x


ways = {"ode 32": (32, 0.0), "ode 8": (8, 0.0), "ancestral 32": (32, 1.0), "churn 32 (eta 0.5)": (32, 0.5)}
scores = {w: [] for w in ways}
gen = torch.Generator().manual_seed(cfg.seed)
for i in picks:
    clip = data[int(i)]
    truth = to_uint8(clip["frames"].transpose(0, 1))
    lat = tok.encode(clip["frames"][None].transpose(1, 2).to(tok.dtype)).float()
    ctx = model.encode_text([clip["caption"]])
    acts, poses = clip["actions"][None], clip["poses"][None]
    noise = torch.randn(lat.shape, generator=gen)
    refs = references(SimpleNamespace(tokenizer=tok, decoder="tiny"), truth)
    for w, (steps, eta) in ways.items():
        z = sample(lat[:, :, :1], noise, ctx, acts, poses, steps, eta, torch.Generator().manual_seed(int(i)))
        video = to_uint8(tok.decode_tiny(z)[0].float())
        scores[w].append(compare({"model": video, **refs}, truth, fps=model.cfg.fps))
    print(clip["map"], " ".join(f"{w}: {scores[w][-1]['model']['psnr']:.2f}/{scores[w][-1]['model']['sharpness']:.2f}"
                                for w in ways), flush=True)
print(f"{'sampler':20s} PSNR   SSIM   sharpness brightness")
for w in ways:
    m = mean_pictures(scores[w])["model"]
    print(f"{w:20s} {m['psnr']:.2f}  {m['ssim']:.3f}  {m['sharpness']:.3f}     {m['brightness']:.3f}")
