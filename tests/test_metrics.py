import math

import numpy as np
import pytest
import torch

from relickit.controls import local_rotation
from relickit.metrics import (drift_slope, per_second, psnr, psnr_frames, rotation_angle_deg, rpe, ssim, ssim_frames,
                              umeyama)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def trajectory(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth camera path: world-to-camera rotations (n, 3, 3), centres (n, 3)."""
    rng = np.random.default_rng(seed)
    yaw = np.cumsum(rng.normal(0.05, 0.05, n))
    pitch = 0.2 * np.sin(np.linspace(0, 3, n))
    r = local_rotation(torch.tensor(yaw), torch.tensor(pitch), torch.zeros(n, dtype=torch.float64)).numpy().transpose(0, 2, 1)
    p = np.cumsum(rng.normal(0, 1, (n, 3)), 0)
    return r, p


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    rot, scale, t = random_rotation(rng), 2.5, np.array([1.0, -2.0, 0.5])
    dst = scale * src @ rot.T + t
    s, r, tt = umeyama(src, dst)
    assert s == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(tt, t, atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_umeyama_never_returns_a_reflection_and_handles_degenerate_points():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    mirrored = src * np.array([1, 1, -1])
    _, r, _ = umeyama(src, mirrored)
    assert np.linalg.det(r) == pytest.approx(1.0)
    s, r, t = umeyama(np.zeros((5, 3)), np.ones((5, 3)))  # src does not spread: translation only
    assert s == 1.0 and np.allclose(r, np.eye(3)) and np.allclose(t, 1.0)
    s, _, _ = umeyama(src, np.ones((30, 3)))  # dst does not spread: scale 0
    assert s == pytest.approx(0.0, abs=1e-12)


def test_rpe_is_zero_for_identical_and_similar_trajectories():
    r, p = trajectory()
    same = rpe(r, p, r, p)
    assert same["trans"] == pytest.approx(0.0, abs=1e-9) and same["rot"] == pytest.approx(0.0, abs=1e-5)
    # a Sim(3) copy (other scale, rotation, origin) is the same path after alignment
    rng = np.random.default_rng(3)
    a, s, t = random_rotation(rng), 3.0, np.array([5.0, 1.0, -2.0])
    p2 = s * p @ a.T + t
    r2 = r @ a.T  # world-to-camera of a rotated world
    moved = rpe(r2, p2, r, p)
    assert moved["trans"] == pytest.approx(0.0, abs=1e-7) and moved["rot"] == pytest.approx(0.0, abs=1e-5)
    assert moved["scale"] == pytest.approx(1 / s)


def test_rpe_is_positive_for_different_trajectories_and_grows_with_the_error():
    r, p = trajectory()
    rng = np.random.default_rng(4)
    small = rpe(r, p + rng.normal(0, 0.05, p.shape), r, p)
    big = rpe(r, p + rng.normal(0, 0.5, p.shape), r, p)
    assert 0 < small["trans"] < big["trans"]
    still = np.broadcast_to(np.eye(3), r.shape)
    z = torch.tensor(0.0, dtype=torch.float64)
    rolling = np.stack([local_rotation(z, z, torch.tensor(0.02 * i, dtype=torch.float64)).numpy().T
                        for i in range(len(r))])
    e = rpe(rolling, p, still, p)
    assert e["rot"] == pytest.approx(math.degrees(0.02), rel=1e-6)  # 0.02 rad of roll per frame the ref lacks


def test_rpe_checks_shapes():
    r, p = trajectory(10)
    with pytest.raises(ValueError, match="same length"):
        rpe(r[:5], p[:5], r, p)
    with pytest.raises(ValueError, match="shape"):
        rpe(r, p[:, :2], r, p)


def test_rotation_angle():
    e = local_rotation(torch.tensor(0.3), torch.tensor(0.0), torch.tensor(0.0)).numpy()
    assert rotation_angle_deg(e) == pytest.approx(math.degrees(0.3))


def test_psnr_ssim_perfect_for_identical_video_and_lower_for_noise():
    rng = np.random.default_rng(5)
    video = rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    assert psnr(video, video) == math.inf
    assert np.all(psnr_frames(video, video) == math.inf)
    assert ssim(video, video) == 1.0
    mild = np.clip(video.astype(int) + rng.integers(-5, 6, video.shape), 0, 255).astype(np.uint8)
    strong = np.clip(video.astype(int) + rng.integers(-60, 61, video.shape), 0, 255).astype(np.uint8)
    assert 30 < psnr(video, mild) < math.inf
    assert psnr(video, strong) < psnr(video, mild)
    assert ssim(video, strong) < ssim(video, mild) < 1.0
    assert ssim_frames(video, strong).shape == (4,)


def brute_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM written out: gaussian-weighted statistics at every 'valid' 11x11 window, per channel."""
    x = np.arange(11) - 5.0
    g = np.exp(-x**2 / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(3):
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                pa, pb = a[i:i + 11, j:j + 11, c].astype(float), b[i:i + 11, j:j + 11, c].astype(float)
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_definition():
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:20, 0:24]
    img = np.stack([x * 9, y * 11, (x + y) * 5], -1).clip(0, 255).astype(np.uint8)
    noisy = np.clip(img.astype(int) + rng.integers(-40, 41, img.shape), 0, 255).astype(np.uint8)
    flat = np.full_like(img, 128)
    for other in (noisy, flat):
        assert ssim(img, other) == pytest.approx(brute_ssim(img, other), abs=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        psnr(img.astype(np.float32), img)
    with pytest.raises(ValueError, match="same shape"):
        ssim(img, img[:, :12])


def test_drift_slope_and_per_second():
    assert drift_slope([30.0, 29.5, 29.0, 28.5]) == pytest.approx(-0.5)
    assert drift_slope([1.0, math.inf, 3.0]) == pytest.approx(1.0)  # non-finite seconds are skipped
    assert math.isnan(drift_slope([1.0]))
    np.testing.assert_allclose(per_second(np.arange(8.0), fps=4), [1.5, 5.5])
    np.testing.assert_allclose(per_second(np.arange(9.0), fps=4), [1.5, 5.5, 8.0])
    np.testing.assert_allclose(per_second(np.arange(9.0), fps=4, complete=True), [1.5, 5.5])
    np.testing.assert_allclose(per_second([1.0, math.nan, 3.0, math.nan, math.nan], fps=2), [1.0, 3.0, math.nan])
    assert per_second([1.0, math.inf], fps=2)[0] == math.inf  # identical frames stay identical
    np.testing.assert_allclose(per_second(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), fps=2), [[2.0, 3.0], [5.0, 6.0]])


def _truth_clip(seed: int = 0) -> np.ndarray:
    """A textured uint8 clip (4, 48, 64, 3) with edges at every scale."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, size=(4, 12, 16, 3)).repeat(4, 1).repeat(4, 2)
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _box_blur(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float64)
    out = (f + np.roll(f, 1, 1) + np.roll(f, -1, 1) + np.roll(f, 1, 2) + np.roll(f, -1, 2)) / 5
    return np.clip(out.round(), 0, 255).astype(np.uint8)


def test_picture_stats_know_blur_sharpening_darkening_and_colour():
    from relickit.metrics import picture_stats

    truth = _truth_clip()
    same = picture_stats(truth, truth)
    np.testing.assert_allclose(same["sharpness"], 1.0)
    np.testing.assert_allclose(same["brightness"], 1.0)
    np.testing.assert_allclose(same["colour_shift"], 0.0)
    assert (picture_stats(_box_blur(truth), truth)["sharpness"] < 0.8).all()
    sharpened = np.clip(2.0 * truth.astype(np.float64) - _box_blur(truth), 0, 255).round().astype(np.uint8)
    assert (picture_stats(sharpened, truth)["sharpness"] > 1.2).all()
    dark = (truth * 0.5).round().astype(np.uint8)
    np.testing.assert_allclose(picture_stats(dark, truth)["brightness"], 0.5, atol=0.01)
    reddish = truth.copy()
    reddish[..., 0] = np.clip(reddish[..., 0].astype(int) + 10, 0, 255)
    shift = picture_stats(reddish, truth)["colour_shift"]
    np.testing.assert_allclose(shift[:, 0], 10.0, atol=0.5)
    np.testing.assert_allclose(shift[:, 1:], 0.0)
    grey = np.full_like(truth, 128)  # a mean-like grey frame has no edges at all
    np.testing.assert_allclose(picture_stats(grey, truth)["sharpness"], 0.0)


def test_saturation_ratio_sees_washed_out_colour_that_brightness_does_not():
    """Known answer: each pixel moved halfway to its own grey (channel mean) keeps the brightness and halves the
    chroma (largest minus smallest channel); a grey picture has none."""
    from relickit.metrics import picture_stats, saturation_frames

    truth = _truth_clip()
    np.testing.assert_allclose(picture_stats(truth, truth)["saturation"], 1.0)
    f = truth.astype(np.float64)
    washed = f + 0.5 * (f.mean(-1, keepdims=True) - f)
    stats = picture_stats(washed.round().astype(np.uint8), truth)
    np.testing.assert_allclose(stats["saturation"], 0.5, atol=0.01)
    np.testing.assert_allclose(stats["brightness"], 1.0, atol=0.01)
    grey = np.repeat(truth[..., :1], 3, -1)
    np.testing.assert_allclose(saturation_frames(grey), 0.0)
