"""The notebook joystick: steer a world-model session with the keyboard and watch it stream inline.

Layout: the frame view (an ``ipywidgets.Image`` fed JPEG bytes, frames upscaled with nearest neighbour), a key
pad (an anywidget that captures keydown/keyup while focused, with on-screen buttons that press while held),
start / stop / reset / record buttons, a speed slider, FPS and action readouts, a live bar chart of the
session's KV cache (plotly ``FigureWidget``; needs ``anywidget``), and the "memory view" toggle: what each chunk
retrieves from memory, with bookmarks (relickit.retrieval_view; off by default, and nothing runs while it is off).

Streaming (two daemon threads, so notebook cells keep running while it plays):

* the producer calls ``session.step`` with the action of the currently pressed keys and puts the frames in a
  bounded buffer. It starts the next step only when the buffered video is about to run out (the buffered
  seconds fall below the measured step time plus a margin), so a key press shows up after at most one step
  plus that margin, and a session faster than real time idles instead of running ahead;
* the pacer shows buffered frames on the session's clock (``fps``) and never more often than
  ``display_fps_max``. When the display falls behind the clock (a slow browser, a session whose fps exceeds the
  display rate) it skips to the frame that is due and counts the skipped ones in ``frames_dropped``; nothing
  queues without bound. When the buffer runs dry (a session slower than real time) it waits and restarts its
  clock on the next frame rather than skipping frames to catch up.

Key presses reach the kernel as comm messages, which the kernel handles only between cells: while a cell runs
(``time.sleep(10)``) the video keeps streaming but the keys are read again only after the cell finishes.

Recording keeps the frames that were shown (at most ``record_max_s`` seconds of them). ``save_video`` writes
MP4 through imageio when ``imageio-ffmpeg`` is installed, and otherwise an animated GIF through Pillow.
"""
from __future__ import annotations

import io
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anywidget
import ipywidgets as widgets
import numpy as np
import torch
import traitlets
from PIL import Image as PILImage

from .keys import MOTIONS, STATIC, KeyMap, action_names, canonical_key

if TYPE_CHECKING:
    from .retrieval_view import RetrievalPanel


class Session(Protocol):
    """What the joystick drives (relickit.play implements it)."""

    fps: int
    frames_per_step: int

    def reset(self, image: np.ndarray, text: str) -> np.ndarray: ...

    def step(self, action: torch.Tensor) -> np.ndarray: ...

    def memory_stats(self) -> dict: ...


@dataclass(frozen=True)
class JoystickConfig:
    """Display and streaming settings."""

    scale: int = 3  # frames are upscaled this many times per side (nearest neighbour) before JPEG encoding
    jpeg_quality: int = 85
    # 30 updates/s is what an ipywidgets.Image sustains in JupyterLab on 2 cores (docs/play.md)
    display_fps_max: float = 30.0
    buffer_steps: int = 3  # the frame buffer holds at most this many steps of frames
    lookahead_margin: float = 1.25  # start the next step when buffered video < margin * step time ...
    lookahead_min_s: float = 0.1  # ... or this much video, whichever is more (absorbs thread-scheduling jitter)
    speed: float = 1.0
    speed_min: float = 0.1
    speed_max: float = 3.0
    speed_step: float = 0.05
    ui_refresh_s: float = 0.5  # FPS readout and KV-cache panel refresh period
    fps_window_s: float = 1.0  # the FPS readout counts frames shown over this window
    poll_s: float = 0.05  # how often idle threads check for stop
    join_timeout_s: float = 10.0  # stop() waits this long for a step in flight
    record_max_s: float = 300.0
    # torch threads the producer steps on (that thread's setting only; None: torch's): on a 2-core CPU shared with
    # the browser or other jobs two threads stall each other, one holds real time (docs/play.md)
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.scale < 1 or self.display_fps_max <= 0 or self.buffer_steps < 1:
            raise ValueError(f"scale and buffer_steps must be >= 1 and display_fps_max > 0; got {self}.")
        if not 0 < self.speed_min <= self.speed <= self.speed_max:
            raise ValueError(
                f"need 0 < speed_min <= speed <= speed_max; got {self.speed_min}, {self.speed}, {self.speed_max}."
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, or None for torch's own setting; got {self.threads}.")


_PAGE = Path(__file__).parent  # the keypad's page code: keypad.js, keypad.css

# on-screen buttons: clusters of rows, "" is a gap. Keys the keymap does not bind are left out; bound keys not
# placed here get a row of their own.
_BUTTON_CLUSTERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("Q", "W", "E", "R"), ("A", "S", "D", "F"), ("Space", "C")),
    (("", "Up", ""), ("Left", "Down", "Right")),
)


