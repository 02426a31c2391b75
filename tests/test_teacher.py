import dataclasses
import json

import pytest
import torch

from relickit.config import preset
from relickit.latents import LatentClips
from relickit.model import WorldModel
from relickit.teacher import (Stage, TeacherConfig, load_weights, newest_teacher, stage_config, teacher_loss,
                              train_teacher)
from relickit.train import TrainConfig, batch_rows
from relickit.tutorial import sample_data

CFG = preset("tiny", layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8, rope_frames=4)


def clips(n=4, latent_frames=10):
    g = torch.Generator().manual_seed(0)
    frames = CFG.video_frames(latent_frames)
    # a slow steady walk forward: poses from integrating a constant action
    from relickit.controls import accumulate, pose_vector

    acts = torch.zeros(n, frames, 13)
    acts[:, 1:, 0] = 1.0
    r, p = accumulate(acts)
    lat = torch.randn(n, 16, latent_frames, *CFG.latent_size, generator=g)
    return LatentClips(lat.half(), pose_vector(r, p), ["a grey stone hall"] * n)


def test_curriculum_switches_horizon_and_yarn(tmp_path):
    data = clips(latent_frames=10)
    cfg = TeacherConfig(stages=(Stage(4, 2), Stage(7, 1), Stage(10, 1)),
                        train=TrainConfig(batch_size=2, log_every=1, out_dir=str(tmp_path)))
    seen = []

    def clips_for(latent_frames):
        seen.append(latent_frames)
        return data.batches(latent_frames, 2, seed=0)

    paths = train_teacher(CFG, clips_for, cfg)
    assert seen == [4, 7, 10]
    loaded = [WorldModel.load(p) for p in paths]
    assert [m.cfg.yarn_factor for m in loaded] == [1.0, 7 / 4, 10 / 4]
    assert all(m.cfg.rope_frames == 4 for m in loaded)
    # the long stage started from the short one: resuming skips finished stages
    again = train_teacher(CFG, clips_for, cfg, resume=True)
    assert again == paths and seen == [4, 7, 10]


def test_a_stage_of_no_steps_passes_the_stage_before_it_on(tmp_path):
    """The recipe's `--minutes teacher_long=0`: the longer stages train nothing, and their checkpoints (which the
    ODE and DMD stages read) hold the first stage's weights with their own RoPE range."""
    data = clips(latent_frames=7)
    cfg = TeacherConfig(stages=(Stage(4, 2), Stage(7, 0)),
                        train=TrainConfig(batch_size=2, ema_decay=0.999, out_dir=str(tmp_path)))  # the recipe's EMA
    paths = train_teacher(CFG, lambda f: data.batches(f, 2, seed=0), cfg)
    first, second = (WorldModel.load(p) for p in paths)
    assert second.cfg.yarn_factor == 7 / 4
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k
    model, source = newest_teacher(tmp_path)  # what collect-teachers brings home: the stage that trained
    assert source == str(paths[0]) and model.cfg.yarn_factor == 1.0


def test_newest_teacher_is_the_running_stages_last_checkpoint_else_the_last_stage(tmp_path):
    """What a GPU call brings home before a machine can go back: nothing before the first checkpoint; the last
    finished stage; and while a later stage runs, its newest checkpoint's EMA weights in that stage's architecture
    (here: stage 1's file deleted, as if the machine went back before the stage ended, gives the same weights)."""
    data = clips(latent_frames=7)
    cfg = TeacherConfig(stages=(Stage(4, 2), Stage(7, 3)), train=TrainConfig(batch_size=2, ema_decay=0.5,
                                                                               ckpt_every=1, out_dir=str(tmp_path)))
    assert newest_teacher(tmp_path) is None
    paths = train_teacher(CFG, lambda f: data.batches(f, 2, seed=0), cfg)
    model, source = newest_teacher(tmp_path)
    assert source == str(paths[1]) and model.cfg == WorldModel.load(paths[1]).cfg
    finished = WorldModel.load(paths[1])
    paths[1].unlink()
    model, source = newest_teacher(tmp_path)
    assert source.startswith(str(tmp_path / "stage1" / "checkpoints")) and source.endswith("ema.safetensors")
    assert model.cfg == finished.cfg and model.cfg.yarn_factor == 7 / 4
    for k, v in finished.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    (tmp_path / "stage1" / "model.json").unlink()  # a run directory from before the stage's architecture was kept
    assert newest_teacher(tmp_path)[1] == str(paths[0])


