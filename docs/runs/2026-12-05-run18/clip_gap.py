"""Where run 18's gap between the training log's loss (0.160) and the held-out loss (0.202) comes from.

    python docs/runs/2026-12-05-run18/clip_gap.py OUT.json NAME=TEACHER ...

Three sets of training windows, each `CLIPS` clips of 49 latent frames encoded as the recipe's latents stage encodes
them (ClipDataset with the recipe's stride and palindromes, `encode_clips` with image latents) and cut into
13-latent-frame windows as its teacher stage draws them (`LatentClips.batches`):

- `run18_episodes`: the first EPISODES episodes of run 18's own data (the recipe's `generate`, seed 19: episode i is
  maps[i % 20] with `episode_seed(19, i)`, so these are the run's first episodes, if the engine replays alike on this
  machine), palindromes as trained (0.3): windows of clips the teacher trained on or overlapping them;
- `new_episodes`: as many new episodes on the same maps (seed 1019), palindromes as trained;
- `new_no_palindromes`: the same new episodes, no palindromes (every window a forward walk, as the evaluation's clips).

Each teacher's flow-matching loss over the training noise distribution (`held_out_loss`, the evaluation's number)
on each set. run18 - new = what the teacher keeps of its own clips; new - new_no_palindromes = what palindromes
(copyable returns) lower the training log by.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from relickit.dataset import ClipDataset, generate
from relickit.doom import TRAIN_MAPS
from relickit.evaluate.report import write_json
from relickit.evaluate.teacher import TeacherEvalConfig, held_out_loss
from relickit.latents import encode_clips
from relickit.model import WorldModel
from relickit.recipe import RecipeConfig
from relickit.teacher import TeacherConfig
from relickit.vae import Tokenizer

EPISODES, CLIPS, WINDOW = 24, 48, 13
RUN_SEED, NEW_SEED = 19, 1019
TOKENIZER = "data/weights/tokenizer/f4c16.safetensors"


def windows(root: Path, seed: int, palindrome: float, tok: Tokenizer, recipe: RecipeConfig) -> dict:
    maps = [m for _, m in TRAIN_MAPS]
    generate(root, maps, EPISODES, recipe.frames_per_episode, seed=seed, workers=2, progress=False)
    frames = 1 + (recipe.clip_latents - 1) * tok.cfg.temporal_down  # the recipe's clip_frames
    clip_set = ClipDataset(root, frames=frames, split="train", palindrome=palindrome, stride=4, seed=RUN_SEED)
    clips = encode_clips(tok, clip_set, CLIPS, seed=RUN_SEED, images=recipe.windows, progress=False)
    return clips.batches(WINDOW, CLIPS, seed=0, temporal_down=tok.cfg.temporal_down)(0)


def main(out: str, teachers: list[str]) -> None:
    torch.set_num_threads(1)
    recipe, evalcfg = RecipeConfig(), TeacherEvalConfig()
    tok = Tokenizer.load(TOKENIZER).eval()
    with torch.no_grad():
        sets = {"run18_episodes": windows(Path("runs/clip_gap/run18"), RUN_SEED, recipe.palindrome, tok, recipe),
                "new_episodes": windows(Path("runs/clip_gap/new"), NEW_SEED, recipe.palindrome, tok, recipe),
                "new_no_palindromes": windows(Path("runs/clip_gap/new"), NEW_SEED, 0.0, tok, recipe)}
        losses = {}
        for item in teachers:
            name, path = item.split("=", 1)
            model = WorldModel.load(path).float().eval()
            losses[name] = {}
            for key, b in sets.items():
                ctx = model.encode_text(list(b["caption"]))
                losses[name][key] = held_out_loss(model, b["latents"], ctx, b["actions"], b["poses"],
                                                  TeacherConfig.shift, evalcfg.loss_levels, evalcfg.seed)
            print(name, json.dumps(losses[name]), flush=True)
    write_json(out, {"settings": {"episodes": EPISODES, "clips": CLIPS, "window": WINDOW, "run_seed": RUN_SEED,
                                  "new_seed": NEW_SEED, "palindrome": recipe.palindrome,
                                  "loss_levels": evalcfg.loss_levels, "teachers": teachers},
                     "held_out_loss": losses})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
