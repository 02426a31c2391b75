"""Suite `speed`: end-to-end FPS (denoise + decode), denoise-only FPS, time to first frame, and KV tokens and bytes
over time, per memory policy, on whatever device the session runs on (the report names it)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..config import MEMORY_POLICIES
from ..doom import DoomConfig, DoomEnv
from .engine import find_start
from .report import progress as progress_bar
from .scripts import Script
from .sessions import SessionFactory, run_script, session_geometry


def suite_speed(factory: SessionFactory, maps, seed: int = 0, seconds: float = 20.0,
                policies: Sequence[str] = MEMORY_POLICIES, progress: bool = True) -> tuple[dict, dict]:
    from ..dataset import caption

    probe = factory(policies[0], seed)
    h, w, fps_step, fps, controls = session_geometry(probe)
    wad, m = maps[0]
    doom = DoomConfig(wad=wad, map=m, height=h, width=w)
    steps = max(2, math.ceil(seconds * fps / fps_step))
    script = Script("pan_right", ((("pan_right", 0.5),),) * steps)
    with DoomEnv(doom) as env:
        start = find_start(doom, [{"pan_right": 0.5}], seed, 5, env)
    image = start.truth.frames[0]
    rows, series = [], {}
    device = str(next(probe.model.parameters(), torch.empty(0)).device)  # an oracle has no weights: cpu
    bar = progress_bar(len(policies), "speed", progress)
    for policy in policies:
        run = run_script(factory(policy, seed), image, caption(m), script, start.truth.frames)  # for oracles
        step_s, dec_s = np.array(run.step_s), np.array(run.decode_s)
        den_s = step_s - np.nan_to_num(dec_s)
        steady = slice(1, None) if len(step_s) > 1 else slice(None)
        rows.append({
            "policy": policy, "steps": len(step_s), "frames": int(len(step_s) * fps_step),
            "end_to_end_fps": float(fps_step * len(step_s) / step_s.sum()),
            "end_to_end_fps_steady": float(fps_step / np.median(step_s[steady])),
            "denoise_only_fps": float(fps_step * len(step_s) / den_s.sum()),
            "denoise_only_fps_steady": float(fps_step / np.median(den_s[steady])),
            "decode_ms_per_frame": float(np.nanmedian(dec_s) / fps_step * 1000) if np.isfinite(dec_s).any() else math.nan,
            "reset_s": run.reset_s, "time_to_first_frame_s": run.reset_s + float(step_s[0]),
            "kv_tokens_final": run.stats[-1]["total_tokens"], "kv_bytes_final": run.stats[-1]["bytes"],
            "realtime": bool(fps_step / np.median(step_s[steady]) >= fps),
        })
        series[policy] = {"t_s": [i * fps_step / fps for i in range(len(run.stats))],
                          "tokens": [s["total_tokens"] for s in run.stats], "bytes": [s["bytes"] for s in run.stats],
                          "step_s": run.step_s}
        bar.update()
    bar.close()
    report = {"settings": {"seconds": seconds, "steps": steps, "policies": list(policies), "device": device,
                           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "fps_target": fps},
              "rows": rows, "series": series,
              "notes": ["end_to_end: denoise (4 steps + context pass) + decode, per generated frame; denoise_only "
                        "leaves the decoder out; _steady: median step after the first (warm-up).",
                        "time_to_first_frame: reset (encode image + commit) + the first step.",
                        "timings vary from run to run (shared CPU cores); tokens and bytes do not."]}
    return report, _speed_figures(rows, series)


def _speed_figures(rows, series) -> dict:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("KV tokens", "KV bytes (MB)", "FPS"))
    for policy, s in series.items():
        fig.add_scatter(x=s["t_s"], y=s["tokens"], name=policy, legendgroup=policy, row=1, col=1)
        fig.add_scatter(x=s["t_s"], y=np.array(s["bytes"]) / 1e6, name=policy, legendgroup=policy, showlegend=False,
                        row=1, col=2)
    pols = [r["policy"] for r in rows]
    fig.add_bar(x=pols, y=[r["end_to_end_fps_steady"] for r in rows], name="end-to-end", row=1, col=3)
    fig.add_bar(x=pols, y=[r["denoise_only_fps_steady"] for r in rows], name="denoise only", row=1, col=3)
    fig.update_xaxes(title_text="seconds of video", row=1, col=1)
    fig.update_xaxes(title_text="seconds of video", row=1, col=2)
    fig.update_layout(title="Speed and memory per policy", height=420, barmode="group")
    return {"speed": fig}
