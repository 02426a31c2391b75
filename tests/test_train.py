"""The shared training loop: exact resume, interrupts, NaN, gradient accumulation, EMA, logging."""
from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from relickit.train import (NonFiniteLossError, TrainConfig, latest_checkpoint, loss_figure, lr_at,
                            random_batches, read_log, train)

DIM = 8


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 16), nn.Dropout(0.1), nn.GELU(), nn.Linear(16, 1))


def batches(index: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(index)
    x = torch.randn(4, DIM, generator=g)
    return {"x": x, "y": x.sum(1, keepdim=True)}


def noisy_loss(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
    """Draws from the torch, numpy and python RNGs (dropout, noise) so that resuming must restore all of them."""
    noise = torch.randn_like(batch["y"]) * 0.01 + float(np.random.rand()) * 1e-3 + random.random() * 1e-3
    loss = (model(batch["x"]) - batch["y"] - noise).square().mean()
    return loss, {"noise": noise.abs().mean()}


def cfg_for(tmp_path, **kw) -> TrainConfig:
    base = dict(steps=6, lr=1e-2, batch_size=4, log_every=1, out_dir=str(tmp_path / "run"), seed=3)
    return TrainConfig(**{**base, **kw})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_bitwise(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs by {(a[k] - b[k]).abs().max()}"


def test_resume_is_bitwise_exact(tmp_path):
    straight = train(cfg_for(tmp_path / "a", ema_decay=0.9), make_model(), noisy_loss, batches)
    half = train(cfg_for(tmp_path / "b", steps=3, ema_decay=0.9), make_model(), noisy_loss, batches)
    assert half.step == 3
    torch.manual_seed(123)  # the "fresh process": other weights, other RNG state, new objects
    np.random.seed(5)
    resumed = train(cfg_for(tmp_path / "b", ema_decay=0.9), make_model(seed=7), noisy_loss, batches, resume=True)
    assert resumed.step == 6
    assert_bitwise(weights(straight.model), weights(resumed.model))
    assert_bitwise(weights(straight.ema_model), weights(resumed.ema_model))
    assert [r["step"] for r in resumed.log] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in straight.log]


def test_existing_run_needs_resume(tmp_path):
    train(cfg_for(tmp_path, steps=1), make_model(), noisy_loss, batches)
    with pytest.raises(ValueError, match="resume=True"):
        train(cfg_for(tmp_path, steps=1), make_model(), noisy_loss, batches)


def test_interrupt_saves_resumable_checkpoint(tmp_path):
    straight = train(cfg_for(tmp_path / "a"), make_model(), noisy_loss, batches)

    def interrupt(step, model, log):
        torch.randn(3)  # a callback drawing random numbers must not change training
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tmp_path / "b"), make_model(), noisy_loss, batches, callback=interrupt)
    assert latest_checkpoint(tmp_path / "b" / "run").name == "step_00000002"
    resumed = train(cfg_for(tmp_path / "b"), make_model(), noisy_loss, batches, resume=True)
    assert_bitwise(weights(straight.model), weights(resumed.model))


def test_interrupt_inside_loss_fn_is_exact(tmp_path):
    straight = train(cfg_for(tmp_path / "a", grad_accum=2), make_model(), noisy_loss, batches)
    calls = {"n": 0}

    def flaky(model, batch, step):
        calls["n"] += 1
        if calls["n"] == 8:  # step 3, second micro-batch: gradients half accumulated, RNG advanced
            raise KeyboardInterrupt
        return noisy_loss(model, batch, step)

    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tmp_path / "b", grad_accum=2), make_model(), flaky, batches)
    assert latest_checkpoint(tmp_path / "b" / "run").name == "step_00000003"
    resumed = train(cfg_for(tmp_path / "b", grad_accum=2), make_model(), noisy_loss, batches, resume=True)
    assert_bitwise(weights(straight.model), weights(resumed.model))


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    def nan_at_4(model, batch, step):
        loss, logs = noisy_loss(model, batch, step)
        return (loss * float("nan") if step == 4 else loss), logs

    with pytest.raises(NonFiniteLossError, match="step 4"):
        train(cfg_for(tmp_path, ckpt_every=2), make_model(), nan_at_4, batches)
    assert latest_checkpoint(tmp_path / "run").name == "step_00000004"  # taken before step 4 (0-based) ran


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    def det_loss(model, batch, step):
        return (model(batch["x"]) - batch["y"]).square().mean(), {}

    def big(index):  # micro-batches 2i and 2i + 1 of `batches`, as one batch
        a, b = batches(2 * index), batches(2 * index + 1)
        return {k: torch.cat([a[k], b[k]]) for k in a}

    kw = dict(steps=3, grad_clip=0.5)
    accum = train(cfg_for(tmp_path / "a", grad_accum=2, **kw), make_model().eval(), det_loss, batches)
    single = train(cfg_for(tmp_path / "b", batch_size=8, **kw), make_model().eval(), det_loss, big)
    for k, v in weights(accum.model).items():
        torch.testing.assert_close(v, weights(single.model)[k], rtol=0, atol=1e-6)


