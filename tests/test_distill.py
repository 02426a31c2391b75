import copy
import dataclasses
import filecmp
import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file

from relickit.checkpoint import INT8, QUANTIZED, read_metadata, save_int8
from relickit.config import MemoryConfig, model_for
from relickit.diffusion import SamplerConfig, chunk_slices, rollout, sample_teacher
from relickit.distill import (DistillConfig, DMDPair, dmd_gradient, dmd_loss_fn, dmd_mix_loss_fn, dmd_surrogate,
                              generator_step, hybrid_forcing_loss, ode_trajectory)
from relickit.model import WorldModel
from relickit.recipe import (DMDStage, RecipeConfig, cycled, dmd_cycle, export, main, newest_student, recipe_from_cli,
                             run)
from relickit.teacher import HELD_OUT_LOG, stretch_horizon
from relickit.tutorial import REPO, sample_data
from relickit.vae import LAYOUTS, WAN_DECODER, Tokenizer, wan_decoder_part

from helpers import inputs, tiny_model, tiny_tokenizer

CAPS = ["a grey stone courtyard"]


def test_student_sigmas_match_diffusers_flow_schedule():
    sched = FlowMatchEulerDiscreteScheduler(shift=5.0)
    sched.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25])
    cfg = SamplerConfig()
    torch.testing.assert_close(torch.tensor(cfg.sigmas, dtype=torch.float64), sched.sigmas[:4].double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(cfg.sigmas, dtype=torch.float64) * 1000, torch.tensor([1000, 937.5, 833.3333, 625], dtype=torch.float64))
    grid = cfg.teacher_grid()
    assert grid[0] == 1 and grid[-1] == 0 and (grid[1:] < grid[:-1]).all()
    assert all((grid - s).abs().min() < 1e-12 for s in cfg.sigmas)


def test_velocity_preconditioning_is_the_least_squares_skip():
    """c_skip is Cov(v, x) / Var(x) for clean latents of RMS sigma_data and independent noise, and c_out the RMS
    of what the skip leaves (Monte Carlo over Gaussian latents, at the ends and in between)."""
    from relickit.diffusion import velocity_preconditioning

    gen = torch.Generator().manual_seed(0)
    s = 0.8
    x0, noise = torch.randn(2, 400_000, generator=gen, dtype=torch.float64) * torch.tensor([[s], [1.0]], dtype=torch.float64)
    for sigma in (0.0, 0.3, 0.7, 1.0):
        x, v = (1 - sigma) * x0 + sigma * noise, noise - x0
        skip, out = velocity_preconditioning(torch.tensor(sigma, dtype=torch.float64), s)
        assert abs(skip - (v * x).mean() / (x * x).mean()) < 0.01
        assert abs(out - (v - skip * x).std()) < 0.01
    assert velocity_preconditioning(torch.tensor(1.0), s)[0] == 1.0 and velocity_preconditioning(torch.tensor(0.0), s)[0] == -1.0


def test_dmd_surrogate_gradient_is_the_normalised_difference():
    x = torch.randn(2, 4, 3, 5, 5, requires_grad=True)
    g = torch.randn_like(x)
    dmd_surrogate(x, g, x.numel()).backward()
    torch.testing.assert_close(x.grad, g / x.numel())


def test_dmd_gradient_is_zero_when_critic_equals_teacher():
    model = tiny_model()
    x, t, ctx, actions, poses = inputs(model, 5)
    cfg = DistillConfig()
    g = dmd_gradient(x, model, copy.deepcopy(model), CAPS, actions, poses, torch.tensor([0.5]), torch.randn_like(x), cfg)
    assert g.abs().max() == 0
    critic = copy.deepcopy(model)
    with torch.no_grad():
        critic.proj_out.bias += 0.1
    g = dmd_gradient(x, model, critic, CAPS, actions, poses, torch.tensor([0.5]), torch.randn_like(x), cfg)
    assert g[:, :, 0].abs().max() == 0 and g[:, :, 1:].abs().min() > 0  # the image frame gets none


