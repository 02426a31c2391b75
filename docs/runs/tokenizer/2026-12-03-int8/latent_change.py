"""How far does int8 move the campaign tokenizer's latents? The play part (encoder + tiny decoder) in blockwise int8
(`relickit.checkpoint.save_int8`) against the fp16 one it was made from, on the teacher evaluation's first four
held-out clips (49 frames, MAP21-MAP24): the RMS of the latents' change over the RMS of the latents.

    python docs/runs/tokenizer/2026-12-03-int8/latent_change.py FP16_PLAY_PART INT8_PLAY_PART   # CPU box, 1 min
"""
import sys

import torch

from relickit.evaluate.teacher import evaluation_clips
from relickit.vae import Tokenizer

torch.set_num_threads(2)
before, after = (Tokenizer.load(p).eval() for p in sys.argv[1:3])
change = size = 0.0
with torch.no_grad():
    for _, clip in evaluation_clips("data/eval_tokenizer_f2", 49, 4):
        x = clip["frames"][None].transpose(1, 2)
        a, b = before.encode(x), after.encode(x)
        change, size = change + (a - b).pow(2).mean().item(), size + a.pow(2).mean().item()
print(f"latent RMS change / latent RMS: {(change / size) ** 0.5:.4f}")
