"""Is a window cut from a long encoded clip easier for the teacher than the same frames encoded alone?

    python docs/runs/2026-12-05-run19/encode_gap.py OUT.json TEACHER

The recipe encodes 49-latent-frame clips (193 frames) whole and its teacher trains on 13-latent-frame windows cut
from them, each window's first latent replaced by its first frame encoded alone (`encode_clips(images=True)`); the
evaluation encodes each 49-frame clip alone. For each of the 24 new training-map episodes of clip_gap.py
(runs/clip_gap/new, seed 1019, never trained on), the 49 frames from a start s >= 144 both ways: `alone`, and `cut`
(frames s - 144 .. s + 48 encoded whole, the last 13 latents kept, the first of them the image latent of frame s).
Both scored by `held_out_loss` with the same noise (clip i, seed i) and the 49-frame clip's own actions and poses:
cut - alone, paired per episode.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch

from relickit.dataset import ClipDataset
from relickit.evaluate.teacher import TeacherEvalConfig
from relickit.model import WorldModel
from relickit.teacher import held_out_loss
from relickit.vae import Tokenizer

ROOT, TOKENIZER, SEED = "runs/clip_gap/new", "data/weights/tokenizer/f4c16.safetensors", 0
WINDOW, CLIP = 13, 49  # latent frames: the teacher's first stage, the recipe's encoded clips


def main(out: str, teacher: str) -> None:
    torch.set_num_threads(1)
    cfg = TeacherEvalConfig()
    tok = Tokenizer.load(TOKENIZER).eval()
    model = WorldModel.load(teacher).eval()
    td = tok.cfg.temporal_down
    frames, lead = 1 + td * (WINDOW - 1), td * (CLIP - WINDOW)  # 49 frames; 144 frames before them
    long = ClipDataset(ROOT, frames=frames + lead, split="train", stride=4)
    short = ClipDataset(ROOT, frames=frames, split="train", stride=4)  # the same 49 frames' actions and poses
    index = {(int(e), int(s)): i for i, (e, s) in enumerate(zip(short._episode, short._starts))}
    rng = np.random.default_rng(SEED)
    rows = [int(rng.choice(np.flatnonzero(long._episode == k))) for k in range(len(long.episodes))]
    per = {"alone": [], "cut": []}
    with torch.no_grad():
        for i, r in enumerate(rows):
            c = long[r]
            video = c["frames"][None].transpose(1, 2).to(tok.dtype)  # (1, 3, 193, H, W)
            tail = video[:, :, lead:]
            alone = tok.encode(tail).float()
            cut = tok.encode(video).float()[:, :, -WINDOW:]
            cut[:, :, 0] = tok.encode(tail[:, :, :1]).float()[:, :, 0]
            own = short[index[(int(long._episode[r]), int(long._starts[r]) + lead)]]
            assert torch.equal(own["frames"], c["frames"][lead:])
            actions, poses = own["actions"][None], own["poses"][None]
            ctx = model.encode_text([c["caption"]])
            for name, lat in (("alone", alone), ("cut", cut)):
                per[name].append(held_out_loss(model, lat, ctx, actions, poses, cfg.train_shift, cfg.loss_levels,
                                               seed=i))
    d = np.array(per["cut"]) - np.array(per["alone"])
    result = {"settings": {"root": ROOT, "teacher": teacher, "episodes": len(rows), "window": WINDOW, "clip": CLIP,
                           "seed": SEED, "starts": [int(long._starts[r]) + lead for r in rows]},
              "alone": float(np.mean(per["alone"])), "cut": float(np.mean(per["cut"])),
              "cut_minus_alone": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))),
              "cut_lower": int((d < 0).sum()), "per_episode": per}
    print(json.dumps({k: v for k, v in result.items() if k != "per_episode"}, indent=1))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
