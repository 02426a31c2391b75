"""python -m relickit.evaluate --suite {action,revisit,drift,speed} --out report.json [--maps MAP21,E1M1 ...]
python -m relickit.evaluate --compare BEFORE.json AFTER.json      # two action (or revisit) reports, run by run"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..diffusion import SamplerConfig
from . import action, revisit
from .engine import check_eval_maps
from .report import headline, picture_blocks, read_json
from .scripts import EngineActions
from .sessions import load_assets, load_posenet, random_assets, session_factory, teacher_factory
from .suites import DEFAULT_MAPS, SUITES, evaluate


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Evaluate a relickit world model on held-out Doom maps.")
    ap.add_argument("--suite", choices=SUITES)
    ap.add_argument("--model", help="world model safetensors (default relickit/assets/student.safetensors)")
    ap.add_argument("--tokenizer", help="tokenizer safetensors (default relickit/assets/tokenizer.safetensors)")
    ap.add_argument("--teacher", action="store_true",
                    help="--model is a bidirectional teacher: each script's whole clip is drawn at once "
                         "(sessions.TeacherSession), to score it beside its student")
    ap.add_argument("--teacher-steps", type=int, default=SamplerConfig.teacher_steps,
                    help="Euler steps of the teacher's sampler (with --teacher)")
    ap.add_argument("--posenet", help="pose estimator (action suite; default relickit/assets/posenet.safetensors)")
    ap.add_argument("--out", help="report path (.json; figures go beside it) or a directory")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"),
                    help="measure nothing: two action-suite (or revisit-suite) reports of the same runs, paired "
                         "(action.paired_change, revisit.paired_change)")
    ap.add_argument("--maps", default=",".join(DEFAULT_MAPS), help="held-out maps, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", help="memory policies, comma-separated (revisit, drift, speed)")
    ap.add_argument("--policy", default="compressed", help="memory policy of the action suite")
    ap.add_argument("--scripts", help="script names, comma-separated (action, revisit)")
    ap.add_argument("--seconds", type=float, help="script length (action: 4, speed: 20)")
    ap.add_argument("--durations", default="20,120", help="drift durations in seconds, comma-separated")
    ap.add_argument("--step-units", type=float, default=EngineActions.step_units,
                    help="world units of a unit translation (the dataset's mean step length)")
    ap.add_argument("--tries", type=int, default=30, help="start states tried per script")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--random", choices=["smoke", "tiny", "small"],
                    help="ignore weight files: random weights (smoke: a shrunken tiny model; tiny/small: the preset's "
                         "real shapes, e.g. for the speed suite)")
    args = ap.parse_args(argv)
    if args.compare:
        before, after = (read_json(p) for p in args.compare)
        pairing = {"action": action.paired_change, "revisit": revisit.paired_change}
        if not before.get("suite") == after.get("suite") in pairing:
            ap.error("--compare pairs two action-suite or two revisit-suite reports (--suite action|revisit --out "
                     "R.json).")
        change = pairing[after["suite"]](before, after)
        print(json.dumps(change, indent=1))
        return change
    if not (args.suite and args.out):
        ap.error("name --suite and --out (or --compare BEFORE AFTER).")
    if args.teacher and args.suite == "speed":
        ap.error("a teacher does not stream (it draws the whole clip at reset): the speed suite times students.")
    if args.threads:
        torch.set_num_threads(args.threads)
    check_eval_maps(args.maps.split(","))  # refuse training maps before loading anything
    if args.random:
        model, tokenizer = random_assets(preset_name="tiny" if args.random == "smoke" else args.random,
                                         smoke=args.random == "smoke")
        info = {"weights": f"random ({args.random})", "model_path": None, "tokenizer_path": None}
    else:
        model, tokenizer, info = load_assets(args.model, args.tokenizer)
    opts: dict[str, Any] = {}
    engine = EngineActions(step_units=args.step_units)
    if args.suite == "action":
        net, pinfo = load_posenet(args.posenet)
        info.update(pinfo)
        opts.update(posenet=net, policy=args.policy, tries=args.tries, engine=engine)
        if args.seconds:
            opts["seconds"] = args.seconds
    if args.suite in ("revisit", "drift", "speed") and args.policies:
        opts["policies"] = split(args.policies)
    if args.suite in ("action", "revisit") and args.scripts:
        opts["scripts"] = split(args.scripts)
    if args.suite in ("revisit", "drift"):
        opts.update(tries=args.tries, engine=engine)
    if args.suite == "drift":
        opts["durations"] = [float(x) for x in split(args.durations)]
    if args.suite == "speed" and args.seconds:
        opts["seconds"] = args.seconds
    out = Path(args.out)
    out_dir, name = (out.parent, out.name) if out.suffix == ".json" else (out, "report.json")
    if args.teacher:
        factory = teacher_factory(model, tokenizer, sampler=SamplerConfig(teacher_steps=args.teacher_steps))
        info["session"] = f"teacher (whole clip at reset, {args.teacher_steps} Euler steps)"
    else:
        factory, info["session"] = session_factory(model, tokenizer), "streaming"
    report = evaluate(args.suite, factory, split(args.maps), args.seed, out_dir,
                      model_info=info, progress=True, report_name=name, **opts)
    print(f"wrote {out_dir / name} ({info['weights']} weights)")
    lines = [headline(path, block) for path, block in picture_blocks(report.get("summary", {}))]
    print("\n".join(lines + report["flags"]) if lines else json.dumps(report.get("rows"), indent=1)[:4000])
    return report


def split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]

