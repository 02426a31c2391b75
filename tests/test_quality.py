"""The evaluation cannot be fooled by mush: references, picture statistics and quality gates on known answers."""
import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from relickit.controls import ACTION_DIM, POSE_DIM
from relickit.evaluate import compare, evaluate, frozen_start, picture_summary, random_assets, tokenizer_ceiling
from relickit.evaluate.gates import GateConfig, check, format_gates, main
from relickit.evaluate.oracle import OracleSession, degrade, oracle_factory
from relickit.evaluate.scoring import PSNR_CAP, collapse_second, draw_spread, mean_pictures, picture_frames
from relickit.metrics import psnr_frames


pytestmark = pytest.mark.usefixtures("one_thread")


def _truth(frames: int = 9, seed: int = 0) -> np.ndarray:
    """A textured clip (frames, 48, 64, 3) that pans one pixel a frame: every frame differs from the first."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(40, 216, size=(12, 16 + frames, 3)).repeat(4, 0).repeat(4, 1)
    return np.stack([wide[:, t:t + 64] for t in range(frames)]).astype(np.uint8)


def _sharpen(v: np.ndarray) -> np.ndarray:
    return np.clip(2.0 * v.astype(np.float64) - degrade(v, blur=3, gain=1.0), 0, 255).round().astype(np.uint8)


def test_frozen_reference_is_the_psnr_of_the_repeated_start_frame():
    truth = _truth()
    frozen = frozen_start(truth)
    assert frozen.shape == truth.shape and (frozen == truth[0]).all()
    scores = compare({"model": degrade(truth), "frozen_start": frozen, "tokenizer_ceiling": truth}, truth)
    expected = float(np.mean(psnr_frames(np.repeat(truth[:1], 8, 0), truth[1:])))
    assert scores["frozen_start"]["psnr"] == pytest.approx(expected, abs=1e-9)
    assert scores["frozen_start"]["frames"] == 8  # frame 0 (the start image itself) is left out
    assert scores["tokenizer_ceiling"]["psnr"] == PSNR_CAP  # identical frames: capped, so that means stay finite
    assert scores["gain_over_frozen_db"] == pytest.approx(scores["model"]["psnr"] - expected)
    assert scores["to_ceiling_db"] == pytest.approx(PSNR_CAP - scores["model"]["psnr"])


def test_picture_summary_knows_blur_sharpening_darkening_and_collapse():
    truth = _truth(frames=8)
    same = picture_summary(picture_frames(truth, truth), fps=4)
    assert same["sharpness"] == pytest.approx(1.0) and same["brightness"] == pytest.approx(1.0)
    assert same["psnr"] == PSNR_CAP and same["ssim"] == pytest.approx(1.0) and not same["collapsing"]
    assert same["per_second"]["sharpness"] == pytest.approx([1.0, 1.0])  # 8 frames at 4 FPS: two seconds
    blurred = picture_summary(picture_frames(degrade(truth, blur=9, gain=1.0), truth))
    assert blurred["sharpness"] < 0.5 and blurred["collapsing"]
    assert picture_summary(picture_frames(_sharpen(truth), truth))["sharpness"] > 1.1
    dark = picture_summary(picture_frames(degrade(truth, blur=1, gain=0.5), truth))
    assert dark["brightness"] == pytest.approx(0.5, abs=0.01) and dark["sharpness"] == pytest.approx(0.5, abs=0.02)
    assert np.allclose(dark["colour_shift"], -0.5 * truth.reshape(-1, 3).mean(0), atol=0.5)
    assert collapse_second([0.9, 0.6, 0.4, 0.7]) == 2 and collapse_second([0.9]) is None


def test_mean_pictures_averages_rows_and_rejudges_collapse():
    truth = _truth()
    rows = [compare({"model": v, "frozen_start": frozen_start(truth), "tokenizer_ceiling": degrade(truth, 3, 1.0)},
                    truth, fps=4) for v in (truth, degrade(truth, blur=9, gain=1.0))]
    m = mean_pictures(rows)
    assert m["model"]["sharpness"] == pytest.approx((rows[0]["model"]["sharpness"] + rows[1]["model"]["sharpness"]) / 2)
    assert m["model"]["frames"] == 16 and m["model"]["collapsing"] == (m["model"]["sharpness"] < 0.5)
    assert m["to_ceiling_db"] == pytest.approx(np.mean([r["to_ceiling_db"] for r in rows]))
    assert m["model"]["psnr"] == pytest.approx((PSNR_CAP + rows[1]["model"]["psnr"]) / 2)  # the truth is row 0
    assert m["model"]["per_second"]["sharpness"][1] == pytest.approx(
        (rows[0]["model"]["per_second"]["sharpness"][1] + rows[1]["model"]["per_second"]["sharpness"][1]) / 2)


def test_tokenizer_ceiling_streams_like_one_shot_encode_decode():
    from relickit.play import to_uint8

    _, tok = random_assets()
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, size=(21, 96, 128, 3), dtype=np.uint8)
    with torch.no_grad():
        video = torch.from_numpy(truth).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        one_shot = to_uint8(tok.decode_tiny(tok.encode(video))[0])
    chunked = tokenizer_ceiling(tok, truth, chunk_latents=2)  # 1 + 8, 8, 4 frames through the causal caches
    assert chunked.shape == truth.shape
    assert np.abs(chunked.astype(int) - one_shot.astype(int)).max() <= 1  # float rounding at most
    short = tokenizer_ceiling(tok, truth[:19], chunk_latents=2)  # padded to 21 for the encoder, cut back
    assert short.shape == truth[:19].shape
    with pytest.raises(ValueError, match="'tiny' or 'vae'"):
        tokenizer_ceiling(tok, truth, decoder="wan")


def test_oracle_plays_the_truth_and_forgets_under_window():
    from relickit.evaluate import Script, run_script

    truth = np.random.default_rng(2).integers(0, 256, size=(40, 96, 128, 3), dtype=np.uint8)
    script = Script("out_and_back", ((("pan_right", 1.0),), (("pan_left", 1.0),)), revisit_step=1)
    played = run_script(oracle_factory("truth")("compressed", 0), truth[0], "", script, truth)
    assert (played.frames == truth[:25]).all()
    forgot = run_script(oracle_factory("truth")("window", 0), truth[0], "", script, truth)
    assert (forgot.frames[:13] == truth[:13]).all() and (forgot.frames[13:] == truth[12]).all()
    with pytest.raises(RuntimeError, match="truth="):
        run_script(oracle_factory("truth")("compressed", 0), truth[0], "", script)
    with pytest.raises(ValueError, match="oracle shows"):
        OracleSession(oracle_factory()("none", 0).model.cfg, show="blurry")


def test_draw_spread_sets_the_draws_against_each_other_and_the_truth():
    """Known answers: two draws 10 levels above and below a flat truth are 20 log10(255 / 10) dB from it and 20
    log10(255 / 20) dB from each other, over-dispersed by 20 log10(2) = 6.02 dB; draws that are one clip are capped
    at PSNR_CAP to each other (a blur whatever the noise); frame 0, the start image, is left out."""
    truth = np.full((9, 4, 6, 3), 100, np.uint8)
    up, down = truth + 10, truth - 10
    up[0] = down[0] = truth[0] + 50  # not scored
    out = draw_spread([up, down], truth, fps=4)
    assert out["to_truth"] == pytest.approx([20 * np.log10(25.5)] * 2)
    assert out["to_each_other"] == pytest.approx([20 * np.log10(12.75)] * 2)
    assert out["gap_db"] == pytest.approx(-20 * np.log10(2))
    same = draw_spread([up, up, up], truth, fps=4)
    assert same["to_each_other"] == [PSNR_CAP] * 2 and same["gap_db"] == pytest.approx(PSNR_CAP - 20 * np.log10(25.5))
    with pytest.raises(ValueError, match="two draws"):
        draw_spread([up], truth, fps=4)


def test_a_still_photo_scores_exactly_the_frozen_reference():
    report = evaluate("drift", oracle_factory("frozen"), maps=("E1M1",), durations=(2.0,), tries=3)
    pictures = report["summary"]["2s"]["compressed"]["pictures"]
    assert pictures["model"] == pictures["frozen_start"]
    assert pictures["gain_over_frozen_db"] == 0.0 and pictures["tokenizer_ceiling"]["psnr"] == PSNR_CAP
    assert report["flags"] == []  # a still photo is sharp: only the gain over it tells it from a world model


def test_suites_score_the_model_beside_its_references():
    model, tok = random_assets()
    from relickit.evaluate import Script, session_factory

    short = Script("glance", ((("pan_right", 1.0),), (("pan_left", 1.0),)), revisit_step=1)
    report = evaluate("revisit", session_factory(model, tok), maps=("MAP21",), policies=("window", "compressed"),
                      scripts=[short], tries=3)
    row = report["rows"][1]
    assert set(row["pictures"]) >= {"model", "frozen_start", "tokenizer_ceiling", "gain_over_frozen_db",
                                    "to_ceiling_db"}
    assert row["pictures"]["model"]["frames"] == 12  # the return phase: frames 13..24
    assert row["pictures"]["model"]["psnr"] == pytest.approx(row["return_vs_truth"]["psnr"], abs=1e-4)
    collapsing = [p for p, s in report["summary"]["pictures"].items() if s["model"]["collapsing"]]
    assert report["flags"] == [f"collapsing: pictures/{p} (sharpness ratio "
                               f"{report['summary']['pictures'][p]['model']['sharpness']:.3g} < 0.5)" for p in collapsing]
    gain = report["summary"]["gain_over_window_db"]["compressed"]
    assert gain == pytest.approx(row["return_vs_truth"]["psnr"] - report["rows"][0]["return_vs_truth"]["psnr"],
                                 abs=1e-4)


def test_gates_pass_the_truth_and_fail_a_blurred_darkened_copy(tmp_path, capsys):
    args = ["--maps", "MAP21", "--seconds", "2", "--long-seconds", "3", "--scripts", "look_back", "--tries", "3",
            "--action-scripts", "arc_left", "--action-seconds", "1", "--speed-seconds", "2"]
    browser, teacher = tmp_path / "browser.json", tmp_path / "teacher.json"
    browser.write_text(json.dumps({"shown_fps": 319 / 20.0, "seconds": 20.0}))  # one frame short: counting
    same = {"psnr": 22.0, "ssim": 0.4, "sharpness": 0.2, "edge_error": 1.0, "brightness": 0.9, "saturation": 1.1}
    teacher.write_text(json.dumps({"summary": {"teacher": {"model": same}, "student": {"model": same}}}))
    assert main(["--oracle", "truth", *args, "--browser-report", str(browser), "--teacher-report", str(teacher),
                 "--out", str(tmp_path / "truth")]) == 0
    out = capsys.readouterr().out
    assert "14 of 14 measured pass -> PASS" in out, out
    saved = json.loads((tmp_path / "truth" / "gates.json").read_text())
    assert saved["verdict"] == "PASS" and {g["gate"] for g in saved["gates"]} == {"1", "2", "3", "4", "5", "6",
                                                                                 "tokenizer"}
    assert {"drift.json", "revisit.json", "action.json", "speed.json"} <= {f.name for f in (tmp_path / "truth").iterdir()}
    assert main(["--reports", str(tmp_path / "truth"), "--teacher-report", str(teacher)]) == 1  # re-read, no browser
    assert capsys.readouterr().out.splitlines()[-1].endswith("13 of 13 measured pass, 1 not measured -> INCOMPLETE")
    assert main(["--oracle", "degraded", *args]) == 1  # without the two reports: gates 5b and 6 not measured
    lines = capsys.readouterr().out.splitlines()
    failed = {re.split(r"\s{2,}", line)[1] for line in lines[2:-1] if line.endswith("FAIL")}
    assert {"sharpness ratio over 2 s", "sharpness ratio over 3 s", "brightness ratio, worst second",
            "first second below the tokenizer ceiling"} <= failed, lines  # however good its PSNR
    assert "tokenizer ceiling PSNR over 2 s" not in failed and lines[-1].endswith("2 not measured -> FAIL")
    assert sum(line.rstrip().endswith("-") or "not measured:" in line for line in lines[2:-1]) == 2


def _reports(sharp=0.75, sharp_long=0.6, bright=(1.0, 1.1), cast=((0, 0, 0), (3, 0, 0)), first=(22.0, 25.0),
             frozen_gain=3.0, window_gain=2.0, far=25.0, rpe=(1.5, 1.5), fps=24.0, ceiling=28.0):
    """Reports as `gates.measure` returns them, with every gated number set (the defaults sit on the thresholds)."""
    def run(sharpness, brightness, shift, psnr_1, ceiling_psnr_1):
        return {"pictures": {"model": {"sharpness": sharpness, "colour_shift": list(shift),
                                       "per_second": {"brightness": list(brightness), "psnr": [psnr_1]}},
                             "tokenizer_ceiling": {"psnr": ceiling, "colour_shift": [-1.0, -1.0, -1.0],
                                                   "per_second": {"psnr": [ceiling_psnr_1]}}}}

    return {"drift": {"summary": {"20s": {"compressed": run(sharp, [bright[0]] * 20 + [5.0], cast[0], *first)},
                                  "120s": {"compressed": run(sharp_long, [bright[1]] * 120, cast[1], 0.0, 0.0)}}},
            "revisit": {"summary": {"pictures": {"compressed": {"gain_over_frozen_db": frozen_gain}},
                                    "gain_over_window_db": {"compressed": window_gain},
                                    "by_policy": {"compressed": {"vs_first_visit_far": {"psnr": far}}}}},
            "action": {"summary": {"overall": {"rpe_rot": rpe[0], "floor_rot": 1.0, "rpe_trans": rpe[1],
                                               "floor_trans": 1.0}}},
            "speed": {"settings": {"torch_threads": 1}, "rows": [{"policy": "compressed", "end_to_end_fps_steady": fps}]}}


def test_gate_rules_and_nan():
    # a last, partial second (brightness 5) is not read; a grey shift is darkening, not a colour cast
    assert all(g.passed for g in check(_reports(), browser={"shown_fps": 15.95, "seconds": 20}) if g.gate != "6")
    assert not check(_reports(), browser={"shown_fps": 15.9, "seconds": 20})[-3].passed  # two frames short
    gates = check(_reports(0.74, 0.59, (0.89, 1.0), ((4.5, 0, 0), (0, 0, 0)), (21.9, 25.0), 2.9, "nan", 24.9,
                           (1.51, "nan"), 23.9, "inf"))
    assert [g.passed for g in gates] == [False] * 11 + [None, None, True]  # no browser or teacher report
    assert gates[3].value == pytest.approx(3.0)  # cast (3, -1.5, -1.5) against the tokenizer's (0, 0, 0)
    assert "nan" in format_gates(gates) and format_gates(gates).endswith("1 of 12 measured pass, 2 not measured -> FAIL")
    zero_floor = _reports()
    zero_floor["action"]["summary"]["overall"]["floor_trans"] = 0.0  # pans only: nothing commanded to measure
    assert [g.passed for g in check(zero_floor) if g.gate == "4"] == [True, False]
    teacher = {"psnr": 22.0, "ssim": 0.4, "sharpness": 0.2, "brightness": 0.95, "saturation": 1.2}
    student = {**teacher, "psnr": 21.0, "sharpness": 0.3, "brightness": 1.04, "saturation": 0.8}
    g6 = check(_reports(), teacher={"summary": {"teacher": {"model": teacher}, "student": {"model": student}}})[-2]
    assert (g6.gate, g6.value, g6.passed, g6.detail) == ("6", 2.0, False, "sharpness, brightness")
    with pytest.raises(ValueError, match="a teacher and a student"):
        check(_reports(), teacher={"summary": {"student": {"model": student}}})
    with pytest.raises(ValueError, match="window-only"):
        GateConfig(policy="window")


def test_gates_of_several_models_side_by_side(tmp_path, capsys):
    ours = [dataclasses.asdict(g) for g in check(_reports())]  # every part on its threshold: 12 of 12 measured
    theirs = [dataclasses.asdict(g) for g in check(_reports(sharp=0.5, rpe=(1.5, float("nan"))))]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "gates.json").write_text(json.dumps({"gates": ours}))
    (tmp_path / "b.json").write_text(json.dumps({"gates": theirs}).replace("NaN", '"nan"'))  # as `clean` writes it
    assert main(["--table", f"ours={tmp_path / 'a'}", f"theirs={tmp_path / 'b.json'}"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "| gate | part | ours | theirs |" and len(rows) == 2 + len(ours) + 1
    assert rows[2] == "| 1 | sharpness ratio over 20 s | 0.75 PASS | 0.5 FAIL |"
    assert "| 4 | RPE-trans over the estimator floor | 1.5x PASS | nan FAIL |" in rows
    assert "| 6 | picture scores the teacher is behind on | nan - | nan - |" in rows
    assert rows[-1] == "| | parts passed (of measured) | 12 of 12 | 10 of 12 |"
    with pytest.raises(FileNotFoundError, match="gates report"):
        main(["--table", str(tmp_path / "missing")])


def test_module_commands_run():
    for module in ("relickit.evaluate", "relickit.evaluate.gates"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "held-out" in out.stdout, out.stderr


def test_teacher_vs_student_scores_both_beside_the_references(tmp_path):
    from relickit.evaluate.teacher import TeacherEvalConfig, teacher_vs_student

    student, tok = random_assets()
    teacher, _ = random_assets(seed=1)
    cfg = TeacherEvalConfig(clips=2, latent_frames=4, teacher_steps=2)
    result = teacher_vs_student(student, tok, teacher, cfg=cfg)
    report = result.report
    assert len(report["rows"]) == 2 and report["rows"][0]["clip"] == 0
    assert set(report["summary"]) == {"student", "teacher", "teacher_one_step", "teacher_from_truth"}
    s = report["summary"]["student"]
    assert s["model"]["frames"] == 2 * 12 and len(s["model"]["per_second"]["psnr"]) == 1  # 12 frames at 16 FPS
    assert s["frozen_start"] == report["summary"]["teacher"]["frozen_start"]  # the same truth, the same reference
    assert s["gain_over_frozen_db"] == pytest.approx(s["model"]["psnr"] - s["frozen_start"]["psnr"])
    alone = teacher_vs_student(student, tok, None, cfg=cfg, figures=False)  # no plotly needed (the GPU box)
    assert alone.report["rows"][0]["student"] == report["rows"][0]["student"]  # the student's noise does not depend on it
    assert "teacher_pictures" in result.figures and alone.figures == {}
    reliance = report["teacher_start_frame_reliance"]
    assert set(reliance) == {str(s) for s in cfg.reliance_sigmas} and set(reliance["1.0"]) == {"own", "other", "zero"}
    assert set(report["teacher_control_reliance"]["1.0"]) == {"own", "other", "still"}
    assert alone.report["teacher_start_frame_reliance"] == alone.report["teacher_control_reliance"] == {}  # no teacher
    spread = report["teacher_spread"]  # cfg.draws (3) clips per start frame
    assert len(spread["to_truth"]) == len(spread["to_each_other"]) == 1 and alone.report["teacher_spread"] == {}
    assert spread["gap_db"] == pytest.approx(np.mean([r["teacher_spread"]["gap_db"] for r in report["rows"]]))
    one = teacher_vs_student(student, tok, teacher, cfg=dataclasses.replace(cfg, draws=1), figures=False)
    assert one.report["rows"] == [{k: v for k, v in r.items() if k != "teacher_spread"} for r in report["rows"]]
    assert report["teacher_held_out_loss"] > 0 and alone.report["teacher_held_out_loss"] is None
    # the strip: per drawn clip (cfg.strip_clips, at most the clips scored) truth, teacher, teacher in one step,
    # teacher from the noised truth, student and ceiling rows; without a teacher truth, student and ceiling
    height = student.cfg.height + 2
    assert result.strip.shape[0] == 2 * (14 + 6 * height + 6) and alone.strip.shape[0] == 2 * (14 + 3 * height + 6)
    without = teacher_vs_student(student, tok, teacher, cfg=dataclasses.replace(cfg, from_truth=0, clips=1),
                                 figures=False)  # clip 0 alone: the same clip, the same noise
    assert "teacher_from_truth" not in without.report["summary"]
    assert without.report["rows"][0]["teacher"] == report["rows"][0]["teacher"]
    # a teacher on another tokenizer's latents: its clips and its ceiling through that tokenizer, the student's not
    _, other_tok = random_assets(seed=2)
    own = teacher_vs_student(student, tok, teacher, cfg=dataclasses.replace(cfg, clips=1), figures=False,
                             teacher_tokenizer=other_tok).report["rows"][0]
    assert own["student"] == report["rows"][0]["student"]
    assert own["teacher"]["tokenizer_ceiling"] != report["rows"][0]["teacher"]["tokenizer_ceiling"]
    assert own["teacher"]["tokenizer_ceiling"] == own["teacher_one_step"]["tokenizer_ceiling"]
    assert own["teacher"]["frozen_start"] == own["student"]["frozen_start"]


def test_held_out_set_asks_for_the_evaluations_maps(tmp_path, monkeypatch):
    """The recipe's --held-out scores the clips the evaluation's --held-out does: the same twelve Freedoom2 maps by
    default (run 19's GPU machine, which carries freedoom2.wad only, failed generating five Freedoom1 maps)."""
    import relickit.evaluate.teacher as teacher_eval

    class Asked(Exception):
        pass

    asked = []

    def record(root, cfg, *args, **kwargs):
        asked.append(cfg.maps)
        raise Asked

    monkeypatch.setattr(teacher_eval, "held_out_episodes", record)
    student, tok = random_assets()
    tok.save(tmp_path / "tokenizer.safetensors")
    with pytest.raises(Asked):
        teacher_eval.held_out_set(tmp_path / "held", tok)
    with pytest.raises(Asked):
        teacher_eval.main(["--student", str(student.save(tmp_path / "student.safetensors")), "--tokenizer",
                           str(tmp_path / "tokenizer.safetensors"), "--held-out", str(tmp_path / "held")])
    assert asked[0] == asked[1] and len(asked[0]) == 12 and all(m.startswith("MAP") for m in asked[0])


def test_teacher_cli_scores_one_clip_on_each_held_out_map(tmp_path):
    from relickit.evaluate.teacher import main as teacher_main
    from relickit.evaluate.tokenizer import TokenizerEvalConfig

    student, tok = random_assets()
    teacher, _ = random_assets(seed=1)
    tok.save(tmp_path / "tokenizer.safetensors")
    files = ["--student", str(student.save(tmp_path / "student.safetensors")),
             "--teacher", str(teacher.save(tmp_path / "teacher.safetensors")),
             "--tokenizer", str(tmp_path / "tokenizer.safetensors"), "--steps", "1", "--no-figures"]
    held = tmp_path / "held_out"
    report = teacher_main([*files, "--held-out", str(held), "--maps", "MAP21,MAP22"])
    assert [r["map"] for r in report["rows"]] == ["MAP21", "MAP22"] and report["settings"]["data"] == str(held)
    assert report["settings"]["clips"] == 2 and report["teacher_held_out_loss"] > 0
    # the same clips as the recipe's teacher stage scores them while it trains (--held-out there): the same number
    from relickit.evaluate.teacher import held_out_set
    from relickit.model import WorldModel
    from relickit.vae import Tokenizer

    held_set = held_out_set(held, Tokenizer.load(tmp_path / "tokenizer.safetensors"), maps=("MAP21", "MAP22"))
    assert held_set.latents.shape[0] == 2 and held_set.latents.shape[2] == report["settings"]["latent_frames"]
    assert held_set.loss(WorldModel.load(tmp_path / "teacher.safetensors")) == pytest.approx(
        report["teacher_held_out_loss"], rel=1e-5)
    guided = teacher_main([*files, "--held-out", str(held), "--maps", "MAP21,MAP22", "--guidance", "2"])
    assert guided["settings"]["guidance"] == 2 and guided["rows"][0]["student"] == report["rows"][0]["student"]
    assert guided["rows"][0]["teacher"]["model"] != report["rows"][0]["teacher"]["model"]  # the caption now pushes
    with pytest.raises(SystemExit):  # two datasets asked for
        teacher_main([*files, "--held-out", str(held), "--data", str(held)])
    own = teacher_main([*files, "--held-out", str(held), "--maps", "MAP21,MAP22", "--teacher-tokenizer",
                        str(tmp_path / "tokenizer.safetensors")])  # the same tokenizer named twice: the same report
    assert own["rows"] == report["rows"] and own["model"]["teacher_tokenizer"] == files[5]
    with pytest.raises(SystemExit):  # a teacher's tokenizer without a teacher
        teacher_main([*files[:2], "--teacher-tokenizer", files[5], "--held-out", str(held)])
    # the mirror on a training map: train-split episodes, said so in the report; held-out maps refused there
    train = teacher_main([*files, "--held-out", str(tmp_path / "train"), "--split", "train", "--maps", "MAP01"])
    assert [r["map"] for r in train["rows"]] == ["MAP01"] and train["settings"]["split"] == "train"
    with pytest.raises(SystemExit):
        teacher_main([*files, "--held-out", str(tmp_path / "train2"), "--split", "train"])
    # clips longer than the held-out episodes and than the teacher's RoPE range: episodes generated long enough, the
    # teacher stretched by YaRN (as the recipe's DMD stages score long rollouts), said so in the report
    cfg = student.cfg
    frames = cfg.rope_frames + 5 * cfg.chunk
    assert cfg.video_frames(frames) > TokenizerEvalConfig.frames
    long = teacher_main([*files, "--held-out", str(tmp_path / "long"), "--maps", "MAP21", "--latent-frames",
                         str(frames), "--draws", "1", "--from-truth", "0"])
    assert long["settings"]["latent_frames"] == frames
    assert long["rows"][0]["student"]["model"]["frames"] == cfg.video_frames(frames) - 1
    assert long["model"]["teacher_yarn_factor"] == pytest.approx(frames / cfg.rope_frames, rel=1e-5)  # as reported
    assert report["model"]["teacher_yarn_factor"] == 1.0
    with pytest.raises(SystemExit):  # not the image plus whole chunks
        teacher_main([*files, "--held-out", str(tmp_path / "long"), "--latent-frames", str(frames + 1)])


def test_paired_change_is_the_mean_and_standard_error_of_the_clips_changes(tmp_path, capsys):
    """Known answer: PSNR changes of +1, 0, +2 and -1 dB on four clips are a mean of +0.5 dB with a standard error of
    sqrt(5/3) / 2, two clips up, and so are the draw spread gaps' where both reports have draws; the CLI compares two
    written reports the same way and refuses other clips."""
    from relickit.evaluate.teacher import main as teacher_main
    from relickit.evaluate.teacher import paired_change

    def report(psnrs, loss):
        return {"rows": [{"episode": f"ep{i}", "start": 8, "teacher": {"model": {
            "psnr": p, "ssim": 0.5, "sharpness": 0.2, "brightness": 1.0}}} for i, p in enumerate(psnrs)],
            "teacher_held_out_loss": loss}

    before, after = report([20, 21, 22, 23], 0.2), report([21, 21, 24, 22], 0.19)
    change = paired_change(before, after)
    assert change["clips"] == 4 and change["psnr"] == pytest.approx({"mean": 0.5, "stderr": (5 / 3) ** 0.5 / 2, "up": 2})
    assert change["ssim"] == {"mean": 0.0, "stderr": 0.0, "up": 0}
    assert change["held_out_loss"] == {"before": 0.2, "after": 0.19}
    assert "saturation" not in change  # reports written before it was scored compare on what they have
    assert "spread_gap_db" not in change  # nor draws
    spread = [report(p, 0.2) for p in ([20, 21, 22, 23], [21, 21, 24, 22])]
    for r, gaps in zip(spread, ([3, 2, 2, 4], [4, 2, 4, 3])):
        for row, g in zip(r["rows"], gaps):
            row["teacher_spread"] = {"gap_db": g}
    assert paired_change(*spread)["spread_gap_db"] == pytest.approx(change["psnr"])
    paths = [tmp_path / "before.json", tmp_path / "after.json"]
    for path, r in zip(paths, (before, after)):
        path.write_text(json.dumps(r))
    assert teacher_main(["--compare", *map(str, paths)]) == change
    other = report([21, 21, 24], 0.19)
    with pytest.raises(ValueError, match="same clips"):
        paired_change(before, other)
    paths[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit):
        teacher_main(["--compare", *map(str, paths)])
    assert "same clips" in capsys.readouterr().err


def test_paired_change_of_a_student_against_its_teacher_is_the_distillation_gap(tmp_path):
    """Known answer: a student 1 dB above its teacher on one clip and 1 dB under on the other is a gap of 0 +- 1 dB,
    named "student - teacher", with no held-out loss (a student has none); the CLI picks each report's model with
    REPORT:MODEL, and a path with a colon that names no model stays a path."""
    from relickit.evaluate.teacher import _report_and_model, paired_change
    from relickit.evaluate.teacher import main as teacher_main

    def row(i, name, psnr):
        return {"episode": f"ep{i}", "start": 0, name: {"model": {"psnr": psnr, "ssim": 0.5, "sharpness": 0.2,
                                                                  "brightness": 1.0}}}

    teacher = {"rows": [row(0, "teacher", 21.0), row(1, "teacher", 23.0)], "teacher_held_out_loss": 0.2}
    student = {"rows": [row(0, "student", 22.0), row(1, "student", 22.0)]}
    gap = paired_change(teacher, student, "teacher", "student")
    assert gap["model"] == "student - teacher" and gap["clips"] == 2
    assert gap["psnr"] == pytest.approx({"mean": 0.0, "stderr": 1.0, "up": 1})
    assert "held_out_loss" not in gap
    paths = [tmp_path / "t:1.json", tmp_path / "s.json"]
    for path, r in zip(paths, (teacher, student)):
        path.write_text(json.dumps(r))
    assert teacher_main(["--compare", f"{paths[0]}:teacher", f"{paths[1]}:student"]) == gap
    assert _report_and_model(str(paths[0])) == (str(paths[0]), None)
    with pytest.raises(ValueError, match="'teacher' and 'teacher'"):
        paired_change(teacher, student)  # the student's report has no teacher


def test_one_step_clip_is_x_minus_v_at_sigma_one_after_the_clean_first_frame():
    """Known answer: a model whose velocity is x - target returns the target in one step, after the first frame as
    given; the model sees sigma 1 (timestep 1000) on every frame but the first (0)."""
    from relickit.evaluate.teacher import one_step_clip

    first, noise, target = torch.randn(2, 16, 1, 3, 4), torch.randn(2, 16, 5, 3, 4), torch.randn(2, 16, 5, 3, 4)
    seen = {}

    def model(x, t, context, actions, poses, visibility):
        seen["t"] = t
        return x - target

    out = one_step_clip(model, first, noise, None, None, None)
    assert torch.equal(out[:, :, :1], first)
    torch.testing.assert_close(out[:, :, 1:], target[:, :, 1:])
    assert (seen["t"][:, 0] == 0).all() and (seen["t"][:, 1:] == 1000).all()


def test_gallery_strips_gifs_and_index(tmp_path):
    import json

    from PIL import Image

    from relickit.evaluate.gallery import Case, GalleryConfig, gif_frames, parse_case, render_case, strip, write_gallery

    cfg = GalleryConfig(tries=3)
    rendered = render_case(oracle_factory("degraded"), Case("MAP21", "look_back"), cfg)
    n = len(rendered.videos["truth"])
    assert n == 73 and set(rendered.videos) == {"truth", "model", "frozen_start", "tokenizer_ceiling"}
    assert (rendered.videos["frozen_start"] == rendered.videos["truth"][0]).all()
    img = strip(rendered, cfg)
    assert img.shape == (14 + 4 * 98, 92 + 7 * 130, 3)  # 4 rows; frames 0, 12, ..., 72
    assert (img[14:110, 92:220] == rendered.videos["truth"][0]).all()  # the truth row starts at the start frame
    assert (img[112:208, 92:220] == rendered.videos["model"][0]).all()
    assert (img[14:, :90] < 128).any()  # the row labels are written
    frames = gif_frames(rendered, cfg)
    assert len(frames) == 19 and frames[0].shape == (12 + 96, 2 * 128 + 2, 3)  # 0, 4, ..., 72: at most 24
    index = write_gallery(oracle_factory("truth"), tmp_path, [parse_case("E1M1:walk_back:0")], cfg)
    [entry] = index["cases"]
    assert entry["scores"]["model"]["psnr"] == PSNR_CAP and entry["scores"]["gain_over_frozen_db"] > 3
    assert json.loads((tmp_path / "index.json").read_text()) == index
    assert Image.open(tmp_path / entry["png"]).size[0] > 0 and Image.open(tmp_path / entry["gif"]).n_frames > 1
    with pytest.raises(ValueError, match="map:script"):
        parse_case("MAP21")


def test_action_suite_scores_frames_and_a_still_photo_through_the_estimator():
    from relickit.evaluate import load_posenet

    net, _ = load_posenet(allow_random=True)
    report = evaluate("action", oracle_factory("truth"), maps=("MAP21",), posenet=net, scripts=["forward", "static"],
                      seconds=1.5, tries=3)
    forward, static = report["rows"]
    assert forward["pictures"]["model"]["psnr"] == PSNR_CAP and forward["pictures"]["frozen_start"]["psnr"] < 40
    assert static["pictures"]["frozen_start"]["psnr"] == PSNR_CAP  # a still camera: the start frame is the truth
    overall = report["summary"]["overall"]
    assert overall["pictures"]["model"]["frames"] == forward["pictures"]["model"]["frames"]  # static left out
    assert overall["frozen_rot"] == pytest.approx((forward["frozen_rot"] + static["frozen_rot"]) / 2, rel=1e-5)
    assert forward["rpe_rot"] == pytest.approx(forward["floor_rot"])  # the truth through the estimator is the floor


def test_held_out_loss_averages_the_shifted_quantile_midpoints_of_the_training_noise():
    """Known answer: a model that always says v = 0 on clean zero clips loses the noise's mean square; it sees each
    level's shifted midpoint on every frame but the clean first (timestep 0)."""
    from relickit.diffusion import shift_sigma
    from relickit.evaluate.teacher import held_out_loss

    seen = []

    def model(x, t, context, actions, poses, visibility, mem=None):
        seen.append(t / 1000)
        return torch.zeros_like(x)

    lat = torch.zeros(2, 16, 5, 3, 4)
    loss = held_out_loss(model, lat, None, None, None, shift=3.0, levels=4, seed=1)
    gen = torch.Generator().manual_seed(1)
    noises = [torch.randn(lat.shape, generator=gen) for _ in range(4)]
    assert loss == pytest.approx(sum(float((n[:, :, 1:] ** 2).mean()) for n in noises) / 4, rel=1e-5)
    for k, t in enumerate(seen):
        assert torch.all(t[:, 0] == 0)
        assert torch.allclose(t[:, 1:], shift_sigma(torch.tensor((k + 0.5) / 4), 3.0).expand(2, 4))


def test_start_frame_reliance_compares_the_same_noise_with_three_first_frames():
    """Identical clips: another clip's first frame is the clip's own, so `other` equals `own` exactly; a model that
    reads the first frame then loses differently with zeros."""
    from relickit.evaluate.teacher import start_frame_reliance

    model, _ = random_assets()
    cfg = model.cfg
    lat = torch.randn(1, cfg.latent_channels, 4, *cfg.latent_size).repeat(2, 1, 1, 1, 1)
    frames = cfg.video_frames(4)
    acts, poses = torch.zeros(2, frames, ACTION_DIM), torch.zeros(2, frames, POSE_DIM)
    out = start_frame_reliance(model.eval(), lat, model.encode_text(["a", "a"]), acts, poses, sigmas=(0.5, 1.0))
    assert set(out) == {"0.5", "1.0"}
    for s in out.values():
        assert s["own"] == s["other"] and s["own"] != s["zero"]


def test_control_reliance_compares_the_same_noise_with_three_sets_of_controls():
    """Two clips with the same latents: with the same controls in both, another clip's controls are the clip's own
    (`other` == `own` exactly) and `still` (no key, the first pose throughout) differs; with different controls, a
    model that reads them loses differently with the other clip's."""
    from relickit.evaluate.teacher import control_reliance

    model, _ = random_assets()
    cfg = model.cfg
    lat = torch.randn(1, cfg.latent_channels, 4, *cfg.latent_size).repeat(2, 1, 1, 1, 1)
    frames = cfg.video_frames(4)
    gen = torch.Generator().manual_seed(0)
    acts, poses = torch.rand(2, frames, ACTION_DIM, generator=gen), torch.randn(2, frames, POSE_DIM, generator=gen)
    out = control_reliance(model.eval(), lat, model.encode_text(["a", "a"]), acts, poses, sigmas=(1.0,))
    # controls identical in both clips: every variant but `still` is the clip's own
    same = control_reliance(model.eval(), lat, model.encode_text(["a", "a"]), acts[:1].repeat(2, 1, 1),
                            poses[:1].repeat(2, 1, 1), sigmas=(1.0,))
    assert same["1.0"]["own"] == same["1.0"]["other"] != same["1.0"]["still"]
    assert out["1.0"]["own"] != out["1.0"]["other"]  # the random model reads its controls


def test_teacher_session_draws_the_whole_script_with_the_controls_a_session_feeds():
    from relickit.controls import integrate, pose_vector
    from relickit.diffusion import sample_teacher
    from relickit.evaluate import main as evaluate_main
    from relickit.evaluate.scripts import Script
    from relickit.evaluate.sessions import TeacherSession, run_script
    from relickit.play import to_uint8
    from relickit.teacher import stretch_horizon

    model, tok = random_assets(seed=1)
    cfg = model.cfg
    script = Script("walk_turn", ((("forward", 1.0),), (("pan_left", 0.6), ("forward", 0.5)), (("static", 1.0),)))
    image = np.random.default_rng(0).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    session = TeacherSession(model, tok, seed=5)
    with pytest.raises(RuntimeError, match="hands it the script"):
        session.reset(image, "a room")
    run = run_script(session, image, "a room", script)
    n = session.frames_per_step
    assert run.frames.shape == (1 + 3 * n, cfg.height, cfg.width, 3)
    # the actions and poses are those a streaming Session integrates chunk by chunk
    rot, pos = torch.eye(3)[None], torch.zeros(1, 3)
    static = torch.zeros(1, 1, ACTION_DIM)
    static[..., -1] = 1.0
    acts, poses = [static], [pose_vector(rot[:, None], pos[:, None])]
    for a in script.step_actions():
        chunk = a.expand(1, n, ACTION_DIM)
        r, p = integrate(rot, pos, chunk)
        acts.append(chunk)
        poses.append(pose_vector(r, p))
        rot, pos = r[:, -1], p[:, -1]
    actions, pose = session.controls_of(script)
    assert torch.equal(actions, torch.cat(acts, 1)) and torch.allclose(pose, torch.cat(poses, 1), atol=1e-6)
    # and the frames are the teacher's one draw of the whole clip from the seeded noise
    frames = 1 + 3 * cfg.chunk
    video = torch.from_numpy(image).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
    noise = torch.randn((1, cfg.latent_channels, frames, *cfg.latent_size), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        long = stretch_horizon(model, frames)
        z, _ = sample_teacher(long, tok.encode(video), frames, long.encode_text(["a room"]), actions, pose, noise=noise)
        assert np.array_equal(run.frames, to_uint8(tok.decode_tiny(z)[0].float()))
    session.reset(image, "a room")
    with pytest.raises(ValueError, match="not its step"):
        session.step(script.step_actions()[1])
    with pytest.raises(SystemExit):  # a teacher does not stream: no speed suite
        evaluate_main(["--suite", "speed", "--teacher", "--random", "smoke", "--out", "unused.json"])
