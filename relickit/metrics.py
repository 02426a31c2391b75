"""Metrics for generated video and camera paths.

Images: PSNR and SSIM of uint8 video (T, H, W, 3), per frame (`psnr_frames`, `ssim_frames`) or averaged
(`psnr`, `ssim`). SSIM is Wang et al. 2004 with an 11x11 gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
data range 255, 'valid' filtering, computed per RGB channel and averaged over channels (as pytorch_msssim /
skimage with `gaussian_weights=True`). Identical frames give PSNR = inf and SSIM = 1.

Camera paths: poses follow relickit.controls (world-to-camera rotation R (T, 3, 3), camera centre P (T, 3)).
`umeyama` fits the similarity transform dst ~ s R src + t (Umeyama 1991). `rpe` is the paper's action-accuracy
metric (as ViPE / evo compute it): the estimated path is Sim(3)-aligned to the reference on the camera centres,
then the relative motion between consecutive frames is compared:
    translation error_i = || s * R_est_i (P_est_{i+1} - P_est_i) - R_ref_i (P_ref_{i+1} - P_ref_i) ||
        (the egocentric displacement; the alignment's rotation cancels, its scale s does not), in reference units;
    rotation error_i    = angle( dR_ref_i^T dR_est_i ), dR_i = R_{i+1} R_i^T, in degrees.
`drift_slope` is the least-squares slope of a per-second score (units per second).

Picture statistics (PSNR rewards blur: a grey mean frame scores like a mediocre model, so every PSNR needs these
beside it): `sharpness_frames` is the mean absolute image gradient (|dx| + |dy| over both axes, all channels, in
levels), `edge_error_frames` how far a video's pixel differences are from the truth's (relative: a blur ~1,
invented speckle > 1), `brightness_frames` the mean intensity; `picture_stats` compares a video with its truth per
frame: sharpness ratio, edge error, brightness ratio and per-channel colour shift (generated - truth, in levels).
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

# ---- images ------------------------------------------------------------------------------------------------
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


def _video(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a uint8 array (T, H, W, 3) or (H, W, 3), got {type(x).__name__}.")
    if x.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 (0-255), got {x.dtype}; convert with (img * 255).round().astype(np.uint8).")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be (T, H, W, 3) RGB, got shape {tuple(x.shape)}.")
    return x


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _video(a, "a"), _video(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"videos must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    return a, b


def psnr_frames(a, b) -> np.ndarray:
    """Per-frame PSNR in dB (T,) of two uint8 videos (T, H, W, 3); inf where frames are identical."""
    a, b = _pair(a, b)
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(255.0**2 / mse.numpy())).astype(np.float64)


@lru_cache(maxsize=None)
def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """(size,) float64 gaussian weights of standard deviation `sigma` (samples), summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@lru_cache(maxsize=None)
def _band(n: int) -> torch.Tensor:
    """(n, n - window + 1) matrix whose columns are the gaussian window at each 'valid' offset."""
    g = gaussian_window(SSIM_WINDOW, SSIM_SIGMA).float()
    m = torch.zeros(n, n - SSIM_WINDOW + 1)
    for j in range(n - SSIM_WINDOW + 1):
        m[j:j + SSIM_WINDOW, j] = g
    return m


def ssim_frames(a, b, batch: int = 32) -> np.ndarray:
    """Per-frame SSIM (T,) of two uint8 videos (T, H, W, 3): gaussian window, per channel, channel mean."""
    a, b = _pair(a, b)
    if min(a.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"frames of {a.shape[1]}x{a.shape[2]} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window.")
    c1, c2 = (SSIM_K[0] * 255) ** 2, (SSIM_K[1] * 255) ** 2
    out = []
    for s in range(0, a.shape[0], batch):
        x = a[s:s + batch].permute(0, 3, 1, 2).float()  # (n, 3, H, W)
        y = b[s:s + batch].permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        # the five local statistics of every channel in one separable 'valid' gaussian blur, as two matmuls
        maps = torch.stack([x, y, x * x, y * y, x * y], 2)  # (n, 3, 5, H, W)
        blurred = _band(h).T @ maps @ _band(w)
        mx, my, exx, eyy, exy = blurred.unbind(2)
        sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
        num = (2 * mx * my + c1) * (2 * sxy + c2)
        den = (mx * mx + my * my + c1) * (sxx + syy + c2)
        out.append((num / den).double().mean((1, 2, 3)))
    return torch.cat(out).numpy().astype(np.float64)


