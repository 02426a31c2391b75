"""Scoring frames against the engine's truth, always beside two trivial references.

PSNR rewards blur: a grey, mean-like frame scores as well as a mediocre model (RELIC.md section 4), so a PSNR
alone proves nothing. Every suite that scores frames scores, on exactly the same frames:
  - `model`: what the session generated;
  - `frozen_start`: the start image repeated (a still photo: what a model ignoring the keys and the world shows).
    The model's headline number is its gain over it, `gain_over_frozen_db`;
  - `tokenizer_ceiling`: the truth encoded by the tokenizer and decoded by the play decoder (the best pictures the
    model can show, whatever the world model does); `to_ceiling_db` is how far below it the model is.
Beside each PSNR/SSIM go the picture statistics against the truth (relickit.metrics.picture_stats): sharpness ratio
(mean absolute image gradient, generated / truth), edge error (how far the pixel differences are from the truth's,
relative: a blur ~1, speckle or texture out of place > 1; read beside sharpness, which counts speckle as detail),
brightness ratio (mean intensity), saturation ratio (mean chroma) and per-channel colour shift (generated - truth,
levels 0-255). A video whose sharpness ratio is under COLLAPSE_SHARPNESS is `collapsing`.
"""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import per_second, picture_stats, psnr_frames, ssim_frames
from .scripts import Script
from .sessions import Run, SessionFactory, run_script

COLLAPSE_SHARPNESS = 0.5  # under this sharpness ratio a video has lost half the truth's edges: flagged collapsing
# Identical frames have an infinite PSNR; summaries count them as PSNR_CAP dB so that means stay finite. Two uint8
# frames of H x W x 3 that differ at all score at most 10 log10(255^2 * 3HW) dB (93.8 dB at 96x128): only
# identical frames are capped.
PSNR_CAP = 100.0
REFERENCES: tuple[str, ...] = ("frozen_start", "tokenizer_ceiling")
SCALARS: tuple[str, ...] = ("psnr", "ssim", "sharpness", "edge_error", "brightness", "saturation")


# ---------------------------------------------------------------------------------------------------------------
# the references
# ---------------------------------------------------------------------------------------------------------------
def frozen_start(truth: np.ndarray) -> np.ndarray:
    """The truth's first frame (the start image the session was given) repeated: (T, H, W, 3) uint8."""
    return np.repeat(truth[:1], len(truth), 0)


@torch.no_grad()
def thumbnail(truth: np.ndarray, factor: int) -> np.ndarray:
    """The truth (..., H, W, 3) uint8 through a picture `factor` times smaller: f x f blocks averaged, then bicubic
    back to full size. What a decoder holding that many pixels' worth of information reaches by regression: a
    tokenizer's picture scores read against it (a 4x thumbnail holds 3 values per 16 pixels; f4c16, 16 per 16 pixels
    and 4 frames)."""
    if truth.shape[-3] % factor or truth.shape[-2] % factor:
        raise ValueError(f"frames of {truth.shape[-3]}x{truth.shape[-2]} do not split into {factor}x{factor} blocks.")
    x = torch.from_numpy(truth.reshape(-1, *truth.shape[-3:])).permute(0, 3, 1, 2).float()
    x = F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="bicubic", align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).reshape(truth.shape).numpy()


@torch.no_grad()
def tokenizer_ceiling(tokenizer: Any, truth: np.ndarray, decoder: str = "tiny", chunk_latents: int = 12) -> np.ndarray:
    """The truth (T, H, W, 3) uint8 encoded by `tokenizer` and decoded by its play decoder ("tiny" or "vae"),
    chunk by chunk through the causal caches (memory stays flat for long videos; equal to one-shot encode/decode).
    A truth whose length is not 1 + 4k is padded with its last frame for the encoder and cut back."""
    from ..play import to_uint8
    from ..vae import StreamingDecoder, StreamingEncoder

    if decoder not in ("tiny", "vae"):
        raise ValueError(f"decoder must be 'tiny' or 'vae', got {decoder!r}.")
    step = tokenizer.cfg.temporal_down
    n = len(truth)
    video = np.concatenate([truth, np.repeat(truth[-1:], (1 - n) % step, 0)])
    enc, dec = StreamingEncoder(tokenizer), StreamingDecoder(tokenizer, tiny=decoder == "tiny")
    edges = [0, *range(1 + chunk_latents * step, len(video), chunk_latents * step), len(video)]
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        x = torch.from_numpy(video[a:b]).to(tokenizer.device).permute(3, 0, 1, 2)[None]
        x = x.to(tokenizer.dtype) / 127.5 - 1
        out.append(to_uint8(dec(enc(x))[0].float()))
    return np.concatenate(out)[:n]


