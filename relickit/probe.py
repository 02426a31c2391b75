"""Memory probe: what the current chunk attends to in the KV cache, and what the cache holds.

    with AttentionProbe(session, layer=-1) as probe:
        run = run_script(session, image, caption, script)        # relickit.evaluate
    summary = attention_summary(probe.final_records()[-1], poses)  # mass by part, factor, frame, pose distance

The probe is an OPTIONAL inspection hook: it registers a standard torch forward pre-hook on one transformer block
(`session.model.blocks[layer]`), wraps nothing and patches nothing. When the block runs against the cache it
recomputes that layer's attention weights from
  - the block's input hidden state and the chunk's conditioning (timestep modulation, pose, RoPE), giving the
    chunk's queries and its own keys exactly as `model.Block.forward` does, and
  - the cached keys `cache.cached(layer)`, laid out as [window ring | compressed history] behind the chunk
    slot (relickit.memory.KVCache).
With `verify=True` a second hook reads the block's real attention output (the input of attn1.to_out) and the
probe records how far its recomputation is from it (`max_abs_error`; ~1e-6 means the weights are the model's).

Each key token is labelled with its part (current chunk / window / compressed), its latent frame and its per-side
compression factor, so attention mass can be summed by part, by factor and by the pose distance between the
cached frame and the current chunk; the chunk's queries are its latent frames one after another (tokens_per_frame
each), so the weights are kept per query latent frame too (`AttentionRecord.frame_weights`,
`attention_summary(..., query_frame=i)`). Figures (plotly) and a policy dropdown (ipywidgets) for notebooks are below;
`compare_policies` runs one scripted revisit under each memory policy with everything else fixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .config import MEMORY_POLICIES, MemoryConfig, ModelConfig
from .memory import CompressedLayout, budget, compressed_tokens, pool_matrix, window_frames
from .metrics import rotation_angle_deg
from .model import framewise

PARTS: tuple[str, ...] = ("current", "window", "compressed")


# ---------------------------------------------------------------------------------------------------------------
# key layout
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class KeyLayout:
    """One label per key token a chunk attends to, in the order of the attention's keys."""

    part: np.ndarray  # (Lk,) index into PARTS
    frame: np.ndarray  # (Lk,) latent frame of the token
    factor: np.ndarray  # (Lk,) per-side compression factor, 1 = full resolution

    def __len__(self) -> int:
        return len(self.part)


def key_layout(cfg: ModelConfig, mem: MemoryConfig, cached_frames: int, in_window: int, chunk_frames: int) -> KeyLayout:
    """Labels of [current chunk | window ring | compressed history] after `cached_frames` committed latent frames.

    Window ring slot s holds the frame f (among the last `in_window`) with f % window == s (f itself when the
    window spans the whole capacity, policy `full`); compressed frames follow in their storage order
    (0, 1, ... or, with a horizon, the ring's order)."""
    t = cfg.tokens_per_frame
    f_now = cached_frames
    part = [np.zeros(chunk_frames * t, int)]
    frame = [np.repeat(np.arange(f_now, f_now + chunk_frames), t)]
    factor = [np.ones(chunk_frames * t, int)]
    window = window_frames(mem)
    if in_window:
        recent = range(f_now - in_window, f_now)
        slot_of = (lambda f: f) if window >= mem.capacity else (lambda f: f % window)
        by_slot = sorted(recent, key=slot_of)
        part.append(np.ones(in_window * t, int))
        frame.append(np.repeat(np.array(by_slot), t))
        factor.append(np.ones(in_window * t, int))
    if mem.policy == "compressed":
        for f in CompressedLayout(cfg, mem).storage_order(f_now - in_window):
            fac = mem.factor(f)
            n = compressed_tokens(cfg, fac)
            part.append(np.full(n, 2))
            frame.append(np.full(n, f))
            factor.append(np.full(n, fac))
    return KeyLayout(np.concatenate(part), np.concatenate(frame), np.concatenate(factor))


# ---------------------------------------------------------------------------------------------------------------
# the hook
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class AttentionRecord:
    """One pass of the probed block against the cache."""

    call: int  # running index of the probed block's calls
    cached_frames: int  # latent frames committed before this pass (the chunk starts here)
    chunk_frames: int
    weights: np.ndarray  # (heads, Lk): attention of the chunk's queries, averaged over queries
    layout: KeyLayout
    max_abs_error: float = math.nan  # recomputed vs the model's own attention output (verify=True)
    # (chunk_frames, heads, Lk): the same, averaged over each query latent frame's tokens alone; every frame has
    # as many tokens, so their mean over frames is `weights` (to float rounding). None when not recorded.
    frame_weights: np.ndarray | None = None


