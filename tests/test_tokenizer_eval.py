"""The tokenizer's own evaluation: gates on cases with known answers, and a full report on a small tokenizer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from relickit.evaluate.tokenizer import (TARGETS, TokenizerEvalConfig, evaluate_tokenizer, gates, main, paired_change,
                                         score, table)
from relickit.evaluate.scoring import thumbnail
from relickit.metrics import edge_error_frames
from relickit.vae import TinyDecoderConfig, Tokenizer, VAEConfig


def clips(seed: int = 0, n: int = 2, frames: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, size=(n, frames, 12, 16, 3)).repeat(8, 2).repeat(8, 3)
    return np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)


def test_gates_pass_a_near_copy_and_fail_a_blurred_darkened_one():
    truth = clips()
    near = np.clip(truth.astype(int) + np.random.default_rng(1).integers(-2, 3, truth.shape), 0, 255).astype(np.uint8)
    ok = gates(score(near, truth))
    assert all(g["pass"] for g in ok.values()), ok
    f = truth.astype(np.float64)
    blur = (f + np.roll(f, 1, 2) + np.roll(f, -1, 2) + np.roll(f, 1, 3) + np.roll(f, -1, 3)) / 5
    bad = score((0.7 * blur).round().astype(np.uint8), truth)
    failed = {k for k, g in gates(bad).items() if not g["pass"]}
    assert {"psnr", "ssim", "sharpness", "brightness", "colour_shift"} <= failed
    assert bad["brightness"] < 0.75 and bad["sharpness"] < 0.75
    assert set(TARGETS) == set(gates(bad))


def test_colour_gates_see_casts_that_cancel_over_clips_and_washed_out_colour():
    """Known answer: +6 levels of red in one clip and -6 in the other pool to no shift but are a 6-level cast clip by
    clip; pixels moved halfway to their own grey keep the brightness and halve the saturation; one clip washed out
    and the other as true keep a mean saturation error of a quarter."""
    truth = clips()
    cast = truth.astype(int)
    cast[0, ..., 0] += 6
    cast[1, ..., 0] -= 6
    s = score(np.clip(cast, 0, 255).astype(np.uint8), truth)
    assert s["colour_shift_rgb"][0] == pytest.approx(0.0, abs=0.1) and s["colour_shift"] == pytest.approx(6.0, abs=0.2)
    assert not gates(s)["colour_shift"]["pass"]
    f = truth.astype(np.float64)
    washed = score((f + 0.5 * (f.mean(-1, keepdims=True) - f)).round().astype(np.uint8), truth)
    assert washed["saturation"] == pytest.approx(0.5, abs=0.02) and gates(washed)["brightness"]["pass"]
    assert washed["saturation_error"] == pytest.approx(0.5, abs=0.02) and not gates(washed)["saturation_error"]["pass"]
    half = truth + np.uint8(1)  # clip 1 a level brighter, its chroma kept (identical frames have no finite PSNR)
    half[0] = (f[0] + 0.5 * (f[0].mean(-1, keepdims=True) - f[0])).round().astype(np.uint8)
    assert score(half, truth)["saturation_error"] == pytest.approx(0.25, abs=0.01)


def test_per_clip_scores_pair_two_tokenizers_clip_by_clip(tmp_path, capsys):
    """Known answer: a tokenizer whose second clip is cast +6 levels red where another's is exact but for noise
    scores that clip's colour shift 6 levels worse and the first clip the same; the paired change is the mean of
    the per-clip changes, its standard error their spread over sqrt(2)."""
    truth = clips()
    noise = np.random.default_rng(1).integers(-2, 3, truth.shape)
    good = np.clip(truth.astype(int) + noise, 0, 255).astype(np.uint8)
    cast = good.astype(int)
    cast[1, ..., 0] += 6
    cast = np.clip(cast, 0, 255).astype(np.uint8)
    a, b = score(good, truth), score(cast, truth)
    assert a["per_clip"]["psnr"] == pytest.approx([score(good[i:i + 1], truth[i:i + 1])["psnr"] for i in range(2)],
                                                  abs=1e-4)
    assert b["per_clip"]["colour_shift"][1] == pytest.approx(6.0, abs=0.3)
    assert np.mean(a["per_clip"]["saturation_error"]) == pytest.approx(a["saturation_error"], abs=1e-4)
    config = {"maps": ["MAP21", "MAP22"]}
    before, after = ({"config": config, "clips": list(truth.shape), "decoders": {"tiny": {"scores": s}}} for s in (a, b))
    change = paired_change(before, after)["tiny"]
    shift = np.subtract(b["per_clip"]["colour_shift"], a["per_clip"]["colour_shift"])
    assert change["colour_shift"]["mean"] == pytest.approx(shift.mean()) and shift[0] == pytest.approx(0, abs=1e-4)
    assert change["colour_shift"]["stderr"] == pytest.approx(shift.std(ddof=1) / np.sqrt(2))
    assert change["colour_shift"]["up"] == 1 and change["psnr"]["mean"] < 0
    paths = []
    for name, report in (("before", before), ("after", after)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report))
    assert main(["--compare", *map(str, paths)])["tiny"] == change
    assert "tiny  colour_shift" in capsys.readouterr().out
    with pytest.raises(ValueError, match="same clips"):
        paired_change(before, {**after, "config": {"maps": ["MAP23", "MAP24"]}})
    # settings that do not pick the clips may differ (a report from before the thumbnails pairs with a newer one)
    assert paired_change(before, {**after, "config": {**config, "thumbnails": [2, 4], "every": 4}})["tiny"] == change
    del before["decoders"]["tiny"]["scores"]["per_clip"]  # a report written before 2026-12-04
    paths[0].write_text(json.dumps(before))
    with pytest.raises(SystemExit):
        main(["--compare", *map(str, paths)])
    assert "evaluate that tokenizer again" in capsys.readouterr().err


def test_first_frame_gap_and_psnr_over_time_see_a_bad_first_frame():
    truth = clips(frames=17)
    recon = truth.copy()
    recon[:, 0] = 255 - recon[:, 0]  # the first frame of every clip wrong, the rest exact up to noise
    recon[:, 1:] = np.clip(recon[:, 1:].astype(int) + 1, 0, 255)
    s = score(recon, truth)
    assert s["first_frame_gap"] > 20 and not gates(s)["first_frame_gap"]["pass"]
    assert len(s["psnr_over_time"]) == 3 and s["psnr_over_time"][0] < s["psnr_over_time"][1]


def test_report_of_a_small_tokenizer(tmp_path):
    torch.manual_seed(0)
    cfg = VAEConfig(height=96, width=128, base_dim=8, dim_mult=(1, 2, 2, 2), tiny=TinyDecoderConfig(channels=(8,) * 4))
    tok = Tokenizer(cfg).eval()
    report = evaluate_tokenizer(tok, clips(frames=9), TokenizerEvalConfig(strip_clips=2, every=4), tmp_path)
    assert set(report["decoders"]) == {"tiny", "vae"}
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["decoders"]["tiny"]["scores"]["psnr"] == report["decoders"]["tiny"]["scores"]["psnr"]
    assert (tmp_path / "strip.png").stat().st_size > 0
    assert "FAIL" in table(report)  # a random tokenizer fails its gates
    assert set(report["thumbnails"]) == {"2x", "4x"} and "thumb 4x" in table(report)


def test_thumbnails_known_answers():
    """A flat picture survives any thumbnail; one-pixel stripes average to flat grey in a 2x thumbnail (no edges
    left); on 8x8-block pictures with 3-pixel noise a 2x thumbnail keeps more than a 4x one."""
    flat = np.full((2, 3, 8, 8, 3), 77, np.uint8)
    assert np.array_equal(thumbnail(flat, 4), flat)
    stripes = np.zeros((2, 16, 16, 3), np.uint8)
    stripes[0, :, ::2] = stripes[1, :, 1::2] = (200, 100, 60)  # stripes that move
    assert np.all(thumbnail(stripes, 2) == (100, 50, 30)) and score(thumbnail(stripes[None], 2), stripes[None])["sharpness"] == 0
    truth = clips()
    two, four = score(thumbnail(truth, 2), truth), score(thumbnail(truth, 4), truth)
    assert two["psnr"] > four["psnr"] and two["sharpness"] > four["sharpness"] and four["sharpness"] < 0.5
    assert abs(two["brightness"] - 1) < 0.01 and abs(four["brightness"] - 1) < 0.01  # blocks keep their mean
    # frame_change: a still copy of the first frame has none; noise on a slow pan changes more than the pan
    pan = np.stack([np.roll(truth[0, 0], k, axis=1) for k in range(6)])[None]
    assert score(np.repeat(pan[:, :1], 6, 1), pan)["frame_change"] == 0
    noisy = np.clip(pan.astype(int) + np.random.default_rng(2).integers(-30, 31, pan.shape), 0, 255)
    assert score(noisy.astype(np.uint8), pan)["frame_change"] > 1.2
    # edge_error: 0 for the truth, 1 for a flat picture, about 1 for a blur (the 4x thumbnail), under it for the 2x
    # thumbnail's better edges, over 1 for speckle the truth lacks, however much the sharpness ratio likes it
    assert np.all(edge_error_frames(truth[0], truth[0]) == 0) and score(np.full_like(truth, 128), truth)["edge_error"] == 1
    assert two["edge_error"] < four["edge_error"] < 1.05
    speckle = thumbnail(truth, 4)  # a blur with a grid of bright dots on it, as a discriminator may teach
    speckle[:, :, ::4, ::4] = 255
    speckled = score(speckle, truth)
    assert speckled["sharpness"] > 2 * four["sharpness"] and speckled["edge_error"] > 1.1
    with pytest.raises(ValueError, match="3x3 blocks"):
        thumbnail(truth, 3)
