"""Suite `revisit`: does the model show again what it showed before?

Look away and back (pan right 180 deg, then back), a 360-degree pan (and a quarter turn more), walk out and
return. The return frames are scored with PSNR/SSIM against the engine's TRUE frames (doom.replay) and against the
model's own first-visit frames (matched by commanded pose), for each memory policy none / window / compressed /
full, everything else (map, start, script, seed) fixed; beside them the frozen start frame and the tokenizer
ceiling on the same return frames, and the picture statistics (relickit.evaluate.scoring).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..config import MEMORY_POLICIES, MemoryConfig
from ..controls import ControlsConfig
from ..metrics import psnr_frames, rotation_angle_deg, ssim_frames
from .engine import starts
from .report import pictures_bar_figure
from .report import progress as progress_bar
from .scoring import change_stats, check_same_runs, compare, mean, mean_pictures, play_with_references
from .scripts import EngineActions, Script, commanded_poses, revisit_scripts, select_scripts
from .sessions import SessionFactory, session_geometry


def match_revisits(script: Script, frames_per_step: int, controls: ControlsConfig = ControlsConfig(),
                   max_angle_deg: float = 2.5, max_dist: float = 0.5) -> list[tuple[int, int]]:
    """(revisit frame j, first-visit frame i) pairs: each frame of the return phase with the frame before the
    return phase whose commanded pose is closest (within max_angle_deg and max_dist step units)."""
    if script.revisit_step is None:
        raise ValueError(f"script {script.name!r} has no return phase (revisit_step).")
    r, p = commanded_poses(script, frames_per_step, controls)
    first = 1 + script.revisit_step * frames_per_step  # first frame of the return phase
    pairs = []
    for j in range(first, len(r)):
        ang = rotation_angle_deg((r[:first] @ r[j].T).numpy())
        dist = (p[:first] - p[j]).norm(dim=1).numpy()
        i = int(np.argmin(ang + 10.0 * dist))
        if ang[i] <= max_angle_deg and dist[i] <= max_dist:
            pairs.append((j, i))
    return pairs


def _image_scores(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    if len(a) == 0:
        return {"psnr": math.nan, "ssim": math.nan, "n": 0}
    return {"psnr": float(np.mean(psnr_frames(a, b))), "ssim": float(np.mean(ssim_frames(a, b))), "n": len(a)}


def score_revisit(frames: np.ndarray, truth: np.ndarray, pairs: list[tuple[int, int]], first_return: int,
                  far_lag: int) -> dict[str, Any]:
    """PSNR/SSIM of a revisit run: return frames vs truth, vs the model's own first visits (all pairs and those
    older than `far_lag` frames), the outbound frames vs truth, and the engine's own revisit consistency."""
    n = min(len(frames), len(truth))
    pairs = [(j, i) for j, i in pairs if j < n]
    far = [(j, i) for j, i in pairs if j - i > far_lag]
    out = {"return_vs_truth": _image_scores(frames[first_return:n], truth[first_return:n]),
           "outbound_vs_truth": _image_scores(frames[1:first_return], truth[1:first_return])}
    for key, ps in (("vs_first_visit", pairs), ("vs_first_visit_far", far)):
        j, i = [p[0] for p in ps], [p[1] for p in ps]
        out[key] = _image_scores(frames[j], frames[i])
        out[f"truth_{key}"] = _image_scores(truth[j], truth[i])
        out[f"{key}_truth"] = _image_scores(frames[j], truth[j])
    return out