class AttentionProbe:
    """Records, for every pass of block `layer` against a session's cache, the attention weights per key token.

    Use as a context manager around session.reset/step calls; `records` collects every pass (the denoising
    steps and the clean context pass of each chunk); `final_records()` keeps the last denoising pass per chunk.
    """

    def __init__(self, session: Any, layer: int = -1, verify: bool = False, only_pass: int | None = None):
        """only_pass=k records only the k-th pass against each cache state (k = number of sampler steps - 1: the
        last denoising pass, all a live view needs); the other passes are not recomputed."""
        self.session, self.verify, self.only_pass = session, verify, only_pass
        model = session.model
        self.layer = layer % len(model.blocks)
        self.block = model.blocks[self.layer]
        self.records: list[AttentionRecord] = []
        self._handles: list[Any] = []
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (weights per query, values) for verify
        self._passes: tuple[int, int, int] = (-1, -1, -1)  # (id of the cache, its frames, passes seen there)

    # -- lifecycle
    def __enter__(self) -> "AttentionProbe":
        self.attach()
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def attach(self) -> None:
        if self._handles:
            return
        self._handles.append(self.block.register_forward_pre_hook(self._before_block))
        if self.verify:
            self._handles.append(self.block.attn1.to_out[0].register_forward_pre_hook(self._check_output))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # -- hooks
    @torch.no_grad()
    def _before_block(self, module, args) -> None:
        cache = self.session.cache
        if cache is None or len(args) < 2:
            return
        if self.only_pass is not None:
            cache_id, frames, seen = self._passes
            seen = seen + 1 if (cache_id, frames) == (id(cache), cache.frames) else 0
            self._passes = (id(cache), cache.frames, seen)
            if seen != self.only_pass:
                self._pending = None
                return
        x, fr = args[0], args[1]
        model = self.session.model
        q, k, v = self._chunk_qkv(x, fr)
        cached_k, cached_v = cache.cached(self.layer)
        keys, values = torch.cat([k, cached_k.to(k.dtype)], 1), torch.cat([v, cached_v.to(v.dtype)], 1)
        logits = torch.einsum("bqhd,bkhd->bhqk", q.float(), keys.float()) * model.softmax_scale
        w = logits.softmax(-1)  # (B, H, Lq, Lk)
        n = x.shape[1] // fr.tokens
        layout = key_layout(model.cfg, cache.mem, cache.frames, cache.in_window, n)
        if len(layout) != keys.shape[1]:
            raise RuntimeError(f"probe: key layout has {len(layout)} tokens, the cache slice {keys.shape[1]}; "
                               "relickit.memory's KVCache layout changed: update relickit.probe.key_layout.")
        # the chunk's queries are frame-major, `fr.tokens` per latent frame (relickit.model.framewise)
        per_frame = framewise(w.transpose(1, 2), fr.tokens).mean(2)[0]  # (B, Lq, H, Lk) -> (n, H, Lk)
        self.records.append(AttentionRecord(len(self.records), cache.frames, n, w[0].mean(1).double().cpu().numpy(),
                                            layout, frame_weights=per_frame.double().cpu().numpy()))
        self._pending = (w, values) if self.verify else None

    @torch.no_grad()
    def _check_output(self, module, args) -> None:
        if self._pending is None or not self.records:
            return
        w, values = self._pending
        out = torch.einsum("bhqk,bkhd->bqhd", w, values.float()).flatten(2)
        self.records[-1].max_abs_error = float((out - args[0].float()).abs().max())
        self._pending = None

    def _chunk_qkv(self, x: torch.Tensor, fr: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The chunk's queries, keys (after RoPE) and values in this block: the block's own attn_in."""
        q, _, k, v = self.block.attn_in(x, fr)
        return q, k, v

    # -- selection
    def final_records(self) -> list[AttentionRecord]:
        """Per chunk, the last denoising pass (the one whose prediction becomes the chunk): of the passes that
        start at the same cached frame count, all but the last (the clean context pass)."""
        groups: dict[int, list[AttentionRecord]] = {}
        for r in self.records:
            groups.setdefault(r.cached_frames, []).append(r)
        return [g[-2] for _, g in sorted(groups.items()) if len(g) >= 2]


# ---------------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------------
def latent_video_frame(latent: int, temporal_down: int = 4) -> int:
    """The video frame at the centre of a latent frame's group (frame 0 for latent 0)."""
    return 0 if latent == 0 else temporal_down * latent - temporal_down // 2


def attention_summary(record: AttentionRecord, rotations=None, positions=None, temporal_down: int = 4,
                      query_frame: int | None = None) -> dict[str, Any]:
    """Attention mass (averaged over heads and queries; sums to 1) by part, by compression factor of the cached
    tokens, and per cached latent frame with its pose distance to the current chunk when the video's commanded
    poses (rotations (T, 3, 3), positions (T, 3)) are given. Vectorised over frames: a live view calls it per chunk.

    query_frame=i summarises the queries of the chunk's i-th latent frame alone (`record.frame_weights`), with
    lags and pose distances measured from that frame instead of the chunk's centre (`query_latent`: the latent
    frame they are measured from)."""
    if query_frame is None:
        mass = record.weights.mean(0)
        cur = record.cached_frames + (record.chunk_frames - 1) // 2
    else:
        if record.frame_weights is None:
            raise ValueError("this record has no per-frame weights (AttentionRecord.frame_weights): it was not made "
                             "by AttentionProbe; summarise the whole chunk (query_frame=None).")
        if not 0 <= query_frame < record.chunk_frames:
            raise ValueError(f"query_frame must be in 0..{record.chunk_frames - 1} (the chunk's latent frames); "
                             f"got {query_frame}.")
        mass = record.frame_weights[query_frame].mean(0)
        cur = record.cached_frames + query_frame
    lay = record.layout
    by_part = {p: float(mass[lay.part == i].sum()) for i, p in enumerate(PARTS)}
    cached = lay.part > 0
    by_factor = {int(f): float(mass[cached & (lay.factor == f)].sum()) for f in np.unique(lay.factor[cached])}
    ids, first, inv = np.unique(lay.frame[cached], return_index=True, return_inverse=True)
    frame_mass, tokens = np.bincount(inv, mass[cached], len(ids)), np.bincount(inv, minlength=len(ids))
    part, factor = lay.part[cached][first], lay.factor[cached][first]
    angle = distance = None
    b = latent_video_frame(cur, temporal_down)
    if rotations is not None and positions is not None and b < len(rotations):
        r, p = np.asarray(rotations, dtype=np.float64), np.asarray(positions, dtype=np.float64)
        a = np.array([latent_video_frame(int(f), temporal_down) for f in ids], dtype=int)
        angle, distance = rotation_angle_deg(r[a] @ r[b].T), np.linalg.norm(p[a] - p[b], axis=-1)
    frames = []
    for i, f in enumerate(ids.tolist()):
        row = {"frame": f, "part": PARTS[int(part[i])], "factor": int(factor[i]), "tokens": int(tokens[i]),
               "mass": float(frame_mass[i]), "mass_per_token": float(frame_mass[i] / tokens[i]), "lag_frames": cur - f}
        if angle is not None:
            row["angle_deg"], row["distance"] = float(angle[i]), float(distance[i])
        frames.append(row)
    return {"cached_frames": record.cached_frames, "query_frame": query_frame, "query_latent": cur,
            "by_part": by_part, "by_factor": by_factor, "frames": frames, "max_abs_error": record.max_abs_error}


# ---------------------------------------------------------------------------------------------------------------
# running a revisit under each policy
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PolicyRun:
    policy: str
    frames: np.ndarray  # (1 + T, H, W, 3)
    summaries: list[dict[str, Any]]  # one per generated chunk
    scores: dict[str, Any]  # relickit.evaluate.score_revisit
    stats: list[dict[str, Any]]  # memory_stats after reset and each step


@dataclass
class ProbeResult:
    map: str
    script: Any  # relickit.evaluate.Script
    truth: np.ndarray  # engine frames (1 + T, H, W, 3)
    rotations: np.ndarray  # commanded poses of the video (1 + T, 3, 3), (1 + T, 3)
    positions: np.ndarray
    frames_per_step: int
    cfg: ModelConfig
    memory: MemoryConfig
    runs: dict[str, PolicyRun] = field(default_factory=dict)


def compare_policies(factory, map_name: str = "MAP21", script: str | Any = "look_back",
                     policies: Sequence[str] = MEMORY_POLICIES, layer: int = -1, seed: int = 0, tries: int = 30,
                     verify: bool = False) -> ProbeResult:
    """Run one scripted revisit on a held-out map under each memory policy (same start, script and seed), with
    an AttentionProbe on block `layer`; score it against the engine's truth and the model's first visits."""
    from .dataset import caption
    from .doom import DoomConfig, DoomEnv
    from .evaluate import (
        EngineActions,
        Script,
        check_eval_maps,
        commanded_poses,
        find_start,
        match_revisits,
        revisit_scripts,
        run_script,
        score_revisit,
    )

    [(wad, m)] = check_eval_maps([map_name])
    first = factory(policies[0], seed)
    cfg, fps_step = first.model.cfg, first.frames_per_step
    controls = first.controls
    sc = script if isinstance(script, Script) else revisit_scripts(fps_step, controls)[script]
    doom = DoomConfig(wad=wad, map=m, height=cfg.height, width=cfg.width)
    with DoomEnv(doom) as env:
        start = find_start(doom, EngineActions().script(sc, fps_step, doom, controls), seed, tries, env)
    r, p = commanded_poses(sc, fps_step, controls)
    pairs = match_revisits(sc, fps_step, controls)
    first_return = 1 + sc.revisit_step * fps_step
    far_lag = (first.memory.window + cfg.chunk) * cfg.temporal_down
    out = ProbeResult(m, sc, start.truth.frames, r.numpy(), p.numpy(), fps_step, cfg, first.memory)
    for policy in policies:
        session = factory(policy, seed)
        with AttentionProbe(session, layer, verify=verify) as probe:
            run = run_script(session, start.truth.frames[0], caption(m), sc)
        sums = [attention_summary(rec, out.rotations, out.positions, cfg.temporal_down) for rec in probe.final_records()]
        out.runs[policy] = PolicyRun(policy, run.frames, sums,
                                     score_revisit(run.frames, start.truth.frames, pairs, first_return, far_lag), run.stats)
    return out


# ---------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------
PART_COLORS = {"current": "#2ca02c", "window": "#1f77b4", "compressed": "#ff7f0e"}


def attention_parts_figure(result: ProbeResult):
    """Per policy (columns), the attention mass of each generated chunk by memory part (stacked)."""
    from plotly.subplots import make_subplots

    pols = list(result.runs)
    fig = make_subplots(rows=1, cols=len(pols), subplot_titles=pols, shared_yaxes=True)
    return_step = result.script.revisit_step
    for c, pol in enumerate(pols, start=1):
        sums = result.runs[pol].summaries
        x = list(range(1, len(sums) + 1))
        for part in PARTS:
            fig.add_bar(x=x, y=[s["by_part"][part] for s in sums], name=part, marker_color=PART_COLORS[part],
                        legendgroup=part, showlegend=c == 1, row=1, col=c)
        if return_step is not None:
            fig.add_vline(x=return_step + 0.5, line_dash="dot", row=1, col=c)
    fig.update_layout(barmode="stack", height=380, title="Attention mass by memory part, per generated chunk "
                      "(dotted: the return phase starts)", yaxis_title="attention mass")
    fig.update_xaxes(title_text="step")
    return fig


def attention_factor_figure(result: ProbeResult):
    """Mass per cached token by compression factor (1 = the full-resolution window), averaged over the return
    phase: does a coarse token get as much attention as a fine one?"""
    import plotly.graph_objects as go

    fig = go.Figure()
    start = result.script.revisit_step or 0
    for pol, run in result.runs.items():
        mass, tokens = {}, {}
        for s in run.summaries[start:]:
            for fr in s["frames"]:
                mass[fr["factor"]] = mass.get(fr["factor"], 0.0) + fr["mass"]
                tokens[fr["factor"]] = tokens.get(fr["factor"], 0) + fr["tokens"]
        fs = sorted(mass)
        fig.add_bar(x=[f"x{f}" if f > 1 else "full" for f in fs], y=[mass[f] / max(tokens[f], 1) for f in fs], name=pol)
    fig.update_layout(barmode="group", height=360, title="Attention per cached token by compression factor (return phase)",
                      xaxis_title="per-side compression factor", yaxis_title="mean mass per token")
    return fig


def attention_pose_figure(result: ProbeResult, policy: str):
    """Each cached latent frame during the return phase: its attention mass per token against the camera-angle
    distance between that frame and the current chunk. Memory retrieval shows as mass rising at small angles."""
    import plotly.graph_objects as go

    run = result.runs[policy]
    start = result.script.revisit_step or 0
    fig = go.Figure()
    for part in ("window", "compressed"):
        pts = [(fr["angle_deg"], fr["mass_per_token"], fr["frame"], fr["factor"], fr["lag_frames"], k + 1)
               for k, s in enumerate(run.summaries) if k >= start for fr in s["frames"]
               if fr["part"] == part and "angle_deg" in fr]
        if not pts:
            continue
        a = np.array(pts, dtype=np.float64)
        fig.add_scatter(x=a[:, 0], y=a[:, 1], mode="markers", name=part, marker=dict(color=PART_COLORS[part], size=7),
                        customdata=a[:, 2:], hovertemplate="frame %{customdata[0]:.0f}, x%{customdata[1]:.0f}, lag "
                        "%{customdata[2]:.0f}, step %{customdata[3]:.0f}<br>angle %{x:.1f} deg, mass/token %{y:.2e}")
    fig.update_layout(height=380, title=f"{policy}: attention to cached frames vs their view angle to the current chunk "
                      "(return phase)", xaxis_title="camera angle between cached frame and current chunk (deg)",
                      yaxis_title="attention mass per token", yaxis_type="log")
    return fig


def token_grid_figure(cfg: ModelConfig, mem: MemoryConfig, frames: int, max_frames: int = 24):
    """What the cache holds after `frames` latent frames: one token grid per latent frame (the last `max_frames`),
    each cell coloured by its per-side compression factor (shaded per pooled cell), blank when dropped."""
    import plotly.graph_objects as go

    gh, gw = cfg.token_grid
    w = min(window_frames(mem), frames)
    shown = list(range(max(0, frames - max_frames), frames))
    z = np.full((gh, len(shown) * (gw + 1)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for c, f in enumerate(shown):
        if f >= frames - w:
            fac = 1
        elif mem.policy == "compressed":
            fac = mem.factor(f)
        else:
            continue  # dropped
        n = compressed_tokens(cfg, fac)
        cell = pool_matrix(cfg.token_grid, fac).argmax(0).numpy().reshape(gh, gw) if fac > 1 else np.arange(gh * gw).reshape(gh, gw)
        shade = ((cell // max(1, math.ceil(gw / fac))) + cell) % 2 if fac > 1 else np.zeros((gh, gw))
        z[:, c * (gw + 1): c * (gw + 1) + gw] = math.log2(fac) + 0.25 * shade
        text[:, c * (gw + 1): c * (gw + 1) + gw] = f"latent {f}: factor {fac} -> {n} tokens"
    fig = go.Figure(go.Heatmap(z=z, text=text, hoverinfo="text", colorscale="Viridis", zmin=0, zmax=2.25,
                               colorbar=dict(title="factor", tickvals=[0.1, 1.1, 2.1], ticktext=["1 (full)", "2", "4"])))
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(tickvals=[c * (gw + 1) + gw / 2 - 0.5 for c in range(len(shown))], ticktext=[str(f) for f in shown],
                     title="latent frame")
    b = budget(cfg, mem, frames)
    fig.update_layout(height=260, title=f"{mem.policy}: token grids after {frames} latent frames ({b.total_tokens} tokens; "
                      f"full would hold {b.full_tokens}); blank = dropped")
    return fig


def tokens_over_time_figure(cfg: ModelConfig, latent_frames: int, memory: MemoryConfig = MemoryConfig(),
                            policies: Sequence[str] = MEMORY_POLICIES, horizons: Sequence[int] = ()):
    """Cached tokens (and KV bytes at fp32) over time for each policy, from relickit.memory.budget; `horizons`
    adds RELIC's compressed memory bounded to that many compressed latent frames."""
    import dataclasses

    import plotly.graph_objects as go

    fig = go.Figure()
    x = np.arange(1, latent_frames + 1)
    secs = np.array([cfg.video_frames(int(f)) / cfg.fps for f in x])
    curves = {pol: dataclasses.replace(memory, policy=pol) for pol in policies}
    for h in horizons:
        curves[f"compressed, horizon {h}"] = dataclasses.replace(memory, policy="compressed", horizon=h)
    for pol, mem in curves.items():
        tok = [budget(cfg, mem, int(f)).total_tokens for f in x]
        mb = [budget(cfg, mem, int(f)).bytes(cfg, mem, 4) / 1e6 for f in x]
        fig.add_scatter(x=secs, y=tok, name=pol, customdata=np.stack([x, mb], 1),
                        hovertemplate="%{x:.1f} s (latent %{customdata[0]:.0f}): %{y} tokens, %{customdata[1]:.2f} MB")
    fig.update_layout(height=360, title=f"KV-cache tokens over time ({cfg.name} preset, window {memory.window})",
                      xaxis_title="seconds of video", yaxis_title="cached tokens")
    return fig


def policy_frames_figure(result: ProbeResult, every: int | None = None):
    """The engine's truth and each policy's frames (rows), one frame per step."""
    from .viz import frame_grid

    every = every or result.frames_per_step
    idx = list(range(0, len(result.truth), every))
    rows = [result.truth[idx]] + [run.frames[idx] for run in result.runs.values()]
    labels = ["truth"] + list(result.runs)
    titles = [f"{lab} t={t}" for lab in labels for t in idx]
    return frame_grid(np.concatenate(rows), cols=len(idx), titles=titles,
                      title=f"{result.map} {result.script.name}: truth and each policy, one frame per step")


def scores_table(result: ProbeResult) -> list[dict[str, Any]]:
    """One row per policy: PSNR/SSIM of the return frames vs truth and vs the model's own first visits."""
    rows = []
    for pol, run in result.runs.items():
        s = run.scores
        rows.append({"policy": pol,
                     "return_vs_truth_psnr": s["return_vs_truth"]["psnr"], "return_vs_truth_ssim": s["return_vs_truth"]["ssim"],
                     "vs_first_visit_psnr": s["vs_first_visit"]["psnr"], "vs_first_visit_ssim": s["vs_first_visit"]["ssim"],
                     "vs_first_visit_far_psnr": s["vs_first_visit_far"]["psnr"],
                     "kv_tokens_final": run.stats[-1]["total_tokens"]})
    return rows


def policy_dropdown(figures: Mapping[str, Any], description: str = "policy"):
    """An ipywidgets dropdown over plotly figures (e.g. one per memory policy), shown in one plotly FigureWidget
    whose traces and layout are swapped on change (no Output-widget capture involved)."""
    import ipywidgets as widgets
    import plotly.graph_objects as go

    names = list(figures)
    view = go.FigureWidget(figures[names[0]])
    dd = widgets.Dropdown(options=names, value=names[0], description=description)

    def show(change=None) -> None:
        fig = figures[dd.value]
        with view.batch_update():
            view.data = ()
            view.add_traces(list(fig.data))
            view.layout = fig.layout

    dd.observe(show, names="value")
    return widgets.VBox([dd, view])


def scores_markdown(result: ProbeResult) -> str:
    """The scores of `compare_policies` as a markdown table (PSNR dB / SSIM)."""
    lines = ["| policy | return vs truth | return vs own first visit | same, beyond the window | KV tokens at the end |",
             "|---|---|---|---|---|"]
    for r in scores_table(result):
        far = r["vs_first_visit_far_psnr"]
        lines.append(f"| {r['policy']} | {r['return_vs_truth_psnr']:.2f} dB / {r['return_vs_truth_ssim']:.3f} | "
                     f"{r['vs_first_visit_psnr']:.2f} dB / {r['vs_first_visit_ssim']:.3f} | "
                     f"{far:.2f} dB | {r['kv_tokens_final']} |")
    return "\n".join(lines)


def weights_note(info: Mapping[str, Any]) -> str:
    """A markdown sentence saying whether the weights are trained or random (relickit.evaluate.load_assets)."""
    if str(info.get("weights", "")).startswith("random"):
        return ("**The weights are RANDOM** (no trained assets at `relickit/assets/`, smoke mode): the frames, "
                "scores and attention patterns below show the machinery only, not what a trained model remembers.")
    return f"Trained weights: `{info.get('model_path')}` with tokenizer `{info.get('tokenizer_path')}`."
