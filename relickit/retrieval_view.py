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


_VIEW_ESM = r"""
const COLOURS = { window: "#1f77b4", 1: "#8c2d04", 2: "#e6550d", 4: "#fdae6b" };
const colour = (part, factor) => part === "window" ? COLOURS.window : (COLOURS[factor] ?? "#fd8d3c");
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const deg = (x) => (x === null ? "angle unknown" : `${x.toFixed(0)}\u00b0 away`);
const MS = 1000;

function make(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// a thumbnail with its caption lines, updated in place: no DOM churn, and an unchanged picture is not decoded again
function card(parent, cls) {
  const el = make("div", cls), img = make("img"), empty = make("div", "relickit-memory-nothumb");
  const caption = make("div", "relickit-memory-caption");
  el.append(img, empty, caption);
  parent.appendChild(el);
  return {
    show(src, lines, missing) {
      el.hidden = false;
      if (src && img.dataset.src !== src) { img.src = src; img.dataset.src = src; }
      img.hidden = !src;
      empty.hidden = !!src;
      empty.textContent = missing || "";
      caption.textContent = lines.join("\n");
    },
    hide() { el.hidden = true; },
  };
}

// the latent frame of the chunk on screen: the last row starting at or before video frame v
function rowAt(rows, v) {
  let i = 0;
  rows.forEach((r, j) => { if (r.video[0] <= v) i = j; });
  return i;
}

// the scale of a chunk's bars: the largest mass of any of its rows (or of the chunk), so bars compare across rows
function chunkMost(s) {
  return Math.max(...s.mass, ...s.rows.flatMap((r) => r.mass), 1e-9);
}

function drawTimeline(canvas, s, row, bookmark) {
  const W = canvas.width, H = canvas.height, L = 44, R = 8, T = 14, STRIP = 10, AXIS = 14;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, W, H);
  const n = s.frame.length, base = H - STRIP - AXIS - 4, plot = base - T;
  const col = (W - L - R) / Math.max(n, 1), bar = col >= 3 ? col - 1 : col;
  const most = chunkMost(s), tokens = Math.max(...s.tokens, 1);
  g.font = "10px sans-serif";
  g.fillStyle = "#555";
  g.fillText(pct(most), 2, T + 8);
  g.fillText("0", 2, base);
  for (let i = 0; i < n; i++) {
    const x = L + i * col, h = plot * row.mass[i] / most, t = STRIP * s.tokens[i] / tokens;
    g.fillStyle = colour(s.part[i], s.factor[i]);
    g.fillRect(x, base - h, bar, h);
    g.fillStyle = "#999";
    g.fillRect(x, base + 2 + STRIP - t, bar, t);
    if (s.rows.length > 1) {  // the chunk's mean over its latent frames: a tick per column
      g.fillStyle = "#000";
      g.fillRect(x, base - plot * s.mass[i] / most - 1, bar, 1);
    }
  }
  const w = s.part.indexOf("window");
  if (w > 0) {
    g.strokeStyle = "#333"; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(L + w * col - 0.5, T - 4); g.lineTo(L + w * col - 0.5, base + STRIP + 2); g.stroke();
    g.setLineDash([]);
  }
  g.fillStyle = "#000";
  g.textAlign = "center";
  const mark = (frame, text) => {
    const i = s.frame.indexOf(frame);
    if (i >= 0) g.fillText(text, L + (i + 0.5) * col, Math.max(base - plot * row.mass[i] / most - 3, 10));
  };
  row.top.forEach((t, r) => mark(t.frame, String(r + 1)));
  if (bookmark) mark(bookmark.latent, row.top.some((t) => t.frame === bookmark.latent) ? "\u2605\u2003" : "\u2605");
  g.fillStyle = "#555";
  g.textAlign = "left";
  if (n) g.fillText(`${(s.age[0] + row.age_shift).toFixed(1)} s ago`, L, H - 2);
  g.textAlign = "right";
  if (n) g.fillText(`${(s.age[n - 1] + row.age_shift).toFixed(1)} s ago (window: right of the dashes)`, W - R, H - 2);
  g.textAlign = "left";
}

function render({ model, el }) {
  const root = make("div", "relickit-memory");
  const head = make("div", "relickit-memory-head");
  const canvas = make("canvas", "relickit-memory-timeline");
  const legend = make("div", "relickit-memory-legend");
  for (const [key, text] of [["window", "window"], [1, "memory x1"], [2, "x2 (4x fewer tokens)"],
                             [4, "x4 (16x fewer)"]]) {
    const item = make("span", "relickit-memory-key", text);
    item.style.setProperty("--swatch", COLOURS[key]);
    legend.appendChild(item);
  }
  legend.appendChild(make("span", "relickit-memory-key", "tokens kept"));
  legend.appendChild(make("span", "relickit-memory-key relickit-memory-tick", "chunk mean"));
  const title = make("div", "relickit-memory-title");
  const top = make("div", "relickit-memory-top");
  const budget = make("div", "relickit-memory-budget");
  const mark = make("div", "relickit-memory-bookmark");
  root.append(head, canvas, legend, title, top, budget, mark);
  el.appendChild(root);
  const cards = [];
  const marked = card(mark, "relickit-memory-card"), live = card(mark, "relickit-memory-card relickit-bookmark-live");
  const verdict = make("div", "relickit-bookmark-compare"), hint = make("div", "relickit-memory-caption");
  mark.append(verdict, hint);

  // pacing: a state comes once per chunk, at most one chunk ahead of the screen, with the video frame on screen
  // when it was made (`shown`); the page advances that frame at `fps`, keeps drawing the chunk on screen until the
  // next one's first video frame is due, and redraws whenever another latent frame comes on screen
  let clock = { t0: performance.now(), shown: 0, fps: 0 }, timer = null, drawn = { chunk: 0, row: -1 };
  let current = null, next = null;  // the chunk on screen, the one to come
  const videoNow = () => clock.shown + Math.floor((performance.now() - clock.t0) / MS * clock.fps);

  canvas.addEventListener("mousemove", (event) => {
    const s = current, n = s ? s.frame.length : 0;
    const i = Math.floor((event.offsetX - 44) / ((canvas.width - 52) / Math.max(n, 1)));
    if (i < 0 || i >= n || drawn.row < 0) { canvas.title = ""; return; }
    const row = s.rows[drawn.row], f = s.part[i] === "window" ? "window" : `memory x${s.factor[i]}`;
    canvas.title = `latent ${s.frame[i]}: ${f}, ${s.tokens[i]} tokens, ${pct(row.mass[i])} of latent frame ` +
                   `${row.latent}'s attention (chunk mean ${pct(s.mass[i])}), ` +
                   `${(s.age[i] + row.age_shift).toFixed(1)} s ago, ${deg(row.angle[i])}`;
  });

  const drawRow = (s, k) => {
    const row = s.rows[k], v = videoNow();
    if (drawn.chunk === s.chunk && drawn.row !== k) {
      root.dataset.steps = String(Number(root.dataset.steps || 0) + 1);  // latent-frame changes within the chunk
    } else if (drawn.chunk !== s.chunk) {
      root.dataset.steps = "0";
    }
    drawn = { chunk: s.chunk, row: k };
    root.dataset.chunk = String(s.chunk);
    root.dataset.latent = String(row.latent);
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
    const rows = s.rows.length > 1 ? `, latent frame ${k + 1}/${s.rows.length} (video frames ${row.video[0]}-` +
      `${row.video[1] - 1})` : "";
    head.textContent = `chunk ${s.chunk}${rows}, block ${s.layer}: ${pct(row.current)} of the attention on the ` +
      `chunk itself (chunk mean ${pct(s.current)}), the rest on ${s.frame.length} cached latent frames. ` +
      (s.verified ? `Recomputed attention = the block's output (max error ${s.error.toExponential(1)}).`
                  : `WARNING: recomputed attention differs from the block's output by ${s.error.toExponential(1)}.`);
    head.classList.toggle("relickit-memory-bad", !s.verified);
    const b = s.bookmark;
    drawTimeline(canvas, s, row, b);
    title.textContent = row.top.length ? `top ${row.top.length} beyond the window` : s.no_top;
    while (cards.length < row.top.length) cards.push(card(top, "relickit-memory-card"));
    cards.forEach((c, r) => {
      const t = row.top[r];
      if (!t) { c.hide(); return; }
      c.show(s.thumbs[t.frame], [`#${r + 1}: ${pct(t.mass)}`, `${t.age_s.toFixed(1)} s ago`, deg(t.angle_deg),
                                 t.part === "window" ? "window" : `memory x${t.factor}`],
             t.pending ? "decoding..." : "not kept (view was off)");
    });
    root.dataset.thumbs = String(row.top.filter((t) => s.thumbs[t.frame]).length);
    budget.textContent = s.budget;
    verdict.hidden = !(b && b.live_src);
    if (!b) {
      marked.hide();
      live.hide();
      hint.textContent = "no bookmark: press 'bookmark view' to mark what you see";
      return;
    }
    const age = b.age_s + Math.max(Math.min(v, s.video[1] - 1) - s.shown, 0) / Math.max(clock.fps, 1);
    marked.show(b.src, ["bookmark", `${age.toFixed(1)} s ago`]);
    if (b.live_src) {
      live.show(b.live_src, ["now", `${b.live_angle_deg.toFixed(0)}\u00b0, ${b.live_distance.toFixed(1)} steps off`]);
      verdict.textContent = `back at the bookmark: PSNR ${b.psnr.toFixed(1)} dB between the bookmarked view and ` +
        "the view generated now (higher = the memory brought the place back)";
      verdict.dataset.psnr = b.psnr.toFixed(2);
      hint.textContent = "";
    } else {
      live.hide();
      hint.textContent = b.away ? "now come back to the bookmarked view"
        : `look away (>= ${b.away_deg}\u00b0 or ${b.away_distance} steps) and come back`;
    }
  };

  // show the row on screen now (switching to the next chunk once it is due), and wake when that changes
  const step = () => {
    clearTimeout(timer);
    timer = null;
    const v = videoNow();
    if (next && next.video[0] <= v) { current = next; next = null; }
    if (!current) return;
    const k = rowAt(current.rows, v);
    if (k !== drawn.row || current.chunk !== drawn.chunk) drawRow(current, k);
    const starts = [k + 1 < current.rows.length ? current.rows[k + 1].video[0] : null, next ? next.video[0] : null];
    const wake = Math.min(...starts.filter((x) => x !== null));
    if (clock.fps > 0 && Number.isFinite(wake)) {
      const due = clock.t0 + (wake - clock.shown) / clock.fps * MS;
      timer = setTimeout(step, Math.max(due - performance.now(), 0) + 1);
    }
  };

  const draw = () => {
    const s = model.get("state");
    if (canvas.width !== model.get("width")) canvas.width = model.get("width");  // a resize clears the canvas
    if (canvas.height !== model.get("height")) canvas.height = model.get("height");
    clearTimeout(timer);
    timer = null;
    if (!s.chunk) {
      current = next = null;
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      drawn = { chunk: 0, row: -1 };
      root.dataset.chunk = "0";
      head.textContent = "memory view: each generated chunk shows here once it plays (press start)";
      for (const part of [title, top, budget, mark]) part.hidden = true;
      return;
    }
    for (const part of [title, top, budget, mark]) part.hidden = false;
    clock = { t0: performance.now(), shown: s.shown, fps: s.fps };
    const ahead = current && s.chunk > current.chunk && s.video[0] > videoNow();
    if (ahead) {
      next = s;  // the chunk on screen stays until this one's first video frame is due
    } else {
      current = s;
      next = null;
      drawRow(s, rowAt(s.rows, videoNow()));  // a new state for the chunk on screen always redraws
    }
    step();
  };
  model.on("change:state", draw);
  draw();
  return () => clearTimeout(timer);
}
export default { render };
"""

