import json

import numpy as np
import pytest
import torch

from relickit.config import MemoryConfig
from relickit.controls import ControlsConfig
from relickit.doom import DoomConfig, StartState, replay
from relickit.evaluate import (SUITES, EngineActions, Script, check_eval_maps, commanded_poses, evaluate, main,
                               match_revisits, random_assets, revisit_scripts, run_script, session_factory)
from relickit.evaluate.report import read_json, write_json
from relickit.metrics import rpe


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def factory():
    model, tokenizer = random_assets()
    return session_factory(model, tokenizer)


def never(policy, seed):
    raise AssertionError("the suite built a session before refusing the maps")


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_refuses_training_maps(suite):
    with pytest.raises(ValueError, match="TRAINING map"):
        evaluate(suite, never, maps=("MAP21", "MAP01"))
    with pytest.raises(ValueError, match="unknown map"):
        check_eval_maps(["MAP99"])


def test_cli_refuses_training_maps(tmp_path):
    with pytest.raises(ValueError, match="TRAINING map"):
        main(["--suite", "revisit", "--maps", "MAP05", "--out", str(tmp_path / "r.json")])


def test_scripts_are_engine_executable():
    with pytest.raises(ValueError, match="Doom cannot roll"):
        Script("bad", ((("roll_cw", 1.0),),))
    doom = DoomConfig(map="MAP21")
    eng = EngineActions()
    assert eng.command((("pan_right", 1.0),), doom) == {"pan_right": 1.0}  # 5 deg per frame both sides
    assert eng.command((("tilt_up", 0.6),), doom) == pytest.approx({"tilt_up": 1.0})  # Doom tilts 3 deg per frame
    assert eng.command((), doom) == {"static": 1.0}
    with pytest.raises(ValueError, match="full speed"):
        eng.command((("pan_left", 2.0),), doom)


def test_commanded_rotations_match_the_engine():
    """The adapter is exact for rotations: the engine's true camera turns as the session integrates."""
    script = Script("turns", ((("pan_right", 1.0),), (("tilt_up", 0.3),), (("pan_left", 0.5), ("tilt_down", 0.3))))
    doom = DoomConfig(wad="freedoom1", map="E1M1")
    truth = replay(doom, StartState(seed=0), EngineActions().script(script, 4, doom))
    r, p = commanded_poses(script, 4)
    assert len(truth) == len(r) == 13
    e = rpe(truth.rotations[:9], truth.positions[:9], r[:9].numpy(), p[:9].numpy())
    assert e["rot"] < 0.02  # pan, then tilt: exact up to Doom's angle rounding
    # panning while tilted: Doom yaws about the world's vertical, the commanded path about the camera's own axis
    assert rpe(truth.rotations, truth.positions, r.numpy(), p.numpy())["rot"] < 0.1


def test_revisit_pairs_match_commanded_poses():
    scripts = revisit_scripts(12, ControlsConfig())
    look = scripts["look_back"]
    pairs = match_revisits(look, 12)
    assert len(look) == 6 and look.revisit_step == 3
    assert pairs[-1] == (72, 0)  # back where it started
    assert all(j + i == 72 for j, i in pairs)  # pan right then back: frame j revisits frame 72 - j
    pan = scripts["pan360"]
    assert all(j - i == 72 for j, i in match_revisits(pan, 12))


def test_revisit_report_is_reproducible_and_written(factory, tmp_path):
    short = Script("glance", ((("pan_right", 1.0),), (("pan_left", 1.0),)), revisit_step=1)
    kw = dict(maps=("MAP21",), seed=3, policies=("none", "compressed"), scripts=[short], tries=3)
    a = evaluate("revisit", factory, out_dir=tmp_path / "a", **kw)
    b = evaluate("revisit", factory, **kw)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.loads((tmp_path / "a" / "report.json").read_text()) == json.loads(json.dumps(b))
    assert (tmp_path / "a" / "report_revisit_policies.html").exists()
    rows = a["rows"]
    assert [r["policy"] for r in rows] == ["none", "compressed"]
    assert rows[0]["pairs"] == 12 and isinstance(rows[0]["return_vs_truth"]["psnr"], float)
    assert a["maps"] == ["MAP21"] and a["suite"] == "revisit"


