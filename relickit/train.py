"""The one training loop every stage shares (tokenizer, teacher, student, critic).

    result = train(cfg, model, loss_fn, batches, resume=True)

- `loss_fn(model, batch, step) -> (loss, logs)`: a scalar loss and a dict of extra scalars to log (tensors are fine:
  they are read back only at log steps). Call `model(...)` for the forward pass so DDP and autocast apply.
- `batches(index) -> batch`: a deterministic function of the micro-batch index (`random_batches` builds one from a
  dataset). Resuming then needs no sampler state: step s, micro-batch m, process p reads index
  (s * grad_accum + m) * num_processes + p.
- Checkpoints (every `ckpt_every` steps, at the end, and on Ctrl-C) hold the weights and EMA weights in safetensors,
  and the optimizer, gradient scaler, step and every RNG state in a torch.save'd file, all written atomically into
  `out_dir/checkpoints/step_XXXXXXXX/`; `out_dir/latest` names the newest complete one. Resuming continues bit for bit.
- The learning rate is a pure function of the step (linear warmup, then constant, then with `cooldown` a linear
  decay to zero over the run's last fraction: warmup-stable-decay), so the schedule has no state. A run with a
  time limit cools down over the last fraction of that time instead, whichever end comes first (a resumed run's
  time limit, and so its cooldown, counts from the resume).
- A non-finite loss stops the run with `NonFiniteLossError` naming the step; the last good checkpoint stays.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from torch import nn
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from . import checkpoint

LossFn = Callable[[nn.Module, Any, int], "tuple[torch.Tensor, dict[str, Any]]"]
Batches = Callable[[int], Any]
Callback = Callable[[int, nn.Module, "list[dict[str, Any]]"], None]

CKPT_DIR = "checkpoints"
LATEST = "latest"
LOG_FILE = "log.jsonl"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.pt"
CKPT_KIND = "train_checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps in total (a resumed run stops at the same total)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup: int = 0  # steps of linear learning-rate warmup
    # the last fraction of the run (of `steps`, or of `time_limit_s` if that ends it first) over which the learning
    # rate decays linearly to zero; 0 = constant to the end
    cooldown: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    grad_accum: int = 1  # micro-batches per optimizer step
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    ema_decay: float = 0.0  # 0 = no EMA
    batch_size: int = 8  # items per micro-batch (used by random_batches and for items/s)
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 0  # 0 = only at the end (and on Ctrl-C)
    keep_checkpoints: int = 2  # older checkpoint directories are deleted
    time_limit_s: float = 0.0  # stop early (checkpointed, resumable) after this much wall time; 0 = no limit
    out_dir: str = "runs/train"
    # a torch.compile backend for the trained model's blocks (its compile_blocks: the element-wise work around
    # attention fused), e.g. "inductor" on a GPU; "" = eager. The EMA copy is taken before and stays eager.
    compile: str = ""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.grad_accum < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError(f"TrainConfig needs steps >= 0, grad_accum >= 1, batch_size >= 1, log_every >= 1: {self}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}.")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}.")
        if not 0.0 <= self.cooldown <= 1.0:
            raise ValueError(f"cooldown is a fraction of the run in [0, 1] (0 = off), got {self.cooldown}.")
        if self.keep_checkpoints < 1:
            raise ValueError("keep_checkpoints must be >= 1 so a resumable checkpoint always exists.")


@dataclass
class TrainResult:
    model: nn.Module  # unwrapped, on the training device
    ema_model: nn.Module | None
    log: list[dict[str, Any]]  # every logged record, including those of earlier runs this one resumed
    step: int
    out_dir: Path


class NonFiniteLossError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
def batch_rows(count: int, batch_size: int, seed: int, index: int) -> np.ndarray:
    """The rows of batch `index`: `batch_size` of `count` drawn (with replacement) by an RNG seeded with (seed,
    index), so a batch depends on its index alone and resuming needs no sampler state."""
    return np.random.default_rng([seed, index]).integers(count, size=batch_size)


def random_batches(dataset: Any, batch_size: int, seed: int,
                   collate: Callable[[list[Any]], Any] = default_collate) -> Batches:
    """index -> a batch of `batch_size` items at `batch_rows`, collated."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; check its root directory and split.")

    def batch(index: int) -> Any:
        return collate([dataset[int(i)] for i in batch_rows(len(dataset), batch_size, seed, index)])

    return batch