class KeyPad(anywidget.AnyWidget):
    """A focusable pad that syncs the set of held keys to Python as ``pressed`` (canonical key names)."""

    _esm = (_PAGE / "keypad.js").read_text(encoding="utf-8")
    _css = (_PAGE / "keypad.css").read_text(encoding="utf-8")
    pressed = traitlets.List(traitlets.Unicode()).tag(sync=True)
    bound_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)  # keys captured (the keymap's)
    clusters = traitlets.List(traitlets.List(traitlets.List(traitlets.Unicode()))).tag(sync=True)
    titles = traitlets.Dict().tag(sync=True)  # key -> action name, shown as tooltips
    hint_idle = traitlets.Unicode(
        "click here to drive (keys go to the world model while this box has focus)"
    ).tag(sync=True)
    hint_active = traitlets.Unicode(
        "driving: hold keys to move (hover a button to see its action); click outside to stop"
    ).tag(sync=True)

    def __init__(self, keymap: KeyMap, **kwargs: Any) -> None:
        clusters = [
            [[k if k in keymap.bindings else "" for k in row] for row in cluster] for cluster in _BUTTON_CLUSTERS
        ]
        placed = {k for cluster in clusters for row in cluster for k in row}
        clusters.append([[k for k in keymap.keys if k not in placed]])
        clusters = [[row for row in cluster if any(row)] for cluster in clusters]
        super().__init__(
            bound_keys=list(keymap.keys), clusters=[c for c in clusters if c], titles=dict(keymap.bindings), **kwargs
        )

    @traitlets.validate("pressed")
    def _valid_pressed(self, proposal: dict) -> list[str]:
        names = sorted({canonical_key(k) for k in proposal["value"]})
        unbound = [k for k in names if k not in self.bound_keys]
        if unbound:
            raise traitlets.TraitError(f"keys {unbound} are not bound; bound keys: {', '.join(self.bound_keys)}.")
        return names


class FrameBuffer:
    """A bounded, thread-safe FIFO of frames. Overflow drops the oldest frames and counts them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._frames: deque[np.ndarray] = deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, frames: Sequence[np.ndarray]) -> None:
        with self._cond:
            self._frames.extend(frames)
            while len(self._frames) > self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._cond.notify_all()

    def take(self, n: int) -> list[np.ndarray]:
        """Up to n frames from the front."""
        with self._cond:
            out = [self._frames.popleft() for _ in range(min(n, len(self._frames)))]
            self._cond.notify_all()
            return out

    def clear(self) -> None:
        with self._cond:
            self._frames.clear()
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        """Wait until predicate(len(buffer)) holds or timeout passes; returns the predicate's last value."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(len(self._frames)), timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def to_jpeg(frame: np.ndarray, scale: int, quality: int) -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes of the frame upscaled `scale` times per side (nearest neighbour)."""
    big = frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame
    out = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(big)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def check_frames(frames: Any, what: str) -> np.ndarray:
    """Validate a session's frames: (F, H, W, 3) uint8 (or (H, W, 3) for reset)."""
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.shape[-1] != 3 or arr.ndim not in (3, 4):
        raise ValueError(
            f"{what} must return uint8 RGB frames shaped (H, W, 3) or (F, H, W, 3); got {arr.dtype} {arr.shape}. "
            "Convert with (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()."
        )
    return arr