def test_ema_update_is_exact(tmp_path):
    from relickit.train import ema_decay_at

    decay = 0.75
    model = make_model()
    before = weights(model)
    result = train(cfg_for(tmp_path, steps=1, ema_decay=decay), model, noisy_loss, batches)
    after = weights(result.model)
    d = ema_decay_at(decay, 0)
    assert d == 0.1  # warmed up: the first step keeps only a tenth of the initial weights
    for k, v in weights(result.ema_model).items():
        torch.testing.assert_close(v, d * before[k] + (1 - d) * after[k], rtol=0, atol=1e-7)
    assert ema_decay_at(0.999, 10_000) == 0.999


def test_log_file_figure_and_random_batches(tmp_path):
    result = train(cfg_for(tmp_path, steps=4, log_every=2), make_model(), noisy_loss, batches)
    records = read_log(tmp_path / "run")
    assert [r["step"] for r in records] == [2, 4] and records == result.log
    assert {"loss", "noise", "lr", "items_per_s", "grad_norm"} <= set(records[0])
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])["step"] == 2
    fig = loss_figure(tmp_path / "run" / "log.jsonl")
    assert fig.data[0].name == "loss" and list(fig.data[0].x) == [2, 4]

    data = [{"x": torch.full((2,), float(i))} for i in range(10)]
    fetch = random_batches(data, batch_size=3, seed=1)
    assert fetch(5)["x"].shape == (3, 2) and torch.equal(fetch(5)["x"], fetch(5)["x"])
    assert not torch.equal(fetch(5)["x"], fetch(6)["x"]) or not torch.equal(fetch(6)["x"], fetch(7)["x"])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="grad_accum"):
        dataclasses.replace(TrainConfig(), grad_accum=0)
    with pytest.raises(ValueError, match="cooldown"):
        TrainConfig(cooldown=1.5)


def test_cooldown_decays_the_learning_rate_to_zero_at_whichever_end_comes_first(tmp_path):
    """Warmup, constant, then a linear decay over the last fraction of the steps, or of the time limit when the
    time runs out first; the loop trains at exactly that rate."""
    cfg = TrainConfig(steps=8, lr=1.0, warmup=2, cooldown=0.5)
    assert [lr_at(cfg, s) for s in range(8)] == pytest.approx([0.5, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert [lr_at(dataclasses.replace(cfg, cooldown=0.0), s) for s in range(8)] == pytest.approx([0.5] + [1] * 7)
    timed = dataclasses.replace(cfg, steps=10**6, time_limit_s=100.0, cooldown=0.2)
    assert [lr_at(timed, 50, s) for s in (10.0, 80.0, 90.0, 99.0, 120.0)] == pytest.approx([1, 1, 0.5, 0.05, 0])
    assert lr_at(dataclasses.replace(timed, steps=8, cooldown=0.5), 7, 10.0) == pytest.approx(0.25)  # steps end first
    run = train(cfg_for(tmp_path, steps=8, warmup=2, cooldown=0.5), make_model(), noisy_loss, batches)
    assert [r["lr"] for r in run.log] == pytest.approx([1e-2 * f for f in (0.5, 1, 1, 1, 1, 0.75, 0.5, 0.25)])


def test_ctrl_c_stops_at_the_step_boundary(tmp_path):
    import os
    import signal

    def press_ctrl_c(step, model, log):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # deferred: the loop finishes this step, saves, then raises

    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tmp_path), make_model(), noisy_loss, batches, callback=press_ctrl_c)
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002"