def references(session: Any, truth: np.ndarray) -> dict[str, np.ndarray]:
    """The frozen start and the tokenizer ceiling of a truth video, through the session's tokenizer and decoder.
    A session without a tokenizer (an oracle playing pixels, relickit.evaluate.oracle) reconstructs perfectly."""
    tok = getattr(session, "tokenizer", None)
    ceiling = truth.copy() if tok is None else tokenizer_ceiling(tok, truth, getattr(session, "decoder", "tiny"))
    return {"frozen_start": frozen_start(truth), "tokenizer_ceiling": ceiling}


def play_with_references(factory: SessionFactory, policy: str, seed: int, text: str, script: Script,
                         truth: np.ndarray, refs: dict[str, np.ndarray] | None = None) -> tuple[Run, dict[str, np.ndarray]]:
    """(Run, references): `script` played from the truth's first frame on a fresh session factory(policy, seed),
    and the references of the truth through that session's tokenizer (unless `refs` are given: they do not
    depend on the policy)."""
    session = factory(policy, seed)
    run = run_script(session, truth[0], text, script, truth)
    return run, (refs if refs is not None else references(session, truth))


# ---------------------------------------------------------------------------------------------------------------
# picture scores of one video
# ---------------------------------------------------------------------------------------------------------------
def picture_frames(video: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame against the truth: psnr (dB), ssim, sharpness and brightness ratios (T,), colour_shift (T, 3)."""
    return {"psnr": psnr_frames(video, truth), "ssim": ssim_frames(video, truth), **picture_stats(video, truth)}


def _nanmean(x: np.ndarray, axis: int | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        return np.nanmean(x, axis)


def picture_summary(per_frame: Mapping[str, np.ndarray], fps: float | None = None) -> dict[str, Any]:
    """Means over the frames (PSNR too: the mean of per-frame dB, as every suite reports it, identical frames
    counted as PSNR_CAP), the collapsing flag, and with `fps` the same per second of video (frame k of the scored
    span in second floor(k / fps))."""
    per_frame = {**per_frame, "psnr": np.minimum(per_frame["psnr"], PSNR_CAP)}
    out: dict[str, Any] = {k: float(_nanmean(per_frame[k])) for k in SCALARS}
    out["colour_shift"] = _nanmean(per_frame["colour_shift"], 0).tolist()
    out["collapsing"] = bool(out["sharpness"] < COLLAPSE_SHARPNESS)
    out["frames"] = int(len(per_frame["psnr"]))
    if fps is not None:
        out["per_second"] = {k: per_second(per_frame[k], fps).tolist() for k in (*SCALARS, "colour_shift")}
    return out


def collapse_second(per_second_sharpness: Sequence[float]) -> int | None:
    """The first second whose sharpness ratio is under COLLAPSE_SHARPNESS (None when none is)."""
    low = [k for k, s in enumerate(per_second_sharpness) if s < COLLAPSE_SHARPNESS]
    return low[0] if low else None


def gains(pictures: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The model's PSNR gain over the frozen start and its distance to the tokenizer ceiling (dB)."""
    model = pictures["model"]["psnr"]
    return {"gain_over_frozen_db": model - pictures["frozen_start"]["psnr"],
            "to_ceiling_db": pictures["tokenizer_ceiling"]["psnr"] - model}


def compare(videos: Mapping[str, np.ndarray], truth: np.ndarray, start: int = 1, stop: int | None = None,
            fps: float | None = None) -> dict[str, Any]:
    """Score each video ({"model": ..., **references(...)}) on the truth's frames [start, stop) (default: from the
    first generated frame to the end of the shorter one): {name: picture_summary, gain_over_frozen_db, to_ceiling_db}.
    Frame 0 is left out by default: the session's frame 0 is the tokenizer's copy of the start image, not generated."""
    stop = min([len(truth), *(len(v) for v in videos.values())] + ([stop] if stop is not None else []))
    if stop <= start:
        raise ValueError(f"nothing to score: frames [{start}, {stop}) of videos of {len(truth)} truth frames.")
    out: dict[str, Any] = {name: picture_summary(picture_frames(v[start:stop], truth[start:stop]), fps)
                           for name, v in videos.items()}
    if "model" in out and all(r in out for r in REFERENCES):
        out.update(gains(out))
    return out


def draw_spread(draws: Sequence[np.ndarray], truth: np.ndarray, fps: float, start: int = 1) -> dict[str, Any]:
    """How far apart a model's clips from independent noise are, beside how far they are from the truth: per second,
    the mean PSNR of each draw to `truth` and of every pair of draws to each other, and `gap_db`, the second minus the
    first over all frames [start, ..). For a model that samples the distribution the truth comes from, the truth is
    one more draw and the gap is about 0: PSNR to the truth cannot tell a sample from a blur, this can. A positive gap
    is under-dispersion (the draws agree on one guess; a blur whatever the noise is its limit), a negative one
    over-dispersion (noise handed back). Give the truth through the draws' tokenizer (its ceiling clip), so that the
    decoder's smoothing is on both sides. Identical frames count as PSNR_CAP."""
    if len(draws) < 2:
        raise ValueError(f"draw_spread needs two draws or more; got {len(draws)}.")
    capped = lambda a, b: np.minimum(psnr_frames(a[start:], b[start:]), PSNR_CAP)  # noqa: E731
    to_truth = np.mean([capped(d, truth) for d in draws], 0)
    to_each_other = np.mean([capped(a, b) for a, b in itertools.combinations(draws, 2)], 0)
    return {"to_truth": per_second(to_truth, fps).tolist(), "to_each_other": per_second(to_each_other, fps).tolist(),
            "gap_db": float(to_each_other.mean() - to_truth.mean())}


# ---------------------------------------------------------------------------------------------------------------
# aggregates over rows
# ---------------------------------------------------------------------------------------------------------------
def change_stats(change: np.ndarray) -> dict[str, Any]:
    """Per-clip changes of a metric between two evaluations of the same clips -> their mean, its standard error
    (their standard deviation over sqrt(clips)) and how many went up. A mean within about two standard errors of 0
    is the clips' noise, not the model."""
    stderr = change.std(ddof=1) / np.sqrt(len(change)) if len(change) > 1 else float("nan")
    return {"mean": float(change.mean()), "stderr": float(stderr), "up": int((change > 0).sum())}


def check_same_runs(before: Mapping, after: Mapping, flags: str) -> None:
    """Two reports' runs, keyed by run, must be the same runs for a paired change; `flags` names the command-line
    options that must agree."""
    if not before or before.keys() != after.keys():
        raise ValueError(f"the reports must score the same runs (the same {flags}); they hold {len(before)} and "
                         f"{len(after)}, {len(before.keys() ^ after.keys())} not in both.")


def mean_pictures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean of `compare` results (one per row): every scalar and colour shift averaged over rows, collapsing
    re-judged on the mean sharpness, frames summed; per-second curves averaged second by second over the seconds
    that every row has."""
    rows = list(rows)
    if not rows:
        return {}
    out: dict[str, Any] = {}
    for name in rows[0]:
        vals = [r[name] for r in rows]
        if not isinstance(vals[0], Mapping):
            out[name] = mean(vals)
            continue
        out[name] = {k: mean(v[k] for v in vals) for k in SCALARS}
        out[name]["colour_shift"] = np.mean([v["colour_shift"] for v in vals], 0).tolist()
        out[name]["collapsing"] = bool(out[name]["sharpness"] < COLLAPSE_SHARPNESS)
        out[name]["frames"] = int(sum(v["frames"] for v in vals))
        if all("per_second" in v for v in vals):
            k = min(len(v["per_second"]["psnr"]) for v in vals)
            out[name]["per_second"] = {key: _nanmean(np.array([v["per_second"][key][:k] for v in vals], float), 0).tolist()
                                       for key in vals[0]["per_second"]}
    return out


def over_floor(rpe: float, floor: float) -> float:
    """RPE over the estimator's floor; NaN (a failed gate 4) where the scripts command nothing to measure (floor 0)."""
    return float(rpe) / float(floor) if float(floor) > 0 else math.nan


def mean(xs) -> float:
    """The mean of the numbers that are not None or NaN; NaN when none is left."""
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else math.nan
