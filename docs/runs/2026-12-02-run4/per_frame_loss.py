"""Per latent frame, how far does the teacher carry its start frame? Its held-out flow-matching loss per frame at
high noise with each clip's own first latent frame and with another clip's, beside the loss of copying the first
frame forward (x0 error) and each frame's variance (the loss of predicting the mean).

    python docs/runs/2026-12-02-run4/per_frame_loss.py data/weights/world/teacher.safetensors [DATA [TOKENIZER]]

DATA: an eval-split dataset, one clip per episode (e.g. data/eval_tokenizer_f2, the twelve held-out maps of
`relickit.evaluate.teacher --held-out`); default the teacher evaluation's 8 clips of data/sample/eval.
TOKENIZER: the one whose latents the teacher was trained on (default the shipped one).
"""
import sys
from pathlib import Path

import torch

from relickit.diffusion import add_noise, timesteps
from relickit.evaluate.teacher import TeacherEvalConfig, evaluation_clips
from relickit.memory import bidirectional_visibility
from relickit.model import WorldModel
from relickit.tutorial import sample_data
from relickit.vae import Tokenizer

cfg = TeacherEvalConfig()
model = WorldModel.load(sys.argv[1]).float().eval()
tok = Tokenizer.load(sys.argv[3] if len(sys.argv) > 3 else "relickit/assets/tokenizer.safetensors")
root = Path(sys.argv[2]) if len(sys.argv) > 2 else sample_data("eval")
count = len(list(root.glob("ep*.npz"))) if len(sys.argv) > 2 else cfg.clips
clips = [clip for _, clip in evaluation_clips(root, model.cfg.video_frames(cfg.latent_frames), count, cfg.stride)]
with torch.no_grad():
    lat = torch.cat([tok.encode(c["frames"][None].transpose(1, 2).to(tok.dtype)).float() for c in clips])
    ctx = torch.cat([model.encode_text([c["caption"]]) for c in clips])
    acts, poses = torch.cat([c["actions"][None] for c in clips]), torch.cat([c["poses"][None] for c in clips])
    b, f = lat.shape[0], lat.shape[2]
    gen = torch.Generator().manual_seed(cfg.seed)

    def per_frame(first, s, noise):
        x0 = torch.cat([first, lat[:, :, 1:]], 2)
        sigma = torch.full((b, f), s)
        sigma[:, 0] = 0
        v = model(add_noise(x0, noise, sigma), timesteps(sigma), ctx, acts, poses, bidirectional_visibility(f))
        return ((v - (noise - x0)) ** 2).mean((0, 1, 3, 4))[1:]

    show = lambda name, xs: print(f"{name:22s}", " ".join(f"{x:.3f}" for x in xs))  # noqa: E731
    for s in (1.0, 0.9, 0.6):
        noise = torch.randn(lat.shape, generator=gen)
        show(f"sigma {s}: own", per_frame(lat[:, :, :1], s, noise))
        show(f"sigma {s}: other", per_frame(lat[:, :, :1].roll(1, 0), s, noise))
    show("copy first frame", ((lat[:, :, 1:] - lat[:, :, :1]) ** 2).mean((0, 1, 3, 4)))
    show("variance (the mean)", lat[:, :, 1:].var((0, 3, 4)).mean(0))