def test_report_json_keeps_one_key_per_line_and_each_list_on_one(tmp_path):
    report = {"b": {"per_frame": [[1.5, 2.0], [3.25, -4.0]], "name": "x"}, "a": [{"psnr": 20.5}], "empty": {}}
    text = write_json(tmp_path / "r.json", report).read_text()
    assert json.loads(text) == report
    assert text.splitlines() == ['{', ' "a": [{"psnr":20.5}],', ' "b": {', '  "name": "x",',
                                 '  "per_frame": [[1.5,2.0],[3.25,-4.0]]', ' },', ' "empty": {}', '}']
    assert not list(tmp_path.glob(".r.json.*"))  # written atomically: no temporary left behind


def test_run_script_times_steps_and_records_memory(factory):
    session = factory("compressed", 0)
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    run = run_script(session, image, "a grey room", Script("s", ((),) * 2))
    assert run.frames.shape == (1 + 2 * session.frames_per_step, 96, 128, 3)
    assert len(run.step_s) == 2 and all(0 <= d <= s for d, s in zip(run.decode_s, run.step_s))
    assert [s["frames"] for s in run.stats] == [1, 4, 7]
    assert "_decode" not in vars(session)  # the timing wrapper is removed


def test_probe_recomputes_the_models_attention(factory):
    from relickit.probe import PARTS, AttentionProbe, attention_summary

    session = factory("compressed", 0)
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    with AttentionProbe(session, layer=-1, verify=True) as probe:
        run_script(session, image, "a grey room", Script("pan", ((("pan_right", 1.0),),) * 3))
    assert len(probe.records) == 1 + 3 * 5  # reset's context pass, then 4 denoising steps + 1 context pass a chunk
    finals = probe.final_records()
    assert [r.cached_frames for r in finals] == [1, 4, 7]
    assert max(r.max_abs_error for r in probe.records[1:]) < 1e-4
    last = attention_summary(finals[-1])
    assert sum(last["by_part"].values()) == pytest.approx(1.0)
    assert set(last["by_part"]) == set(PARTS) and last["by_part"]["compressed"] > 0  # frames 0-3 left the window
    assert {f["frame"] for f in last["frames"]} == set(range(7))
    assert len(session.model.blocks[-1]._forward_pre_hooks) == 0  # detached


def test_probe_follows_the_ring_of_a_bounded_fp8_memory():
    """With a horizon the compressed frames wrap around a ring, and fp8 storage is read back through
    KVCache.cached: the probe's key layout must follow both."""
    from relickit.probe import AttentionProbe

    model, tokenizer = random_assets()
    memory = MemoryConfig(window=1, schedule=(1, 4, 2), horizon=3, kv_format="fp8")
    session = session_factory(model, tokenizer, memory)("compressed", 0)
    image = np.random.default_rng(2).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    with AttentionProbe(session, layer=0, verify=True) as probe:
        run_script(session, image, "a grey room", Script("s", ((),) * 3))
    last = probe.final_records()[-1]  # 7 frames cached: window holds frame 6, the ring frames 3, 4, 5
    comp = last.layout.part == 2
    assert sorted(set(last.layout.frame[comp].tolist())) == [3, 4, 5]
    assert list(dict.fromkeys(last.layout.frame[comp].tolist())) == [3, 4, 5]  # frame 3 took frame 0's slot
    assert max(r.max_abs_error for r in probe.records[1:]) < 1e-4


