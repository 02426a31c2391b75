"""The data layer: engine poses and labels, determinism and replay, splits, storage, clips."""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from relickit import dataset as ds
from relickit.controls import ACTIONS, ControlsConfig, accumulate, labels_from_poses, relative_to_first
from relickit.doom import (
    EVAL_MAPS, TRAIN_MAPS, DoomConfig, DoomEnv, StartState, camera_pose, check_split, replay, rollout,
    script_to_commands, wad_of,
)
from relickit.pool import StalledError, imap_guarded
from relickit.tutorial import sample_data

A = {name: i for i, name in enumerate(ACTIONS)}
OPPOSITE = {"forward": "backward", "right": "left", "up": "down", "tilt_up": "tilt_down", "pan_right": "pan_left",
            "roll_cw": "roll_ccw"}
OPPOSITE.update({v: k for k, v in OPPOSITE.items()})


def poses(track: list[tuple[float, float, float, float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y, z, yaw_deg, pitch_up_deg) per frame -> rotations (T, 3, 3), positions (T, 3)."""
    rs, ps = zip(*(camera_pose(*t) for t in track))
    return torch.tensor(np.stack(rs)), torch.tensor(np.stack(ps))


def _arc(t: int) -> tuple[float, float]:
    """Position after t steps of 8 units, the view turning 5 degrees left after each step."""
    yaw = np.radians(5.0 * np.arange(t))
    return float(8 * np.cos(yaw).sum()), float(8 * np.sin(yaw).sum())


def dominant(actions: torch.Tensor) -> list[str]:
    return [ACTIONS[i] for i in actions.argmax(-1).tolist()]


@pytest.fixture(scope="module")
def env():
    e = DoomEnv(DoomConfig())
    yield e
    e.close()


# ---- labels from poses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, step, expected",
    [
        # yaw 30 deg: forward is (cos 30, sin 30), right is (sin 30, -cos 30)
        ("forward", lambda t: (8 * t * math.cos(math.pi / 6), 8 * t * math.sin(math.pi / 6), 41, 30, 0), {"forward": 1.0}),
        ("backward", lambda t: (-8 * t * math.cos(math.pi / 6), -8 * t * math.sin(math.pi / 6), 41, 30, 0), {"backward": 1.0}),
        ("strafe right", lambda t: (8 * t * math.sin(math.pi / 6), -8 * t * math.cos(math.pi / 6), 41, 30, 0), {"right": 1.0}),
        ("fly up", lambda t: (0, 0, 41 + 3 * t, 30, 0), {"up": 1.0}),
        ("pan right", lambda t: (0, 0, 41, 30 - 5 * t, 0), {"pan_right": 1.0}),
        ("pan left", lambda t: (0, 0, 41, 30 + 2.5 * t, 0), {"pan_left": 0.5}),
        ("tilt up", lambda t: (0, 0, 41, 30, 3 * t), {"tilt_up": 0.6}),
        ("tilt down", lambda t: (0, 0, 41, 30, -5 * t), {"tilt_down": 1.0}),
        # each step goes 8 units along the current view, then turns 5 deg left: forward 1 + pan_left 1
        ("forward + pan left", lambda t: (*_arc(t), 41, 5 * t, 0), {"forward": 1.0, "pan_left": 1.0}),
    ],
)
def test_labels_from_synthetic_poses(name, step, expected):
    r, p = poses([step(t) for t in range(9)])
    actions, _ = labels_from_poses(r, p)
    assert actions[0, A["static"]] == 1 and actions[0, :-1].sum() == 0, "frame 0 is static"
    want = torch.zeros(13)
    for k, v in expected.items():
        want[A[k]] = v
    assert torch.allclose(actions[1:], want.expand(8, 13), atol=1e-5), f"{name}: {actions[1]}"


def test_labels_accumulate_back_to_poses():
    rng = np.random.default_rng(0)
    track = np.cumsum(np.c_[rng.normal(0, 6, (40, 3)), rng.normal(0, 4, (40, 1)), rng.normal(0, 2, (40, 1))], 0)
    track[:, 4] = np.clip(track[:, 4], -30, 30)
    r, p = poses([tuple(t) for t in track])
    cfg = ControlsConfig(still=0.0)  # keep every residue so the round trip is exact
    actions, step = labels_from_poses(r, p, cfg)
    acc_r, acc_p = accumulate(actions, cfg)
    rel_r, rel_p = relative_to_first(r, p, step.double())
    assert torch.allclose(acc_r.double(), rel_r, atol=1e-5)
    assert torch.allclose(acc_p.double(), rel_p, atol=1e-4)


def test_labels_of_many_clips_at_once_equal_one_call_per_clip():
    rng = np.random.default_rng(3)
    clips = []
    for n in range(4):
        track = np.cumsum(np.c_[rng.normal(0, 6, (20, 3)), rng.normal(0, 4, (20, 1)), rng.normal(0, 2, (20, 1))], 0)
        if n == 2:
            track[:, :3] = track[0, :3]  # a clip that only turns: no step length, 1 by convention
        clips.append(poses([tuple(t) for t in track]))
    r, p = torch.stack([c[0] for c in clips]), torch.stack([c[1] for c in clips])
    actions, step = labels_from_poses(r, p)
    rel_r, rel_p = relative_to_first(r.double(), p.double(), step.double())
    assert actions.shape == (4, 20, 13) and step.shape == (4,) and step[2] == 1
    for n, (rn, pn) in enumerate(clips):
        a, s = labels_from_poses(rn, pn)
        assert torch.allclose(actions[n], a, atol=1e-6) and torch.isclose(step[n], s)
        want_r, want_p = relative_to_first(rn.double(), pn.double(), s.double())
        assert torch.allclose(rel_r[n], want_r) and torch.allclose(rel_p[n], want_p)


def test_engine_directions_and_rotation(env):
    expect = {"forward": [1, 0, 0, 0, 0], "right": [0, 1, 0, 0, 0], "left": [0, -1, 0, 0, 0],
              "pan_right": [0, 0, 1, 0, 0], "pan_left": [0, 0, -1, 0, 0], "tilt_up": [0, 0, 0, 1, 0],
              "tilt_down": [0, 0, 0, -1, 0], "up": [0, 0, 0, 0, 1]}
    for name, cmd in expect.items():
        ro = rollout(env.cfg, 0, np.tile(cmd, (5, 1)), env=env)
        actions, _ = labels_from_poses(torch.tensor(ro.rotations), torch.tensor(ro.positions))
        assert dominant(actions[1:]) == [name] * 5, name
        rot = ro.rotations[-1]
        assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(rot), 1.0)
    obs = env.reset(0)
    assert obs.frame.shape == (96, 128, 3) and obs.frame.dtype == np.uint8


# ---- determinism and replay ---------------------------------------------------------------------------------------
def test_engine_starts_in_a_private_directory(tmp_path, monkeypatch):
    """Engines started at once in one folder race for ViZDoom's ./_vizdoom/ (CI lost a worker so): each gets its own,
    gone after close(), and the caller's working directory stays as it was."""
    monkeypatch.chdir(tmp_path)
    with DoomEnv(DoomConfig()) as a, DoomEnv(DoomConfig()) as b:
        homes = {a._home, b._home}
        assert len(homes) == 2 and all(os.path.isdir(os.path.join(h, "_vizdoom")) for h in homes)
        assert os.getcwd() == str(tmp_path) and not list(tmp_path.iterdir())
    assert not any(os.path.exists(h) for h in homes)


def test_same_seed_same_frames(env):
    cmds = np.random.default_rng(1).uniform(-1, 1, (30, 5)).astype(np.float32)
    a = rollout(env.cfg, 7, cmds, spawn=(1145.0, 821.0), env=env)
    b = rollout(env.cfg, 7, cmds, spawn=(1145.0, 821.0))  # a fresh engine
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.rotations, b.rotations)


def test_replay_reproduces_recorded_episode(env):
    ep = ds.load_episode(sample_data("train") / "ep00000_MAP01.npz")
    ro = replay(env.cfg, ep.start, ep.commands[1:], env=env)
    assert np.array_equal(ro.frames, ep.frames()) and np.array_equal(ro.positions, ep.positions)
    assert np.array_equal(ro.rotations, ep.rotations)
    k = 40  # from the middle of the episode, with an action script in key names
    script = [{"forward": 1.0, "pan_left": 0.5}] * 6
    mid = replay(env.cfg, ep.start_state(k), script, env=env)
    assert np.array_equal(mid.frames[0], ep.frames(k, k + 1)[0])
    actions, _ = labels_from_poses(torch.tensor(mid.rotations), torch.tensor(mid.positions))
    assert (actions[2:, A["pan_left"]] > 0.4).all()


# ---- splits -------------------------------------------------------------------------------------------------------
def test_held_out_maps_never_in_train(tmp_path):
    assert not set(TRAIN_MAPS) & set(EVAL_MAPS)
    assert len(TRAIN_MAPS) == 20 and len(EVAL_MAPS) == 12 + 36
    for wad, m in EVAL_MAPS:
        with pytest.raises(ValueError, match=f"{m}.*held-out eval"):
            check_split(wad, m, "train")
    check_split("freedoom2", "MAP20", "train")
    with pytest.raises(ValueError, match="MAP01 is a training map"):
        check_split("freedoom2", "MAP01", "eval")
    with pytest.raises(ValueError, match="held-out eval"):
        ds.generate(tmp_path / "x", ["MAP01", "E1M1"], 1, 10, progress=False)
    assert not (tmp_path / "x").exists()
    train = ds.load_manifest(sample_data("train"))
    assert train["split"] == "train"
    assert all((e["wad"], e["map"]) in TRAIN_MAPS for e in train["episodes"])
    with pytest.raises(ValueError, match="'eval' dataset"):
        ds.ClipDataset(sample_data("eval"), 17, split="train")


# ---- clips --------------------------------------------------------------------------------------------------------
def test_clip_dataset_items_and_balance():
    clips = ds.ClipDataset(sample_data("train"), 17, split="train")
    item = clips[len(clips) // 2]
    assert item["frames"].shape == (17, 3, 96, 128) and item["frames"].dtype == torch.float32
    assert -1.0 <= item["frames"].min() and item["frames"].max() <= 1.0
    assert item["actions"].shape == (17, 13) and item["poses"].shape == (17, 12)
    assert torch.allclose(item["poses"][0], torch.tensor([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0.0]), atol=1e-6)
    assert item["caption"] == ds.CAPTIONS[item["map"]]
    # balanced: every dominant action carries the same total weight
    totals = np.bincount(clips.dominant, weights=clips.weights.numpy())
    assert np.allclose(totals[totals > 0], 1.0)
    # balance 0: every clip alike, each action weighed by how often it dominates; in between, the rare ones lifted
    asis = ds.ClipDataset(sample_data("train"), 17, split="train", balance=0.0)
    assert torch.equal(asis.weights, torch.ones(len(asis), dtype=asis.weights.dtype))
    half = np.bincount(clips.dominant, weights=ds.ClipDataset(sample_data("train"), 17, split="train",
                                                               balance=0.5).weights.numpy())
    counts = np.bincount(clips.dominant)
    assert np.allclose(half[counts > 0], np.sqrt(counts[counts > 0]))
    with pytest.raises(ValueError, match="balance"):
        ds.ClipDataset(sample_data("train"), 17, split="train", balance=2.0)


def test_palindrome_synthetic_reverses_motion():
    r, p = poses([(8 * t, 0, 41, -2 * t, 0) for t in range(17)])  # forward east while panning right
    idx = ds.palindrome_indices(17, 12)
    assert idx.tolist() == list(range(13)) + [11, 10, 9, 8]
    actions, pose = ds.clip_targets(r.numpy()[idx], p.numpy()[idx])
    assert (actions[1:13, A["forward"]] > 0.9).all() and (actions[1:13, A["pan_right"]] > 0.3).all()
    assert (actions[13:, A["backward"]] > 0.9).all() and (actions[13:, A["pan_left"]] > 0.3).all()
    assert (actions[13:, A["forward"]] == 0).all() and (actions[13:, A["pan_right"]] == 0).all()
    assert torch.allclose(pose[13:], pose[[11, 10, 9, 8]])


def test_palindrome_clip_from_dataset():
    clips = ds.ClipDataset(sample_data("train"), 17, palindrome=1.0, seed=3)
    plain = ds.ClipDataset(sample_data("train"), 17, palindrome=0.0)
    for i in range(0, len(clips), max(1, len(clips) // 5)):
        item, ref = clips[i], plain[i]
        t = item["pivot"]
        assert 17 // 2 <= t < 17
        assert torch.equal(item["frames"][: t + 1], ref["frames"][: t + 1])
        back = list(range(t - 1, 2 * t - 17, -1))
        assert torch.equal(item["frames"][t + 1:], ref["frames"][back])
        assert torch.allclose(item["poses"][t + 1:], item["poses"][back], atol=1e-5)
        # the way back is the inverse motion: each clear step's label swaps with its opposite
        for j, src in zip(range(t + 1, 17), range(t, 2 * t - 17 + 1, -1)):
            fwd = ref["actions"][src]
            k = int(fwd.argmax())
            if ACTIONS[k] != "static" and fwd[k] > 0.5:
                assert item["actions"][j, A[OPPOSITE[ACTIONS[k]]]] > 0, (i, j, ACTIONS[k])


# ---- generation: resume, workers, corruption ----------------------------------------------------------------------
def _files(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def test_interrupted_generation_resumes(tmp_path, monkeypatch):
    out = tmp_path / "d"
    real = ds._write_episode
    calls = []

    def dying_write(path, arrays, level):
        calls.append(path)
        if len(calls) == 2:  # killed half-way through writing the second episode
            path.with_name(f".{path.name}.{os.getpid()}.tmp").write_bytes(b"PK\x03\x04 half an episode")
            raise KeyboardInterrupt("killed")
        real(path, arrays, level)

    monkeypatch.setattr(ds, "_write_episode", dying_write)
    with pytest.raises(KeyboardInterrupt):
        ds.generate(out, ["MAP01", "MAP02"], 3, 12, seed=5, progress=False)
    done = [f for f in _files(out) if f.endswith(".npz")]
    assert len(done) == 1 and len([f for f in _files(out) if f.endswith(".tmp")]) == 1
    assert [e["file"] for e in ds.load_manifest(out)["episodes"]] == done
    first = (out / done[0]).stat().st_mtime_ns
    monkeypatch.setattr(ds, "_write_episode", real)
    ds.generate(out, ["MAP01", "MAP02"], 3, 12, seed=5, progress=False)
    assert _files(out) == ["ep00000_MAP01.npz", "ep00001_MAP02.npz", "ep00002_MAP01.npz", "manifest.json"]
    assert (out / done[0]).stat().st_mtime_ns == first, "finished episodes are skipped"
    names = [e["name"] for e in ds.load_manifest(out)["episodes"]]
    assert names == ["ep00000_MAP01", "ep00001_MAP02", "ep00002_MAP01"]
    # parallel workers make the same episodes as one process
    par = tmp_path / "p"
    ds.generate(par, ["MAP01", "MAP02"], 2, 12, seed=5, workers=2, progress=False)
    for name in ("ep00000_MAP01.npz", "ep00001_MAP02.npz"):
        a, b = ds.load_episode(out / name), ds.load_episode(par / name)
        assert np.array_equal(a.frames(), b.frames()) and np.array_equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="other settings"):
        ds.generate(out, ["MAP01", "MAP02"], 3, 13, seed=5, progress=False)


def _hang_once(task: tuple[str, int]) -> int:
    """Pool task (flag_dir, i): task 0's first run starts a child process, as a worker starts its engine, and hangs."""
    flag, i = task
    marker = Path(flag) / "hung"
    if i == 0 and not marker.exists():
        marker.write_text(str(subprocess.Popen(["sleep", "600"]).pid))
        time.sleep(600)
    return i * i


def _crash_once(task: tuple[str, int]) -> int:
    """Pool task (flag_dir, i): task 1's first run kills its worker, as a crash in the engine's C code would."""
    flag, i = task
    marker = Path(flag) / "crashed"
    if i == 1 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGSEGV)
    return i * i


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie
    except FileNotFoundError:
        return True


def test_stalled_pool_is_killed_and_its_tasks_rerun(tmp_path):
    """A deadlocked generate() worker (ViZDoom's engine and its driver waiting on each other) once hung a CI run:
    imap_guarded kills the stalled workers with what they started and runs their tasks again."""
    tasks = {i: (str(tmp_path), i) for i in range(4)}
    results = dict(imap_guarded(_hang_once, tasks, workers=2, stall_timeout=10, retries=3))
    assert results == {i: i * i for i in range(4)}
    assert _gone(int((tmp_path / "hung").read_text())), "the hung worker's child was killed with it"
    (tmp_path / "hung").unlink()
    with pytest.raises(StalledError, match="workers=1"):
        list(imap_guarded(_hang_once, {0: (str(tmp_path), 0)}, workers=1, stall_timeout=3, retries=0))
    assert _gone(int((tmp_path / "hung").read_text()))


def test_crashed_worker_is_replaced_and_its_task_rerun(tmp_path):
    """A worker that dies (CI once lost a dataset worker to a crash in ViZDoom) breaks the pool: its tasks run again."""
    tasks = {i: (str(tmp_path), i) for i in range(4)}
    assert dict(imap_guarded(_crash_once, tasks, workers=2, stall_timeout=60)) == {i: i * i for i in range(4)}
    (tmp_path / "crashed").unlink()
    with pytest.raises(StalledError, match="lost a worker"):
        list(imap_guarded(_crash_once, tasks, workers=2, stall_timeout=60, retries=0))


def test_corrupt_episode_names_file_and_fix(tmp_path):
    root = tmp_path / "c"
    shutil.copytree(sample_data("train"), root)
    path = root / "ep00001_MAP02.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ds.CorruptEpisodeError, match=r"ep00001_MAP02\.npz.*Delete it and re-run"):
        ds.load_episode(path)
    with pytest.raises(ds.CorruptEpisodeError, match="ep00001_MAP02"):
        ds.ClipDataset(root, 17)
    # a flipped byte inside the frames: caught by the zip CRC when the frames are read
    path.write_bytes(data)
    with np.load(path) as z:
        names = z.files
    assert "frames_00000" in names
    bad = bytearray(data)
    bad[len(data) // 4] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(ds.CorruptEpisodeError, match="ep00001_MAP02"):
        ds.load_episode(path).frames()


def test_bad_inputs_name_problem_and_fix(tmp_path):
    with pytest.raises(ValueError, match="no map 'MAP99'.*MAP01"):
        DoomConfig(map="MAP99")
    with pytest.raises(ValueError, match="unknown map 'E5M1'.*E1-E4"):
        wad_of("E5M1")
    with pytest.raises(ValueError, match="unsupported frame size 100x100.*96x128, 120x160, 240x320"):
        DoomConfig(height=100, width=100)
    with pytest.raises(ValueError, match="'jump'.*not an action name.*forward"):
        script_to_commands([{"forward": 1.0}, {"jump": 1.0}])
    with pytest.raises(ValueError, match="'roll_cw'.*cannot roll"):
        script_to_commands([{"roll_cw": 1.0}])
    with pytest.raises(ValueError, match="speeds are in"):
        script_to_commands([{"forward": 2.0}])
    with pytest.raises(ValueError, match="1 \\+ 4\\*k"):
        ds.ClipDataset(sample_data("train"), 16)
    with pytest.raises(FileNotFoundError, match="generate"):
        ds.ClipDataset(tmp_path / "nowhere", 17)
    assert np.array_equal(script_to_commands([{"backward": 0.5, "pan_left": 1, "static": 1}]),
                          np.array([[-0.5, 0, -1, 0, 0]], np.float32))
    assert StartState(0).prefix.shape == (0, 5)


def test_sample_data_is_generated_once_per_split(tmp_path, monkeypatch):
    """The tutorials' sample is made on first use (no longer carried in the tree) and then read, not remade."""
    from relickit import tutorial

    monkeypatch.setattr(tutorial, "sample_root", lambda: tmp_path)
    path = tutorial.sample_data("eval")
    manifest = path / "manifest.json"
    assert [e["map"] for e in ds.load_manifest(path)["episodes"]] == list(tutorial.SAMPLE_MAPS["eval"])
    episodes = ds.load_manifest(path)["episodes"]
    assert all(len(ds.load_episode(path / e["file"])) == tutorial.SAMPLE_FRAMES for e in episodes)
    stamp = manifest.stat().st_mtime_ns
    assert tutorial.sample_data("eval") == path and manifest.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="splits"):
        tutorial.sample_data("test")