@pytest.mark.parametrize("policy", ["compressed", "full"])
def test_replayed_backprop_equals_naive_gradient(policy):
    student = tiny_model()
    teacher, critic = copy.deepcopy(student), copy.deepcopy(student)
    with torch.no_grad():
        for p in teacher.parameters():
            p += 0.02 * torch.randn_like(p)
    cfg = DistillConfig(memory=MemoryConfig(policy=policy, window=2, capacity=64))
    frames = 1 + 2 * 3
    x, _, _, actions, poses = inputs(student, frames)
    gen = torch.Generator().manual_seed(1)
    table = [[torch.randn(1, 16, 2, 12, 16, generator=gen) for _ in range(4)] for _ in range(4)]
    dmd_noise, sigma = torch.randn_like(x), torch.tensor([0.6])
    grads, losses = {}, {}
    for replay in (False, True):
        student.zero_grad(set_to_none=True)
        out = generator_step(student, teacher, critic, x[:, :, :1], CAPS, actions, poses, frames, cfg, [1, 3, 0],
                             lambda j, i: table[j][i], dmd_noise, sigma, replay=replay)
        losses[replay] = out.loss
        grads[replay] = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    assert set(grads[True]) == set(grads[False])
    assert any(k.startswith("text_encoder") for k in grads[True])  # the shared text context got its gradient
    torch.testing.assert_close(losses[True], losses[False])
    scale = max(g.abs().max() for g in grads[False].values())
    assert scale > 0
    for name in grads[False]:
        torch.testing.assert_close(grads[True][name], grads[False][name], atol=1e-6 * scale, rtol=1e-4, msg=name)


def test_rollout_is_deterministic_and_respects_the_image():
    model = tiny_model()
    frames = 1 + 2 * 3
    x, _, ctx, actions, poses = inputs(model, frames)
    gen = torch.Generator().manual_seed(3)
    table = [[torch.randn(1, 16, 2, 12, 16, generator=gen) for _ in range(4)] for _ in range(4)]
    sig = SamplerConfig().sigmas
    with torch.no_grad():
        runs = [rollout(model, model.new_cache(MemoryConfig(capacity=64)), x[:, :, :1], ctx, actions, poses, frames, sig,
                        lambda j, i: table[j][i]) for _ in range(2)]
    assert torch.equal(runs[0].latents, runs[1].latents)
    assert torch.equal(runs[0].latents[:, :, :1], x[:, :, :1])
    assert [s for s, _ in chunk_slices(model.cfg, frames)] == [slice(0, 1), slice(1, 3), slice(3, 5), slice(5, 7)]


