"""The memory view: a widget that draws what each generated chunk retrieves (relickit.retrieval), in the
joystick (its "memory view" toggle) and in notebook 05 (`scripted_view`).

Layout, top to bottom:
- a header: the chunk and which of its latent frames is on screen, the probed block, and whether the recomputed
  attention matches the block's output;
- the timeline: one column per cached latent frame, oldest left; bar height = the attention mass on that frame of
  the chunk's latent frame on screen (a black tick: the chunk's mean over its latent frames), colour = window (blue)
  or compressed memory by per-side factor (x1 brown, x2 orange, x4 light orange); the grey strip under it = the
  tokens the frame keeps; numbers mark the top-k, a star the bookmark;
- the top-k frames beyond the window, for that latent frame, as thumbnails, each with its attention share, age and
  camera angle;
- the memory's token budget;
- the bookmark: the marked view, and once the camera went away and came back, the live view beside it with PSNR.

`RetrievalPanel` owns a tracker, the widget and a refresh thread (woken by each new chunk, and every
`ViewConfig.refresh_s`): it sends each chunk once, with one row per latent frame, as soon as it is generated and the
chunk before it has started playing (`shown()`: the video frame on screen). The page holds it until its first video
frame is due and steps through its rows itself, on the video's clock (a latent frame is 4 video frames: 4 redraws a
second at 16 FPS), so Python sends one message per chunk (plus one per bookmark and per batch of thumbnails that
waited for a decode). It decodes at most `decodes_per_refresh` new thumbnails per message. The drawing is done by
the page.
"""
from __future__ import annotations

import base64
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets

from .joystick import to_jpeg
from .retrieval import (
    CachedFrame,
    QueryFrame,
    RetrievalConfig,
    RetrievalTracker,
    ScriptedView,
    Snapshot,
    video_latent,
)


@dataclass(frozen=True)
class ViewConfig:
    refresh_s: float = 0.25  # the thread looks this often for what to send (and at once when a chunk is made)
    decodes_per_refresh: int = 2  # new thumbnails decoded per refresh at most (20-80 ms each, tiny preset, CPU)
    # the refresh thread's niceness (Linux). 0: it must send a chunk before the chunk plays; niced to 10 it missed
    # 4-16% of the latent frames' redraws on the shared 2-core box (load 3) and the video was no faster (docs/play.md)
    nice: int = 0
    jpeg_quality: int = 80
    timeline_width: int = 380
    timeline_height: int = 110
    snapshots: int = 8  # recent snapshots kept to follow the display (the joystick buffers at most 3 chunks)

    def __post_init__(self) -> None:
        if self.refresh_s <= 0 or self.refresh_s > 0.5:
            raise ValueError(f"refresh_s must be in (0, 0.5] (the view refreshes at >= 2 Hz); got {self.refresh_s}.")
        if self.decodes_per_refresh < 1 or self.snapshots < 1:
            raise ValueError(f"decodes_per_refresh and snapshots must be >= 1; got {self}.")


_PAGE = Path(__file__).parent  # the view's page code: retrieval_view.js, retrieval_view.css



class RetrievalView(anywidget.AnyWidget):
    """Draws `state` (built by `view_state`) in the page."""

    _esm = (_PAGE / "retrieval_view.js").read_text(encoding="utf-8")
    _css = (_PAGE / "retrieval_view.css").read_text(encoding="utf-8")
    state = traitlets.Dict().tag(sync=True)
    width = traitlets.Int(380).tag(sync=True)
    height = traitlets.Int(110).tag(sync=True)


