"""The joystick's Python side, driven directly (no browser): streaming, pacing, stop, record."""
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets
from browser_fixture import FakeSession
from PIL import Image

from relickit.joystick import FrameBuffer, Joystick, JoystickConfig, write_video
from relickit.keys import action_from_keys

TIMEOUT_S = 10.0


def wait_until(predicate, timeout=TIMEOUT_S, poll=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def joystick(config=None, **session_kwargs) -> Joystick:
    session = FakeSession(**session_kwargs)
    return Joystick(session, np.zeros((session.height, session.width, 3), np.uint8), "test", config=config)


@pytest.fixture
def joy():
    j = joystick(step_s=0.02)
    yield j
    j.close()


def joystick_threads():
    return [t for t in threading.enumerate() if t.name.startswith("relickit-joystick")]


def test_reset_shows_first_frame(joy):
    assert joy.frames_shown == 1
    assert Image.open(io.BytesIO(joy.view.value)).size == (128 * 3, 96 * 3)
    assert joy.last_action is None
    assert not joy.running


def test_stream_follows_keys(joy):
    joy.keypad.pressed = ["W"]
    started = time.monotonic()
    joy.start()
    assert time.monotonic() - started < 0.5  # returns at once: the kernel stays free
    assert wait_until(lambda: joy.frames_shown > 20)
    assert torch.equal(joy.last_action, action_from_keys({"W"}))
    joy.keypad.pressed = ["W", "Right"]
    assert wait_until(lambda: torch.equal(joy.last_action, action_from_keys({"W", "Right"})))
    assert wait_until(lambda: joy.action_label.value == "action: forward+pan_right x1.00", timeout=2)
    joy.speed.value = 2.0
    assert wait_until(lambda: torch.equal(joy.last_action, action_from_keys({"W", "Right"}, speed=2.0)))
    joy.keypad.pressed = []
    assert wait_until(lambda: torch.equal(joy.last_action, action_from_keys(set())))
    assert wait_until(lambda: joy.fps > 0)
    assert joy.fps <= joy.video_fps + 2
    assert joy.session.received[-1].shape == (13,)
    assert wait_until(lambda: joy.kv_figure.data[0].y is not None and len(joy.kv_figure.data[0].y) >= 4, timeout=2)
    joy.stop()


def test_stop_ends_threads_and_restarts(joy):
    joy.start()
    assert wait_until(lambda: joy.frames_shown > 5)
    assert len(joystick_threads()) == 2
    joy.stop()
    assert not joy.running and joystick_threads() == []
    shown = joy.frames_shown
    time.sleep(0.2)
    assert joy.frames_shown == shown
    joy.start()
    assert wait_until(lambda: joy.frames_shown > shown + 5)
    joy.stop()
    assert joystick_threads() == []


def test_stop_waits_for_step_in_flight():
    j = joystick(step_s=0.4)
    j.start()
    assert wait_until(lambda: len(j.session.received) == 0 and j.running)
    time.sleep(0.1)  # a step is now in flight
    j.stop()
    assert not j.running
    j.close()


def test_one_joystick_plays_at_a_time(joy):
    other = joystick(step_s=0.02)
    joy.start()
    other.start()
    assert other.running and not joy.running
    other.close()


def test_reset_while_running(joy):
    joy.keypad.pressed = ["D"]
    joy.start()
    assert wait_until(lambda: joy.steps > 2)
    joy.reset()
    assert joy.running
    assert wait_until(lambda: len(joy.session.received) > 0)
    joy.stop()


def test_session_faster_than_display_drops_frames():
    """A 120-fps session shown at most 30 times a second: frames are skipped on the clock, none pile up."""
    cfg = JoystickConfig(display_fps_max=30)
    j = joystick(config=cfg, fps=120, frames_per_step=12)
    capacity = j._buffer.capacity
    seen = []
    j.start()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        seen.append(len(j._buffer))
        time.sleep(0.005)
    j.stop()
    assert max(seen) <= capacity
    assert j.frames_dropped > 0
    assert 15 <= j.frames_shown <= 1.5 * 30 * 1.2 + 2  # ~30 shows/s, never the session's 120
    generated = j.steps * j.session.frames_per_step
    assert generated <= 1.5 * 120 + 2 * capacity  # the producer idles instead of running ahead
    j.close()


def test_slow_display_skips_to_the_due_frame(monkeypatch):
    """When showing a frame takes longer than a frame interval, the pacer keeps the session clock."""
    import relickit.joystick as module

    j = joystick(step_s=0.0)
    real = module.to_jpeg

    def slow(*args, **kwargs):
        time.sleep(0.125)  # two frame intervals at 16 fps
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "to_jpeg", slow)
    j.start()
    time.sleep(2.0)
    j.stop()
    assert j.frames_dropped > 0
    assert len(j._buffer) <= j._buffer.capacity
    j.close()


