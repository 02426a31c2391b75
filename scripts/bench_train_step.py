"""Time one training step of each recipe stage (teacher, hybrid forcing, DMD) per model size and clip length.

    python scripts/bench_train_step.py --stages teacher hybrid dmd --sizes 192x8 --latent-frames 13 25 \
        --batch 64 --layout f4c16
    python scripts/bench_train_step.py --stages teacher --sizes 384x3 --latent-frames 13 --batch 128 \
        --modes eager compiled                                     # is the recipe's --compile worth it here?
    python scripts/bench_train_step.py --stages dmd --sizes 384x3 --latent-frames 49 --batch 32 64 128   # recipe --dmd-batch

Each stage is built from the library as relickit.recipe.run builds it, with RecipeConfig's configs, random weights
and random clips, and trained by relickit.train.train (the recipe's loop: AdamW, grad clipping, EMA, bf16 autocast on
CUDA; fp32 on CPU) for a few steps with the batch and clip length given:

- teacher: teacher_loss over relickit.latents batches (flow matching of whole clips);
- hybrid: hybrid_loss_fn(recipe.distill) over ODESet.batches (gathered on the device); the ODE set is one batch of
  trajectories made by make_ode_set with the model itself as the teacher and the fewest Euler steps that pass
  through the student's sigmas (same shapes as the recipe's, cheap to make);
- dmd: DMDPair(student, critic) with dmd_loss_fn(teacher, recipe.distill, latent frames): a generator update every
  `critic_steps` steps, a critic update every step. One such cycle warms up, then whole cycles are timed.

`--layout` picks the tokenizer's latent grid (relickit.vae.LAYOUTS); relickit.config.model_for builds the model of
each size for it (the DiT patch that gives 48 tokens per latent frame), with a RoPE range that covers the longest
clip. Prints one line per stage, size and clip length: ms per training step (all of it: batch, step, EMA), clips/s,
peak memory, and the part of the step spent assembling the batch and moving it to the device (`data`); DMD's line
adds its generator and critic-only steps apart. train's progress bars go to stderr.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate.utils import send_to_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relickit.config import ModelConfig, model_for, parse_size  # noqa: E402
from relickit.controls import ACTION_DIM, accumulate, pose_vector  # noqa: E402
from relickit.distill import DMDPair, ODESet, dmd_loss_fn, hybrid_loss_fn, make_ode_set  # noqa: E402
from relickit.latents import LatentClips  # noqa: E402
from relickit.model import WorldModel  # noqa: E402
from relickit.recipe import COMPILE_BACKEND, RecipeConfig  # noqa: E402
from relickit.teacher import teacher_loss  # noqa: E402
from relickit.train import train  # noqa: E402
from relickit.vae import LAYOUTS  # noqa: E402

STAGES = ("teacher", "hybrid", "dmd")
MODES = ("eager", "compiled")
WARMUP = 2  # untimed steps of teacher and hybrid


def random_clips(cfg: ModelConfig, count: int, latent_frames: int) -> LatentClips:
    """`count` clips of random latents, walking forward (poses as recorded clips have them)."""
    frames = cfg.video_frames(latent_frames)
    actions = torch.zeros(count, frames, ACTION_DIM)
    actions[:, 1:, 0] = 1.0
    latents = torch.randn(count, cfg.latent_channels, latent_frames, *cfg.latent_size)
    return LatentClips(latents.half(), pose_vector(*accumulate(actions)), ["a corridor with green walls"] * count)


def stage_run(stage: str, recipe: RecipeConfig, cfg: ModelConfig, clips: LatentClips, latent_frames: int,
              batch: int, device: torch.device, tmp: Path):
    """(the trained module, loss_fn, batches, the stage's TrainConfig) as relickit.recipe.run builds them."""
    clip_batches = lambda seed: clips.batches(latent_frames, batch, seed, cfg.temporal_down, device)  # noqa: E731
    model = WorldModel(cfg).to(device)
    if stage == "teacher":
        return model, teacher_loss(recipe.teacher), clip_batches(recipe.seed), recipe.teacher.train
    if stage == "hybrid":
        fast = dataclasses.replace(recipe.distill, sampler=dataclasses.replace(
            recipe.distill.sampler, teacher_steps=len(recipe.distill.sampler.sigmas)))
        make_ode_set(model.eval(), clip_batches(recipe.seed + 1), 1, fast, tmp / "ode.safetensors", progress=False)
        ode = ODESet(tmp / "ode.safetensors")
        return model.train(), hybrid_loss_fn(recipe.distill), ode.batches(batch, recipe.seed, device), recipe.hybrid_train
    if stage == "dmd":
        teacher = model.eval()
        student = WorldModel(cfg).to(device)
        critic = copy.deepcopy(teacher).train().requires_grad_(True)
        return (DMDPair(student, critic), dmd_loss_fn(teacher, recipe.distill, latent_frames),
                clip_batches(recipe.seed + 2), recipe.dmd_train)
    raise ValueError(f"unknown stage {stage!r}; choose from {STAGES}.")


def data_ms(batches, device: torch.device, count: int) -> float:
    """ms to assemble a batch and move it to the device, as relickit.train does each step."""
    send_to_device(batches(0), device)
    start = time.perf_counter()
    for i in range(1, count + 1):
        send_to_device(batches(i), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / count * 1000


def step_times(stage: str, recipe: RecipeConfig, cfg: ModelConfig, clips: LatentClips, latent_frames: int,
               batch: int, steps: int, device: torch.device, compile: bool = False) -> tuple[list[float], int, float]:
    """ms of each timed training step (as relickit.train logs them, one record per step), the index of the first
    timed step, and the data ms per step."""
    with tempfile.TemporaryDirectory() as tmp:
        module, loss_fn, batches, tcfg = stage_run(stage, recipe, cfg, clips, latent_frames, batch, device, Path(tmp))
        warmup = recipe.distill.critic_steps if stage == "dmd" else WARMUP
        if stage == "dmd":  # whole generator/critic cycles
            steps = -(-steps // warmup) * warmup
        tcfg = dataclasses.replace(tcfg, steps=warmup + steps, batch_size=batch, log_every=1, ckpt_every=0,
                                   time_limit_s=0, out_dir=str(Path(tmp) / "run"),
                                   mixed_precision=tcfg.mixed_precision if device.type == "cuda" else "no",
                                   compile=COMPILE_BACKEND if compile and stage != "dmd" else "")
        log = train(tcfg, module, loss_fn, batches).log
        ms = [batch / r["items_per_s"] * 1000 for r in log[warmup:]]
        return ms, warmup, data_ms(batches, device, min(steps, 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--sizes", nargs="+", default=["192x8", "256x12"], help="DIMxLAYERS")
    p.add_argument("--latent-frames", nargs="+", type=int, default=[13, 25])
    p.add_argument("--batch", nargs="+", type=int, default=[64], help="clips per step; several: each is timed")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="f4c16")
    p.add_argument("--steps", type=int, default=10, help="timed steps (DMD: rounded up to whole cycles)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=["eager"], help="compiled: teacher and hybrid with "
                   "their blocks compiled, as the recipe's --compile trains them (the first, untimed steps compile)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    recipe = RecipeConfig()
    for size in a.sizes:
        cfg = model_for(LAYOUTS[a.layout], *parse_size(size), rope_frames=max(a.latent_frames),
                        sigma_data=recipe.model.sigma_data)
        params = sum(q.numel() for q in WorldModel(cfg).parameters()) / 1e6
        for f, batch in itertools.product(a.latent_frames, a.batch):
            clips = random_clips(cfg, batch, f)
            for stage, mode in [(s, m) for s in a.stages for m in a.modes if m == "eager" or s != "dmd"]:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                ms, first, data = step_times(stage, recipe, cfg, clips, f, batch, a.steps, device, mode == "compiled")
                peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
                mean = statistics.fmean(ms)
                extra = ""
                if stage == "dmd":
                    k = recipe.distill.critic_steps
                    gen = [t for i, t in enumerate(ms, first) if i % k == 0]
                    critic = [t for i, t in enumerate(ms, first) if i % k]
                    extra = f", generator step {statistics.fmean(gen):.1f} ms" + (
                        f", critic step {statistics.fmean(critic):.1f} ms" if critic else "")
                print(f"{stage:7s} {mode:8s} {a.layout} {size:>7} ({params:5.1f}M)  batch {batch} x {f:2d} "
                      f"latent frames: {mean:8.1f} ms/step, {batch / mean * 1000:7.1f} clips/s, peak {peak:5.1f} GiB, "
                      f"data {data:6.1f} ms{extra}  ({device.type}, {torch.__version__})", flush=True)


if __name__ == "__main__":
    main()