# ---------------------------------------------------------------------------------------------------------------
# pieces of the loop
# ---------------------------------------------------------------------------------------------------------------
def lr_at(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """The learning rate of optimizer step `step` (0-based), `elapsed_s` seconds into a run with a time limit."""
    scale = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.cooldown > 0:
        scale = min(scale, (cfg.steps - step) / (cfg.cooldown * cfg.steps))
        if cfg.time_limit_s:
            scale = min(scale, max(0.0, (cfg.time_limit_s - elapsed_s) / (cfg.cooldown * cfg.time_limit_s)))
    return cfg.lr * scale


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay after optimizer step `step` (0-based), warmed up as (1 + step) / (10 + step): a short run's
    EMA then averages its own recent weights instead of keeping a large share of the initial ones."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter (one fused kernel per dtype and device, not one
    per tensor: a step of a small model launches few kernels); buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from; numpy's key is stored as a tensor so torch.load(weights_only) works."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def deferred_sigint():
    """Ctrl-C raises KeyboardInterrupt at the next step boundary (so the checkpoint is consistent); twice, at once."""
    hit = {"count": 0}
    if threading.current_thread() is not threading.main_thread():
        yield hit
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        hit["count"] += 1
        if hit["count"] > 1:
            raise KeyboardInterrupt("interrupted twice: stopping now without a checkpoint")

    signal.signal(signal.SIGINT, handler)
    try:
        yield hit
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------------
def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    pointer = Path(out_dir) / LATEST
    if not pointer.exists():
        return None
    path = Path(out_dir) / CKPT_DIR / pointer.read_text().strip()
    if not (path / STATE_FILE).exists():
        raise ValueError(f"{pointer} names {path}, which is incomplete; delete {pointer} to start over.")
    return path


def newest_weights(out_dir: str | os.PathLike) -> Path | None:
    """The weights of a run's newest complete checkpoint (its EMA copy when the run keeps one), or None."""
    found = latest_checkpoint(out_dir)
    if found is None:
        return None
    return found / EMA_FILE if (found / EMA_FILE).exists() else found / MODEL_FILE


