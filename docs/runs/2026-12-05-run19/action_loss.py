"""Which actions make a clip hard for the teacher? (run 19's balanced-draw finding, by action)

    python docs/runs/2026-12-05-run19/action_loss.py OUT.json TEACHER [CLIPS]

CLIPS (default 96) 49-frame clips drawn uniformly (as they come, no palindromes) from the 24 new training-map
episodes of clip_gap.py (runs/clip_gap/new, seed 1019, never trained on), each encoded alone as the evaluation
encodes its clips and scored by `held_out_loss` alone (clip i with noise seed i); the mean loss per dominant action
(`ClipDataset.dominant`), and what the recipe's balanced draw and a draw as they come would average from those
means (weights: each action's share of all clips of the episodes, balanced or not).
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch

from relickit.dataset import ACTIONS, ClipDataset
from relickit.evaluate.teacher import TeacherEvalConfig
from relickit.model import WorldModel
from relickit.teacher import held_out_loss
from relickit.vae import Tokenizer

ROOT, TOKENIZER, FRAMES, SEED = "runs/clip_gap/new", "data/weights/tokenizer/f4c16.safetensors", 49, 0


def main(out: str, teacher: str, count: int = 96) -> None:
    torch.set_num_threads(1)
    cfg = TeacherEvalConfig()
    tok = Tokenizer.load(TOKENIZER).eval()
    model = WorldModel.load(teacher).eval()
    data = ClipDataset(ROOT, frames=FRAMES, split="train", stride=4)
    rows = np.random.default_rng(SEED).choice(len(data), count, replace=False)
    losses = []
    with torch.no_grad():
        for i, r in enumerate(rows):
            c = data[int(r)]
            lat = tok.encode(c["frames"][None].transpose(1, 2).to(tok.dtype)).float()
            losses.append(held_out_loss(model, lat, model.encode_text([c["caption"]]), c["actions"][None],
                                        c["poses"][None], cfg.train_shift, cfg.loss_levels, seed=i))
    losses, dom = np.array(losses), data.dominant[rows]
    share = np.bincount(data.dominant, minlength=len(ACTIONS)) / len(data)
    per = {}
    for a in np.unique(dom):
        x = losses[dom == a]
        per[ACTIONS[a]] = {"clips": int(len(x)), "loss": float(x.mean()),
                           "se": float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None,
                           "share_as_they_come": float(share[a])}
    seen = [ACTIONS.index(a) for a in per]
    mean = np.array([per[ACTIONS[a]]["loss"] for a in seen])
    as_they_come = share[seen] / share[seen].sum()
    result = {"settings": {"root": ROOT, "teacher": teacher, "clips": count, "frames": FRAMES, "seed": SEED},
              "mean_loss": float(losses.mean()), "se": float(losses.std(ddof=1) / np.sqrt(count)),
              "by_action": per, "mix_balanced": float(mean.mean()), "mix_as_they_come": float(mean @ as_they_come),
              "rows": rows.tolist(), "losses": losses.tolist()}
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "losses")}, indent=1))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
