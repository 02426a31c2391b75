"""Does a learning-rate cooldown (warmup-stable-decay: the last quarter of the steps decays linearly to zero) lower
a teacher's held-out loss at the same steps, beyond what its EMA weights already give? A CPU-scale check before
GPU minutes go to it (the GPU teacher trains at a constant 3e-4 with EMA 0.999 and stops on a time limit).

Two small teachers (128 x 2, f4c16, velocity skip) train the same steps, from the same initial weights, on the same
96 encoded clips of 25 latent frames drawn as every 13-frame window (windows_check.py's data, seed 99), one at a
constant learning rate, one with `TrainConfig.cooldown`; EMA 0.99 in both (a horizon of ~100 steps, about the
share of the run the GPU teacher's 0.999 is of its ~16,000). Every `EVERY` steps the raw and EMA weights are scored
by `held_out_loss` (the training noise distribution) on the twelve held-out maps' clips.

    python docs/runs/2026-12-03-cooldown/cooldown_check.py [OUT]   # OUT default runs/cooldown_check
"""
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from relickit.config import LATENT_SIGMA, model_for
from relickit.dataset import ClipDataset, generate
from relickit.doom import TRAIN_MAPS
from relickit.evaluate.teacher import held_out_loss
from relickit.latents import LatentClips, encode_clips
from relickit.model import WorldModel
from relickit.teacher import TeacherConfig, teacher_loss
from relickit.train import TrainConfig, train
from relickit.vae import LAYOUTS, Tokenizer

EPISODES, CLIPS, CLIP_LATENTS, WINDOW, STEPS, EVERY, BATCH, COOLDOWN = 24, 96, 25, 13, 1200, 150, 8, 0.25


def main() -> None:
    torch.set_num_threads(2)
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/cooldown_check")
    tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
    cfg = model_for(LAYOUTS["f4c16"], 128, 2, sigma_data=LATENT_SIGMA, rope_frames=WINDOW)

    if not (out / "data").exists():
        generate(out / "data", [m for _, m in TRAIN_MAPS], EPISODES, 600, seed=99, workers=2)
    if not (out / "clips.safetensors").exists():
        data = ClipDataset(out / "data", frames=cfg.video_frames(CLIP_LATENTS), split="train", palindrome=0.3,
                           stride=4, seed=0)
        encode_clips(tok, data, CLIPS, images=True).save(out / "clips.safetensors")
    clips = LatentClips.load(out / "clips.safetensors")

    ev = ClipDataset("data/eval_tokenizer_f2", frames=cfg.video_frames(WINDOW), split="eval", stride=4)
    picked = [ev[int(i)] for i in np.linspace(0, len(ev) - 1, 12).round().astype(int)]
    with torch.no_grad():
        lat = torch.cat([tok.encode(c["frames"][None].transpose(1, 2).to(tok.dtype)).float() for c in picked])
    acts, poses = torch.cat([c["actions"][None] for c in picked]), torch.cat([c["poses"][None] for c in picked])
    captions = [c["caption"] for c in picked]

    torch.manual_seed(0)
    init = WorldModel(cfg).state_dict()
    results = {}
    for name, cooldown in (("constant", 0.0), ("cooldown", COOLDOWN)):
        model = WorldModel(cfg)
        model.load_state_dict(init)
        ema = copy.deepcopy(model)
        rows = []

        def score(step, m, log):
            if step % EVERY:
                return
            with torch.no_grad():
                row = {"step": step, "lr": log[-1]["lr"], "train_loss": log[-1]["loss"]}
                for kind, net in (("raw", m), ("ema", ema)):
                    net.eval()
                    row[kind] = held_out_loss(net, lat, net.encode_text(captions), acts, poses, TeacherConfig.shift)
                m.train()
            rows.append(row)
            print(name, json.dumps(row), flush=True)

        tcfg = TrainConfig(steps=STEPS, lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01, warmup=50, cooldown=cooldown,
                           ema_decay=0.99, batch_size=BATCH, log_every=50, out_dir=str(out / name))
        train(tcfg, model, teacher_loss(TeacherConfig()), clips.batches(WINDOW, BATCH, seed=0), ema_model=ema,
              callback=score, resume=True)
        results[name] = rows
    (out / "cooldown_check.json").write_text(json.dumps(results, indent=1))
    print(f"{'step':>5} | constant: lr, held-out raw / EMA | cooldown: lr, held-out raw / EMA")
    for a, b in zip(results["constant"], results["cooldown"]):
        print(f"{a['step']:5d} | {a['lr']:.1e}, {a['raw']:.4f} / {a['ema']:.4f} | "
              f"{b['lr']:.1e}, {b['raw']:.4f} / {b['ema']:.4f}")


if __name__ == "__main__":  # the data stage's engine workers re-import this file
    main()