_VIEW_CSS = """
.relickit-memory { font: 12px sans-serif; display: flex; flex-direction: column; gap: 4px; width: 380px;
  min-height: 485px; contain: content; }
.relickit-memory [hidden] { display: none !important; }
.relickit-memory-head { min-height: 60px; }
.relickit-memory-head.relickit-memory-bad { color: #b00; font-weight: bold; }
.relickit-memory-legend { display: flex; gap: 10px; flex-wrap: wrap; color: #444; }
.relickit-memory-key::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 3px;
  background: var(--swatch, #999); vertical-align: middle; }
.relickit-memory-tick::before { height: 2px; background: #000; }
.relickit-memory-title { color: #444; }
.relickit-memory-top, .relickit-memory-bookmark { display: flex; gap: 6px; align-items: flex-start; min-height: 124px; }
.relickit-memory-card { display: flex; flex-direction: column; width: 88px; font-size: 11px; }
.relickit-memory-card img { width: 88px; height: 66px; border: 1px solid #ccc; }
.relickit-memory-nothumb { width: 88px; height: 66px; background: #eee; color: #888; display: flex;
  align-items: center; justify-content: center; text-align: center; }
.relickit-memory-caption { color: #333; white-space: pre-line; }
.relickit-bookmark-compare { max-width: 180px; font-weight: bold; }
"""


class RetrievalView(anywidget.AnyWidget):
    """Draws `state` (built by `view_state`) in the page."""

    _esm = _VIEW_ESM
    _css = _VIEW_CSS
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
        """Unhook, stop refreshing and drop what was kept. Call it between session steps."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self.tracker.close()
        self.snapshots.clear()
        self._sent = None
        self.view.state = {}

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
