"""The tokenizer ceiling (the clip through encoder + tiny decoder, frames 1..) of the teacher evaluation's twelve
held-out clips (data/eval_tokenizer_f2, picked as `relickit.evaluate.teacher --held-out` picks them), per tokenizer:

    python docs/runs/tokenizer/2026-12-03-f4c16-run6/teacher_clip_ceiling.py relickit/assets/tokenizer.safetensors \\
        data/weights/tokenizer/f4c16.safetensors
"""
import sys
from types import SimpleNamespace

import numpy as np

from relickit.dataset import ClipDataset
from relickit.evaluate.scoring import compare, references
from relickit.evaluate.teacher import TeacherEvalConfig
from relickit.model import WorldModel
from relickit.play import DEFAULT_MODEL, to_uint8
from relickit.vae import Tokenizer

cfg = TeacherEvalConfig()
frames = WorldModel.load(DEFAULT_MODEL).cfg.video_frames(cfg.latent_frames)
data = ClipDataset("data/eval_tokenizer_f2", frames=frames, split="eval", stride=cfg.stride)
picks = np.linspace(0, len(data) - 1, 12).round().astype(int)
for path in sys.argv[1:]:
    tok, rows = Tokenizer.load(path), []
    for i in picks:
        truth = to_uint8(data[int(i)]["frames"].transpose(0, 1))
        ceiling = references(SimpleNamespace(tokenizer=tok, decoder="tiny"), truth)
        rows.append(compare({"model": ceiling["tokenizer_ceiling"], **ceiling}, truth)["model"])
    print(path, {k: round(float(np.mean([r[k] for r in rows])), 3)
                 for k in ("psnr", "ssim", "sharpness", "brightness", "saturation")})