def test_short_stage_checkpoint_loads_into_long_stage(tmp_path):
    short = WorldModel(stage_config(CFG, Stage(4, 1), Stage(4, 1)))
    path = short.save(tmp_path / "short.safetensors")
    long = WorldModel(stage_config(CFG, Stage(10, 1), Stage(4, 1)))
    load_weights(long, path)
    for (k, a), (_, b) in zip(short.state_dict().items(), long.state_dict().items()):
        assert torch.equal(a, b), k
    other = WorldModel(dataclasses.replace(CFG, dim=96, heads=3, ffn_dim=192))
    with pytest.raises(ValueError, match="another architecture"):
        load_weights(other, path)


def test_a_campaign_warm_starts_from_the_int8_copy_of_its_last_stage(tmp_path):
    """The world-model campaign commits the last (long) teacher stage in int8; the next run's first (short) stage
    starts from it (`--warm-start`): the dequantized weights, whatever the RoPE range they were saved with."""
    from relickit.checkpoint import save_int8

    long = WorldModel(stage_config(CFG, Stage(10, 1), Stage(4, 1)))
    committed = save_int8(long.save(tmp_path / "stage2.safetensors"), tmp_path / "teacher.safetensors")
    data = clips(latent_frames=4)
    cfg = TeacherConfig(stages=(Stage(4, 1),), train=TrainConfig(batch_size=2, lr=0.0, warmup=0, out_dir=str(tmp_path)))
    (path,) = train_teacher(CFG, lambda f: data.batches(f, 2, seed=0), cfg, inits=[committed])
    started = WorldModel.load(path)
    for (k, a), b in zip(WorldModel.load(committed).state_dict().items(), started.state_dict().values()):
        torch.testing.assert_close(b, a, msg=k)  # lr 0: the step kept what it started from


def test_compiled_blocks_train_as_the_eager_ones(tmp_path):
    """TrainConfig.compile (the recipe's --compile): the blocks' halves compiled, the same losses and weights as
    eager steps, the EMA copy left eager, the checkpoint's keys unchanged; a model without blocks is refused."""
    from relickit.train import train

    data = clips(latent_frames=4)
    cfg = TrainConfig(steps=2, batch_size=2, log_every=1, ema_decay=0.5)
    runs = {}
    for backend in ("", "aot_eager"):  # aot_eager: compiled forward and backward graphs, no code generation
        torch.manual_seed(0)
        model = WorldModel(stage_config(CFG, Stage(4, 1), Stage(4, 1)))
        runs[backend] = train(dataclasses.replace(cfg, compile=backend, out_dir=str(tmp_path / (backend or "eager"))),
                              model, teacher_loss(TeacherConfig()), data.batches(4, 2, seed=0))
    eager, compiled = runs[""], runs["aot_eager"]
    assert "attn_in" in vars(compiled.model.blocks[0]) and "attn_in" not in vars(compiled.ema_model.blocks[0])
    assert [r["loss"] for r in compiled.log] == pytest.approx([r["loss"] for r in eager.log], rel=1e-5)
    assert compiled.model.state_dict().keys() == eager.model.state_dict().keys()
    for k, v in eager.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[k], v, rtol=1e-4, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match="compile_blocks"):
        train(dataclasses.replace(cfg, compile="aot_eager", out_dir=str(tmp_path / "linear")), torch.nn.Linear(2, 2),
              lambda m, b, s: (m(b).sum(), {}), lambda i: torch.ones(1, 2))


def test_clip_batches_are_prefixes_of_their_rows_with_the_prefixes_own_labels():
    data = clips(n=5, latent_frames=10)
    data.captions = [f"hall {i}" for i in range(5)]
    rows = batch_rows(5, 3, 2, 4)
    for device in (None, "cpu"):
        batch = data.batches(7, 3, seed=2, device=device)(4)
        assert torch.equal(batch["latents"], data.latents[rows, :, :7].float())
        for b, r in enumerate(rows):
            actions, poses = data.targets(int(r), CFG.video_frames(7))
            assert torch.equal(batch["actions"][b], actions) and torch.equal(batch["poses"][b], poses)
        assert batch["caption"] == [f"hall {r}" for r in rows]