def test_posenet_learns_from_real_engine_frames(tmp_path):
    from relickit.dataset import generate
    from relickit.posenet import (
        PoseNet,
        PoseNetTrainConfig,
        recover_trajectory,
        train_posenet,
    )
    from relickit.train import TrainConfig

    root = generate(tmp_path / "data", ["MAP01", "MAP02"], 2, frames_per_episode=100, progress=False)
    cfg = PoseNetTrainConfig(train=TrainConfig(steps=40, lr=2e-3, batch_size=12, log_every=10,
                                               out_dir=str(tmp_path / "run")))
    net, result = train_posenet(root, cfg, out=tmp_path / "posenet.safetensors")
    first, last = result.log[0], result.log[-1]
    assert last["rot_mse"] < 0.75 * first["rot_mse"]
    net = PoseNet.load(tmp_path / "posenet.safetensors")
    # a held-out map, a pan the net never saw: better than the zero-motion guess
    truth = replay(DoomConfig(map="MAP21"), StartState(seed=3), [{"pan_right": 1.0}] * 12 + [{"pan_left": 0.6}] * 12)
    r, p = recover_trajectory(net, truth.frames)
    est = rpe(r, p, truth.rotations, truth.positions)
    chance = rpe(np.broadcast_to(np.eye(3), truth.rotations.shape), np.zeros_like(truth.positions),
                 truth.rotations, truth.positions)
    assert est["rot"] < 0.8 * chance["rot"]
    with pytest.raises(ValueError, match="held-out"):
        train_posenet(generate(tmp_path / "eval", ["MAP22"], 1, frames_per_episode=20, split="eval", progress=False), cfg)