class Oracle(torch.nn.Module):
    """Predicts the exact velocity towards a fixed clip: the teacher sampler must land on it."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x, t, context, actions, poses, vis, mem=None):
        sigma = (t / 1000)[:, None, :, None, None]
        return torch.where(sigma > 0, (x - self.target) / sigma.clamp_min(1e-12), torch.zeros_like(x))


def test_teacher_sampler_reproduces_a_learnable_sequence():
    target = torch.randn(1, 16, 5, 12, 16)
    oracle = Oracle(target)
    cfg = SamplerConfig(teacher_steps=8)
    x0, states = sample_teacher(oracle, target[:, :, :1], 5, torch.zeros(1, 8, 32), None, None, cfg, keep=cfg.sigmas)
    torch.testing.assert_close(x0, target, atol=1e-4, rtol=1e-4)
    assert set(states) == set(cfg.sigmas)
    noise = states[1.0]
    for s, state in states.items():  # on the straight path between the noise and the target
        torch.testing.assert_close(state[:, :, 1:], (1 - s) * target[:, :, 1:] + s * noise[:, :, 1:], atol=1e-4, rtol=1e-4)


def test_teacher_sampler_from_a_noised_clip_runs_only_the_grid_below_its_level():
    """SDEdit: from the target noised to 0.5, the oracle's flow ends at the target in the grid's steps below 0.5."""
    from relickit.diffusion import add_noise

    target, noise = torch.randn(1, 16, 5, 12, 16), torch.randn(1, 16, 5, 12, 16)
    oracle, cfg, seen = Oracle(target), SamplerConfig(teacher_steps=8), []
    forward = oracle.forward
    oracle.forward = lambda x, t, *rest: seen.append(float(t[0, 1]) / 1000) or forward(x, t, *rest)
    start = add_noise(target, noise, torch.full((1, 5), 0.5))
    x0, _ = sample_teacher(oracle, target[:, :, :1], 5, torch.zeros(1, 8, 32), None, None, cfg, noise=start,
                           start_sigma=0.5)
    torch.testing.assert_close(x0, target, atol=1e-4, rtol=1e-4)
    grid = cfg.teacher_grid()
    assert seen == pytest.approx([0.5] + grid[(grid < 0.5) & (grid > 0)].tolist())
    with pytest.raises(ValueError, match="pass it as noise"):
        sample_teacher(oracle, target[:, :, :1], 5, torch.zeros(1, 8, 32), None, None, cfg, start_sigma=0.5)


def test_ode_set_batches_on_the_device_equal_random_batches(tmp_path):
    """ODESet.batches (the set moved once, rows gathered where it lives) serves what random_batches collates."""
    from relickit.distill import ODESet, make_ode_set
    from relickit.train import random_batches

    teacher = tiny_model()
    x, _, _, actions, poses = inputs(teacher, 5)
    clips = lambda i: {"latents": x, "actions": actions, "poses": poses, "caption": CAPS * x.shape[0]}  # noqa: E731
    path = make_ode_set(teacher, clips, 2, DistillConfig(sampler=SamplerConfig(teacher_steps=4)),
                        tmp_path / "ode.safetensors", progress=False)
    ode = ODESet(path)
    for index in range(3):
        want, got = random_batches(ode, 3, seed=7)(index), ode.batches(3, seed=7)(index)
        assert got["caption"] == want["caption"] and set(got) == set(want)
        for key in ("trajectory", "actions", "poses"):
            assert torch.equal(got[key], want[key])


def test_hybrid_forcing_regresses_the_trajectory_end_and_learns():
    student = tiny_model()
    frames = 1 + 2 * 3
    x, _, ctx, actions, poses = inputs(student, frames)
    cfg = DistillConfig(memory=MemoryConfig(policy="compressed", window=2, capacity=64), noisy_blocks=2)
    traj = ode_trajectory(Oracle(x), x[:, :, :1], frames, ctx, actions, poses, SamplerConfig(teacher_steps=8))
    assert traj.shape == (1, 5, 16, frames, 12, 16)
    torch.testing.assert_close(traj[:, -1], x, atol=1e-4, rtol=1e-4)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(15):
        loss = hybrid_forcing_loss(student, traj, student.encode_text(CAPS), actions, poses, cfg, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_replayed_backprop_holds_one_block_of_graph():
    from relickit.distill import GraphMemory

    student = tiny_model()
    teacher, critic = copy.deepcopy(student), copy.deepcopy(student)
    cfg = DistillConfig(memory=MemoryConfig(policy="compressed", window=2, capacity=64))
    peaks = {}
    for frames in (1 + 2 * 2, 1 + 2 * 6):
        x, _, _, actions, poses = inputs(student, frames)
        for replay in (False, True):
            with GraphMemory() as mem:
                generator_step(student, teacher, critic, x[:, :, :1], CAPS, actions, poses, frames, cfg,
                               [3] * ((frames - 1) // 2), lambda j, i: torch.randn(1, 16, 2, 12, 16),
                               torch.randn_like(x), torch.tensor([0.5]), replay=replay)
            assert mem.current == 0  # everything was freed by backward
            peaks[frames, replay] = mem.peak
    assert peaks[13, False] > 2.5 * peaks[5, False]  # naive grows with the rollout
    assert peaks[13, True] < 1.2 * peaks[5, True]  # replayed stays at one block
    assert peaks[13, True] < peaks[13, False] / 2.5


def test_a_mixed_dmd_stage_cycles_rollout_lengths_a_critic_cycle_at_a_time():
    """RecipeConfig.dmd_mix: each batch is a critic cycle's (one generator update and its critic updates), rolled
    out as long as its clips and scored by that length's own teacher, with one critic for all."""
    short, long = (lambda index: ("short", index)), (lambda index: ("long", index))
    batches = cycled([short, short, long], 5)
    assert [batches(i)[0] for i in range(0, 35, 5)] == ["short", "short", "long"] * 2 + ["short"]
    assert [batches(i) for i in (9, 10, 14, 15)] == [("short", 9), ("long", 10), ("long", 14), ("short", 15)]
    assert cycled([short], 5) is short
    student = tiny_model()
    cfg = DistillConfig(memory=MemoryConfig(policy="compressed", window=2, capacity=64))
    teachers = {5: copy.deepcopy(student), 7: copy.deepcopy(student)}
    scored = []
    for frames, teacher in teachers.items():
        forward = teacher.forward
        teacher.forward = lambda *a, _f=frames, _fw=forward, **k: (scored.append(_f), _fw(*a, **k))[1]
    loss_fn, pair = dmd_mix_loss_fn(teachers, cfg), DMDPair(student, copy.deepcopy(student).train())
    for frames in (7, 5):
        x, _, _, actions, poses = inputs(student, frames)
        scored.clear()
        loss, logs = loss_fn(pair, {"latents": x, "caption": CAPS, "actions": actions, "poses": poses}, 0)
        assert torch.isfinite(loss) and "dmd" in logs and set(scored) == {frames}  # its own length's teacher only
    x, _, _, actions, poses = inputs(student, 9)
    with pytest.raises(ValueError, match=r"a batch of 9 latent frames; this DMD loss scores rollouts of \[5, 7\]"):
        loss_fn(pair, {"latents": x, "caption": CAPS, "actions": actions, "poses": poses}, 0)
    recipe = RecipeConfig(dmd_mix=(0, 0, 2))  # trained, and written, as the longest stage
    assert [dmd_cycle(recipe, i) for i in range(3)] == [(), (), (0, 0, 2)]
    assert [dmd_cycle(dataclasses.replace(recipe, dmd_mix=None, dmd_stages=(2,)), i) for i in range(3)] == [(), (), (2,)]


