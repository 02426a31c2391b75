"""Does the teacher's sampler draw different clips from different noise, or one clip whatever the noise? Each kept
teacher on the teacher evaluation's twelve held-out clips (one per map, MAP21-MAP32), `DRAWS` clips per start frame
from independent noise (32 Euler steps, the evaluation's sampler), decoded by tokenizer run 6's tiny decoder. Per
second of the clip: the draws' PSNR to the truth through the same tokenizer (its ceiling clip, so that both sides
are decoded alike), and their PSNR to each other (every pair). For a teacher that has learnt the distribution of
clips given the start frame and controls, the truth is one more draw from it, and the two numbers are equal on
average; draws that agree with each other better than with the truth are under-dispersed (a blur is the limit: one
clip whatever the noise).

    python docs/runs/2026-12-04-run9/sample_diversity.py NAME=TEACHER ...   # CPU box -> sample_diversity.json

The scoring is relickit.evaluate.scoring.draw_spread, which the teacher evaluation now runs (`--draws`); with two
teachers, the second's per-clip gaps are paired against the first's (relickit.evaluate.scoring.change_stats).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from relickit.diffusion import SamplerConfig, sample_teacher
from relickit.evaluate.scoring import change_stats, draw_spread
from relickit.evaluate.teacher import evaluation_clips
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

DRAWS, CLIPS, LATENT_FRAMES = 3, 12, 13
torch.set_num_threads(2)
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors")
out = {}
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    teacher = WorldModel.load(path).float().eval()
    rows = []
    for i, clip in evaluation_clips("data/eval_tokenizer_f2", teacher.cfg.video_frames(LATENT_FRAMES), CLIPS):
        with torch.no_grad():
            lat = tok.encode(clip["frames"][None].transpose(1, 2))
            truth = to_uint8(tok.decode_tiny(lat)[0].float())  # (T, H, W, 3): the ceiling clip
            ctx = teacher.encode_text([clip["caption"]])
            gen = torch.Generator().manual_seed(i)
            draws = [to_uint8(tok.decode_tiny(sample_teacher(
                teacher, lat[:, :, :1], LATENT_FRAMES, ctx, clip["actions"][None], clip["poses"][None],
                SamplerConfig(), noise=torch.randn(lat.shape, generator=gen))[0])[0].float()) for _ in range(DRAWS)]
        rows.append({"map": clip["map"], **draw_spread(draws, truth, teacher.cfg.fps)})
        print(name, clip["map"], {k: np.round(rows[-1][k], 2).tolist() for k in ("to_truth", "to_each_other")},
              flush=True)
    out[name] = {k: np.mean([r[k] for r in rows], 0).round(2).tolist() for k in ("to_truth", "to_each_other")}
    out[name] |= {"gap_db": float(np.mean([r["gap_db"] for r in rows])), "rows": rows}
    print(name, {k: out[name][k] for k in ("to_truth", "to_each_other", "gap_db")}, flush=True)
if len(out) == 2:
    first, second = (np.array([r["gap_db"] for r in v["rows"]]) for v in out.values())
    out["gap_change"] = change_stats(second - first)  # the second teacher's against the first's, clip by clip
    print("gap change", out["gap_change"])
(Path(__file__).parent / "sample_diversity.json").write_text(json.dumps(out, indent=1))