def _kv_bars(stats: dict) -> tuple[list[str], list[int], list[str]]:
    """memory_stats() -> bar labels, token counts and colours: window, memory per factor, total, full."""
    labels, tokens, colours = ["window"], [int(stats.get("window_tokens", 0))], ["#2a7ae2"]
    for factor, count in sorted(stats.get("compressed_tokens", {}).items(), key=lambda kv: int(kv[0])):
        labels.append(f"memory f={int(factor)}")
        tokens.append(int(count))
        colours.append("#7fb3f5")
    labels += ["total", "full cache"]
    tokens += [int(stats.get("total_tokens", 0)), int(stats.get("full_tokens", 0))]
    colours += ["#1b4f9c", "#bbbbbb"]
    return labels, tokens, colours


def _kv_title(stats: dict) -> str:
    total, full = int(stats.get("total_tokens", 0)), int(stats.get("full_tokens", 0))
    ratio = f", {full / total:.1f}x fewer than full" if total else ""
    mib = stats.get("bytes", 0) / 2**20
    return (
        f"KV cache: {stats.get('frames', 0)} latent frames, {total} tokens{ratio}, {mib:.2f} MiB"
        "<br><sup>memory f = per-side downsampling of older frames (f=2: 4x fewer tokens)</sup>"
    )


def _kv_figure() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - plotly is a relickit dependency
        raise ImportError("the joystick's KV-cache panel needs plotly (pip install plotly anywidget).") from err
    fig = go.FigureWidget(go.Bar(x=[], y=[], marker_color=[]))
    fig.update_layout(
        width=420, height=300, margin=dict(l=50, r=10, t=40, b=60), yaxis_title="tokens",
        title=dict(text="KV cache", font=dict(size=12)),
    )
    return fig