def test_a_rollout_beyond_the_teachers_rope_range_fails_before_any_work():
    student = tiny_model(rope_frames=5)
    teacher, critic = copy.deepcopy(student), copy.deepcopy(student)
    cfg = DistillConfig(memory=MemoryConfig(policy="compressed", window=2, capacity=64))
    with pytest.raises(ValueError, match=r"dmd_loss_fn.*7 latent frames exceed the RoPE range.*5 x YaRN 1 .*=1\.4"):
        dmd_loss_fn(teacher, cfg, 7)
    with pytest.raises(ValueError, match="do not split into the image"):
        dmd_loss_fn(teacher, cfg, 6)
    with pytest.raises(ValueError, match="capacity 4"):
        dmd_loss_fn(teacher, DistillConfig(memory=MemoryConfig(capacity=4)), 5)
    x, _, _, actions, poses = inputs(student, 7)
    args = (x[:, :, :1], CAPS, actions, poses, 7, cfg, [3] * 3, lambda j, i: torch.randn(1, 16, 2, 12, 16),
            torch.randn_like(x), torch.tensor([0.5]))
    ran = []
    student.step = lambda *a, **k: ran.append(1)  # generator_step refuses before the student runs
    with pytest.raises(ValueError, match="generator_step: the teacher scores the whole rollout"):
        generator_step(student, teacher, critic, *args)
    assert not ran
    del student.step
    long_teacher, long_critic = stretch_horizon(teacher, 7), stretch_horizon(critic, 7)
    generator_step(student, long_teacher, long_critic, *args)  # stretched with YaRN, the same rollout runs
    assert all(p.grad is not None for p in student.blocks[0].parameters())


def test_the_recipe_checks_every_stage_before_the_first_runs(tmp_path):
    smoke = RecipeConfig.smoke()
    smoke.check()
    late = dataclasses.replace(smoke, dmd=(DMDStage(13, 1, 0),))  # teacher stage 0 covers 7 latent frames
    with pytest.raises(ValueError, match="dmd stage 0, scored by teacher stage 0: 13 latent frames exceed the RoPE"):
        run(late, tmp_path / "out", stages=("data",))
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    with pytest.raises(ValueError, match="clip_latents=7; raise clip_latents to 13"):
        dataclasses.replace(smoke, clip_latents=7).check()
    with pytest.raises(ValueError, match="ode_latents=19 is longer than every teacher stage"):
        dataclasses.replace(smoke, ode_latents=19, clip_latents=19).check()
    with pytest.raises(ValueError, match="do not split into the image"):
        dataclasses.replace(smoke, dmd=(DMDStage(6, 1, 0),)).check()


def test_the_recipe_refuses_a_tokenizer_of_another_layout_before_any_stage(tmp_path):
    f4 = tiny_tokenizer(tmp_path / "f4c16.safetensors")
    smoke = RecipeConfig.smoke()  # its model reads the 12x16 latents of f8c16
    with pytest.raises(ValueError, match=r"the tokenizer .*f4c16.safetensors does not make the latents the model "
                       r"reads; .*'spatial factor': \(8, 4\).*relickit.config.model_for\(tokenizer config"):
        run(dataclasses.replace(smoke, tokenizer_from=str(f4)), tmp_path / "out", stages=("data",))
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    resumed = tmp_path / "resumed"  # a run whose own tokenizer does not fit the model is refused the same way
    resumed.mkdir()
    shutil.copyfile(f4, resumed / "tokenizer.safetensors")
    with pytest.raises(ValueError, match=r"this run's tokenizer .* does not make the latents the model reads"):
        run(smoke, resumed, stages=("data",))
    assert sorted(p.name for p in resumed.iterdir()) == ["tokenizer.safetensors"]


