"""The shipped model through play's entry points: the CLI, the default (bounded) memory, RELIC's unbounded memory
at its capacity, and the joystick over a real session."""
import numpy as np
import pytest
import torch
from PIL import Image

from relickit.config import MemoryConfig
from relickit.joystick import Joystick
from relickit.keys import action_from_keys
from relickit.memory import MemoryFull, is_bounded
from relickit.play import PLAY_MEMORY, Session, load_start, main

W = action_from_keys({"W"})


def test_cli_writes_the_played_frames(tmp_path):
    out = tmp_path / "walk.gif"
    main(["--script", "W*12, Left*12", "--out", str(out), "--horizon", "18"])
    with Image.open(out) as gif:
        assert gif.n_frames == 1 + 2 * 12 and gif.size == (128, 96)


def test_play_defaults_to_a_bounded_memory_and_relic_is_one_argument_away():
    assert Session.from_pretrained().memory == PLAY_MEMORY and is_bounded(PLAY_MEMORY)
    assert PLAY_MEMORY.policy == "compressed" and PLAY_MEMORY.horizon is not None
    assert not is_bounded(Session.from_pretrained(memory=MemoryConfig()).memory)


def test_the_docs_say_what_the_default_forgets():
    import json
    from pathlib import Path

    from relickit.config import preset

    root = Path(__file__).resolve().parents[1]
    cfg, mem = preset("tiny"), PLAY_MEMORY
    seconds = round(cfg.video_frames(mem.window + mem.horizon) / cfg.fps)
    quickstart = json.loads((root / "notebooks" / "00_quickstart.ipynb").read_text())
    for text in ("".join("".join(c["source"]) for c in quickstart["cells"] if c["cell_type"] == "markdown"),
                 (root / "docs" / "play.md").read_text()):
        flat = " ".join(text.split())
        assert f"~{seconds} s" in flat and f"{mem.window} newest latent frames" in flat
        assert f"the {mem.horizon} before them" in flat and "MemoryConfig()" in flat


def test_horizon_keeps_the_memory_flat_in_play():
    session = Session.from_pretrained(memory=MemoryConfig(horizon=18))
    image, text = load_start()
    session.reset(image, text)
    tokens = []
    for _ in range(9):  # 1 + 27 latent frames: the window (3) and the ring (18 frames) fill up
        frames = session.step(np.eye(13, dtype=np.float32)[0])
        tokens.append(session.memory_stats()["total_tokens"])
    assert frames.shape == (12, 96, 128, 3)
    assert tokens[-1] == tokens[-2] == tokens[-3] > tokens[0]
    unbounded = Session.from_pretrained(memory=MemoryConfig())
    unbounded.reset(image, text)
    for _ in range(9):
        unbounded.step(np.eye(13, dtype=np.float32)[0])
    assert unbounded.memory_stats()["total_tokens"] > tokens[-1]


def test_unbounded_memory_refuses_a_step_past_capacity_and_stays_usable():
    """RELIC's unbounded memory with room for the image and two chunks: the third step is refused with the fixes,
    and changes nothing; reset starts over and plays exactly as a fresh session."""
    memory = MemoryConfig(capacity=1 + 2 * 3)
    session, fresh = Session.from_pretrained(memory=memory), Session.from_pretrained(memory=memory)
    image, text = load_start()
    session.reset(image, text)
    session.step(W)
    session.step(W)
    stats, pose = session.memory_stats(), session.pose
    with pytest.raises(MemoryFull, match=r"full: 7 latent frames.*reset\(\).*horizon=H.*capacity=\.\.\."):
        session.step(W)
    assert session.memory_stats() == stats and all(torch.equal(a, b) for a, b in zip(session.pose, pose))
    assert np.array_equal(session.reset(image, text), fresh.reset(image, text))
    assert np.array_equal(session.step(W), fresh.step(W))


def test_the_default_ring_plays_past_capacity():
    memory = MemoryConfig(horizon=18, capacity=1 + 2 * 3)
    session = Session.from_pretrained(memory=memory)
    image, text = load_start()
    session.reset(image, text)
    for _ in range(4):  # 13 latent frames, almost twice the capacity
        frames = session.step(W)
    assert session.memory_stats()["frames"] == 13 and np.ptp(frames) > 0


def test_joystick_shows_the_full_memory_and_plays_again_after_reset():
    from test_joystick import wait_until

    session = Session.from_pretrained(memory=MemoryConfig(capacity=1 + 3))
    image, text = load_start()
    joy = Joystick(session, image, text)
    try:
        joy.start()
        assert wait_until(lambda: not joy.running, timeout=60)
        joy.stop()
        assert isinstance(joy.error, MemoryFull) and "reset()" in joy.status_label.value
        assert joy.steps == 1  # the one chunk that fit was played
        joy.reset()
        joy.start()
        assert wait_until(lambda: joy.steps == 2 and not joy.running, timeout=60)
    finally:
        joy.close()


def test_the_joystick_steps_on_its_own_torch_threads():
    """The producer runs its steps on JoystickConfig.threads torch threads (one by default: on a busy 2-core CPU two
    threads stall each other) and leaves the notebook's own setting alone."""
    from browser_fixture import FakeSession
    from test_joystick import wait_until

    from relickit.joystick import JoystickConfig

    class Counting(FakeSession):
        def step(self, action):
            self.threads = torch.get_num_threads()
            return super().step(action)

    main_threads = torch.get_num_threads()
    for threads, expect in ((JoystickConfig.threads, 1), (None, main_threads)):
        session = Counting(step_s=0.01)
        joy = Joystick(session, np.zeros((96, 128, 3), np.uint8), "a room", config=JoystickConfig(threads=threads))
        joy.start()
        assert wait_until(lambda: joy.steps >= 2)
        joy.close()
        assert session.threads == expect and torch.get_num_threads() == main_threads
    with pytest.raises(ValueError, match="threads must be >= 1"):
        JoystickConfig(threads=0)
