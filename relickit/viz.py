"""Plotly figures for looking at data and rollouts: frame grids, top-down trajectories, action histograms."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch

from .controls import ACTIONS


def to_uint8(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) uint8, or (N, 3, H, W) float in [-1, 1] (model space) -> (N, H, W, 3) uint8."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) or float (N, 3, H, W) frames, got {frames.dtype} {frames.shape}.")
    return np.clip((frames.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def frame_grid(
    frames: np.ndarray | torch.Tensor, cols: int = 8, titles: Sequence[str] | None = None, gap: int = 2,
    scale: float = 1.5, title: str | None = None,
) -> go.Figure:
    """Frames tiled in a grid, left to right then top to bottom, with an optional title per tile."""
    img = to_uint8(frames)
    n, h, w, _ = img.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = img[i]
    fig = px.imshow(canvas)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for i, text in enumerate(titles or []):
        r, c = divmod(i, cols)
        fig.add_annotation(x=c * (w + gap) + 2, y=r * (h + gap) + 2, text=text, showarrow=False, xanchor="left",
                           yanchor="top", font=dict(size=9, color="yellow"), bgcolor="rgba(0,0,0,0.5)")
    fig.update_layout(width=int(canvas.shape[1] * scale) + 40, height=int(canvas.shape[0] * scale) + 60,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), title=title)
    return fig


def action_labels(actions: np.ndarray | torch.Tensor, top: int = 2) -> list[str]:
    """A short label per frame naming its strongest actions, e.g. 'forward 0.9 + pan_left 0.4'."""
    a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
    out = []
    for row in a:
        order = [i for i in np.argsort(-row)[:top] if row[i] > 0]
        out.append(" + ".join(f"{ACTIONS[i]} {row[i]:.1f}" if ACTIONS[i] != "static" else "static" for i in order))
    return out


def trajectory_map(
    positions_by_episode: Mapping[str, np.ndarray],
    walls: np.ndarray | None = None,
    title: str = "top-down trajectories (world X east, Y north)",
    color_by_time: bool = False,
) -> go.Figure:
    """Top-down paths, one line per episode, coloured by episode; a circle marks the start, a cross the end.

    positions_by_episode: name -> (T, 3) world positions, or (T, 12) clip pose vectors (relative to the clip's
    first camera: drawn as right (x) against forward (z)).
    walls: optional (L, 4) x1, y1, x2, y2 line segments drawn in grey (relickit.doom.map_geometry(...).lines).
    color_by_time: colour each frame's marker by its index, so a path walked out and back shows both times.
    Revisits show up as paths that retrace themselves.
    """
    fig = go.Figure()
    if walls is not None and len(walls):
        xs = np.stack([walls[:, 0], walls[:, 2], np.full(len(walls), np.nan)], 1).ravel()
        ys = np.stack([walls[:, 1], walls[:, 3], np.full(len(walls), np.nan)], 1).ravel()
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="lightgrey", width=1), name="walls",
                                 hoverinfo="skip"))
    colors = px.colors.qualitative.Plotly
    for k, (name, pos) in enumerate(positions_by_episode.items()):
        p = pos.detach().cpu().numpy() if isinstance(pos, torch.Tensor) else np.asarray(pos)
        p = p[:, [9, 11]] if p.shape[1] == 12 else p[:, :2]
        color = colors[k % len(colors)]
        marker = dict(color=np.arange(len(p)), colorscale="Viridis", size=5, showscale=k == 0,
                      colorbar=dict(title="frame")) if color_by_time else None
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers" if color_by_time else "lines", name=name,
                                 line=dict(color=color, width=1 if color_by_time else 2), marker=marker,
                                 text=[f"frame {t}" for t in range(len(p))], hoverinfo="text+name"))
        fig.add_trace(go.Scatter(x=p[[0, -1], 0], y=p[[0, -1], 1], mode="markers", showlegend=False,
                                 marker=dict(color=color, size=9, symbol=["circle", "x"]), hoverinfo="skip"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, width=700, height=600, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def action_histogram(
    actions: np.ndarray | torch.Tensor | Mapping[str, np.ndarray | torch.Tensor],
    title: str = "share of frames in which each action is active",
) -> go.Figure:
    """Bars: for each of the 13 actions, the fraction of frames where it is non-zero (frame 0 of a clip included).

    Pass one array (..., 13) or a dict name -> array to compare sets side by side (e.g. stored vs sampled).
    """
    sets = actions if isinstance(actions, Mapping) else {"actions": actions}
    fig = go.Figure()
    for name, a in sets.items():
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = arr.reshape(-1, len(ACTIONS))
        fig.add_trace(go.Bar(x=list(ACTIONS), y=(arr > 0).mean(0), name=name))
    fig.update_layout(title=title, barmode="group", yaxis_title="fraction of frames", width=800, height=380,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def visibility_figure(vis, title: str | None = None) -> go.Figure:
    """A frame-level attention rule (relickit.memory.Visibility) as a heatmap: rows query frames, columns key
    frames; 1 = full-resolution keys, 0.5 = compressed keys, 0 = not attended."""
    z = vis.full.float() + 0.5 * vis.comp.float()
    fig = go.Figure(go.Heatmap(z=z.numpy(), colorscale=[[0, "white"], [0.5, "#9ecae1"], [1, "#08519c"]], zmin=0, zmax=1,
                               showscale=False, hovertemplate="query %{y}, key %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="query latent frame")
    fig.update_xaxes(title="key latent frame")
    fig.update_layout(title=title, width=420, height=420, template="plotly_white")
    return fig


def memory_curve(cfg, policies: Sequence[str] = ("window", "compressed", "full"), seconds: float = 120.0,
                 window: int = 3) -> go.Figure:
    """KV-cache tokens against play time for each memory policy (relickit.memory.budget)."""
    from .config import MemoryConfig
    from .memory import budget

    frames = range(1, cfg.latent_frames(1 + int(seconds * cfg.fps) // cfg.temporal_down * cfg.temporal_down) + 1)
    fig = go.Figure()
    for policy in policies:
        mem = MemoryConfig(policy=policy, window=window)
        fig.add_scatter(x=[cfg.video_frames(f) / cfg.fps for f in frames],
                        y=[budget(cfg, mem, f).total_tokens for f in frames], name=policy)
    fig.update_layout(xaxis_title="seconds of play", yaxis_title="KV tokens per layer", template="plotly_white", height=320)
    return fig