def test_the_recipe_cli_builds_the_model_for_a_tokenizer_size_and_budget(tmp_path, monkeypatch, capsys):
    f4 = tiny_tokenizer(tmp_path / "f4c16.safetensors")
    monkeypatch.setenv("RELICKIT_SMOKE", "0")
    recipe, args = recipe_from_cli(["--out", str(tmp_path / "run"), "--tokenizer", str(f4), "--size", "256x12",
                                    "--minutes", "teacher=12", "hybrid=3", "dmd=4", "--stages", "latents,teacher"])
    default = RecipeConfig()
    assert recipe.model == model_for(LAYOUTS["f4c16"], 256, 12, sigma_data=1.0)
    assert (recipe.model.patch, recipe.model.heads, recipe.model.tokens_per_frame) == ((1, 4, 4), 4, 48)
    assert recipe.tokenizer_from == str(f4) and recipe.tokenizer.vae == Tokenizer.load(f4).cfg
    assert (recipe.teacher_first_stage_s, recipe.hybrid_train.time_limit_s, recipe.dmd_train.time_limit_s) == (
        720, 180, 240)
    assert recipe.teacher.train.time_limit_s == default.teacher.train.time_limit_s  # not named: unchanged
    assert recipe.tokenizer.vae_train.time_limit_s == default.tokenizer.vae_train.time_limit_s
    assert args.stages == ("latents", "teacher")
    recipe.check()  # every stage of the full recipe fits the f4c16 model
    trained = REPO / "data" / "weights" / "tokenizer" / "f4c16.safetensors"  # the campaign's tokenizer
    assert recipe_from_cli(["--tokenizer", str(trained), "--size", "256x12"])[0].model == recipe.model
    assert recipe_from_cli([])[0] == default  # no options: the recipe as it was
    # without --tokenizer, --size keeps the default layout: the shipped one
    assert recipe_from_cli(["--size", "320x12"])[0].model == model_for(LAYOUTS["f4c16"], 320, 12, sigma_data=1.0)
    assert recipe_from_cli(["--sigma-data", "0"])[0].model.sigma_data == 0.0  # to warm-start from an older model
    # a model trained without the skip (as before 2026-12-02): refused before any stage runs, naming the flag
    old = WorldModel(model_for(LAYOUTS["f4c16"], 64, 3, sigma_data=0.0)).save(tmp_path / "old.safetensors")
    with pytest.raises(ValueError, match=r"'sigma_data': \(0.0, 1.0\).*--sigma-data"):
        recipe_from_cli(["--size", "64x3", "--warm-start", str(old)])[0].check()
    recipe_from_cli(["--size", "64x3", "--warm-start", str(old), "--sigma-data", "0"])[0].check()
    committed = REPO / "data" / "weights" / "world" / "teacher.safetensors"  # the campaign's 384 x 8 teacher
    recipe_from_cli(["--tokenizer", str(trained), "--size", "384x8", "--warm-start", str(committed)])[0].check()
    distil = recipe_from_cli(["--tokenizer", str(trained), "--size", "384x8", "--warm-start", str(committed),
                              "--minutes", "teacher=0", "teacher_long=0", "--student-layers", "3"])[0]  # run 12's
    distil.check()
    assert distil.student_model() == dataclasses.replace(distil.model, layers=3)
    assert [s.steps for s in distil.teacher.stages] == [0, 0, 0]
    shipped = REPO / "relickit" / "assets" / "student.safetensors"  # run 19's: DMD of the shipped 3 blocks from it
    recipe_from_cli(["--tokenizer", str(trained), "--size", "384x8", "--warm-start", str(committed),
                     "--minutes", "teacher=0", "teacher_long=0", "--dmd-from", str(shipped)])[0].check()
    f4c32 = tmp_path / "f4c32.safetensors"  # tokenizer run 10b's layout: the teacher's warm start widens to it
    Tokenizer(LAYOUTS["f4c32"]).save(f4c32, wan_decoder=False)
    assert recipe_from_cli(["--tokenizer", str(f4c32), "--size", "384x8"])[0].model.latent_channels == 32
    recipe_from_cli(["--tokenizer", str(f4c32), "--size", "384x8", "--warm-start", str(committed)])[0].check()
    with pytest.raises(ValueError, match=r"'dim': \(384, 512\)"):  # grown deeper, never wider
        recipe_from_cli(["--tokenizer", str(trained), "--size", "512x8", "--warm-start", str(committed)])[0].check()
    more = recipe_from_cli(["--episodes", "600", "--clips", "8192"])[0]
    assert (more.episodes, more.clips) == (600, 8192) and more.model == default.model
    assert recipe_from_cli(["--seed", "3"])[0] == dataclasses.replace(default, seed=3)
    assert default.balance == 1 and recipe_from_cli(["--balance", "0"])[0] == dataclasses.replace(default, balance=0.0)
    wide = recipe_from_cli(["--dmd-batch", "64"])[0]  # only DMD's batch changes
    assert wide == dataclasses.replace(default, dmd_train=dataclasses.replace(default.dmd_train, batch_size=64))
    assert default.windows and recipe_from_cli(["--no-windows"])[0] == dataclasses.replace(default, windows=False)
    fused = recipe_from_cli(["--compile"])[0]  # the teacher and the hybrid student train compiled; DMD stays eager
    assert (fused.teacher.train.compile, fused.hybrid_train.compile, fused.dmd_train.compile) == ("inductor", "inductor", "")
    assert dataclasses.replace(fused.teacher, train=default.teacher.train) == default.teacher
    cooled = recipe_from_cli(["--cooldown", "0.3"])[0]  # every teacher stage cools down; nothing else changes
    assert cooled.teacher.train == dataclasses.replace(default.teacher.train, cooldown=0.3)
    assert dataclasses.replace(cooled, teacher=default.teacher) == default
    alone = recipe_from_cli(["--minutes", "teacher=5", "teacher_long=0"])[0]  # the first teacher stage alone
    assert [s.steps for s in alone.teacher.stages] == [default.teacher.stages[0].steps, 0, 0]
    assert alone.teacher.train == default.teacher.train and alone.teacher_first_stage_s == 300
    for bad, named in ((["--minutes", "teacher"], "write KEY=MINUTES"), (["--minutes", "critic=2"], "teacher_long"),
                       (["--minutes", "dmd=0"], "leave a stage out with --stages"),
                       (["--size", "200x8"], "multiple of the head size 64"), (["--clips", "0"], "at least 1"),
                       (["--sigma-data", "-1"], "turns the velocity skip off"), (["--cooldown", "2"], "in [0, 1]"),
                       (["--dmd-batch", "0"], "at least 1"), (["--balance", "1.5"], "exponent from 0")):
        with pytest.raises(SystemExit):
            recipe_from_cli(bad)
        assert named in capsys.readouterr().err


