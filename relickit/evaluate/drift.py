"""Suite `drift`: does the picture hold up over 20 s and 2 min of play?

Per-second PSNR/SSIM against the engine's truth over a seeded random script that stays near its start; the
least-squares slope per second is the drift. Beside the model, on the same frames and per second: the frozen start
frame and the tokenizer ceiling, and the picture statistics (sharpness, brightness, colour shift), so that a model
fading into a blur is seen as one (`collapse_second`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..doom import DoomConfig, DoomEnv
from ..metrics import drift_slope
from .engine import find_start
from .report import pictures_over_time_figure
from .report import progress as progress_bar
from .scoring import (COLLAPSE_SHARPNESS, REFERENCES, collapse_second, compare, mean, mean_pictures,
                      play_with_references)
from .scripts import EngineActions, drift_script
from .sessions import SessionFactory, session_geometry


def suite_drift(factory: SessionFactory, maps, seed: int = 0, durations: Sequence[float] = (20.0, 120.0),
                policies: Sequence[str] = ("compressed",), tries: int = 30, engine: EngineActions = EngineActions(),
                progress: bool = True) -> tuple[dict, dict]:
    from ..dataset import caption

    probe = factory(policies[0], seed)
    h, w, fps_step, fps, controls = session_geometry(probe)
    rows, curves, over_time = [], {}, {}
    bar = progress_bar(len(maps) * len(durations) * len(policies), "drift", progress)
    for mi, (wad, m) in enumerate(maps):
        doom = DoomConfig(wad=wad, map=m, height=h, width=w)
        with DoomEnv(doom) as env:
            for di, seconds in enumerate(durations):
                steps = max(1, math.ceil(seconds * fps / fps_step))
                run_seed = seed + 1000 * mi + di
                script = drift_script(steps, run_seed, fps_step)
                start = find_start(doom, engine.script(script, fps_step, doom, controls), run_seed, tries, env)
                truth, refs = start.truth.frames, None
                for policy in policies:
                    run, refs = play_with_references(factory, policy, run_seed, caption(m), script, truth, refs)
                    n = min(len(run.frames), len(truth))
                    pictures = compare({"model": run.frames, **refs}, truth, 1, n, fps)
                    model = pictures["model"]["per_second"]
                    whole = int((n - 1) // fps)  # complete seconds: a last, partial second is left out
                    ps, ss = np.array(model["psnr"][:max(1, whole)]), np.array(model["ssim"][:max(1, whole)])
                    rows.append({"map": m, "seconds": seconds, "policy": policy, "seed": run_seed, "frames": n,
                                 "blocked_frames": start.blocked_frames, "psnr_per_second": ps, "ssim_per_second": ss,
                                 "psnr_slope": drift_slope(ps), "ssim_slope": drift_slope(ss),
                                 "psnr_first_s": float(ps[0]), "psnr_last_s": float(ps[-1]),
                                 "ssim_first_s": float(ss[0]), "ssim_last_s": float(ss[-1]),
                                 "collapse_second": collapse_second(model["sharpness"]),
                                 "pictures": pictures, "script": script.to_json()})
                    curves[(m, seconds, policy)] = (ps, ss)
                    over_time[f"{m} {int(seconds)}s {policy}"] = {k: pictures[k] for k in ("model", *REFERENCES)}
                    bar.update()
    bar.close()
    keys = ("psnr_slope", "ssim_slope", "psnr_first_s", "psnr_last_s", "ssim_first_s", "ssim_last_s")

    def agg(sel: list[dict]) -> dict:
        return {**{k: mean(r[k] for r in sel) for k in keys}, "pictures": mean_pictures([r["pictures"] for r in sel])}

    summary = {f"{int(d)}s": {p: agg([r for r in rows if r["seconds"] == d and r["policy"] == p]) for p in policies}
               for d in durations}
    report = {"settings": {"durations_s": list(durations), "policies": list(policies), "fps": fps},
              "rows": rows, "summary": summary,
              "units": {"psnr_slope": "dB per second", "ssim_slope": "SSIM per second"},
              "notes": ["per second: generated frame t (t >= 1) belongs to second floor((t - 1) / fps) at the "
                        "session's fps; the start frame (a reconstruction, not generated) and a last partial second "
                        "are left out.",
                        "scripts: seeded random pans, tilts and out-and-back walks that stay near the start.",
                        "pictures: the generated frames against the truth, beside the frozen start frame and the "
                        "tokenizer ceiling, over the whole run and per second; collapse_second is the first second "
                        f"whose sharpness ratio is under {COLLAPSE_SHARPNESS} (null: none)."]}
    figs = _drift_figures(curves)
    figs["drift_pictures"] = pictures_over_time_figure(
        over_time, "Picture statistics over time against the engine's truth (solid: model; dashed: references)")
    return report, figs


def _drift_figures(curves) -> dict:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR per second (dB)", "SSIM per second"))
    for (m, seconds, policy), (ps, ss) in curves.items():
        name = f"{m} {int(seconds)}s {policy}"
        for col, y in ((1, ps), (2, ss)):
            x = np.arange(len(y))
            fig.add_scatter(x=x, y=y, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                            row=1, col=col)
            slope = drift_slope(y)
            if np.isfinite(slope):
                fit = np.polyfit(x, y, 1) if len(y) > 1 else [0.0, float(y[0])]
                fig.add_scatter(x=x, y=np.polyval(fit, x), mode="lines", line=dict(dash="dot"),
                                name=f"{name} slope {slope:.3g}/s", legendgroup=name, showlegend=False, row=1, col=col)
    fig.update_layout(title="Long-horizon stability against the engine's truth (dotted: least-squares drift)",
                      xaxis_title="second", height=440)
    return {"drift": fig}
