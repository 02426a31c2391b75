"""Are the first seconds of an episode harder for the teacher than later windows? (run 18's clip gap, continued)

    python docs/runs/2026-12-05-run19/start_gap.py OUT.json NAME=TEACHER ...

For each of the 24 new training-map episodes of clip_gap.py (runs/clip_gap/new, seed 1019, 600 frames, never trained
on), two 49-frame clips (13 latent frames), no palindromes: `start`, beginning in the episode's first 3 s (as the
evaluation's held-out clips do: frames 0-47), and `later`, beginning anywhere after 6 s; and `balanced`, as many clips
drawn from all 24 episodes with the recipe's action-balancing weights (`ClipDataset.weights`, as `encode_clips`
draws the training clips). Each clip is encoded alone, as the evaluation encodes its clips, and scored by
`held_out_loss` alone, clip i of every set with the same noise, so later - start is paired per episode; `balanced`
is set beside them unpaired (mean +- standard error).
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

ROOT, TOKENIZER, FRAMES, SEED = "runs/clip_gap/new", "data/weights/tokenizer/f4c16.safetensors", 49, 0
START_MAX, LATER_MIN = 48, 96


def main(out: str, teachers: list[str]) -> None:
    torch.set_num_threads(1)
    cfg = TeacherEvalConfig()
    tok = Tokenizer.load(TOKENIZER).eval()
    data = ClipDataset(ROOT, frames=FRAMES, split="train", stride=4)
    rng = np.random.default_rng(SEED)
    pairs = []
    for k in range(len(data.episodes)):
        idx = np.flatnonzero(data._episode == k)
        starts = data._starts[idx]
        early, late = idx[starts < START_MAX], idx[starts >= LATER_MIN]
        pairs.append((int(rng.choice(early)), int(rng.choice(late))))
    gen = torch.Generator().manual_seed(SEED)
    balanced = torch.multinomial(data.weights.float(), len(pairs), replacement=True, generator=gen).tolist()
    picks = {"start": [p[0] for p in pairs], "later": [p[1] for p in pairs], "balanced": balanced}
    clips = {}
    with torch.no_grad():
        for name, rows in picks.items():
            items = [data[r] for r in rows]
            clips[name] = (torch.cat([tok.encode(c["frames"][None].transpose(1, 2).to(tok.dtype)) for c in items]).float(),
                           [c["caption"] for c in items], torch.stack([c["actions"] for c in items]),
                           torch.stack([c["poses"] for c in items]), [int(c["start"]) for c in items])
        result = {"settings": {"root": ROOT, "episodes": len(pairs), "frames": FRAMES, "seed": SEED,
                               "start_frames": [0, START_MAX], "later_from": LATER_MIN,
                               "starts": {n: c[4] for n, c in clips.items()},
                               "episodes_of": {n: [str(data[r]["episode"]) for r in rows] for n, rows in picks.items()}, "teachers": teachers}, "loss": {}}
        for item in teachers:
            name, path = item.split("=", 1)
            model = WorldModel.load(path).eval()
            per = {}
            for set_name, (lat, caps, act, pos, _) in clips.items():
                ctx = model.encode_text(caps)
                per[set_name] = [held_out_loss(model, lat[i:i + 1], ctx[i:i + 1], act[i:i + 1], pos[i:i + 1],
                                               cfg.train_shift, cfg.loss_levels, seed=i) for i in range(len(caps))]
            d = np.array(per["later"]) - np.array(per["start"])
            result["loss"][name] = {"start": float(np.mean(per["start"])), "later": float(np.mean(per["later"])),
                                    "later_minus_start": float(d.mean()),
                                    "se": float(d.std(ddof=1) / np.sqrt(len(d))), "later_lower": int((d < 0).sum()),
                                    "balanced": float(np.mean(per["balanced"])),
                                    "balanced_se": float(np.std(per["balanced"], ddof=1) / np.sqrt(len(balanced))),
                                    "start_se": float(np.std(per["start"], ddof=1) / np.sqrt(len(pairs))),
                                    "per_episode": per}
            print(name, {k: v for k, v in result["loss"][name].items() if k != "per_episode"}, flush=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