class Joystick:
    """Steer `session` with the keyboard inside a notebook. Display it (last expression of a cell) or ``.show()``.

    Counters for tests and benchmarks: ``frames_shown``, ``frames_dropped`` (skipped by the pacer or the
    bounded buffer), ``steps``, ``last_action`` (the (13,) action the session last received), ``fps`` (frames
    shown over the last second), ``error`` (the exception that stopped the producer, if any).

    One joystick plays at a time: starting one stops any other that is playing in this kernel (re-running the
    cell that built a joystick would otherwise leave the old one stepping its session in the background).
    """

    _playing: weakref.WeakSet[Joystick] = weakref.WeakSet()

    def __init__(
        self,
        session: Session,
        image: np.ndarray,
        text: str,
        keymap: KeyMap | None = None,
        fps: float | None = None,
        config: JoystickConfig | None = None,
    ) -> None:
        self.session = session
        self.image = np.asarray(image)
        self.text = text
        self.keymap = keymap or KeyMap()
        self.config = config or JoystickConfig()
        self.video_fps = float(fps or session.fps)
        if self.video_fps <= 0:
            raise ValueError(f"fps must be positive, got {self.video_fps}.")
        self.frames_shown = 0
        self.steps = 0
        self.error: BaseException | None = None
        self._recorded: list[np.ndarray] = []
        self._last_action: torch.Tensor | None = None
        self._stats: dict = {}
        self._stats_shown: dict | None = None
        self._step_s = 0.0
        self._show_times: deque[float] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._skipped = 0
        self._buffer = FrameBuffer(self.config.buffer_steps * max(1, int(session.frames_per_step)))
        self.memory: RetrievalPanel | None = None  # built when the memory view is first switched on
        self._build_ui()
        self.reset()

    # ----- UI -----
    def _build_ui(self) -> None:
        cfg = self.config
        self.view = widgets.Image(format="jpeg")
        self.keypad = KeyPad(self.keymap)
        self.speed = widgets.FloatSlider(
            value=cfg.speed, min=cfg.speed_min, max=cfg.speed_max, step=cfg.speed_step, description="speed",
            continuous_update=True,
        )
        self.start_button = widgets.Button(description="start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="stop", icon="stop")
        self.reset_button = widgets.Button(description="reset", icon="refresh")
        self.record_button = widgets.ToggleButton(description="record", icon="circle", value=False)
        self.memory_toggle = widgets.ToggleButton(description="memory view", icon="eye", value=False,
                                                  tooltip="memory view: what each chunk retrieves, and bookmarks")
        self.memory_toggle.observe(self._toggle_memory, names="value")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.reset_button.on_click(lambda _: self.reset())
        self.fps_label = widgets.Label("0.0 FPS")
        self.action_label = widgets.Label("action: static")
        self.status_label = widgets.Label("stopped")
        for label in (self.fps_label, self.action_label, self.status_label):
            label.add_class("relickit-readout")
        self.fps_label.add_class("relickit-fps")
        self.action_label.add_class("relickit-action")
        self.status_label.add_class("relickit-status")
        self.view.add_class("relickit-view")
        for name, button in (("start", self.start_button), ("stop", self.stop_button), ("reset", self.reset_button),
                             ("record", self.record_button), ("memory-toggle", self.memory_toggle)):
            button.add_class(f"relickit-{name}")
        self.kv_figure = _kv_figure()
        controls = widgets.HBox([self.start_button, self.stop_button, self.reset_button, self.record_button])
        readouts = widgets.HBox(
            [self.fps_label, self.action_label, self.status_label], layout=widgets.Layout(grid_gap="16px")
        )
        left = widgets.VBox([self.view, self.keypad, self.speed, controls, readouts])
        self._memory_box = widgets.VBox([])
        self.widget = widgets.HBox([left, widgets.VBox([self.kv_figure, self.memory_toggle, self._memory_box])])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def show(self) -> Joystick:
        from IPython.display import display

        display(self.widget)
        return self

    # ----- counters -----
    @property
    def last_action(self) -> torch.Tensor | None:
        with self._lock:
            return None if self._last_action is None else self._last_action.clone()

    @property
    def frames_dropped(self) -> int:
        return self._skipped + self._buffer.dropped

    @property
    def fps(self) -> float:
        """Frames shown over the last `fps_window_s` seconds, per second."""
        window = self.config.fps_window_s
        with self._lock:
            self._forget_old_shows(time.monotonic())
            return len(self._show_times) / window

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def current_action(self) -> torch.Tensor:
        """The action of the keys held now (what the next step will receive)."""
        return self.keymap.action(self.keypad.pressed, self.speed.value)

    # ----- control -----
    def start(self) -> None:
        """Start streaming (no-op when already running)."""
        if self.running:
            return
        for other in list(Joystick._playing):
            if other is not self:
                other.stop()
        Joystick._playing.add(self)
        self.error = None
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._produce, name="relickit-joystick-producer", daemon=True),
            threading.Thread(target=self._pace, name="relickit-joystick-pacer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.status_label.value = "running"

    def stop(self) -> None:
        """Stop streaming and wait for the threads (a step in flight finishes first)."""
        self._stop.set()
        self._buffer.wake()
        Joystick._playing.discard(self)
        for thread in self._threads:
            thread.join(self.config.join_timeout_s)
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = [t for t in self._threads if t.is_alive()]
        with self._lock:
            self._show_times.clear()  # the readout says 0 FPS while stopped
        self._refresh_readouts()
        if alive:
            self.status_label.value = f"stopping: {alive} still busy"
            raise TimeoutError(
                f"{alive} did not end within {self.config.join_timeout_s} s (a session.step is still running); "
                "call stop() again once it returns."
            )
        self.status_label.value = f"error: {self.error!r}" if self.error else "stopped"

    def reset(self) -> None:
        """Restart the world from the image and text; keeps streaming if it was."""
        was_running = self.running
        if was_running:
            self.stop()
        self._buffer.clear()
        first = check_frames(self.session.reset(self.image, self.text), "session.reset")
        with self._lock:
            self._last_action = None
        self._stats = self.session.memory_stats()
        first = first if first.ndim == 3 else first[-1]
        if self.memory is not None and self.memory.on:
            self.memory.observe_reset(first)
        self._show(first, timed=False)
        self._refresh_readouts()
        if was_running:
            self.start()

    def close(self) -> None:
        """Stop and close all widgets."""
        self.stop()
        pending = [self.widget]
        if self.memory is not None:
            self.memory.detach()
            pending.append(self.memory.widget)
        while pending:
            widget = pending.pop()
            pending.extend(getattr(widget, "children", ()))
            widget.close()

    # ----- recording -----
    @property
    def recording(self) -> bool:
        """Whether shown frames are being recorded (the record toggle)."""
        return bool(self.record_button.value)

    def start_recording(self, clear: bool = True) -> None:
        if clear:
            self._recorded = []
        self.record_button.value = True

    def stop_recording(self) -> None:
        self.record_button.value = False

    @property
    def recorded_frames(self) -> np.ndarray:
        """(T, H, W, 3) uint8: the frames shown while recording."""
        frames = list(self._recorded)
        if not frames:
            return np.zeros((0, *self.image.shape), np.uint8)
        return np.stack(frames)

    def save_video(self, path: str | Path, fps: float | None = None) -> Path:
        """Write the recorded frames; returns the path written.

        ``.mp4`` is written with imageio + imageio-ffmpeg; without imageio-ffmpeg (or for a ``.gif`` path) an
        animated GIF is written with Pillow, with the suffix changed to ``.gif`` and a warning.
        """
        frames = self.recorded_frames
        if not len(frames):
            raise ValueError("nothing recorded: press 'record' (or call start_recording()) while streaming, then save.")
        return write_video(frames, Path(path), fps or self.video_fps)

    # ----- threads -----
    def _lookahead_frames(self) -> float:
        """Buffered frames below which the producer starts the next step (leaving room for one more step)."""
        room = self._buffer.capacity - self.session.frames_per_step
        ahead_s = max(self._step_s * self.config.lookahead_margin, self.config.lookahead_min_s)
        return min(ahead_s * self.video_fps, room)

    def _produce(self) -> None:
        threads = torch.get_num_threads()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        try:
            while not self._stop.is_set():
                self._sync_memory()
                if not self._buffer.wait_for(lambda n: n <= self._lookahead_frames(), self.config.poll_s):
                    continue
                action = self.current_action()
                with self._lock:
                    self._last_action = action.clone()
                started = time.monotonic()
                frames = check_frames(self.session.step(action), "session.step")
                frames = frames if frames.ndim == 4 else frames[None]
                self._step_s = time.monotonic() - started
                self.steps += 1
                self._stats = self.session.memory_stats()
                self._buffer.put(frames)
                if self.memory is not None and self.memory.on:
                    self.memory.observe_step(frames)
        except Exception as err:  # noqa: BLE001 - reported in the status readout and on .error
            self.error = err
            self._stop.set()
        finally:
            torch.set_num_threads(threads)

    # ----- the memory view (relickit.retrieval_view)
    def _toggle_memory(self, change: dict) -> None:
        if change["new"] and self.memory is None:
            try:
                from .retrieval_view import RetrievalPanel

                self.memory = RetrievalPanel(self.session, buffered=lambda: len(self._buffer),
                                             fps=self.video_fps)
            except TypeError as err:  # not a relickit.play.Session: nothing to probe
                self.status_label.value = f"memory view unavailable: {err}"
                self.memory_toggle.value = False
                return
        self._memory_box.children = (self.memory.widget,) if change["new"] else ()
        if not self.running:  # otherwise the producer switches it between two steps
            self._sync_memory()

    def _sync_memory(self) -> None:
        """Hook or unhook the model to match the toggle; only ever between session steps."""
        if self.memory is None or self.memory.on == self.memory_toggle.value:
            return
        if self.memory_toggle.value:
            self.memory.attach()
        else:
            self.memory.detach()

    def _pace(self) -> None:
        cfg = self.config
        interval = 1.0 / self.video_fps
        gap = 1.0 / cfg.display_fps_max
        next_due: float | None = None  # session-clock time of the next frame; None = restart the clock
        wake = 0.0
        last_ui = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_ui >= cfg.ui_refresh_s:
                self._refresh_readouts()
                last_ui = now
            if len(self._buffer) == 0:
                next_due = None  # starved: play the next frames at fps from their arrival, skip none
                self._buffer.wait_for(lambda n: n > 0, cfg.poll_s)
                continue
            if next_due is None:
                next_due, wake = now, max(wake, now)
            if now < wake:
                self._stop.wait(min(wake - now, cfg.poll_s))
                continue
            due = 1 + int((now - next_due) / interval)
            frames = self._buffer.take(due)
            if not frames:
                continue
            self._skipped += len(frames) - 1
            self._show(frames[-1])
            next_due += len(frames) * interval
            wake = max(next_due, now + gap)
        self._refresh_readouts()

    def _forget_old_shows(self, now: float) -> None:
        while self._show_times and self._show_times[0] <= now - self.config.fps_window_s:
            self._show_times.popleft()

    def _show(self, frame: np.ndarray, timed: bool = True) -> None:
        """Push one frame to the view; `timed` frames count in the FPS readout."""
        self.view.value = to_jpeg(frame, self.config.scale, self.config.jpeg_quality)
        now = time.monotonic()
        with self._lock:
            if timed:
                self._show_times.append(now)
                self._forget_old_shows(now)
            self.frames_shown += 1
        if self.recording and len(self._recorded) < self.config.record_max_s * self.video_fps:
            self._recorded.append(frame)

    def _refresh_readouts(self) -> None:
        self.fps_label.value = f"{self.fps:.1f} FPS"
        action = self.last_action
        if action is None:
            self.action_label.value = "action: none yet"
        else:
            names = action_names(action)
            speed = "" if names == (STATIC,) else f" x{action[: len(MOTIONS)].max().item():.2f}"
            self.action_label.value = f"action: {'+'.join(names)}{speed}"
        if self.error is not None:
            self.status_label.value = f"error: {self.error!r}"
        stats = self._stats
        if stats and stats != self._stats_shown:
            labels, tokens, colours = _kv_bars(stats)
            with self.kv_figure.batch_update():
                bar = self.kv_figure.data[0]
                bar.x, bar.y, bar.marker.color = labels, tokens, colours
                self.kv_figure.layout.title.text = _kv_title(stats)
            self._stats_shown = stats


def write_video(frames: np.ndarray, path: Path, fps: float) -> Path:
    """(T, H, W, 3) uint8 -> an MP4 (imageio-ffmpeg) or GIF (Pillow) file; returns the path written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        try:
            import imageio.v3 as iio
            import imageio_ffmpeg  # noqa: F401 - the MP4 writer's backend
        except ImportError:
            gif = path.with_suffix(".gif")
            warnings.warn(
                f"imageio-ffmpeg is not installed; writing {gif} instead of an MP4 (pip install imageio-ffmpeg).",
                stacklevel=3,
            )
            path = gif
        else:
            # macro_block_size=1 keeps odd frame sizes (e.g. 96x128 is fine, 90x120 would be resized otherwise)
            iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1)
            return path
    elif path.suffix.lower() != ".gif":
        raise ValueError(f"cannot write {path.name}: use a .mp4 or .gif path.")
    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path