def _save_checkpoint(acc: Accelerator, cfg: TrainConfig, model: nn.Module, ema: nn.Module | None,
                     optimizer: torch.optim.Optimizer, step: int, rng: dict[str, Any]) -> Path:
    out = Path(cfg.out_dir)
    path = out / CKPT_DIR / f"step_{step:08d}"
    weights = acc.get_state_dict(model)  # gathers sharded weights; identical on every process
    rank = acc.process_index
    if acc.is_main_process:
        extra = {"step": str(step), "model_class": type(acc.unwrap_model(model)).__name__}
        checkpoint.save(path / MODEL_FILE, weights, kind=CKPT_KIND, config=cfg, extra=extra)
        if ema is not None:
            checkpoint.save(path / EMA_FILE, ema.state_dict(), kind=CKPT_KIND, config=cfg, extra=extra)
    state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng,
             "scaler": acc.scaler.state_dict() if acc.scaler is not None else None}
    if acc.num_processes > 1:
        checkpoint.atomic_write(path / f"rng_{rank}.pt", lambda tmp: torch.save({"rng": rng}, tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        # the state file is written last: its presence marks the checkpoint complete
        checkpoint.atomic_write(path / STATE_FILE, lambda tmp: torch.save(state, tmp))
        checkpoint.atomic_write(out / LATEST, lambda tmp: Path(tmp).write_text(path.name))
        done = sorted(p for p in (out / CKPT_DIR).glob("step_*") if (p / STATE_FILE).exists() and p != path)
        for old in done[: max(0, len(done) - (cfg.keep_checkpoints - 1))]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _load_checkpoint(acc: Accelerator, path: Path, model: nn.Module, ema: nn.Module | None,
                     optimizer: torch.optim.Optimizer) -> int:
    weights, _, _ = checkpoint.load(path / MODEL_FILE, CKPT_KIND)
    acc.unwrap_model(model).load_state_dict(weights)
    if ema is not None:
        if not (path / EMA_FILE).exists():
            raise ValueError(f"{path} has no EMA weights but ema_decay > 0; resume with ema_decay=0 or start anew.")
        ema.load_state_dict(checkpoint.load(path / EMA_FILE, CKPT_KIND)[0])
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    if state["scaler"] is not None and acc.scaler is not None:
        acc.scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    if acc.num_processes > 1:
        rng = torch.load(path / f"rng_{acc.process_index}.pt", weights_only=True)["rng"]
    set_rng_state(rng)
    return int(state["step"])


def read_log(path_or_records: str | os.PathLike | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records from a log.jsonl file (or a run directory holding one), or a list of records as is."""
    if isinstance(path_or_records, (str, os.PathLike)):
        path = Path(path_or_records)
        path = path / LOG_FILE if path.is_dir() else path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return list(path_or_records)


# ---------------------------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, model: nn.Module, loss_fn: LossFn, batches: Batches, *,
          ema_model: nn.Module | None = None, callback: Callback | None = None,
          resume: bool = False) -> TrainResult:
    """Train `model` for cfg.steps optimizer steps; see the module docstring for the contract."""
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available())
    out = Path(cfg.out_dir)
    found = latest_checkpoint(out)
    if found is not None and not resume:
        raise ValueError(f"{out} already holds a checkpoint ({found.name}); pass resume=True to continue it "
                         "or choose another out_dir.")
    if ema_model is not None and cfg.ema_decay == 0:
        raise ValueError("an ema_model was given but cfg.ema_decay is 0; set ema_decay (e.g. 0.99) or drop ema_model.")
    if found is None:
        set_seed(cfg.seed)
    ema = None
    if cfg.ema_decay > 0:
        ema = ema_model if ema_model is not None else copy.deepcopy(model)
        ema.requires_grad_(False).eval().to(acc.device)
    if cfg.compile:
        if not hasattr(model, "compile_blocks"):
            raise ValueError(f"TrainConfig.compile={cfg.compile!r} compiles a model's blocks (WorldModel.compile_blocks); "
                             f"a {type(model).__name__} has none: set compile=''.")
        model.compile_blocks(backend=cfg.compile)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    model, optimizer = acc.prepare(model, optimizer)
    model.train()
    step = _load_checkpoint(acc, found, model, ema, optimizer) if found is not None else 0

    log = [r for r in read_log(out) if r["step"] <= step] if found is not None else []
    if acc.is_main_process:  # drop records logged after the checkpoint we resume from (they will be redone)
        out.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in log)
        checkpoint.atomic_write(out / LOG_FILE, lambda tmp: Path(tmp).write_text(text))

    items_per_step = cfg.batch_size * cfg.grad_accum * acc.num_processes
    bar = tqdm(total=cfg.steps, initial=step, desc=Path(cfg.out_dir).name, disable=not acc.is_local_main_process)
    sums: dict[str, torch.Tensor] = {}  # running sums of logged scalars since the last log step, on device
    bad_step = torch.tensor(-1, device=acc.device)  # first step whose loss was not finite (checked at log steps)
    window_start, window_steps, t0 = time.perf_counter(), 0, time.perf_counter()
    start_step = step
    rng_next = rng_state()  # the RNG state step `step` starts from: what a checkpoint taken now must hold

    def check_finite() -> None:
        bad = int(bad_step)
        if bad >= 0:
            last = latest_checkpoint(out)
            raise NonFiniteLossError(
                f"loss became NaN/Inf at step {bad}; the last good checkpoint is {last or 'none'}. Lower lr, "
                "set grad_clip, try mixed_precision='bf16' instead of 'fp16', or check the batches of that step."
            )

    def save() -> Path:
        return _save_checkpoint(acc, cfg, model, ema, optimizer, step, rng_next)

    try:
        with deferred_sigint() as sigint:
            while step < cfg.steps and not (cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s):
                lr = lr_at(cfg, step, time.perf_counter() - t0)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                for micro in range(cfg.grad_accum):
                    index = (step * cfg.grad_accum + micro) * acc.num_processes + acc.process_index
                    batch = send_to_device(batches(index), acc.device)
                    with acc.accumulate(model):
                        with acc.autocast():
                            loss, logs = loss_fn(model, batch, step)
                        acc.backward(loss)
                        if acc.sync_gradients and cfg.grad_clip > 0:
                            logs = {**logs, "grad_norm": acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)}
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    loss = loss.detach().float()
                    bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), step, bad_step)
                    for k, v in {"loss": loss, **logs}.items():
                        v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v), device=acc.device)
                        sums[k] = sums.get(k, 0.0) + v / (cfg.grad_accum if k != "grad_norm" else 1)
                if ema is not None and not optimizer.step_was_skipped:
                    ema_update(ema, acc.unwrap_model(model), ema_decay_at(cfg.ema_decay, step))
                step += 1
                rng_next = rng_state()
                window_steps += 1
                bar.update(1)

                if step % cfg.log_every == 0 or step == cfg.steps:
                    check_finite()
                    keys = list(sums)
                    values = torch.stack([sums[k] for k in keys]).tolist()  # the one host sync per log step
                    now = time.perf_counter()
                    record = {"step": step, **{k: v / window_steps for k, v in zip(keys, values)}, "lr": lr,
                              "items_per_s": items_per_step * window_steps / max(now - window_start, 1e-9),
                              "elapsed_s": now - t0}
                    log.append(record)
                    if acc.is_main_process:
                        with open(out / LOG_FILE, "a") as f:
                            f.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4g}", items_s=f"{record['items_per_s']:.1f}")
                    sums, window_start, window_steps = {}, now, 0
                if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
                    check_finite()
                    save()
                if callback is not None:
                    callback(step, acc.unwrap_model(model), log)
                    set_rng_state(rng_next)  # the callback may draw random numbers; training must not notice
                if sigint["count"]:
                    raise KeyboardInterrupt
            check_finite()
            if step > start_step:
                save()
    except KeyboardInterrupt as err:
        if "twice" in str(err):
            raise
        check_finite()  # never checkpoint weights a NaN step touched
        # Interrupted inside a step (loss_fn) or after one (callback, Ctrl-C): the weights are those after `step`
        # steps either way (the optimizer had not stepped yet) and rng_next is where step `step` began: exact.
        path = save()
        bar.write(f"interrupted at step {step}: saved {path}; train(..., resume=True) continues from there.")
        raise
    finally:
        bar.close()
    return TrainResult(model=acc.unwrap_model(model), ema_model=ema, log=log, step=step, out_dir=out)


# ---------------------------------------------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------------------------------------------
def loss_figure(log_path_or_records: str | os.PathLike | Iterable[dict[str, Any]], title: str = "training loss"):
    """A plotly figure of the loss against the step; other logged scalars are in the legend (click to show)."""
    import plotly.graph_objects as go

    records = read_log(log_path_or_records)
    hidden = {"step", "lr", "items_per_s", "elapsed_s"}
    keys = [k for k in dict.fromkeys(k for r in records for k in r) if k not in hidden]
    fig = go.Figure()
    for k in keys:
        rows = [r for r in records if k in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[k] for r in rows], mode="lines", name=k,
                                 visible=True if k == "loss" else "legendonly"))
    positive = all(r["loss"] > 0 for r in records if "loss" in r)
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="value", template="plotly_white",
                      yaxis_type="log" if positive else "linear")
    return fig
