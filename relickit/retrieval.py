"""What the memory retrieves while you play: the model side of the joystick's memory view.

    with RetrievalTracker(session) as tracker:         # a relickit.play.Session; hooks one block (relickit.probe)
        tracker.reset(session.reset(image, text))
        tracker.bookmark()                             # mark the newest view
        snap = tracker.step(session.step(action))      # a Snapshot of the chunk just generated
    # leaving the block unhooks and forgets everything (tracker.detach() unhooks and keeps what was seen)

For each generated chunk, `relickit.probe.AttentionProbe` recomputes the probed block's attention exactly (only
the last denoising pass, the one whose prediction becomes the chunk) and checks it against the block's own
attention output (`Snapshot.max_abs_error`). A Snapshot holds

- the attention mass on every cached latent frame, oldest first, with its part (window / compressed), its per-side
  compression factor and token count, its age and its camera-angle distance to the chunk (`frames`);
- the top-k frames older than the rolling window, by attention mass: what the chunk retrieves from memory (`top`);
- the same per query latent frame of the chunk (`query_frames`: 3 per chunk, each shown on screen for 4 video
  frames): each frame's own attention mass per cached frame and its own top-k. The chunk's numbers above are their
  mean (every latent frame has as many query tokens), so a live view can redraw per latent frame from one Snapshot;
- the memory's token budget (`session.memory_stats()`);
- the bookmark and, once the camera went away and came back near the bookmarked pose, the view generated there
  with its PSNR against the bookmarked one (`comparison`): retrieval succeeding or failing, in one number.

Past frames are shown from their clean latents, kept (float16, on the CPU) while a tracker is attached and decoded
one latent frame at a time by the tokenizer's tiny decoder the first time they are shown (`thumbnail`): nothing is
generated again. With no tracker attached nothing is hooked or kept: the joystick's view switched off costs nothing.
Attached mid-play, a tracker has no latents or poses of the frames generated before: they get attention mass, no
thumbnail and no angle (NaN).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .metrics import psnr, rotation_angle_deg
from .play import to_uint8
from .probe import AttentionProbe, attention_summary, latent_video_frame


def video_latent(video_frame: int, temporal_down: int) -> int:
    """The latent frame a video frame belongs to (the first latent frame is the first video frame alone)."""
    return 0 if video_frame == 0 else 1 + (video_frame - 1) // temporal_down


def latent_video_frames(latent: int, temporal_down: int) -> tuple[int, int]:
    """[first, end) video frames latent frame `latent` decodes to (the inverse of `video_latent`)."""
    return (0, 1) if latent == 0 else (1 + (latent - 1) * temporal_down, 1 + latent * temporal_down)


@dataclass(frozen=True)
class RetrievalConfig:
    layer: int | None = None  # the probed block; None: two thirds down (the tiny model's memory-heavy blocks)
    top_k: int = 4
    verify_tol: float = 1e-3  # recomputed vs the block's attention output, max abs; above it the view says so
    near_deg: float = 10.0  # a return: a view within near_deg and near_distance of the bookmarked pose ...
    near_distance: float = 1.0  # (step units: the mean step length)
    away_deg: float = 45.0  # ... after the camera was at least away_deg or away_distance from it
    away_distance: float = 4.0
    thumbnails: int = 256  # decoded thumbnails kept (least recently shown dropped first)
    recent_chunks: int = 8  # chunks of frames kept for bookmarks (the joystick's buffer holds at most 3)

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.thumbnails < 1 or self.recent_chunks < 1:
            raise ValueError(f"top_k, thumbnails and recent_chunks must be >= 1; got {self}.")
        if not (0 < self.near_deg < self.away_deg and 0 < self.near_distance < self.away_distance):
            raise ValueError(f"need 0 < near_deg < away_deg and 0 < near_distance < away_distance; got {self}.")


@dataclass(frozen=True)
class CachedFrame:
    """One cached latent frame, as the chunk's attention saw it."""

    frame: int  # latent frame index
    part: str  # "window" (full resolution) or "compressed"
    factor: int  # per-side compression factor (1 = full resolution)
    tokens: int
    mass: float  # share of the chunk's attention (the chunk itself and every cached frame sum to 1)
    age_s: float  # seconds of video between this frame and the chunk's centre (QueryFrame: that query frame)
    angle_deg: float  # camera-angle distance to the chunk's centre view (QueryFrame: that frame's); NaN: unknown
    distance: float  # camera distance in step units; NaN when unknown