def suite_revisit(factory: SessionFactory, maps, seed: int = 0, policies: Sequence[str] = MEMORY_POLICIES,
                  scripts: Sequence[str] | None = None, tries: int = 30, engine: EngineActions = EngineActions(),
                  progress: bool = True) -> tuple[dict, dict]:
    from ..dataset import caption

    for p in policies:
        if p not in MEMORY_POLICIES:
            raise ValueError(f"unknown memory policy {p!r}; choose from {MEMORY_POLICIES}.")
    probe = factory(policies[0], seed)
    _, _, fps_step, _, controls = session_geometry(probe)
    cfg, window = probe.model.cfg, getattr(probe, "memory", MemoryConfig()).window
    far_lag = (window + cfg.chunk) * cfg.temporal_down  # older than this, the window policy has forgotten it
    all_scripts = select_scripts(revisit_scripts(fps_step, controls), scripts, "revisit")
    names = list(all_scripts)
    for n, sc in all_scripts.items():
        if sc.revisit_step is None:
            raise ValueError(f"revisit script {n!r} needs a revisit_step (the first step of its return phase).")
    rows, curves, strips = [], {}, {}
    bar = progress_bar(len(maps) * len(names) * len(policies), "revisit", progress)
    for mi, m, name, script, run_seed, start in starts(maps, all_scripts, probe, seed, tries, engine):
        pairs = match_revisits(script, fps_step, controls)
        first_return = 1 + script.revisit_step * fps_step
        truth, refs = start.truth.frames, None
        for policy in policies:
            run, refs = play_with_references(factory, policy, run_seed, caption(m), script, truth, refs)
            scores = score_revisit(run.frames, truth, pairs, first_return, far_lag)
            pictures = compare({"model": run.frames, **refs}, truth, first_return)
            rows.append({"map": m, "script": name, "policy": policy, "seed": run_seed,
                         "blocked_frames": start.blocked_frames, "pairs": len(pairs), **scores, "pictures": pictures})
            if mi == 0:
                n = min(len(run.frames), len(truth))
                curves[(name, policy)] = psnr_frames(run.frames[:n], truth[:n])
                strips[(name, policy)] = run.frames
                strips[(name, "truth")] = truth
                strips[(name, "tokenizer ceiling")] = refs["tokenizer_ceiling"]
            bar.update()
    bar.close()
    metrics = ["return_vs_truth", "vs_first_visit", "vs_first_visit_far", "outbound_vs_truth"]

    def agg(sel) -> dict:
        return {k: {q: mean(r[k][q] for r in sel) for q in ("psnr", "ssim")} for k in metrics} | {
            "truth_vs_first_visit": {q: mean(r["truth_vs_first_visit"][q] for r in sel) for q in ("psnr", "ssim")}}

    summary = {"by_policy": {p: agg([r for r in rows if r["policy"] == p]) for p in policies},
               "by_script": {n: {p: agg([r for r in rows if r["policy"] == p and r["script"] == n]) for p in policies}
                             for n in names},
               "pictures": {p: mean_pictures([r["pictures"] for r in rows if r["policy"] == p]) for p in policies}}
    if "window" in policies:
        summary["gain_over_window_db"] = {p: gain_over_policy(rows, p, "window") for p in policies}
    report = {"settings": {"policies": list(policies), "scripts": [all_scripts[n].to_json() for n in names],
                           "far_lag_frames": far_lag, "window_latent_frames": window},
              "rows": rows, "summary": summary,
              "notes": ["return_vs_truth: every frame of the return phase vs the engine's true frame.",
                        "vs_first_visit: revisit frame vs the model's own frame at the matched commanded pose; "
                        "_far: only pairs more than far_lag_frames apart (beyond what the window policy holds).",
                        "truth_vs_first_visit: the same pairs in the engine's truth (Doom's momentum makes walks "
                        "return inexactly; pans are exact): the ceiling of self-consistency.",
                        "outbound_vs_truth: the frames before the return phase, for reference.",
                        "pictures: the return-phase frames against the truth, beside the frozen start frame and the "
                        "tokenizer ceiling on the same frames; gain_over_frozen_db is the headline (a still photo "
                        "scores 0), gain_over_window_db what the memory adds over window-only on return_vs_truth.",
                        "frame 0 is the tokenizer's reconstruction of the start image, not generated."]}
    return report, _revisit_figures(summary, curves, strips, names, list(policies), first_returns={
        n: 1 + all_scripts[n].revisit_step * fps_step for n in names}, fps_step=fps_step)