def test_session_slower_than_real_time_plays_every_frame():
    j = joystick(step_s=0.9)  # 12 frames (0.75 s of video) take 0.9 s
    j.start()
    assert wait_until(lambda: j.steps >= 3)
    j.stop()
    assert j.frames_dropped == 0
    j.close()


def test_buffer_overflow_drops_oldest():
    buf = FrameBuffer(4)
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(6)]
    buf.put(frames)
    assert len(buf) == 4 and buf.dropped == 2
    assert [int(f[0, 0, 0]) for f in buf.take(10)] == [2, 3, 4, 5]


def test_step_error_stops_and_is_reported():
    j = joystick(fail_after=2)
    j.start()
    assert wait_until(lambda: not j.running)
    j.stop()
    assert isinstance(j.error, RuntimeError)
    assert "fake session failure" in j.status_label.value
    j.close()


def test_unbound_pressed_key_is_rejected(joy):
    with pytest.raises(traitlets.TraitError, match="not bound"):
        joy.keypad.pressed = ["X"]
    joy.keypad.pressed = ["w", "arrowright"]
    assert joy.keypad.pressed == ["Right", "W"]


def test_bad_frames_are_explained():
    class Floats(FakeSession):
        def step(self, action):
            return super().step(action).astype(np.float32)

    session = Floats()
    j = Joystick(session, np.zeros((96, 128, 3), np.uint8), "x")
    j.start()
    assert wait_until(lambda: not j.running)
    j.stop()
    assert isinstance(j.error, ValueError) and "uint8" in str(j.error)
    j.close()


def test_record_gif(joy, tmp_path):
    joy.start_recording()
    joy.start()
    assert wait_until(lambda: len(joy.recorded_frames) >= 10)
    joy.stop_recording()
    joy.stop()
    frames = joy.recorded_frames
    path = joy.save_video(tmp_path / "clip.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(frames)
        assert gif.size == (128, 96)


def test_record_mp4_or_gif_fallback(tmp_path, monkeypatch):
    session = FakeSession(frames_per_step=8)
    frames = session.step(action_from_keys({"W"}))  # 8 distinct frames
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        pass
    else:
        import imageio.v3 as iio

        path = write_video(frames, tmp_path / "clip.mp4", 16)
        assert path.suffix == ".mp4"
        assert iio.imread(path).shape == (8, 96, 128, 3)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    with pytest.warns(UserWarning, match="imageio-ffmpeg"):
        path = write_video(frames, tmp_path / "fallback.mp4", 16)
    assert path == tmp_path / "fallback.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 8


def test_save_without_recording_explains(joy, tmp_path):
    with pytest.raises(ValueError, match="nothing recorded"):
        joy.save_video(tmp_path / "x.gif")
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_video(np.zeros((1, 4, 4, 3), np.uint8), Path(tmp_path / "x.avi"), 16)


def test_displayable(joy):
    bundle = joy._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