def psnr(a, b) -> float:
    """Mean per-frame PSNR (dB) of two uint8 videos; inf when every frame is identical."""
    return float(np.mean(psnr_frames(a, b)))


def ssim(a, b) -> float:
    """Mean per-frame SSIM of two uint8 videos; 1.0 for identical videos."""
    return float(np.mean(ssim_frames(a, b)))


def sharpness_frames(x) -> np.ndarray:
    """Per-frame edge energy (T,) of a uint8 video (T, H, W, 3): mean |horizontal| + mean |vertical| difference."""
    v = _video(x, "video").double()
    dx = (v[:, :, 1:] - v[:, :, :-1]).abs().flatten(1).mean(1)
    dy = (v[:, 1:] - v[:, :-1]).abs().flatten(1).mean(1)
    return (dx + dy).numpy()


def edge_error_frames(a, truth) -> np.ndarray:
    """Per-frame edge error (T,) of a uint8 video against its truth: mean |d(a) - d(truth)| over the horizontal and
    vertical pixel differences, over the truth's mean |d(truth)|. 0 for the truth itself, 1 for a flat picture,
    about 1 for a blur, under 1 for edges put where the truth has them, over 1 for edges it does not have there
    (speckle, or texture drawn out of place: independent texture of the truth's strength scores about 1.4). The
    sharpness ratio alone counts invented speckle as detail; for a reconstruction this tells them apart."""
    a, t = (v.double() for v in _pair(a, truth))
    err = sum((a.diff(dim=d) - t.diff(dim=d)).abs().flatten(1).mean(1) for d in (1, 2))
    return (err / sum(t.diff(dim=d).abs().flatten(1).mean(1) for d in (1, 2))).numpy()  # NaN / inf: a flat truth


def brightness_frames(x) -> np.ndarray:
    """Per-frame mean intensity (T,) of a uint8 video, in levels 0-255."""
    return _video(x, "video").double().flatten(1).mean(1).numpy()


def colour_frames(x) -> np.ndarray:
    """Per-frame mean of each RGB channel (T, 3), in levels 0-255."""
    return _video(x, "video").double().mean((1, 2)).numpy()


def saturation_frames(x) -> np.ndarray:
    """Per-frame mean chroma (T,) of a uint8 video: each pixel's largest minus smallest channel, in levels (0 for
    grey). A green wall decoded beige keeps its brightness and loses its chroma."""
    v = _video(x, "video").double()
    return (v.amax(-1) - v.amin(-1)).flatten(1).mean(1).numpy()


def picture_stats(generated, truth) -> dict[str, np.ndarray]:
    """Per-frame picture statistics of a video against its truth (both uint8 (T, H, W, 3)):
    "sharpness", "brightness" and "saturation" are ratios generated / truth (1 = as sharp / as bright / as
    colourful; a blur falls under 1 in sharpness, a washed-out picture in saturation), "edge_error" is
    edge_error_frames (a blur ~1; speckle the truth lacks, which the sharpness ratio counts as detail, > 1),
    "colour_shift" is (T, 3) mean generated - truth per channel in levels. A flat (or, for saturation, grey) truth
    frame gives a NaN ratio."""
    g, t = _pair(generated, truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"sharpness": sharpness_frames(g) / sharpness_frames(t), "edge_error": edge_error_frames(g, t),
                "brightness": brightness_frames(g) / brightness_frames(t),
                "saturation": saturation_frames(g) / saturation_frames(t),
                "colour_shift": colour_frames(g) - colour_frames(t)}


