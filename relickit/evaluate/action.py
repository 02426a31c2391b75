"""Suite `action`: does the camera move as commanded?

11 scripted action sequences (as the paper's 11) per map. The generated frames go through the pose estimator
(relickit.posenet, the stand-in for ViPE) and the recovered path is scored against the COMMANDED path (the actions
integrated by relickit.controls) with Sim(3)-aligned RPE-trans (step units) / RPE-rot (degrees). Beside it: the
floor (the estimator on the engine's TRUE frames of the same script, against the command), the estimator's own
error (true frames against true poses), the frozen start frame through the estimator, and the frames themselves
against the truth beside the frozen start and the tokenizer ceiling.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ..controls import ACTIONS
from ..metrics import rpe
from .engine import starts
from .report import pictures_bar_figure
from .report import progress as progress_bar
from .scoring import (PSNR_CAP, change_stats, check_same_runs, compare, mean, mean_pictures, over_floor,
                      play_with_references)
from .scripts import EngineActions, action_scripts, commanded_poses, select_scripts
from .sessions import SessionFactory, session_geometry


def suite_action(factory: SessionFactory, maps, seed: int = 0, seconds: float = 4.0, policy: str = "compressed",
                 posenet: Any = None, scripts: Sequence[str] | None = None, tries: int = 30,
                 engine: EngineActions = EngineActions(), progress: bool = True) -> tuple[dict, dict]:
    from ..dataset import caption

    if posenet is None:
        raise ValueError("the action suite needs a pose estimator: pass posenet=PoseNet.load(path) "
                         "(train one with `python -m relickit.posenet`).")
    probe = factory(policy, seed)
    _, _, fps_step, fps, controls = session_geometry(probe)
    steps = max(1, round(seconds * fps / fps_step))
    all_scripts = select_scripts(action_scripts(fps_step, steps), scripts, "action")
    names = list(all_scripts)
    rows, examples = [], {}
    bar = progress_bar(len(maps) * len(names), "action", progress)
    for mi, m, name, script, run_seed, start in starts(maps, all_scripts, probe, seed, tries, engine):
        truth = start.truth.frames
        run, refs = play_with_references(factory, policy, run_seed, caption(m), script, truth)
        n = min(len(run.frames), len(truth))
        cr, cp = commanded_poses(script, fps_step, controls)
        er, ep = _recover(posenet, run.frames[:n])
        tr, tp = _recover(posenet, truth[:n])
        gen = rpe(er, ep, cr[:n], cp[:n])
        still = rpe(*_recover(posenet, refs["frozen_start"][:n]), cr[:n], cp[:n])
        est_truth_cmd = rpe(tr, tp, cr[:n], cp[:n])
        est_truth_true = rpe(tr, tp, start.truth.rotations[:n], start.truth.positions[:n])
        engine_cmd = rpe(start.truth.rotations[:n], start.truth.positions[:n], cr[:n], cp[:n])
        rows.append({"map": m, "script": name, "seed": run_seed, "frames": n,
                     "blocked_frames": start.blocked_frames,
                     "rpe_trans": gen["trans"], "rpe_rot": gen["rot"], "scale": gen["scale"],
                     "floor_trans": est_truth_cmd["trans"], "floor_rot": est_truth_cmd["rot"],
                     "estimator_trans_world": est_truth_true["trans"], "estimator_rot": est_truth_true["rot"],
                     "engine_vs_command_trans": engine_cmd["trans"], "engine_vs_command_rot": engine_cmd["rot"],
                     "frozen_trans": still["trans"], "frozen_rot": still["rot"],
                     "pictures": compare({"model": run.frames, **refs}, truth)})
        if mi == 0:
            examples[name] = {"commanded": cp[:n].numpy(), "generated": _aligned(ep, cp[:n]),
                              "truth_estimated": _aligned(tp, cp[:n])}
        bar.update()
    bar.close()
    keys = ["rpe_trans", "rpe_rot", "floor_trans", "floor_rot", "frozen_trans", "frozen_rot", "estimator_trans_world",
            "estimator_rot", "engine_vs_command_trans", "engine_vs_command_rot"]

    def agg(sel: list[dict]) -> dict:
        return {**{k: mean(r[k] for r in sel) for k in keys}, "pictures": mean_pictures(r["pictures"] for r in sel)}

    moving = [r["pictures"] for r in rows if r["pictures"]["frozen_start"]["psnr"] < PSNR_CAP]
    summary = {"overall": {**agg(rows), "pictures": mean_pictures(moving)},
               "by_script": {n: agg([r for r in rows if r["script"] == n]) for n in names}}
    report = {"settings": {"seconds": seconds, "steps_per_script": steps, "policy": policy, "scripts":
                           [all_scripts[n].to_json() for n in names], "posenet": dataclasses.asdict(posenet.cfg)},
              "rows": rows, "summary": summary,
              "units": {"rpe_trans": "commanded step lengths per frame, after Sim(3) alignment",
                        "rpe_rot": "degrees per frame", "estimator_trans_world": "Doom world units per frame"},
              "notes": ["rpe_*: generated frames -> posenet -> path vs the commanded path.",
                        "floor_*: the estimator on the engine's TRUE frames of the same script vs the commanded "
                        "path: what a perfect generator would score through this estimator (includes Doom's momentum).",
                        "estimator_*: the estimator on true frames vs the engine's true poses (its own error).",
                        "frozen_*: the estimator on the start frame repeated (a still photo) vs the commanded path: "
                        "what ignoring the keys scores.",
                        "pictures: generated frames 1.. against the engine's truth, beside the frozen start frame and "
                        "the tokenizer ceiling (relickit.evaluate.scoring); the overall pictures leave out runs whose "
                        f"truth never moves (static: the frozen start frame is the truth, {PSNR_CAP:g} dB).",
                        "pan/tilt-only scripts have no commanded translation: Sim(3) scales the estimate to 0, "
                        "so their rpe_trans is 0 by construction."]}
    return report, _action_figures(summary, examples)


TRANSLATIONS = ACTIONS[:ACTIONS.index("tilt_up")]  # the actions that move the camera (the rest turn it or hold)


def paired_change(before: dict, after: dict) -> dict:
    """Two action-suite reports on the same runs (same maps, scripts and seed) side by side: per RPE the mean change
    after - before over the runs, its standard error and how many went up (`scoring.change_stats`; a rise is a
    worse following). RPE-trans counts only the runs whose script translates (a pan's is 0 by construction), and
    the floor ratios (RPE over the estimator floor, as gate 4 reads them) come with it. One rollout per run moves
    a model's mean by a few hundredths between two equal models: read a change against its standard error."""
    def runs(report: dict) -> dict:
        return {(r["map"], r["script"], r["seed"]): r for r in report["rows"]}

    a, b = runs(before), runs(after)
    check_same_runs(a, b, "--maps, --scripts, --seconds and --seed")
    moving = {s["name"] for s in after["settings"]["scripts"]
              if any(m for step in s["steps"] for name, m in step.items() if name in TRANSLATIONS)}
    out: dict[str, Any] = {"runs": len(a), "translating_runs": sum(k[1] in moving for k in a)}
    for kind, keys in (("rot", list(a)), ("trans", [k for k in a if k[1] in moving])):
        out[f"rpe_{kind}"] = change_stats(np.array([b[k][f"rpe_{kind}"] - a[k][f"rpe_{kind}"] for k in keys]))
        out[f"rpe_{kind}_over_floor"] = {
            name: over_floor(mean(r[f"rpe_{kind}"] for r in rows), mean(r[f"floor_{kind}"] for r in rows))
            for name, rows in (("before", [a[k] for k in keys]), ("after", [b[k] for k in keys]))}
    return out


def _recover(posenet, frames):
    from ..posenet import recover_trajectory

    return recover_trajectory(posenet, frames)


def _aligned(est_pos, ref_pos) -> np.ndarray:
    from ..metrics import umeyama

    s, r, t = umeyama(est_pos, ref_pos)
    return (s * (r @ np.asarray(est_pos, dtype=np.float64).T)).T + t


def _action_figures(summary: dict, examples: dict) -> dict:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(summary["by_script"])
    bs = summary["by_script"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RPE-trans (step units / frame)", "RPE-rot (deg / frame)"))
    for col, (k, f) in enumerate((("rpe_trans", "floor_trans"), ("rpe_rot", "floor_rot")), start=1):
        fig.add_bar(x=names, y=[bs[n][k] for n in names], name="generated" if col == 1 else None,
                    marker_color="#1f77b4", showlegend=col == 1, row=1, col=col)
        fig.add_bar(x=names, y=[bs[n][f] for n in names], name="floor (estimator on engine truth)" if col == 1 else None,
                    marker_color="#aaaaaa", showlegend=col == 1, row=1, col=col)
        fig.add_bar(x=names, y=[bs[n][k.replace("rpe", "frozen")] for n in names], marker_color="#dddddd",
                    name="frozen start frame" if col == 1 else None, showlegend=col == 1, row=1, col=col)
    fig.update_layout(title="Action following: Sim(3)-aligned RPE vs the commanded path", barmode="group", height=420)
    traj = go.Figure()
    for name, ex in examples.items():
        for key, dash in (("commanded", "solid"), ("generated", "dot"), ("truth_estimated", "dash")):
            p = ex[key]
            traj.add_scatter(x=p[:, 0], y=p[:, 2], mode="lines", name=f"{name}: {key}", line=dict(dash=dash),
                             legendgroup=name, visible=True if name == next(iter(examples)) else "legendonly")
    traj.update_layout(title="Top-down paths (x right, z forward; step units), Sim(3)-aligned to the command",
                       xaxis_title="x", yaxis_title="z", yaxis_scaleanchor="x", height=520)
    pictures = pictures_bar_figure({n: bs[n]["pictures"] for n in names},
                                   "Action scripts: frames against truth, beside the frozen start and tokenizer ceiling")
    return {"action_rpe": fig, "action_paths": traj, "action_pictures": pictures}