def data_url(frame: np.ndarray, quality: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(to_jpeg(frame, 1, quality)).decode("ascii")


def budget_text(stats: dict[str, Any]) -> str:
    comp = stats.get("compressed_tokens", {})
    parts = ", ".join(f"x{int(f)}: {n}" for f, n in sorted(comp.items(), key=lambda kv: int(kv[0])))
    total, full = int(stats.get("total_tokens", 0)), int(stats.get("full_tokens", 0))
    fewer = f", {full / total:.1f}x fewer than a full cache ({full})" if total else ""
    return (f"memory budget: {total} tokens = {stats.get('window_tokens', 0)} in the window + "
            f"{sum(comp.values())} compressed ({parts or 'none'}){fewer}; {stats.get('bytes', 0) / 2**20:.2f} MiB")


class ThumbnailEncoder:
    """JPEG data URLs of the tracker's thumbnails, decoding at most `budget` new latent frames per call."""

    def __init__(self, tracker: RetrievalTracker, quality: int) -> None:
        self.tracker, self.quality = tracker, quality
        self._urls: dict[Any, str] = {}
        self._generation = tracker.generation

    def _current(self) -> dict[Any, str]:
        """The URLs made since the tracker last forgot what it saw (a reset, a close)."""
        if self._generation != self.tracker.generation:
            self._urls, self._generation = {}, self.tracker.generation
        return self._urls

    def latent(self, frame: int, budget: list[int]) -> str | None:
        """The frame's data URL; None while its decode waits for budget (or when its latents were not kept)."""
        urls = self._current()
        if frame not in urls:
            image = self.tracker.thumbnail(frame, decode=budget[0] > 0)
            if image is None:
                return None
            budget[0] -= 1
            urls[frame] = data_url(image, self.quality)
        return urls[frame]

    def frame(self, key: Any, image: np.ndarray) -> str:
        """A data URL for a frame we already have (the bookmark, the live view), encoded once per key."""
        urls = self._current()
        if key not in urls:
            urls[key] = data_url(image, self.quality)
        return urls[key]


def _round(xs: Sequence[float], digits: int) -> list[float | None]:
    return [None if x != x else round(float(x), digits) for x in xs]  # NaN -> None (JSON has no NaN)


def _entry(f: CachedFrame) -> dict[str, Any]:
    return {"frame": f.frame, "mass": f.mass, "age_s": f.age_s, "part": f.part, "factor": f.factor,
            "angle_deg": _round([f.angle_deg], 1)[0]}


def query_rows(snap: Snapshot) -> tuple[QueryFrame, ...]:
    """The snapshot's latent frames in display order (the whole chunk as one row when it has no per-frame rows)."""
    if snap.query_frames:
        return snap.query_frames
    return (QueryFrame(snap.cached_frames, snap.video_frames, snap.frames, snap.current_mass, snap.top),)


def view_state(snap: Snapshot, tracker: RetrievalTracker, thumbs: ThumbnailEncoder, budget: int,
               shown: int, fps: float = 0.0) -> tuple[dict[str, Any], int]:
    """The JSON the page draws for `snap`, and how many thumbnails still wait for a decode.

    The chunk's numbers as a whole (`frame` ... `top`), and one row per latent frame of the chunk (`rows`): the page
    shows the row of the video frame on screen, `shown` when this state was made, advancing at `fps` video frames
    per second from there (fps=0: it stays). Thumbnails of every row's top-k are sent once, in `thumbs`, decoding
    at most `budget` new ones, the rows from the one on screen first."""
    left = [budget]
    fr = snap.frames
    rows = query_rows(snap)
    on_screen = max((i for i, r in enumerate(rows) if r.video_frames[0] <= shown), default=0)
    srcs: dict[str, str] = {}
    waiting = set()
    for r in rows[on_screen:] + rows[:on_screen]:
        for f in r.top:
            src = thumbs.latent(f.frame, left)
            if src is not None:
                srcs[str(f.frame)] = src
            elif tracker.has_latents(f.frame):
                waiting.add(f.frame)
    state_rows = [{
        "latent": r.latent, "video": list(r.video_frames), "current": r.current_mass,
        "mass": _round([f.mass for f in r.frames], 6), "angle": _round([f.angle_deg for f in r.frames], 1),
        # a row's ages are the chunk's plus this (seconds between the chunk's centre and this latent frame)
        "age_shift": round(r.frames[0].age_s - fr[0].age_s, 4) if fr else 0.0,
        "top": [{**_entry(f), "pending": f.frame in waiting} for f in r.top],
    } for r in rows]
    mem = tracker.session.memory
    no_top = ("nothing older than the window is cached yet" if mem.policy in ("compressed", "full")
              else f"policy {mem.policy!r} keeps nothing beyond the window: no memory to retrieve from")
    state = {
        "chunk": snap.chunk, "layer": snap.layer, "current": snap.current_mass, "error": snap.max_abs_error,
        "verified": snap.verified, "frame": [f.frame for f in fr], "part": [f.part for f in fr],
        "factor": [f.factor for f in fr], "tokens": [f.tokens for f in fr], "mass": _round([f.mass for f in fr], 6),
        "age": _round([f.age_s for f in fr], 2), "angle": _round([f.angle_deg for f in fr], 1),
        "top": [_entry(f) for f in snap.top], "rows": state_rows, "thumbs": srcs,
        "video": list(snap.video_frames), "shown": shown, "fps": fps,
        "no_top": no_top, "budget": budget_text(snap.stats), "bookmark": None,
    }
    bm = tracker.marked
    if bm is not None:
        same = snap.bookmark is not None and snap.bookmark.video_frame == bm.video_frame
        b = {"src": thumbs.frame(("bookmark", bm.video_frame), bm.frame), "video_frame": bm.video_frame,
             "latent": video_latent(bm.video_frame, tracker.temporal_down),
             "age_s": max(shown - bm.video_frame, 0) / tracker.fps, "away": same and snap.bookmark.away,
             "away_deg": tracker.config.away_deg, "away_distance": tracker.config.away_distance, "live_src": None}
        c = snap.comparison if same else None
        if c is not None:
            b.update(live_src=thumbs.frame(("live", c.video_frame), c.live), live_angle_deg=c.angle_deg,
                     live_distance=c.distance, psnr=c.psnr)
        state["bookmark"] = b
    return state, len(waiting)


class RetrievalPanel:
    """A tracker, its view, a bookmark button, and (while on) a thread that refreshes the view.

    `buffered()` counts the frames generated but not on screen yet (the joystick's display lags generation by its
    buffer): the page shows the chunk that is playing and the latent frame of it on screen, and the bookmark marks
    the frame on screen. The page paces itself at `fps` video frames per second (the display's rate; default the
    session's) from the frame on screen when a chunk's state was sent.
    """

    def __init__(self, session: Any, config: RetrievalConfig = RetrievalConfig(), view: ViewConfig = ViewConfig(),
                 buffered: Callable[[], int] = lambda: 0, fps: float | None = None) -> None:
        self.tracker = RetrievalTracker(session, config)
        self.config = view
        self.buffered = buffered  # frames generated but not shown yet (the joystick's buffer)
        self.fps = float(fps or self.tracker.fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}.")
        self.view = RetrievalView(width=view.timeline_width, height=view.timeline_height)
        self.bookmark_button = widgets.Button(description="bookmark view", icon="bookmark")
        self.bookmark_button.add_class("relickit-bookmark")
        self.bookmark_button.on_click(lambda _: self.bookmark())
        self.message = widgets.Label("")
        self.message.add_class("relickit-memory-message")
        self.widget = widgets.VBox([self.view, widgets.HBox([self.bookmark_button, self.message])])
        self.widget.add_class("relickit-memory-panel")
        self.refreshes = 0  # renders sent to the page (for tests and benchmarks)
        self._thumbs = ThumbnailEncoder(self.tracker, view.jpeg_quality)
        self.snapshots: deque[Snapshot] = deque(maxlen=view.snapshots)  # the newest chunks' snapshots
        self._sent: tuple[int, int | None] | None = None  # (chunk, bookmarked frame) last drawn
        self._waiting = 0  # thumbnails of the last drawing still waiting for a decode
        self._lock = threading.Lock()  # one render at a time (the thread, a bookmark click, a notebook call)
        self._stop = threading.Event()
        self._wake = threading.Event()  # a new chunk to send
        self._thread: threading.Thread | None = None

    def shown(self) -> int:
        """The video frame on screen."""
        return self.tracker.video_frames - self.buffered() - 1

    # ----- on / off
    @property
    def on(self) -> bool:
        return self.tracker.attached

    def attach(self) -> None:
        """Hook the model and start refreshing. Call it between session steps (the joystick does)."""
        if self.on:
            return
        self.tracker.attach()
        self.snapshots.clear()
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, name="relickit-memory-view", daemon=True)
        self._thread.start()

    def detach(self) -> None:
        """Stop refreshing, drop what was kept, then unhook (last: once the model is unhooked the view is empty,
        which is what a caller waiting for the hooks to go sees). Call it between session steps."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self.snapshots.clear()
        self._sent = None
        self.view.state = {}
        self.tracker.close()

    # ----- fed by the joystick's producer
    def observe_reset(self, first: np.ndarray) -> None:
        with self._lock:
            self.tracker.reset(first)
            self.snapshots.clear()
            self._sent = None
            self.view.state = {}

    def observe_step(self, frames: np.ndarray) -> None:
        self.snapshots.append(self.tracker.step(frames))
        self._wake.set()  # the refresh thread sends it now: the page needs it before it plays

    # ----- user actions
    def bookmark(self) -> None:
        try:
            bm = self.tracker.bookmark(self.shown())
        except (RuntimeError, ValueError) as err:
            self.message.value = str(err)
            return
        self.message.value = f"bookmarked video frame {bm.video_frame}"
        self.refresh()

    # ----- drawing
    def show(self, snap: Snapshot, video_frame: int | None = None) -> None:
        """Draw `snap` now, still, as it stands at `video_frame` (default: the frame on screen, `shown()`): the
        latent frame of the chunk that covers it. Decodes every thumbnail it needs (notebooks)."""
        with self._lock:
            every = sum(len(r.top) for r in query_rows(snap))
            shown = self.shown() if video_frame is None else int(video_frame)
            state, _ = view_state(snap, self.tracker, self._thumbs, every, shown)
            self.view.state = state
            self.refreshes += 1

    def upcoming(self, shown: int) -> Snapshot | None:
        """The chunk the page should have: the newest whose predecessor has started playing on screen. The page
        holds it until its first video frame is due, so it is at most one chunk ahead of the screen, and it gets a
        chunk as soon as it is generated, not after it started playing (its first latent frame is not missed)."""
        snaps = list(self.snapshots)
        ready = [s for i, s in enumerate(snaps) if i == 0 or snaps[i - 1].video_frames[0] <= shown]
        return ready[-1] if ready else None

    def refresh(self) -> None:
        """Send the page the chunk it should have (`upcoming`), if anything changed since the last message."""
        with self._lock:
            shown = self.shown()
            snap = self.upcoming(shown)
            if snap is None:
                return
            bm = self.tracker.marked
            key = (snap.chunk, None if bm is None else bm.video_frame)
            if key == self._sent and not self._waiting:
                return
            state, self._waiting = view_state(snap, self.tracker, self._thumbs, self.config.decodes_per_refresh,
                                              shown, self.fps)
            self.view.state = state
            self.refreshes += 1
            self._sent = key

    def _loop(self) -> None:
        if self.config.nice and hasattr(os, "setpriority"):  # per thread on Linux: a thread is a task
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.config.nice)
        while not self._stop.is_set():
            self._wake.wait(self.config.refresh_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.refresh()


def scripted_view(view: ScriptedView, panel: RetrievalPanel) -> widgets.VBox:
    """The panel over a scripted run (relickit.retrieval.play_script with panel.tracker): a slider picks a latent
    frame of a generated chunk; the video frame shown beside the panel is that latent frame's last."""
    snaps = view.snapshots
    if not snaps:
        raise ValueError("the scripted run has no steps: play at least one action.")
    steps = [(snap, row) for snap in snaps for row in query_rows(snap)]
    slider = widgets.IntSlider(value=len(steps), min=1, max=len(steps), description="latent frame",
                               continuous_update=False, style={"description_width": "initial"})
    frame = widgets.Image(format="jpeg")

    def show(change: Any = None) -> None:
        snap, row = steps[slider.value - 1]
        last = row.video_frames[1] - 1
        panel.buffered = lambda: panel.tracker.video_frames - 1 - last
        panel.show(snap, last)
        frame.value = to_jpeg(view.frames[last], 2, panel.config.jpeg_quality)

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, widgets.HBox([frame, panel.view], layout=widgets.Layout(align_items="flex-start"))])