def test_posenet_cli_warm_starts_from_a_saved_estimator(tmp_path, capsys):
    from relickit.dataset import generate
    from relickit.posenet import PoseNet, main

    train = generate(tmp_path / "train", ["MAP01"], 1, frames_per_episode=40, progress=False)
    held = generate(tmp_path / "eval", ["MAP21"], 1, frames_per_episode=97, split="eval", progress=False)
    common = ["--data", str(train), "--eval-data", str(held), "--batch-size", "4", "--threads", "1"]
    main([*common, "--steps", "3", "--run-dir", str(tmp_path / "a"), "--out", str(tmp_path / "a.safetensors")])
    first = json.loads(capsys.readouterr().out)
    main([*common, "--steps", "0", "--warm-start", str(tmp_path / "a.safetensors"), "--run-dir", str(tmp_path / "b"),
          "--out", str(tmp_path / "b.safetensors")])
    again = json.loads(capsys.readouterr().out)
    a, b = PoseNet.load(tmp_path / "a.safetensors"), PoseNet.load(tmp_path / "b.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert again["floor_eval_maps"] == first["floor_eval_maps"] and first["floor_eval_maps"]["clips"] == 1


def _action_report(rot: dict, trans: dict) -> dict:
    scripts = [{"name": "forward", "steps": [{"forward": 1.0}]}, {"name": "pan_left", "steps": [{"pan_left": 1.0}]}]
    rows = [{"map": m, "script": s, "seed": 0, "rpe_rot": rot[m, s], "rpe_trans": trans[m, s],
             "floor_rot": 0.5, "floor_trans": 0.4 if s == "forward" else 0.0}
            for m in ("MAP21", "E1M1") for s in ("forward", "pan_left")]
    return {"suite": "action", "settings": {"scripts": scripts}, "rows": rows}


def test_a_gzipped_report_reads_as_written_under_its_json_name(tmp_path):
    """docs/runs keeps its large reports gzipped (X.json.gz): read_json reads them, and a command naming X.json
    (as the docs do) reads the gzipped one beside it; a report that is neither is a clear FileNotFoundError."""
    import gzip

    report = {"rows": [{"psnr": [21.5, 20.25]}], "suite": "drift"}
    plain = write_json(tmp_path / "r.json", report)
    (tmp_path / "r.json.gz").write_bytes(gzip.compress(plain.read_bytes()))
    assert read_json(plain) == read_json(tmp_path / "r.json.gz") == report
    plain.unlink()
    assert read_json(tmp_path / "r.json") == report
    with pytest.raises(FileNotFoundError, match="other.json"):
        read_json(tmp_path / "other.json")


def test_action_reports_pair_run_by_run(tmp_path):
    keys = [(m, s) for m in ("MAP21", "E1M1") for s in ("forward", "pan_left")]
    rot = dict(zip(keys, [1.0, 2.0, 1.5, 0.5]))
    trans = dict(zip(keys, [0.8, 0.0, 0.6, 0.0]))  # a pan's RPE-trans is 0 by construction
    before = _action_report(rot, trans)
    after = _action_report({k: v + (0.3 if k[0] == "MAP21" else -0.1) for k, v in rot.items()},
                           {k: v - 0.2 if k[1] == "forward" else v for k, v in trans.items()})
    paths = [tmp_path / "before.json", tmp_path / "after.json"]
    for path, report in zip(paths, (before, after)):
        write_json(path, report)
    change = main(["--compare", *map(str, paths)])
    assert change["runs"] == 4 and change["translating_runs"] == 2
    assert change["rpe_rot"]["mean"] == pytest.approx(0.1) and change["rpe_rot"]["up"] == 2
    assert change["rpe_rot"]["stderr"] == pytest.approx(np.std([0.3, 0.3, -0.1, -0.1], ddof=1) / 2)
    # the pans' zeros are left out of the translation: two runs, both 0.2 better, no spread
    assert change["rpe_trans"] == pytest.approx({"mean": -0.2, "stderr": 0.0, "up": 0})
    assert change["rpe_trans_over_floor"] == pytest.approx({"before": 0.7 / 0.4, "after": 0.5 / 0.4})
    assert change["rpe_rot_over_floor"]["before"] == pytest.approx(1.25 / 0.5)
    write_json(paths[1], {**after, "rows": after["rows"][:3]})
    with pytest.raises(ValueError, match="the same runs"):
        main(["--compare", *map(str, paths)])
    write_json(paths[1], {**after, "suite": "drift"})
    with pytest.raises(SystemExit):
        main(["--compare", *map(str, paths)])
    write_json(paths[1], {**after, "suite": "revisit"})  # two suites are not a pair either
    with pytest.raises(SystemExit):
        main(["--compare", *map(str, paths)])


def _revisit_report(psnr: dict) -> dict:
    rows = [{"map": m, "script": s, "seed": 0, "policy": p,
             "pictures": {"model": {"psnr": psnr[m, s, p], "ssim": 0.5, "sharpness": 0.2, "brightness": 1.0}}}
            for m, s, p in psnr]
    return {"suite": "revisit", "rows": rows}


def test_revisit_reports_pair_run_by_run_within_each_memory_policy(tmp_path):
    keys = [(m, s, p) for m in ("MAP21", "E1M1") for s in ("look_back", "pan360") for p in ("compressed", "window")]
    before = {k: 20.0 + i for i, k in enumerate(keys)}
    after = {k: v + ({"MAP21": 1.0, "E1M1": -0.5}[k[0]] if k[2] == "compressed" else 0.25) for k, v in before.items()}
    paths = [tmp_path / "before.json", tmp_path / "after.json"]
    for path, psnr in zip(paths, (before, after)):
        write_json(path, _revisit_report(psnr))
    change = main(["--compare", *map(str, paths)])
    assert change["runs"] == 8 and set(change) == {"runs", "compressed", "window"}
    ours = change["compressed"]
    assert ours["psnr"]["mean"] == pytest.approx(0.25) and ours["psnr"]["up"] == 2
    assert ours["psnr"]["stderr"] == pytest.approx(np.std([1.0, 1.0, -0.5, -0.5], ddof=1) / 2)
    assert ours["by_run"] == {"MAP21 look_back": 1.0, "MAP21 pan360": 1.0, "E1M1 look_back": -0.5, "E1M1 pan360": -0.5}
    assert change["window"]["psnr"] == pytest.approx({"mean": 0.25, "stderr": 0.0, "up": 4})
    assert change["window"]["ssim"] == pytest.approx({"mean": 0.0, "stderr": 0.0, "up": 0})
    write_json(paths[1], {"suite": "revisit", "rows": _revisit_report(after)["rows"][1:]})
    with pytest.raises(ValueError, match="the same runs"):
        main(["--compare", *map(str, paths)])