def test_a_smoke_recipe_with_a_trained_tokenizer_skips_the_tokenizer_stage(tmp_path, monkeypatch, one_thread):
    f4 = tiny_tokenizer(tmp_path / "f4c16.safetensors")
    monkeypatch.setenv("RELICKIT_SMOKE", "1")
    out = tmp_path / "run"
    argv = ["--out", str(out), "--data", str(sample_data("train")), "--device", "cpu", "--tokenizer", str(f4),
            "--stages", "tokenizer,latents,teacher"]
    main(argv)
    assert filecmp.cmp(f4, out / "tokenizer.safetensors", shallow=False)
    assert filecmp.cmp(wan_decoder_part(f4), wan_decoder_part(out / "tokenizer.safetensors"), shallow=False)
    assert not (out / "runs" / "tokenizer").exists()  # no tokenizer was trained
    latents = load_file(out / "latents.safetensors")  # with every latent frame's image: windows, not prefixes
    assert latents["latents"].shape[-2:] == (24, 32) and latents["images"].shape == latents["latents"].shape
    teacher = WorldModel.load(out / "teacher" / "stage1.safetensors")
    assert (teacher.cfg.latent_size, teacher.cfg.patch, teacher.cfg.dim) == ((24, 32), (1, 4, 4), 64)
    main(argv)  # resuming with the same tokenizer is fine
    # --balance reaches the clips the latents stage draws from
    import relickit.dataset

    drawn = []

    class Recorded(relickit.dataset.ClipDataset):  # the same clips, their balance written down
        def __init__(self, *args, **kwargs):
            drawn.append(kwargs["balance"])
            super().__init__(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(relickit.dataset, "ClipDataset", Recorded)
        main(["--out", str(tmp_path / "as_they_come")] + argv[2:-2] + ["--stages", "tokenizer,latents", "--balance", "0"])
    assert drawn == [0.0] and (tmp_path / "as_they_come" / "latents.safetensors").exists()
    # --held-out: every teacher stage logs its EMA's loss on the evaluation's held-out clips; the last line is the
    # loss of the checkpoint the stage keeps (one held-out map here, for time)
    import relickit.evaluate.teacher as evaluate_teacher

    real = evaluate_teacher.held_out_set
    monkeypatch.setattr(evaluate_teacher, "held_out_set", lambda *a, **kw: real(*a, **kw, maps=("MAP21",)))
    watched = tmp_path / "watched"
    shutil.copytree(out, watched, ignore=shutil.ignore_patterns("teacher", "runs"))  # its tokenizer and latents
    recipe = dataclasses.replace(recipe_from_cli(argv + ["--held-out", str(tmp_path / "held_out")])[0], held_out_every=1)
    run(recipe, watched, ("teacher",), "cpu", log=lambda *_: None, data=sample_data("train"))
    held = real(tmp_path / "held_out", Tokenizer.load(watched / "tokenizer.safetensors"), maps=("MAP21",),
                latent_frames=recipe.teacher.stages[0].latent_frames)
    for i, stage in enumerate(recipe.teacher.stages):
        lines = (watched / "teacher" / f"stage{i}" / HELD_OUT_LOG).read_text().splitlines()
        assert len(lines) == stage.steps
        kept = WorldModel.load(watched / "teacher" / f"stage{i}.safetensors")
        assert json.loads(lines[-1])["held_out_loss"] == pytest.approx(held.loss(kept), rel=1e-5)
    other = tiny_tokenizer(tmp_path / "other.safetensors")  # new random weights
    with pytest.raises(ValueError, match="is another tokenizer than .*other.safetensors.* start a new --out"):
        main(argv[:-3] + [str(other)] + argv[-2:])
    # a student narrower than its teacher, started from a checkpoint of its own; the teacher still scores it
    narrow = WorldModel(dataclasses.replace(teacher.cfg, dim=32, heads=1, ffn_dim=64))
    narrow.save(tmp_path / "narrow.safetensors")
    main(argv[:-2] + ["--stages", "ode,hybrid,dmd,export", "--student-from", str(tmp_path / "narrow.safetensors"),
                      "--assets", str(tmp_path / "assets")])
    for path in (out / "hybrid.safetensors", out / "dmd" / "stage1.safetensors", tmp_path / "assets" / "student.safetensors"):
        assert WorldModel.load(path).cfg.dim == 32
    assert read_metadata(tmp_path / "assets" / "student.safetensors")[QUANTIZED] == INT8  # shipped in int8
    assert WorldModel.load(out / "teacher" / "stage1.safetensors").cfg.dim == 64
    # a shallower student from the teacher's own blocks (--student-layers), on the same latents and teacher
    shallow = tmp_path / "shallow"
    shutil.copytree(out, shallow, ignore=shutil.ignore_patterns("hybrid*", "dmd", "runs", "assets"))
    main(["--out", str(shallow)] + argv[2:-2] + ["--stages", "hybrid,dmd", "--student-layers", "1"])
    assert WorldModel.load(shallow / "dmd" / "stage1.safetensors").cfg == dataclasses.replace(
        WorldModel.load(shallow / "teacher" / "stage1.safetensors").cfg, layers=1)
    with pytest.raises(ValueError, match="keeps 1 to 2 of the blocks"):
        recipe_from_cli(argv + ["--student-layers", "3"])[0].check()
    # the DMD stages continue a student of their own (--dmd-from, e.g. the shipped one) without hybrid or ODE stages
    cont = tmp_path / "cont"
    shutil.copytree(shallow, cont, ignore=shutil.ignore_patterns("hybrid*", "dmd", "runs", "ode*"))
    start = shallow / "dmd" / "stage1.safetensors"
    main(["--out", str(cont)] + argv[2:-2] + ["--stages", "dmd", "--student-layers", "1", "--dmd-from", str(start)])
    assert not (cont / "hybrid.safetensors").exists() and not (cont / "ode.safetensors").exists()
    assert WorldModel.load(cont / "dmd" / "stage1.safetensors").cfg.layers == 1
    with pytest.raises(ValueError, match=r"another architecture .*'layers': \(1, 2\)"):
        recipe_from_cli(argv + ["--dmd-from", str(start)])[0].check()  # the teacher's 2 blocks, not the student's 1

    def last_stage_alone(name: str, *flags: str) -> Path:
        """A DMD run from --dmd-from in a copy of `cont` that trains and writes the last stage only."""
        out_dir = tmp_path / name
        shutil.copytree(cont, out_dir, ignore=shutil.ignore_patterns("dmd", "runs"))
        main(["--out", str(out_dir)] + argv[2:-2] + ["--stages", "dmd", "--student-layers", "1", "--dmd-from",
                                                    str(start), *flags])
        assert sorted(p.name for p in (out_dir / "dmd").iterdir()) == ["stage1.safetensors"]
        assert sorted(p.name for p in (out_dir / "runs").iterdir()) == ["dmd1"]
        return out_dir

    # the last stage alone (--dmd-stages): it starts from --dmd-from; the stages left out are not written
    last = last_stage_alone("last", "--dmd-stages", "1")
    # what a GPU call brings home before its machine can go back: the last finished DMD stage, or while a later stage
    # runs its newest checkpoint's student (here: the stage's file deleted, as if the machine went back before it)
    finished = last / "dmd" / "stage1.safetensors"
    assert newest_student(last)[1] == str(finished) and newest_student(tmp_path / "nothing") is None
    expected = WorldModel.load(finished)
    finished.unlink()
    model, source = newest_student(last)
    assert source.startswith(str(last / "runs" / "dmd1" / "checkpoints")) and model.cfg == expected.cfg
    for k, v in expected.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    for bad in ("2", "0,x", ""):
        with pytest.raises((ValueError, SystemExit)):
            recipe_from_cli(argv + ["--dmd-stages", bad])[0].check()
    # both rollout lengths in one mixed stage (--dmd-mix): trained and written as its longest stage alone
    last_stage_alone("mixed", "--dmd-mix", "0,0,1")
    for bad in ("0,0", "0,5"):
        with pytest.raises(ValueError, match="at least two rollout lengths"):
            recipe_from_cli(argv + ["--dmd-mix", bad])[0].check()
    with pytest.raises(SystemExit):
        recipe_from_cli(argv + ["--dmd-mix", "0,x"])
    with pytest.raises(ValueError, match="leave dmd_stages out"):
        recipe_from_cli(argv + ["--dmd-mix", "0,1", "--dmd-stages", "1"])[0].check()
    f8 = WorldModel(RecipeConfig.smoke().model).save(tmp_path / "f8.safetensors")  # 8x latents: not the teacher's
    recipe, _ = recipe_from_cli(argv[:-2] + ["--student-from", str(f8)])
    with pytest.raises(ValueError, match=r"does not stream the teacher's latents.*'spatial_down': \(8, 4\)"):
        recipe.check()


@pytest.mark.parametrize("split", [True, False])
def test_export_writes_the_tokenizer_without_its_wan_decoder(tmp_path, split):
    path = tiny_tokenizer(tmp_path / "tok.safetensors", split=split)
    student = WorldModel(model_for(LAYOUTS["f4c16"], 64, 1)).save(tmp_path / "student.safetensors")
    export(student, path, tmp_path / "assets")
    exported = tmp_path / "assets" / "tokenizer.safetensors"
    tensors = load_file(exported)
    assert not any(k.startswith(WAN_DECODER) for k in tensors) and not wan_decoder_part(exported).exists()
    assert read_metadata(exported)[QUANTIZED] == INT8 and read_metadata(exported)["wan_decoder"] == "0"
    assert torch.int8 in {v.dtype for v in tensors.values()}  # the play part in int8, as the campaign's tokenizer
    full, play = Tokenizer.load(path), Tokenizer.load(exported)
    assert not play.has_wan_decoder
    video = torch.rand(1, 3, 5, 96, 128) * 2 - 1
    torch.testing.assert_close(play.encode(video), full.encode(video), atol=1e-2, rtol=1e-2)
    assert WorldModel.load(tmp_path / "assets" / "student.safetensors").cfg == WorldModel.load(student).cfg
    int8 = save_int8(student, tmp_path / "student.int8.safetensors")  # a GPU run's collected checkpoint: copied
    export(int8, path, tmp_path / "assets")
    assert (tmp_path / "assets" / "student.safetensors").read_bytes() == int8.read_bytes()


def test_the_default_recipe_trains_the_shipped_models_shapes():
    """`python -m relickit.recipe` without --tokenizer/--size reproduces the shipped pair's layout and size."""
    from relickit.play import DEFAULT_MODEL, DEFAULT_TOKENIZER
    from relickit.vae import read_config

    default = RecipeConfig()
    default.check()
    shipped = WorldModel.load(DEFAULT_MODEL).cfg
    assert default.model.sigma_data == shipped.sigma_data == 1.0  # trained with the velocity skip
    assert dataclasses.replace(default.student_model(), rope_frames=shipped.rope_frames,
                               yarn_factor=shipped.yarn_factor) == shipped
    assert default.tokenizer.vae == read_config(DEFAULT_TOKENIZER)
