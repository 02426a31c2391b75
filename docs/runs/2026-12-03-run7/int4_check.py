"""Would a 4-bit continuation format cost the campaign's teacher anything? The tree that carries the campaign's state
to the GPU has room for about 12M teacher parameters in int8 (docs/runs/campaign.md, run 7); blockwise 4-bit (32
values per fp16 scale, 4.5 bits a value) would hold 1.8 times as many. Run 7's teacher (int8, as committed) against
its weights rounded to 4 bits: the held-out flow-matching loss per noise level and over the training distribution,
on the teacher evaluation's twelve held-out clips (one per map, MAP21-MAP32, encoded by the tokenizer it reads).

    python docs/runs/2026-12-03-run7/int4_check.py   # CPU box, 2 threads, a few minutes
"""
import json

import torch

from relickit.evaluate.teacher import TeacherEvalConfig, evaluation_clips, held_out_loss, start_frame_reliance
from relickit.model import WorldModel
from relickit.vae import Tokenizer

BLOCK, LEVELS = 32, 7  # 4 bits: -7..7 times the block's absmax / 7


def round_4bit(w: torch.Tensor) -> torch.Tensor:
    rows = w.float().reshape(-1, BLOCK)
    scale = (rows.abs().amax(1, keepdim=True) / LEVELS).half().float()
    q = torch.where(scale > 0, rows / scale.clamp_min(1e-30), 0).round().clamp(-LEVELS, LEVELS)
    return (q * scale).reshape(w.shape)


torch.set_num_threads(2)
int8 = WorldModel.load("data/weights/world/teacher.safetensors").eval()
int4 = WorldModel.load("data/weights/world/teacher.safetensors").eval()
with torch.no_grad():
    for name, p in int4.named_parameters():
        if p.dim() >= 2 and p.numel() % BLOCK == 0:
            p.copy_(round_4bit(p))
tok = Tokenizer.load("data/weights/world/tokenizer.safetensors")
clips = [clip for _, clip in evaluation_clips("data/eval_tokenizer_f2", int8.cfg.video_frames(13), 12)]
with torch.no_grad():
    lat = torch.cat([tok.encode(c["frames"][None].transpose(1, 2)) for c in clips]).float()
acts = torch.stack([c["actions"] for c in clips])
poses = torch.stack([c["poses"] for c in clips])
out = {}
for name, m in (("int8", int8), ("int4", int4)):
    ctx = m.encode_text([c["caption"] for c in clips])
    out[name] = {"per_sigma": {s: v["own"] for s, v in start_frame_reliance(m, lat, ctx, acts, poses).items()},
                 "held_out_loss": held_out_loss(m, lat, ctx, acts, poses, TeacherEvalConfig.train_shift)}
out["change"] = out["int4"]["held_out_loss"] / out["int8"]["held_out_loss"] - 1
print(json.dumps(out, indent=1))
