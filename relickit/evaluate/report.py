"""Reports: JSON-safe numbers, the files a suite writes, and the picture-statistics figures every suite shares."""
from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..checkpoint import atomic_write
from .scoring import COLLAPSE_SHARPNESS

# one colour per scored video, the same in every figure
COLOURS = {"model": "#1f77b4", "frozen_start": "#aaaaaa", "tokenizer_ceiling": "#2ca02c"}
LABELS = {"model": "model", "frozen_start": "frozen start frame", "tokenizer_ceiling": "tokenizer ceiling",
          "teacher_one_step": "teacher, 1 step", "teacher_from_truth": "teacher from truth"}


def clean(obj: Any, digits: int = 6) -> Any:
    """JSON-safe and stable: floats rounded to `digits` significant decimals, inf/nan as strings."""
    if isinstance(obj, dict):
        return {str(k): clean(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v, digits) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist(), digits)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return float(f"{x:.{digits}g}")
    if isinstance(obj, torch.Tensor):
        return clean(obj.tolist(), digits)
    return obj


def picture_blocks(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every `compare` result inside a report's summary, with its path ("pictures/compressed", ...)."""
    if isinstance(obj, Mapping):
        if "model" in obj and "frozen_start" in obj and isinstance(obj["model"], Mapping):
            yield "/".join(path), obj
            return
        for k, v in obj.items():
            if k != "per_second":
                yield from picture_blocks(v, (*path, str(k)))


def collapse_flags(summary: Mapping[str, Any]) -> list[str]:
    """'collapsing: <path> (sharpness ratio x)' for every summary block whose model is flagged collapsing."""
    return [f"collapsing: {path} (sharpness ratio {block['model']['sharpness']:.3g} < {COLLAPSE_SHARPNESS})"
            for path, block in picture_blocks(summary) if block["model"]["collapsing"]]


def headline(path: str, block: Mapping[str, Any]) -> str:
    """One line: the model against truth beside its references (numbers as written in a cleaned report)."""
    m, f, c = block["model"], block["frozen_start"], block["tokenizer_ceiling"]

    def num(x, unit=""):
        return f"{float(x):.3g}{unit}"

    flag = "  COLLAPSING" if m["collapsing"] else ""
    return (f"{path}: model {num(m['psnr'], ' dB')} (sharpness {num(m['sharpness'])}, brightness "
            f"{num(m['brightness'])}) | frozen start {num(f['psnr'], ' dB')} | tokenizer ceiling "
            f"{num(c['psnr'], ' dB')} | gain over frozen {num(block['gain_over_frozen_db'], ' dB')}{flag}")


def progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled)


def dumps_report(obj: Any, depth: int = 0) -> str:
    """JSON with sorted keys, one key per line and every list on one line: the reports' per-frame and per-clip
    arrays are most of their bytes, and an indented list spends more on its whitespace than on its numbers."""
    if not isinstance(obj, dict) or not obj:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    pad = " " * (depth + 1)
    items = [f"{pad}{json.dumps(str(k))}: {dumps_report(v, depth + 1)}" for k, v in sorted(obj.items())]
    return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """`obj` as dumps_report writes it, atomically (a crash never leaves half a report)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(dumps_report(obj) + "\n"))


def read_json(path: str | os.PathLike) -> Any:
    """A report written by write_json, or the same gzipped (`X.json.gz`: how docs/runs keeps its large reports). A
    `.json` path that is not there is read from `.json.gz` beside it, so the commands the docs name keep working."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def write_report(report: dict, figs: Mapping[str, Any], out_dir: str | os.PathLike, name: str = "report.json") -> Path:
    """report.json (write_json) and one HTML file per figure (plotly.js written once beside)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = write_json(out / name, report)
    stem = Path(name).stem
    for fig_name, fig in figs.items():
        fig.write_html(out / f"{stem}_{fig_name}.html", include_plotlyjs="directory", full_html=True)
    return path


def pictures_over_time_figure(curves: Mapping[str, Mapping[str, Mapping[str, Any]]], title: str,
                              x_title: str = "second of video"):
    """PSNR, sharpness ratio, brightness ratio and the model's colour shift over time, for the model and its
    references. curves: {run label: {video name: picture_summary with "per_second"}}; one run visible at a time
    (click the legend for the others). The dotted line at COLLAPSE_SHARPNESS marks collapse."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=("PSNR against truth (dB)", "sharpness ratio (generated / truth)",
                                                        "brightness ratio (generated / truth)",
                                                        "model colour shift (levels, generated - truth)"))
    first = next(iter(curves), None)
    for run, videos in curves.items():
        vis = True if run == first else "legendonly"
        for name, summary in videos.items():
            ps = summary["per_second"]
            x = np.arange(len(ps["psnr"]))
            kw = dict(mode="lines+markers", legendgroup=f"{run}/{name}", visible=vis,
                      line=dict(color=COLOURS.get(name), dash="solid" if name == "model" else "dash"))
            for i, (key, row, col) in enumerate((("psnr", 1, 1), ("sharpness", 1, 2), ("brightness", 2, 1))):
                fig.add_scatter(x=x, y=np.minimum(ps[key], 60.0) if key == "psnr" else ps[key],
                                name=f"{run}: {LABELS.get(name, name)}", showlegend=i == 0, row=row, col=col, **kw)
            if name == "model":
                shift = np.asarray(ps["colour_shift"], dtype=np.float64).reshape(len(x), 3)
                for c, colour in enumerate(("red", "green", "blue")):
                    fig.add_scatter(x=x, y=shift[:, c], mode="lines", name=f"{run}: {colour} shift",
                                    legendgroup=f"{run}/{name}", visible=vis, showlegend=False,
                                    line=dict(color=colour), row=2, col=2)
    fig.add_hline(y=COLLAPSE_SHARPNESS, line_dash="dot", annotation_text="collapsing", row=1, col=2)
    fig.add_hline(y=1.0, line_dash="dot", opacity=0.4, row=1, col=2)
    fig.add_hline(y=1.0, line_dash="dot", opacity=0.4, row=2, col=1)
    fig.add_hline(y=0.0, line_dash="dot", opacity=0.4, row=2, col=2)
    fig.update_xaxes(title_text=x_title)
    fig.update_layout(title=title, height=640)
    return fig


def pictures_bar_figure(groups: Mapping[str, Mapping[str, Mapping[str, Any]]], title: str):
    """Bars per group (a policy, a script): PSNR of the model and its references, and the model's sharpness and
    brightness ratios. groups: {group: {video name: picture summary}}."""
    from plotly.subplots import make_subplots

    names = list(groups)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR against truth (dB)", "model picture ratios"))
    videos = [v for v, summary in next(iter(groups.values()), {}).items() if isinstance(summary, Mapping)]
    for v in videos:
        fig.add_bar(x=names, y=[min(groups[g][v]["psnr"], 60.0) for g in names], name=LABELS.get(v, v),
                    marker_color=COLOURS.get(v), row=1, col=1)
    for key, colour in (("sharpness", "#9467bd"), ("brightness", "#ff7f0e")):
        fig.add_bar(x=names, y=[groups[g]["model"][key] for g in names], name=f"model {key} ratio",
                    marker_color=colour, row=1, col=2)
    fig.add_hline(y=COLLAPSE_SHARPNESS, line_dash="dot", annotation_text="collapsing", row=1, col=2)
    fig.add_hline(y=1.0, line_dash="dot", opacity=0.4, row=1, col=2)
    fig.update_layout(title=title, barmode="group", height=420)
    return fig