def test_clip_batches_with_images_are_every_window_started_by_its_image_latent():
    data = clips(n=3, latent_frames=10)
    data.captions = [f"hall {i}" for i in range(3)]
    data.images = torch.randn(data.latents.shape, generator=torch.Generator().manual_seed(1)).half()
    td, length = CFG.temporal_down, 4
    windows = data.window_starts(length)
    assert windows == 7 and clips(n=3).window_starts(length) == 1
    rows = batch_rows(3 * windows, 64, 5, 2)
    batch = data.batches(length, 64, seed=5, device="cpu")(2)
    assert batch["latents"].shape == (64, 16, length, *CFG.latent_size)
    for b, r in enumerate(rows.tolist()):
        clip, k = divmod(r, windows)
        want = torch.cat([data.images[clip, :, k:k + 1], data.latents[clip, :, k + 1:k + length]], 1).float()
        assert torch.equal(batch["latents"][b], want)
        actions, poses = data.targets(clip, CFG.video_frames(length), start=k * td)
        assert torch.equal(batch["actions"][b], actions) and torch.equal(batch["poses"][b], poses)
        assert batch["caption"][b] == f"hall {clip}"
    assert len({r % windows for r in rows.tolist()}) > 1, "the draw covers more than the prefix"
    # a window's poses start at its own first frame: a steady walk looks the same from anywhere in the clip
    prefix, later = data.targets(0, CFG.video_frames(length)), data.targets(0, CFG.video_frames(length), start=2 * td)
    assert torch.equal(prefix[0], later[0]) and torch.allclose(prefix[1], later[1], atol=1e-5)