# ---- camera paths ----------------------------------------------------------------------------------------------
def _np(x, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 + len(shape_tail) or x.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return x


def umeyama(src, dst, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity transform with dst ~ scale * R @ src + t, for points src, dst (N, 3).

    Returns (scale, R (3, 3), t (3,)). When src does not spread (all points equal) the fit is only a translation
    (scale 1, R = I); when dst does not spread the scale is 0 (everything maps onto dst's centre).
    """
    src, dst = _np(src, (3,), "src"), _np(dst, (3,), "dst")
    if len(src) != len(dst) or len(src) < 1:
        raise ValueError(f"src and dst need the same number (>= 1) of points, got {len(src)} and {len(dst)}.")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum(1).mean()
    if var_s < 1e-12:
        return 1.0, np.eye(3), mu_d - mu_s
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1.0
    r = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s) / var_s) if with_scale else 1.0
    t = mu_d - scale * r @ mu_s
    return scale, r, t


def rotation_angle_deg(r) -> np.ndarray:
    """Rotation angle in degrees of rotation matrices (..., 3, 3)."""
    r = r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r, dtype=np.float64)
    cos = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def egocentric_steps(rotations, positions) -> tuple[np.ndarray, np.ndarray]:
    """Relative motion between consecutive frames: displacement in camera i's frame (N-1, 3) and dR (N-1, 3, 3)."""
    r, p = _np(rotations, (3, 3), "rotations"), _np(positions, (3,), "positions")
    d = np.einsum("nij,nj->ni", r[:-1], p[1:] - p[:-1])
    dr = r[1:] @ np.swapaxes(r[:-1], -1, -2)
    return d, dr


def rpe(est_rotations, est_positions, ref_rotations, ref_positions, align: bool = True) -> dict[str, float]:
    """Relative pose error between consecutive frames after Sim(3) alignment of est onto ref.

    Returns {"trans": mean translation error (reference units), "rot": mean rotation error (degrees),
    "trans_median", "rot_median", "scale": the alignment's scale, "frames": N}.
    """
    er, ep = _np(est_rotations, (3, 3), "est_rotations"), _np(est_positions, (3,), "est_positions")
    rr, rp = _np(ref_rotations, (3, 3), "ref_rotations"), _np(ref_positions, (3,), "ref_positions")
    if not (len(er) == len(ep) == len(rr) == len(rp)):
        raise ValueError(f"trajectories must have the same length, got est {len(er)}/{len(ep)} and ref {len(rr)}/{len(rp)} poses.")
    if len(er) < 2:
        raise ValueError("RPE needs at least 2 poses per trajectory.")
    scale = umeyama(ep, rp)[0] if align else 1.0
    d_est, dr_est = egocentric_steps(er, ep)
    d_ref, dr_ref = egocentric_steps(rr, rp)
    t_err = np.linalg.norm(scale * d_est - d_ref, axis=1)
    r_err = rotation_angle_deg(np.swapaxes(dr_ref, -1, -2) @ dr_est)
    return {"trans": float(t_err.mean()), "rot": float(r_err.mean()), "trans_median": float(np.median(t_err)),
            "rot_median": float(np.median(r_err)), "scale": float(scale), "frames": int(len(er))}


def drift_slope(per_second_scores: Sequence[float] | np.ndarray, seconds: Sequence[float] | None = None) -> float:
    """Least-squares slope (score units per second) of a per-second score; non-finite entries are skipped.

    `seconds` gives each score's time (default 0, 1, 2, ...). NaN when fewer than 2 finite scores remain.
    """
    y = np.asarray(per_second_scores, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64) if seconds is None else np.asarray(seconds, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"seconds {x.shape} and scores {y.shape} must have the same length.")
    ok = np.isfinite(y) & np.isfinite(x)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return math.nan
    x, y = x[ok], y[ok]
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc**2).sum())


def per_second(scores: Sequence[float] | np.ndarray, fps: float, complete: bool = False) -> np.ndarray:
    """Average a per-frame score (T,) or (T, C) over whole seconds: frame t belongs to second floor(t / fps).

    NaN entries (an undefined score, e.g. a ratio over a flat truth frame) are left out of their second's mean
    (a second with nothing left is NaN); inf entries are kept. With complete=True a last, partial second is left out."""
    s = np.asarray(scores, dtype=np.float64)
    if not len(s):
        return np.zeros((0,) + s.shape[1:])
    sec = (np.arange(len(s)) / fps).astype(int)
    last = int(len(s) // fps) if complete else int(sec.max()) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN seconds
        return np.array([np.nanmean(s[sec == k], 0) for k in range(max(1, last))])
