"""The pose estimator on the twelve held-out maps' 97-frame clips: its own RPE (relickit.posenet.estimator_floor) and,
per motion component, how much of the true motion it reads (slope of predicted on true) and how well (correlation).

    python docs/runs/2026-12-05-posenet/pose_diag.py [ESTIMATOR] [HELD_OUT]
"""
import json
import sys

import numpy as np
import torch

from relickit.dataset import load_episodes
from relickit.posenet import (DEFAULT_PATH, PoseNet, PoseNetTrainConfig, estimator_floor, predict_motion,
                              relative_motion)

torch.set_num_threads(1)
net = PoseNet.load(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH)
episodes = load_episodes(sys.argv[2] if len(sys.argv) > 2 else "data/eval_tokenizer_f2")
print(json.dumps(estimator_floor(net, episodes), indent=1))
pred, true = [], []
for ep in episodes:
    r, p = np.asarray(ep.rotations), np.asarray(ep.positions)
    ok = np.linalg.norm(np.diff(p, axis=0), axis=1) <= PoseNetTrainConfig.jump_units  # no teleports, as the floor
    pred.append(predict_motion(net, ep.frames(0, len(ep))).numpy()[ok])
    true.append(relative_motion(r, p, net.cfg).numpy()[ok])
pred, true = np.concatenate(pred), np.concatenate(true)
for i, name in enumerate(["sideways", "vertical", "forward", "yaw", "pitch", "roll"]):
    t, q = true[:, i], pred[:, i]
    slope = (t * q).sum() / max((t * t).sum(), 1e-12)
    corr = np.corrcoef(t, q)[0, 1] if t.std() > 0 else float("nan")
    print(f"{name:8s} true std {t.std():.3f}  rmse {np.sqrt(((q - t) ** 2).mean()):.3f}  "
          f"zero-motion rmse {np.sqrt((t ** 2).mean()):.3f}  slope {slope:.3f}  corr {corr:.3f}")