@dataclass
class Bookmark:
    frame: np.ndarray  # (H, W, 3) uint8: the bookmarked view
    video_frame: int
    rotation: np.ndarray  # (3, 3)
    position: np.ndarray  # (3,)
    away: bool = False  # the camera has been far from the bookmark since


@dataclass(frozen=True)
class Comparison:
    """The view generated nearest to a bookmark after the camera came back to it."""

    live: np.ndarray  # (H, W, 3) uint8
    video_frame: int
    angle_deg: float
    distance: float
    psnr: float  # dB, live vs bookmarked frame


@dataclass(frozen=True)
class QueryFrame:
    """What one latent frame of the chunk attends to: its queries alone (48 tokens in the shipped model)."""

    latent: int  # the latent frame these queries belong to (Snapshot.cached_frames + its index in the chunk)
    video_frames: tuple[int, int]  # [first, end) video frames it decodes to: what is on screen while it is shown
    frames: tuple[CachedFrame, ...]  # the Snapshot's cached frames, with this frame's mass, age and angle
    current_mass: float  # this frame's attention to the chunk (itself and the chunk's other latent frames)
    top: tuple[CachedFrame, ...]  # the top-k of `frames` older than the window


@dataclass(frozen=True)
class Snapshot:
    chunk: int  # 1 = the first generated chunk
    video_frames: tuple[int, int]  # [first, end) video frames of the chunk
    cached_frames: int  # latent frames in the cache when the chunk was denoised
    frames: tuple[CachedFrame, ...]
    current_mass: float  # the chunk's attention to itself
    top: tuple[CachedFrame, ...]
    stats: dict[str, Any]  # session.memory_stats() after the chunk
    max_abs_error: float
    verified: bool  # max_abs_error <= RetrievalConfig.verify_tol
    layer: int
    bookmark: Bookmark | None
    comparison: Comparison | None
    query_frames: tuple[QueryFrame, ...] = ()  # one per latent frame of the chunk; `frames` and `current_mass`
    # are their mean, `top` ranks that mean


def check_session(session: Any) -> None:
    """The view needs a relickit.play.Session: a model to probe, its cache, a tokenizer and what it generated."""
    needed = ("model", "cache", "tokenizer", "memory", "last_latents", "last_poses")
    missing = [a for a in needed if not hasattr(session, a)]
    if missing:
        raise TypeError(f"the memory view needs a relickit.play.Session (or one with .{', .'.join(missing)}); "
                        f"{type(session).__name__} lacks them.")