def test_teacher_loss_goes_down_on_a_tiny_batch():
    torch.manual_seed(0)
    model = WorldModel(CFG)
    batch = clips(n=2, latent_frames=4).batches(4, 2, seed=0)(0)
    loss_fn = teacher_loss(TeacherConfig(text_dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(100):
        torch.manual_seed(step % 2)  # two fixed noise draws: over-fitting is possible
        loss, _ = loss_fn(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])


def test_stretch_horizon_copies_the_weights_and_covers_the_longer_sequence():
    from relickit.memory import bidirectional_visibility
    from relickit.teacher import stretch_horizon

    from helpers import inputs, tiny_model

    model = tiny_model(rope_frames=5)
    model.blocks[0].requires_grad_(False)
    x, t, ctx, actions, poses = inputs(model, 9)
    with pytest.raises(ValueError, match="RoPE range"):
        model(x, t, ctx, actions, poses, bidirectional_visibility(9))
    long = stretch_horizon(model, 9)
    assert long.cfg == dataclasses.replace(model.cfg, yarn_factor=9 / 5) and model.cfg.yarn_factor == 1.0
    assert all(torch.equal(a, b) for a, b in zip(long.state_dict().values(), model.state_dict().values()))
    assert [p.requires_grad for p in long.parameters()] == [p.requires_grad for p in model.parameters()]
    assert long.training == model.training
    with torch.no_grad():
        assert torch.isfinite(long(x, t, ctx, actions, poses, bidirectional_visibility(9))).all()
    assert stretch_horizon(long, 7).cfg.yarn_factor == 9 / 5  # never shrinks the range


def test_encoded_images_are_each_latent_frames_video_frame_encoded_alone(tmp_path):
    from helpers import tiny_tokenizer
    from relickit.dataset import ClipDataset
    from relickit.latents import encode_clips
    from relickit.vae import Tokenizer

    tok = Tokenizer.load(tiny_tokenizer(tmp_path / "tok.safetensors")).eval()
    data = ClipDataset(sample_data("train"), frames=9, split="train")
    clips = encode_clips(tok, data, 2, batch_size=2, images=True, progress=False)
    assert clips.images.shape == clips.latents.shape == (2, 16, 3, 24, 32)  # f4c16 at 96 x 128
    assert torch.allclose(clips.images[:, :, 0], clips.latents[:, :, 0], atol=1e-3)  # a video starts with an image
    saved = LatentClips.load(clips.save(tmp_path / "clips.safetensors"))
    assert torch.equal(saved.images, clips.images) and LatentClips.load(clips.starts().save(tmp_path / "s")).images is None
    rows = torch.multinomial(data.weights.float(), 2, replacement=True, generator=torch.Generator().manual_seed(0))
    video = torch.stack([data[int(r)]["frames"] for r in rows]).transpose(1, 2)
    for k in range(3):
        alone = tok.encode(video[:, :, 4 * k:4 * k + 1]).half()
        assert torch.allclose(clips.images[:, :, k:k + 1], alone, atol=1e-3), k


def test_a_shrunk_model_keeps_the_blocks_grow_spread_and_undoes_grow(tmp_path):
    """The recipe's --student-layers: a student with fewer blocks than its teacher starts from the teacher's blocks
    at new_block_positions (first and last kept), everything else copied; shrinking a grown model gives back the
    model it was grown from, function and weights."""
    from relickit.memory import bidirectional_visibility
    from relickit.teacher import grow, shrink

    from helpers import inputs, tiny_model

    shallow = tiny_model(layers=2)
    deep = grow(shallow, 4)
    for p in deep.blocks[1].parameters():  # the grown blocks trained on: no longer identities
        torch.nn.init.normal_(p, std=0.02)
    back = shrink(deep, 2)
    assert back.cfg == shallow.cfg
    for (k, a), b in zip(shallow.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k
    x, t, ctx, actions, poses = inputs(shallow, 5)
    mask = bidirectional_visibility(5)
    path = deep.save(tmp_path / "deep.safetensors")
    student = WorldModel(shallow.cfg).eval()
    load_weights(student, path, shrink_deeper=True)
    with torch.no_grad():
        torch.testing.assert_close(student(x, t, ctx, actions, poses, mask), shallow(x, t, ctx, actions, poses, mask))


def test_a_grown_teacher_draws_what_the_shallow_one_did_and_trains_its_new_blocks(tmp_path):
    """The campaign's way to a deeper teacher: the shallow one's blocks spread over the new depth, identities in
    between, so the deeper model starts where the shallow one stopped; the new blocks learn from the first step; a
    warm start (`load_weights`, the recipe's --warm-start) grows a shallower checkpoint of the same width."""
    from relickit.memory import bidirectional_visibility
    from relickit.teacher import check_architecture, grow, new_block_positions

    from helpers import inputs, tiny_model

    assert new_block_positions(3, 5) == [0, 2, 4] and new_block_positions(2, 3) == [0, 2]
    assert new_block_positions(1, 4) == [0] and new_block_positions(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot spread"):
        new_block_positions(5, 3)
    shallow = tiny_model(layers=2)
    x, t, ctx, actions, poses = inputs(shallow, 5)
    mask = bidirectional_visibility(5)
    deep = grow(shallow, 3)
    assert deep.cfg == dataclasses.replace(shallow.cfg, layers=3) and not deep.training
    for old, new in ((0, 0), (1, 2)):
        assert all(torch.equal(a, b) for a, b in zip(shallow.blocks[old].parameters(), deep.blocks[new].parameters()))
    with torch.no_grad():
        want = shallow(x, t, ctx, actions, poses, mask)
        torch.testing.assert_close(deep(x, t, ctx, actions, poses, mask), want, atol=1e-5, rtol=1e-5)
    deep(x, t, ctx, actions, poses, mask).square().mean().backward()
    added = deep.blocks[1]
    for out in (added.attn1.to_out[0], added.attn2.to_out[0], added.ffn.net[2], added.action_proj):
        assert out.weight.grad.abs().sum() > 0  # the zero outputs are where the new block starts learning

    path = shallow.save(tmp_path / "shallow.safetensors")
    warm = WorldModel(deep.cfg, backend="sdpa").eval()
    load_weights(warm, path)
    with torch.no_grad():
        torch.testing.assert_close(warm(x, t, ctx, actions, poses, mask), want, atol=1e-5, rtol=1e-5)
    check_architecture(deep.cfg, path, deeper=True)
    with pytest.raises(ValueError, match="another architecture.*shallower checkpoint"):
        check_architecture(deep.cfg, path)  # growing is asked for, never a surprise
    with pytest.raises(ValueError, match="another architecture.*--student-layers"):
        load_weights(WorldModel(dataclasses.replace(shallow.cfg, layers=1)), path)  # shrinks only when asked
    with pytest.raises(ValueError, match="another architecture"):
        load_weights(WorldModel(dataclasses.replace(deep.cfg, dim=96, heads=3, ffn_dim=192)), path)


def test_each_stage_logs_its_emas_held_out_loss_every_few_steps(tmp_path):
    """HeldOut: the stages' held_out.jsonl holds the held-out loss of the EMA weights every `every` steps, and the
    last line of each stage is the loss of the checkpoint the stage keeps (its EMA). Training is unchanged by it."""
    from relickit.teacher import HELD_OUT_LOG, HeldOut

    data, other = clips(latent_frames=7), clips(n=2, latent_frames=7)
    batch = other.batches(4, 2, seed=0)(0)
    held = HeldOut(batch["latents"], list(batch["caption"]), batch["actions"], batch["poses"], every=2, levels=2)
    cfg = TeacherConfig(stages=(Stage(4, 4), Stage(7, 2)),
                        train=TrainConfig(batch_size=2, ema_decay=0.9, out_dir=str(tmp_path / "with")))
    torch.manual_seed(0)  # the new models' initial weights
    paths = train_teacher(CFG, lambda f: data.batches(f, 2, seed=0), cfg, held_out=held)
    for i, (path, steps) in enumerate(zip(paths, (4, 2))):
        lines = [json.loads(line) for line in (tmp_path / "with" / f"stage{i}" / HELD_OUT_LOG).read_text().splitlines()]
        assert [r["step"] for r in lines] == list(range(2, steps + 1, 2))
        assert lines[-1]["held_out_loss"] == pytest.approx(held.loss(WorldModel.load(path)), rel=1e-6)
    torch.manual_seed(0)
    alone = train_teacher(CFG, lambda f: data.batches(f, 2, seed=0),
                          dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(tmp_path / "alone"))))
    for a, b in zip(WorldModel.load(paths[-1]).state_dict().values(), WorldModel.load(alone[-1]).state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("sigma_data", [0.0, 0.5])
def test_a_widened_teacher_predicts_the_old_channels_as_before_and_learns_the_new(tmp_path, sigma_data):
    """For a widened tokenizer's latents (relickit.widen: the old channels first): the patch embedding ignores the
    new channels and the head's new outputs start at zero (the velocity skip's term alone), so on the old channels
    the widened model predicts what the narrow one did, whatever the new channels hold; a warm start widens a
    checkpoint for fewer channels (`load_weights`), and the new weights learn from the first step."""
    from relickit.diffusion import velocity_preconditioning
    from relickit.memory import bidirectional_visibility
    from relickit.teacher import widen_channels

    from helpers import inputs, tiny_model

    narrow = tiny_model(sigma_data=sigma_data)
    c = narrow.cfg.latent_channels
    wide = widen_channels(narrow, 2 * c)
    assert wide.cfg == dataclasses.replace(narrow.cfg, latent_channels=2 * c) and not wide.training
    x, t, ctx, actions, poses = inputs(wide, 5)
    mask = bidirectional_visibility(5)
    with torch.no_grad():
        v = wide(x, t, ctx, actions, poses, mask)
        torch.testing.assert_close(v[:, :c], narrow(x[:, :c], t, ctx, actions, poses, mask), atol=1e-5, rtol=1e-5)
        skip = velocity_preconditioning(t / 1000, sigma_data)[0][:, None, :, None, None] if sigma_data else 0.0
        torch.testing.assert_close(v[:, c:], skip * x[:, c:], atol=1e-6, rtol=0)
    wide(x, t, ctx, actions, poses, mask).square().mean().backward()
    assert wide.patch_embedding.weight.grad[:, c:].abs().sum() > 0
    path = narrow.save(tmp_path / "narrow.safetensors")
    warm = WorldModel(wide.cfg, backend="sdpa").eval()
    load_weights(warm, path)
    for (k, a), b in zip(wide.state_dict().items(), warm.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="adds latent channels"):
        widen_channels(narrow, c)