def gain_over_policy(rows: Sequence[dict], policy: str, baseline: str) -> float:
    """Mean over (map, script) of the return-phase PSNR against truth of `policy` minus that of `baseline`
    (return_vs_truth, with identical frames counted as PSNR_CAP as in `pictures`)."""
    psnr = {(r["map"], r["script"], r["policy"]): r["pictures"]["model"]["psnr"] for r in rows}
    return mean(v - psnr[(m, s, baseline)] for (m, s, p), v in psnr.items() if p == policy and (m, s, baseline) in psnr)


def paired_change(before: dict, after: dict) -> dict:
    """Two revisit-suite reports on the same runs (same maps, scripts and seed) side by side: per memory policy the
    mean change after - before of the return frames' scores against the truth (`pictures`' model, what gate 3 reads)
    over the runs, its standard error and how many went up (`scoring.change_stats`), and per run the PSNR change.
    One rollout per run: read a change against its standard error."""
    def runs(report: dict) -> dict:
        return {(r["map"], r["script"], r["seed"], r["policy"]): r["pictures"]["model"] for r in report["rows"]}

    a, b = runs(before), runs(after)
    check_same_runs(a, b, "--maps, --scripts, --policies and --seed")
    out: dict[str, Any] = {"runs": len(a)}
    for policy in dict.fromkeys(k[3] for k in a):
        keys = [k for k in a if k[3] == policy]
        out[policy] = {m: change_stats(np.array([b[k][m] - a[k][m] for k in keys]))
                       for m in ("psnr", "ssim", "sharpness", "brightness")}
        out[policy]["by_run"] = {f"{k[0]} {k[1]}": round(b[k]["psnr"] - a[k]["psnr"], 3) for k in keys}
    return out


def _revisit_figures(summary, curves, strips, names, policies, first_returns, fps_step) -> dict:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..viz import frame_grid

    bp = summary["by_policy"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR (dB)", "SSIM"))
    for k, color in (("return_vs_truth", "#1f77b4"), ("vs_first_visit", "#ff7f0e"), ("vs_first_visit_far", "#d62728"),
                     ("truth_vs_first_visit", "#aaaaaa")):
        for col, q in ((1, "psnr"), (2, "ssim")):
            fig.add_bar(x=policies, y=[bp[p][k][q] for p in policies], name=k, marker_color=color,
                        showlegend=col == 1, legendgroup=k, row=1, col=col)
    fig.update_layout(title="Revisits by memory policy (same maps, starts, scripts, seeds)", barmode="group", height=420)
    figs = {"revisit_policies": fig, "revisit_pictures": pictures_bar_figure(
        summary["pictures"], "Return frames against truth by policy, beside the frozen start and tokenizer ceiling")}
    curve = go.Figure()
    for (name, policy), y in curves.items():
        curve.add_scatter(y=np.minimum(y, 60.0), mode="lines", name=f"{name} / {policy}", legendgroup=name,
                          visible=True if name == names[0] else "legendonly")
    for name in names:
        curve.add_vline(x=first_returns[name], line_dash="dot", annotation_text=f"{name}: return", opacity=0.4)
    curve.update_layout(title="PSNR against the engine's truth, frame by frame (first map)", xaxis_title="frame",
                        yaxis_title="PSNR (dB)", height=420)
    figs["revisit_psnr_curves"] = curve
    name = names[0]
    if (name, "truth") in strips:
        idx = list(range(0, len(strips[(name, "truth")]), fps_step))
        labels = ["truth", "tokenizer ceiling"] + [p for p in policies if (name, p) in strips]
        rows = [strips[(name, lab)][idx] for lab in labels]
        grid = np.concatenate(rows)
        titles = [f"{lab} t={t}" for lab in labels for t in idx]
        title = f"{name}: truth, tokenizer ceiling and each policy (rows), one frame per step"
        figs["revisit_frames"] = frame_grid(grid, cols=len(idx), titles=titles, title=title)
    return figs