class RetrievalTracker:
    """Follows a session chunk by chunk; call `reset`/`step` with what session.reset/step returned."""

    def __init__(self, session: Any, config: RetrievalConfig = RetrievalConfig()) -> None:
        check_session(session)
        self.session, self.config = session, config
        cfg = session.model.cfg
        self.fps, self.temporal_down = float(session.fps), cfg.temporal_down
        layer = cfg.layers * 2 // 3 if config.layer is None else config.layer
        if not -cfg.layers <= layer < cfg.layers:
            raise ValueError(f"layer {layer} does not exist: the model has blocks 0..{cfg.layers - 1}.")
        last_pass = len(session.sampler.sigmas) - 1
        self.probe = AttentionProbe(session, layer, verify=True, only_pass=last_pass)
        self.layer = self.probe.layer
        self.attached = False
        self.generation = 0  # counts what the tracker forgot (resets, closes): what was derived before is stale
        self._lock = threading.Lock()
        self._forget()

    # ----- lifecycle
    def attach(self) -> RetrievalTracker:
        """Hook the probed block and start keeping latents and poses (from the session's current state)."""
        if not self.attached:
            self._forget()
            cache, s = self.session.cache, self.session
            if cache is not None and cache.frames and s.last_latents is not None:  # adopt the newest chunk
                self._keep(1 + (cache.frames - 1) * self.temporal_down - len(s.last_poses[0]), None)
            self.probe.attach()
            self.attached = True
        return self

    def detach(self) -> None:
        """Unhook; what was kept stays (thumbnails can still be decoded)."""
        self.probe.detach()
        self.attached = False

    def close(self) -> None:
        """Unhook and drop everything kept."""
        self.detach()
        self._forget()

    def __enter__(self) -> RetrievalTracker:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _forget(self) -> None:
        self.generation += 1
        self.video_frames = 0  # video frames generated since the reset (0 = unknown / before the first reset)
        self.chunks = 0
        self._latents: dict[int, torch.Tensor] = {}
        self._rot = np.full((0, 3, 3), np.nan)
        self._pos = np.full((0, 3), np.nan)
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.recent_chunks)
        self._thumbs: OrderedDict[int, np.ndarray] = OrderedDict()
        self.marked: Bookmark | None = None
        self.comparison: Comparison | None = None
        self.probe.records.clear()

    # ----- observing the session
    def reset(self, first: np.ndarray) -> None:
        """After session.reset: `first` is the frame it returned."""
        self._forget()
        self._keep(0, np.asarray(first)[None])

    def step(self, frames: np.ndarray) -> Snapshot:
        """After session.step: `frames` (T, H, W, 3) are what it returned. Returns this chunk's Snapshot."""
        if not self.attached:
            raise RuntimeError("the tracker is not attached: use `with tracker:` or tracker.attach() before stepping.")
        records, self.probe.records[:] = list(self.probe.records), []
        if not records:
            raise RuntimeError(f"block {self.layer} was not probed during this step: call tracker.step right after "
                               "session.step, once per step.")
        first = self.video_frames
        self._keep(first, np.asarray(frames))
        self.chunks += 1
        return self._snapshot(records[-1], first)

    def _keep(self, first: int, frames: np.ndarray | None) -> None:
        """Store the latents and per-frame poses the session just generated (video frames from `first`), and
        the frames themselves when given (for bookmarks)."""
        s = self.session
        rot, pos = s.last_poses
        latents = s.last_latents[0].detach().to("cpu", torch.float16)  # (C, n, h, w)
        start = video_latent(first, self.temporal_down)
        for i in range(latents.shape[1]):
            self._latents[start + i] = latents[:, i]
        end = first + len(rot)
        if len(self._rot) < end:  # grow geometrically; unknown poses stay NaN
            size = max(end, 2 * len(self._rot))
            self._rot = np.concatenate([self._rot, np.full((size - len(self._rot), 3, 3), np.nan)])
            self._pos = np.concatenate([self._pos, np.full((size - len(self._pos), 3), np.nan)])
        self._rot[first:end] = rot.detach().cpu().double().numpy()
        self._pos[first:end] = pos.detach().cpu().double().numpy()
        self.video_frames = end
        if frames is not None:
            self._recent.append((first, frames))
            if self.marked is not None:
                self._check_return(first, frames)

    def _summary(self, record: Any, query_frame: int | None) -> tuple[tuple[CachedFrame, ...], float,
                                                                        tuple[CachedFrame, ...]]:
        """(cached frames, mass on the chunk itself, top-k beyond the window) of the chunk's queries, or of its
        latent frame `query_frame` alone; ages and angles are measured from the chunk's centre or that frame."""
        n = self.video_frames
        summary = attention_summary(record, self._rot[:n], self._pos[:n], self.temporal_down, query_frame)
        centre = latent_video_frame(summary["query_latent"], self.temporal_down)
        frames = tuple(
            CachedFrame(r["frame"], r["part"], r["factor"], r["tokens"], r["mass"],
                        (centre - latent_video_frame(r["frame"], self.temporal_down)) / self.fps,
                        r.get("angle_deg", math.nan), r.get("distance", math.nan))
            for r in summary["frames"]
        )
        mem = self.session.memory
        recent = 0 if mem.policy == "none" else mem.window  # the rolling window: always there, never "retrieved"
        older = [f for f in frames if f.frame < record.cached_frames - recent]
        top = tuple(sorted(older, key=lambda f: -f.mass)[: self.config.top_k])
        return frames, summary["by_part"]["current"], top

    def _snapshot(self, record: Any, first: int) -> Snapshot:
        frames, current, top = self._summary(record, None)
        per_frame = []
        for i in range(record.chunk_frames if record.frame_weights is not None else 0):
            latent = record.cached_frames + i
            rows, mass, best = self._summary(record, i)
            per_frame.append(QueryFrame(latent, latent_video_frames(latent, self.temporal_down), rows, mass, best))
        err = float(record.max_abs_error)
        with self._lock:  # the bookmark as it stands now (its `away` flag changes later)
            marked = None if self.marked is None else dataclasses.replace(self.marked)
            comparison = self.comparison
        return Snapshot(self.chunks, (first, self.video_frames), record.cached_frames, frames, current, top,
                        dict(self.session.memory_stats()), err, err <= self.config.verify_tol, self.layer, marked,
                        comparison, tuple(per_frame))

    # ----- bookmarks
    def bookmark(self, video_frame: int | None = None) -> Bookmark:
        """Mark the view at `video_frame` (default: the newest generated): one of the recent chunks' frames, or
        else its latent frame's thumbnail (when the tracker was attached after that frame was shown)."""
        v = self.video_frames - 1 if video_frame is None else int(video_frame)
        if not 0 <= v < self.video_frames or np.isnan(self._rot[v]).any():
            raise ValueError(f"no pose is kept for video frame {v}: the tracker keeps the frames generated since "
                             f"it was attached (the newest is {self.video_frames - 1}); bookmark one of those.")
        image = next((f[v - first] for first, f in list(self._recent) if first <= v < first + len(f)), None)
        if image is None:
            image = self.thumbnail(video_latent(v, self.temporal_down))
        if image is None:
            raise ValueError(f"video frame {v} is no longer kept; bookmark a recent view.")
        bm = Bookmark(image.copy(), v, self._rot[v].copy(), self._pos[v].copy())
        with self._lock:
            self.marked, self.comparison = bm, None
        return bm

    def _check_return(self, first: int, frames: np.ndarray) -> None:
        """After the camera was away from the bookmark, compare the chunk's view nearest to it (if near)."""
        bm, c = self.marked, self.config
        v = np.arange(first, first + len(frames))
        angle = rotation_angle_deg(self._rot[v] @ bm.rotation.T)
        dist = np.linalg.norm(self._pos[v] - bm.position, axis=-1)
        away = np.flatnonzero((angle >= c.away_deg) | (dist >= c.away_distance))
        after = 0 if bm.away else (away[0] + 1 if len(away) else len(v))
        bm.away = bm.away or len(away) > 0
        near = [i for i in range(after, len(v)) if angle[i] <= c.near_deg and dist[i] <= c.near_distance]
        if not near:
            return
        i = min(near, key=lambda i: angle[i] / c.near_deg + dist[i] / c.near_distance)
        live = frames[i].copy()
        cmp = Comparison(live, int(v[i]), float(angle[i]), float(dist[i]), psnr(bm.frame[None], live[None]))
        with self._lock:
            if self.marked is bm:
                self.comparison = cmp

    # ----- thumbnails
    def thumbnail(self, frame: int, decode: bool = True) -> np.ndarray | None:
        """(H, W, 3) uint8 of latent frame `frame`, decoded from its kept latents on first use (None when its
        latents were not kept, or when not decoded yet and decode=False)."""
        with self._lock:
            if frame in self._thumbs:
                self._thumbs.move_to_end(frame)
                return self._thumbs[frame]
        latent = self._latents.get(frame)
        if latent is None or not decode:
            return None
        tok = self.session.tokenizer
        image = to_uint8(tok.decode_tiny(latent[None, :, None].to(tok.device, tok.dtype))[0])[-1]
        with self._lock:
            self._thumbs[frame] = image
            while len(self._thumbs) > self.config.thumbnails:
                self._thumbs.popitem(last=False)
        return image

    def has_latents(self, frame: int) -> bool:
        return frame in self._latents


@dataclass
class ScriptedView:
    """What `play_script` returns: every frame, and the Snapshot of every chunk."""

    frames: np.ndarray  # (1 + T, H, W, 3)
    snapshots: list[Snapshot] = field(default_factory=list)


def play_script(tracker: RetrievalTracker, image: np.ndarray, text: str, actions: torch.Tensor,
                bookmark_start: bool = True) -> ScriptedView:
    """Reset the tracker's session on (image, text), bookmark the start view (unless bookmark_start=False) and
    play one action (13,) per step. The tracker is detached at the end and keeps what it saw (thumbnails)."""
    s = tracker.session
    tracker.attach()
    try:
        out = [s.reset(image, text)[None]]
        tracker.reset(out[0][0])
        if bookmark_start:
            tracker.bookmark(0)
        snaps = []
        for action in actions:
            out.append(s.step(action))
            snaps.append(tracker.step(out[-1]))
    finally:
        tracker.detach()
    return ScriptedView(np.concatenate(out), snaps)
