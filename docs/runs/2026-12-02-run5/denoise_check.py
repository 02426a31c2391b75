"""Where does the teacher's blur come from: high noise (it commits to the mean before any detail is decided) or low
noise (it smooths detail it is given)? Each held-out clip's true latents are noised to a level s0 (the same noise
for every level) and the teacher's Euler sampler runs from s0 to 0 (SDEdit); frames decoded by the tiny decoder and
scored like `relickit.evaluate.teacher`. s0 = 1 is the evaluation's clip from pure noise; s0 = 0 is the tokenizer
ceiling. If a clip from s0 = 0.25 is as sharp as the ceiling, low-noise denoising keeps detail and the blur is
decided at high noise; if it is already blurred, the model smooths what it is shown.

    python docs/runs/2026-12-02-run5/denoise_check.py data/weights/world/teacher.safetensors data/eval_tokenizer_f2
"""
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from relickit.dataset import ClipDataset
from relickit.diffusion import add_noise, sample_teacher
from relickit.evaluate.scoring import compare, mean_pictures, references
from relickit.evaluate.teacher import TeacherEvalConfig
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
torch.set_num_threads(1)
cfg = TeacherEvalConfig()
model = WorldModel.load(sys.argv[1]).float().eval()
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
root = Path(sys.argv[2])
data = ClipDataset(root, frames=model.cfg.video_frames(cfg.latent_frames), split="eval", stride=cfg.stride)
picks = np.linspace(0, len(data) - 1, len(list(root.glob("ep*.npz")))).round().astype(int)


def from_level(lat, noise, s0, ctx, acts, poses) -> torch.Tensor:
    """The evaluation's Euler grid from the truth noised to s0 (sample_teacher's SDEdit start); s0 = 0: the truth."""
    if s0 == 0:
        return lat
    start = add_noise(lat, noise, torch.full((1, lat.shape[2]), s0))
    return sample_teacher(model, lat[:, :, :1], lat.shape[2], ctx, acts, poses, noise=start, start_sigma=s0)[0]


scores = {s: [] for s in LEVELS}
gen = torch.Generator().manual_seed(cfg.seed)
for i in picks:
    clip = data[int(i)]
    truth = to_uint8(clip["frames"].transpose(0, 1))
    lat = tok.encode(clip["frames"][None].transpose(1, 2).to(tok.dtype)).float()
    ctx = model.encode_text([clip["caption"]])
    acts, poses = clip["actions"][None], clip["poses"][None]
    noise = torch.randn(lat.shape, generator=gen)
    refs = references(SimpleNamespace(tokenizer=tok, decoder="tiny"), truth)
    for s0 in LEVELS:
        video = to_uint8(tok.decode_tiny(from_level(lat, noise, s0, ctx, acts, poses))[0].float())
        scores[s0].append(compare({"model": video, **refs}, truth, fps=model.cfg.fps))
    print(clip["map"], " ".join(f"{s0}: {scores[s0][-1]['model']['psnr']:.2f}/{scores[s0][-1]['model']['sharpness']:.3f}"
                                for s0 in LEVELS), flush=True)
print(f"{'from sigma':10s} PSNR   SSIM   sharpness brightness")
for s0 in LEVELS:
    m = mean_pictures(scores[s0])["model"]
    print(f"{s0:<10} {m['psnr']:.2f}  {m['ssim']:.3f}  {m['sharpness']:.3f}     {m['brightness']:.3f}")
