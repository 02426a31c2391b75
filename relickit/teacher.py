"""The long-horizon teacher: a bidirectional, action- and pose-conditioned video diffusion model trained by flow
matching, then fine-tuned on longer and longer clips with YaRN-scaled RoPE (the paper: 5 s -> 10 s -> 20 s).

Every stage keeps its checkpoint: the distillation curriculum takes the teacher whose horizon matches its rollout.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import checkpoint
from .config import ModelConfig
from .diffusion import flow_matching_loss, sample_train_sigma, shift_sigma
from .memory import bidirectional_visibility
from .model import WorldModel
from .train import CKPT_KIND, TrainConfig, TrainResult, latest_checkpoint, newest_weights, train

STAGE_MODEL = "model.json"  # in a stage's run directory: the architecture of the model it trains


@dataclass(frozen=True)
class Stage:
    """One step of the horizon curriculum: clips of `latent_frames`, trained `steps` optimizer steps."""

    latent_frames: int
    steps: int


@dataclass(frozen=True)
class TeacherConfig:
    # the paper's 5 s / 10 s / 20 s at 5,000 / 1,000 / 4,000 iterations, in our units (1 + 3k latent frames)
    stages: tuple[Stage, ...] = (Stage(13, 5000), Stage(25, 1000), Stage(49, 4000))
    shift: float = 3.0  # noise-level shift of training sigmas
    text_dropout: float = 0.1  # captions dropped to "" so classifier-free guidance works
    train: TrainConfig = TrainConfig(lr=2e-4, betas=(0.9, 0.99), weight_decay=0.01, warmup=200, ema_decay=0.999,
                                     batch_size=8, log_every=25, ckpt_every=500, out_dir="runs/teacher")


HELD_OUT_LEVELS = 16  # noise levels `held_out_loss` averages (quantile midpoints of the training distribution)
HELD_OUT_LOG = "held_out.jsonl"  # in a stage's run directory: its `HeldOut` loss every `every` steps


@torch.no_grad()
def held_out_loss(model, latents: torch.Tensor, context: torch.Tensor, actions: torch.Tensor, poses: torch.Tensor,
                  shift: float, levels: int = HELD_OUT_LEVELS, seed: int = 0) -> float:
    """The flow-matching loss on clips (B, C, F, h, w) averaged over the training noise distribution (uniform,
    shifted by `shift` as `teacher_loss` draws it), at `levels` quantile midpoints: the held-out number to set beside
    the training log's loss. A gap that grows from run to run is over-fitting. The noise is drawn on the CPU from
    `seed`, so a GPU scores the same noise as the CPU evaluation."""
    gen = torch.Generator().manual_seed(seed)
    vis = bidirectional_visibility(latents.shape[2])
    total = 0.0
    for k in range(levels):
        sigma = shift_sigma(torch.full((latents.shape[0], latents.shape[2]), (k + 0.5) / levels), shift)
        noise = torch.randn(latents.shape, generator=gen).to(latents.device)
        total += flow_matching_loss(model, latents, context, actions, poses, vis, sigma=sigma.to(latents.device),
                                    noise=noise).item()
    return total / levels


@dataclass(frozen=True)
class HeldOut:
    """Clips no stage trains on (latents (B, C, F, h, w), their captions, actions and poses), scored by
    `held_out_loss` every `every` steps of each teacher stage (its EMA weights, what the stage keeps) into the
    stage's HELD_OUT_LOG: the evaluation's held-out loss while the run trains (`relickit.evaluate.teacher
    .held_out_set` builds the evaluation's own clips)."""
    latents: torch.Tensor
    captions: list[str]
    actions: torch.Tensor
    poses: torch.Tensor
    every: int = 500
    shift: float = TeacherConfig.shift  # the training noise distribution's
    levels: int = HELD_OUT_LEVELS
    seed: int = 0

    def to(self, device: torch.device | str) -> "HeldOut":
        return dataclasses.replace(self, latents=self.latents.to(device), actions=self.actions.to(device),
                                   poses=self.poses.to(device))

    def loss(self, model: WorldModel) -> float:
        training = model.training
        model.eval()
        loss = held_out_loss(model, self.latents, model.encode_text(self.captions), self.actions, self.poses,
                             self.shift, self.levels, self.seed)
        model.train(training)
        return loss

    def callback(self, ema: WorldModel | None, log_dir: Path):
        """train's callback: every `every` steps the loss of `ema` (of the trained model without one), one JSON
        line per measurement in log_dir / HELD_OUT_LOG (the main process's)."""
        def measure(step: int, model: torch.nn.Module, log: list) -> None:
            if step % self.every:
                return
            loss = self.loss(ema if ema is not None else model)
            if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
                with open(log_dir / HELD_OUT_LOG, "a") as f:
                    f.write(json.dumps({"step": step, "held_out_loss": loss}) + "\n")
        return measure


def stage_config(cfg: ModelConfig, stage: Stage, base: Stage) -> ModelConfig:
    """The model config of a stage: the RoPE range stays the base horizon's; YaRN stretches it by the ratio."""
    return dataclasses.replace(cfg, rope_frames=base.latent_frames, yarn_factor=stage.latent_frames / base.latent_frames)


def stretch_horizon(model: WorldModel, latent_frames: int) -> WorldModel:
    """A copy of `model` whose RoPE covers `latent_frames`: YaRN stretches the model's own range, weights unchanged
    (no fine-tuning: for measurements that do not depend on quality, or as the start of a longer stage)."""
    cfg = model.cfg
    factor = max(cfg.yarn_factor, latent_frames / cfg.rope_frames)
    p = next(model.parameters())
    long = WorldModel(dataclasses.replace(cfg, yarn_factor=factor), model.backend).to(p.device, p.dtype)
    long.load_state_dict(model.state_dict())
    for mine, theirs in zip(long.parameters(), model.parameters()):
        mine.requires_grad_(theirs.requires_grad)
    return long.train(model.training)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def captions_with_dropout(captions: list[str], p: float, generator: torch.Generator | None = None) -> list[str]:
    keep = torch.rand(len(captions), generator=generator) >= p
    return [c if k else "" for c, k in zip(captions, keep.tolist())]


def teacher_loss(cfg: TeacherConfig):
    """loss_fn for `train`: flow matching of the whole clip at one noise level per clip, image frame clean.
    Batches are dicts of latents (B, C, F, h, w), actions, poses and captions (relickit.latents)."""

    def loss_fn(model, batch: dict[str, Any], step: int):
        x0 = batch["latents"]
        b, f = x0.shape[0], x0.shape[2]
        context = unwrap(model).encode_text(captions_with_dropout(list(batch["caption"]), cfg.text_dropout))
        sigma = sample_train_sigma((b, 1), cfg.shift, device=x0.device).expand(b, f)
        loss = flow_matching_loss(model, x0, context, batch["actions"], batch["poses"],
                                  bidirectional_visibility(f), sigma=sigma)
        return loss, {}

    return loss_fn


def check_architecture(cfg: ModelConfig, path: str | Path, deeper: bool = False, shallower: bool = False,
                       narrower: bool = False) -> None:
    """Refuse a checkpoint whose architecture is not `cfg`'s (RoPE range and YaRN factor may differ: stages),
    reading its config only. With `deeper`, a checkpoint with fewer layers of the same width passes (`grow`); with
    `shallower`, one with more layers (`shrink`); with `narrower`, one for fewer latent channels (`widen_channels`)."""
    theirs = checkpoint.load_config(path, "world_model", ModelConfig)
    fits = (deeper and theirs.layers < cfg.layers) or (shallower and theirs.layers > cfg.layers)
    fewer = narrower and theirs.latent_channels < cfg.latent_channels
    mine = dataclasses.replace(cfg, rope_frames=theirs.rope_frames, yarn_factor=theirs.yarn_factor,
                               layers=theirs.layers if fits else cfg.layers,
                               latent_channels=theirs.latent_channels if fewer else cfg.latent_channels)
    diff = checkpoint.config_differences(theirs, mine)
    if diff:
        skip = " (sigma_data is the velocity skip: the recipe's --sigma-data)" if "sigma_data" in diff else ""
        depth_note = ("; a shallower checkpoint of the same width can warm-start a deeper model, and a student "
                      "can keep some of a deeper teacher's blocks (--student-layers)") if "layers" in diff else ""
        raise ValueError(f"{path} has another architecture (checkpoint, model): {diff}; pick the matching "
                         f"preset{skip}{depth_note}.")


def new_block_positions(layers: int, deeper: int) -> list[int]:
    """Where `grow` puts a model's `layers` blocks among `deeper` (and which of them `shrink` keeps): spread evenly,
    first and last kept in place (3 -> 5: 0, 2, 4; the new blocks at 1 and 3)."""
    if not 1 <= layers <= deeper:
        raise ValueError(f"cannot spread {layers} layers over {deeper}: a deeper model has at least as many.")
    return [0] if layers == 1 else [round(i * (deeper - 1) / (layers - 1)) for i in range(layers)]


def relayer(model: WorldModel, layers: int, source: dict[int, int]) -> WorldModel:
    """A copy of `model` with `layers` blocks, block i taken from the model's block source[i] (blocks not in `source`
    as a new model builds them), everything else copied, on the model's device and dtype."""
    other = WorldModel(dataclasses.replace(model.cfg, layers=layers), model.backend)
    p = next(model.parameters())
    other.to(p.device, p.dtype)
    state = other.state_dict() | {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    for new, old in source.items():
        state |= {f"blocks.{new}.{k}": v for k, v in model.blocks[old].state_dict().items()}
    other.load_state_dict(state)
    return other.train(model.training)


def grow(model: WorldModel, layers: int) -> WorldModel:
    """A deeper copy of `model` that computes the same function: its blocks spread over `layers`
    (`new_block_positions`), every block in between an identity at first (the output projection of each residual
    branch zero, as RELIC's controls start), everything else copied. A teacher that has stopped improving at its
    size warm-starts a deeper one this way instead of starting it from scratch."""
    kept = new_block_positions(model.cfg.layers, layers)
    deeper = relayer(model, layers, {new: old for old, new in enumerate(kept)})
    for i in sorted(set(range(layers)) - set(kept)):
        block = deeper.blocks[i]
        outputs = [block.attn1.to_out[0], block.attn2.to_out[0], block.ffn.net[2]]
        for out in outputs + ([block.action_proj] if model.cfg.controls else []):
            torch.nn.init.zeros_(out.weight)
            torch.nn.init.zeros_(out.bias)
    return deeper


@torch.no_grad()
def widen_channels(model: WorldModel, channels: int) -> WorldModel:
    """A copy of `model` for latents of `channels` channels (a widened tokenizer's, `relickit.widen`: its first
    channels the old latents) that computes the same velocities on the old channels: the patch embedding reads the
    new channels through zero weights, the head's outputs for them start at zero (with the velocity skip, the skip
    term alone), everything else copied. A teacher moves to a wider latent this way instead of starting from scratch."""
    c = model.cfg.latent_channels
    if channels <= c:
        raise ValueError(f"widen_channels adds latent channels: {channels} is not more than the model's {c}.")
    wide = WorldModel(dataclasses.replace(model.cfg, latent_channels=channels), model.backend)
    p = next(model.parameters())
    wide.to(p.device, p.dtype)
    state = wide.state_dict() | {k: v for k, v in model.state_dict().items()
                                 if not k.startswith(("patch_embedding.weight", "proj_out."))}
    wide.load_state_dict(state)
    wide.patch_embedding.weight.zero_()
    wide.patch_embedding.weight[:, :c] = model.patch_embedding.weight
    patch = math.prod(model.cfg.patch)  # the head's outputs are (patch position, channel), channel fastest
    rows = (torch.arange(patch)[:, None] * channels + torch.arange(c)).flatten().to(p.device)
    for name in ("weight", "bias"):
        getattr(wide.proj_out, name).zero_()
        getattr(wide.proj_out, name)[rows] = getattr(model.proj_out, name)
    return wide.train(model.training)


def shrink(model: WorldModel, layers: int) -> WorldModel:
    """A shallower copy of `model` keeping the blocks at `new_block_positions(layers, model.cfg.layers)`, everything
    else copied: `grow`'s inverse (a grown model shrinks back to the one it was grown from), and a student's start
    when the CPU budget allows fewer blocks than its teacher has (distillation retrains what the dropped ones did)."""
    return relayer(model, layers, dict(enumerate(new_block_positions(layers, model.cfg.layers))))


def load_weights(model: WorldModel, path: str | Path, shrink_deeper: bool = False) -> None:
    """Load another stage's weights: the architecture must match (RoPE range and YaRN factor may differ), except
    that a checkpoint for fewer latent channels is widened to the model's (`widen_channels`), a shallower one of the
    same width is grown to the model's depth (`grow`), and with `shrink_deeper` a deeper one is shrunk to it
    (`shrink`)."""
    check_architecture(model.cfg, path, deeper=True, shallower=shrink_deeper, narrower=True)
    tensors, theirs, _ = checkpoint.load(path, "world_model", ModelConfig)
    if (theirs.layers, theirs.latent_channels) != (model.cfg.layers, model.cfg.latent_channels):
        other = WorldModel(dataclasses.replace(model.cfg, layers=theirs.layers, latent_channels=theirs.latent_channels),
                           model.backend)
        checkpoint.load_into(other, tensors, path)
        if theirs.latent_channels != model.cfg.latent_channels:
            other = widen_channels(other, model.cfg.latent_channels)
        if theirs.layers != model.cfg.layers:
            other = (grow if theirs.layers < model.cfg.layers else shrink)(other, model.cfg.layers)
        tensors = other.state_dict()
    checkpoint.load_into(model, tensors, path)


def train_teacher(model_cfg: ModelConfig, clips_for: Callable[[int], Callable[[int], Any]],
                  cfg: TeacherConfig = TeacherConfig(),
                  inits: Sequence[str | Path | None] = (), resume: bool = False,
                  device: torch.device | str | None = None, held_out: HeldOut | None = None) -> list[Path]:
    """Run the horizon curriculum. clips_for(latent_frames) returns the `batches` function of `train` for
    clips of that length. Stage i starts from inits[i] when given (a warm start), else from the stage before.
    With `held_out`, every stage logs its EMA's loss on those clips (HeldOut.callback).
    Returns the checkpoint of each stage (`<out_dir>/stage<i>.safetensors`, EMA weights)."""
    out = Path(cfg.train.out_dir)
    base = cfg.stages[0]
    paths, previous = [], None
    for i, stage in enumerate(cfg.stages):
        path = out / f"stage{i}.safetensors"
        if path.exists() and resume:
            paths.append(path)
            previous = path
            continue
        model = WorldModel(stage_config(model_cfg, stage, base)).to(device or "cpu")
        if i < len(inits) and inits[i] is not None:
            previous = inits[i]
        if previous is not None:
            load_weights(model, previous)
        tcfg = dataclasses.replace(cfg.train, steps=stage.steps, out_dir=str(out / f"stage{i}"))
        checkpoint.save_config(Path(tcfg.out_dir) / STAGE_MODEL, model.cfg)  # what newest_teacher builds on
        ema = copy.deepcopy(model) if held_out is not None and tcfg.ema_decay > 0 else None  # train's own EMA
        monitor = held_out.to(device or "cpu").callback(ema, Path(tcfg.out_dir)) if held_out is not None else None
        result: TrainResult = train(tcfg, model, teacher_loss(cfg), clips_for(stage.latent_frames), ema_model=ema,
                                    callback=monitor, resume=resume)
        final = result.ema_model if result.ema_model is not None else result.model
        paths.append(final.save(path))
        previous = path
    return paths


def numbered(folder: Path, word: str, suffix: str = "") -> list[tuple[int, Path]]:
    """(i, path) of the folder's entries named <word><i><suffix> (a stage's run directory, `stage3`, or its result,
    `stage3.safetensors`), by i."""
    found = ((re.fullmatch(rf"{word}(\d+){re.escape(suffix)}", p.name), p) for p in folder.glob(f"{word}*{suffix}"))
    return sorted((int(m.group(1)), p) for m, p in found if m)


def checkpoint_model(run_dir: str | Path, prefix: str = "") -> tuple[WorldModel, str] | None:
    """The model a training run is at: its newest checkpoint's weights (the EMA copy where kept) in the architecture
    the run wrote beside them (STAGE_MODEL), the keys under `prefix` alone (e.g. "student." of a DMDPair), and where
    they came from; None before the first checkpoint or without the architecture."""
    run_dir = Path(run_dir)
    if not (run_dir / STAGE_MODEL).exists() or latest_checkpoint(run_dir) is None:
        return None
    model = WorldModel(checkpoint.read_config(run_dir / STAGE_MODEL, ModelConfig))
    weights = newest_weights(run_dir)
    tensors = checkpoint.load(weights, CKPT_KIND)[0]
    checkpoint.load_into(model, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, weights)
    return model, str(weights)


def newest_teacher(out_dir: str | Path) -> tuple[WorldModel, str] | None:
    """The newest teacher weights under a curriculum's `out_dir` (TeacherConfig.train.out_dir), and where they came
    from: the stage running after the last finished one, at its newest checkpoint (its EMA weights; the checkpoints
    come every `ckpt_every` steps), else the last finished stage (`stage<i>.safetensors`); None before any. What a
    GPU machine that can go back at any minute should bring home: a resumable warm start, not nothing. A finished
    stage that trained no steps (`--minutes teacher_long=0`) holds the stage before it with RoPE stretched: that stage
    comes home instead, at its own horizon (evaluation stretches a teacher to a longer clip itself)."""
    out = Path(out_dir)
    done = numbered(out, "stage", ".safetensors")
    found = newest_model(done, numbered(out, "stage"))
    if found is None or found[1] not in {str(p) for _, p in done}:
        return found
    model, source = found
    for _, path in reversed(done[:-1]):
        earlier = WorldModel.load(path)
        if any(not torch.equal(a, b) for a, b in zip(earlier.state_dict().values(), model.state_dict().values())):
            break
        model, source = earlier, str(path)
    return model, source


def newest_model(done: list[tuple[int, Path]], running: list[tuple[int, Path]],
                 prefix: str = "") -> tuple[WorldModel, str] | None:
    """Of a curriculum's finished stages (i, model file) and stage runs (i, run directory), both by i: the run after
    the last finished stage at its newest checkpoint (`checkpoint_model`, keys under `prefix`), else the last finished
    stage, and where it came from; None before any."""
    last = done[-1][0] if done else -1
    for i, run_dir in reversed(running):
        if i > last and (found := checkpoint_model(run_dir, prefix)) is not None:
            return found
    return (WorldModel.load(done[-1][1]), str(done[-1][1])) if done else None
