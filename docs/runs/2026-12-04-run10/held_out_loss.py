"""The held-out flow-matching loss of several teacher checkpoints on the same clips: where along a run the loss
turned (relickit.evaluate.teacher.held_out_loss, the number its report holds as `teacher_held_out_loss`).

    python docs/runs/2026-12-04-run10/held_out_loss.py DATA TOKENIZER CHECKPOINT...

DATA: an eval-split dataset scored one clip per episode, as `--held-out` scores it (data/eval_tokenizer_f2).
"""
import sys
from pathlib import Path

import torch

from relickit.evaluate.teacher import TeacherEvalConfig, evaluation_clips, held_out_loss
from relickit.model import WorldModel
from relickit.vae import Tokenizer

data, tokenizer, checkpoints = sys.argv[1], Tokenizer.load(sys.argv[2]), sys.argv[3:]
cfg = TeacherEvalConfig()
models = {path: WorldModel.load(path).float().eval() for path in checkpoints}
frames = next(iter(models.values())).cfg.video_frames(cfg.latent_frames)
with torch.no_grad():
    clips = [clip for _, clip in evaluation_clips(data, frames, len(list(Path(data).glob("ep*.npz"))), cfg.stride)]
    latents = torch.cat([tokenizer.encode(c["frames"][None].transpose(1, 2).to(tokenizer.dtype)).float() for c in clips])
    actions, poses = (torch.cat([c[k][None] for c in clips]) for k in ("actions", "poses"))
    for path, model in models.items():
        context = torch.cat([model.encode_text([c["caption"]]) for c in clips])
        loss = held_out_loss(model, latents, context, actions, poses, cfg.train_shift, cfg.loss_levels, cfg.seed)
        print(f"{loss:.6f}  {path}")
