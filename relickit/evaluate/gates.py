"""Quality gates: one command that says whether the model is a world model or a still photo in a blur.

    python -m relickit.evaluate.gates --threads 1                  # the shipped model, CPU, MAP21 + E1M1 (~25 min)
    python -m relickit.evaluate.gates --browser-report B.json --teacher-report T.json   # gates 5b and 6 too
    python -m relickit.evaluate.gates --reports eval/gates --teacher-report T.json     # re-read, measure nothing
    python -m relickit.evaluate.gates --table shipped=docs/eval/gates new=eval/gates  # earlier reports side by side
    python -m relickit.evaluate.gates --oracle truth               # the evaluation's own check: must pass
    python -m relickit.evaluate.gates --oracle degraded            # a blurred, darkened truth: must fail

Every gate of the world-model campaign (issue 16) with its number, measured on held-out maps, plus the tokenizer
ceiling the picture gates are read against (issue 15's PSNR target). `measure` runs the suites: drift for 20 s and
2 min (the picture gates), revisit under the gated policy and window-only (memory), action through the pose
estimator (controls) and speed (headless frames per second on this machine). Two gates come from reports made
elsewhere: the joystick's frames shown in a browser (`scripts/bench_browser_fps.py --json B.json`) and the teacher
against its student on held-out clips (`python -m relickit.evaluate.teacher --teacher T --out T.json`).

| gate | number | default |
|---|---|---|
| 1 sharpness | mean sharpness ratio (generated / truth) of the drift runs | >= 0.75 over 20 s, >= 0.6 over 2 min |
| 1 brightness | brightness ratio of every whole second of both drift runs (maps averaged), the worst | 0.9 .. 1.1 |
| 1 colour | colour cast (per-channel shift less its grey part) beyond the tokenizer ceiling's, worst channel and run | <= 2 levels |
| 2 first second | PSNR of second 1 below the tokenizer ceiling's (20-s drift run) | <= 3 dB |
| 3 memory | revisit return frames vs truth: gain over the frozen start, over window-only; vs the model's own first visit beyond the window | >= 3 dB, >= 2 dB, >= 25 dB |
| 4 controls | RPE-rot and RPE-trans over the estimator's floor on the engine's true frames | <= 1.5 x |
| 5 real time | headless end-to-end frames per second; frames shown in the browser (report) | >= 24, >= 16 |
| 6 teacher | picture scores on which the teacher is behind its student (report) | none |
| tokenizer | PSNR vs truth of the truth through tokenizer + play decoder (20-s drift run) | >= 28 dB |

A NaN number (nothing to measure) fails its gate; a gate whose report is not given is `not measured`, and the
verdict is PASS only when every gate is measured and passes.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .cli import split
from .engine import check_eval_maps
from .report import clean, read_json, write_json
from .scoring import over_floor
from .sessions import SessionFactory, load_assets, load_posenet, random_assets, session_factory
from .suites import DEFAULT_MAPS, evaluate

# the teacher's picture scores against its student's: higher is better, or closer to 1 (a ratio to the truth)
HIGHER: tuple[str, ...] = ("psnr", "ssim")
RATIOS: tuple[str, ...] = ("sharpness", "brightness", "saturation")
LOWER: tuple[str, ...] = ("edge_error",)
SUITE_REPORTS: tuple[str, ...] = ("drift", "revisit", "action", "speed")  # what `measure` runs, by report name


@dataclass(frozen=True)
class GateConfig:
    """Thresholds (issue 16's gates), and what is run to measure them."""

    seconds: float = 20.0  # the short drift run: sharpness, brightness, colour, the first second, the ceiling
    long_seconds: float = 120.0  # the long drift run: sharpness at 2 min, brightness and colour throughout
    min_sharpness: float = 0.75
    min_sharpness_long: float = 0.6
    brightness: tuple[float, float] = (0.9, 1.1)
    max_colour_cast: float = 2.0  # levels 0-255 beyond the tokenizer's own (issue 15's colour target)
    max_first_second_gap_db: float = 3.0
    min_gain_over_frozen_db: float = 3.0
    min_gain_over_window_db: float = 2.0
    min_first_visit_db: float = 25.0
    max_rpe_over_floor: float = 1.5
    min_headless_fps: float = 24.0
    min_browser_fps: float = 16.0
    min_ceiling_db: float = 28.0
    policy: str = "compressed"  # the memory policy whose numbers are gated
    revisit_scripts: tuple[str, ...] = ()  # () = all revisit scripts
    action_scripts: tuple[str, ...] = ()  # () = all 11
    action_seconds: float = 4.0
    speed_seconds: float = 20.0

    def __post_init__(self) -> None:
        lo, hi = self.brightness
        if not lo <= hi:
            raise ValueError(f"brightness gate must be (low, high) with low <= high, got {self.brightness}.")
        if self.policy == "window":
            raise ValueError("the gated policy cannot be 'window': one gate compares it against window-only.")
        if self.seconds < 1.0 or self.long_seconds < self.seconds:
            raise ValueError(f"the drift runs need seconds >= 1 and long_seconds >= seconds, got {self.seconds} "
                             f"and {self.long_seconds}.")


@dataclass(frozen=True)
class Gate:
    gate: str  # the gate number ("1" .. "6"), or "tokenizer"
    name: str
    value: float
    rule: str
    passed: bool | None  # None: not measured
    unit: str = ""
    detail: str = ""

    @property
    def shown(self) -> str:
        """The number as the tables print it: three significant digits and its unit, or nan."""
        return "nan" if math.isnan(self.value) else f"{self.value:.3g}{self.unit}"

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]

    @classmethod
    def from_json(cls, saved: Mapping[str, Any]) -> Gate:
        """A gate as `gates.json` holds it (a NaN number is written "nan")."""
        return cls(**{**saved, "value": float(saved["value"])})


def tally(gates: Sequence[Gate]) -> tuple[int, int]:
    """(parts passed, parts measured)."""
    return sum(g.passed is True for g in gates), sum(g.passed is not None for g in gates)


def _at_least(gate: str, name: str, value: float, threshold: float, unit: str = "") -> Gate:
    return Gate(gate, name, value, f">= {threshold:g}{unit}", bool(value >= threshold), unit)


def _at_most(gate: str, name: str, value: float, threshold: float, unit: str = "") -> Gate:
    return Gate(gate, name, value, f"<= {threshold:g}{unit}", bool(value <= threshold), unit)


def _not_measured(gate: str, name: str, rule: str, how: str) -> Gate:
    return Gate(gate, name, math.nan, rule, None, detail=f"not measured: {how}")


def measure(factory: SessionFactory, maps: Sequence[str] | str = DEFAULT_MAPS, cfg: GateConfig = GateConfig(),
            seed: int = 0, tries: int = 30, out_dir: str | Path | None = None, progress: bool = False,
            model_info: dict | None = None, posenet: Any = None) -> dict[str, dict]:
    """The drift, revisit, action and speed reports the gates read (written to out_dir as <suite>.json + figures).
    The short drift runs keep the seeds they had when they were the only ones (20-s gates compare across runs)."""
    if posenet is None:
        raise ValueError("gate 4 reads the pose estimator: pass posenet=load_posenet()[0].")
    common = dict(maps=maps, seed=seed, out_dir=out_dir, progress=progress, model_info=model_info)
    return {
        "drift": evaluate("drift", factory, durations=(cfg.seconds, cfg.long_seconds), policies=(cfg.policy,),
                          tries=tries, report_name="drift.json", **common),
        "revisit": evaluate("revisit", factory, policies=(cfg.policy, "window"), scripts=list(cfg.revisit_scripts),
                            tries=tries, report_name="revisit.json", **common),
        "action": evaluate("action", factory, seconds=cfg.action_seconds, policy=cfg.policy, posenet=posenet,
                           scripts=list(cfg.action_scripts) or None, tries=tries, report_name="action.json", **common),
        "speed": evaluate("speed", factory, seconds=cfg.speed_seconds, policies=(cfg.policy,),
                          report_name="speed.json", **common),
    }


def worst_second(curves: Sequence[Sequence[float]], lo: float, hi: float) -> float:
    """The value of the seconds in `curves` that lies furthest outside [lo, hi] (or nearest its edge, inside)."""
    values = [float(v) for c in curves for v in c]
    return max(values, key=lambda v: math.inf if math.isnan(v) else max(lo - v, v - hi), default=math.nan)


def colour_cast(shift: Sequence[float]) -> np.ndarray:
    """A per-channel colour shift (generated - truth, levels) without its grey part: the tint, not the darkening
    (which the brightness gate reads)."""
    s = np.asarray(shift, dtype=np.float64)
    return s - s.mean()


def behind(teacher: Mapping[str, float], student: Mapping[str, float]) -> list[str]:
    """The picture scores on which the teacher is worse than the student (ratios: further from 1), of those both
    reports hold (reports before 2026-12-05 have no edge_error)."""
    t, s = ({k: float(v[k]) for k in (*HIGHER, *RATIOS, *LOWER) if k in teacher and k in student}
            for v in (teacher, student))
    worse = [k for k in HIGHER if k in t and t[k] < s[k]] + [k for k in LOWER if k in t and t[k] > s[k]]
    return worse + [k for k in RATIOS if k in t and abs(t[k] - 1) > abs(s[k] - 1)]


def cast_beyond_tokenizer(pictures: Mapping[str, Any]) -> float:
    """Gate 1's colour cast of one run's `pictures`: the model's cast less the tokenizer ceiling's, worst channel."""
    return float(np.abs(colour_cast(pictures["model"]["colour_shift"])
                        - colour_cast(pictures["tokenizer_ceiling"]["colour_shift"])).max())


def check(reports: Mapping[str, Any], cfg: GateConfig = GateConfig(), browser: Mapping[str, Any] | None = None,
          teacher: Mapping[str, Any] | None = None) -> list[Gate]:
    """The gates from the reports of `measure` (cleaned JSON: "inf"/"nan" strings read back as floats), the browser
    benchmark's JSON (`shown_fps` over `seconds`) and a teacher evaluation's with a teacher and a student (`summary`)."""
    drift = reports["drift"]["summary"]
    runs = {s: drift[f"{int(s)}s"][cfg.policy]["pictures"] for s in (cfg.seconds, cfg.long_seconds)}
    short, long = runs[cfg.seconds], runs[cfg.long_seconds]
    lo, hi = cfg.brightness
    bright = worst_second([p["model"]["per_second"]["brightness"][:int(s)] for s, p in runs.items()], lo, hi)
    cast = max(cast_beyond_tokenizer(p) for p in runs.values())
    first_gap = (float(short["tokenizer_ceiling"]["per_second"]["psnr"][0])
                 - float(short["model"]["per_second"]["psnr"][0]))
    revisit = reports["revisit"]["summary"]
    action = reports["action"]["summary"]["overall"]
    speed = next(r for r in reports["speed"]["rows"] if r["policy"] == cfg.policy)
    s, ls, p = f"over {cfg.seconds:g} s", f"over {cfg.long_seconds:g} s", cfg.policy
    gates = [
        _at_least("1", f"sharpness ratio {s}", float(short["model"]["sharpness"]), cfg.min_sharpness),
        _at_least("1", f"sharpness ratio {ls}", float(long["model"]["sharpness"]), cfg.min_sharpness_long),
        Gate("1", "brightness ratio, worst second", bright, f"{lo:g} .. {hi:g}", bool(lo <= bright <= hi)),
        _at_most("1", "colour cast beyond the tokenizer's", cast, cfg.max_colour_cast, " levels"),
        _at_most("2", "first second below the tokenizer ceiling", first_gap, cfg.max_first_second_gap_db, " dB"),
        _at_least("3", f"revisit gain over frozen start ({p})",
                  float(revisit["pictures"][p]["gain_over_frozen_db"]), cfg.min_gain_over_frozen_db, " dB"),
        _at_least("3", f"revisit gain over window-only ({p})",
                  float(revisit["gain_over_window_db"][p]), cfg.min_gain_over_window_db, " dB"),
        _at_least("3", f"revisit vs own first visit beyond the window ({p})",
                  float(revisit["by_policy"][p]["vs_first_visit_far"]["psnr"]), cfg.min_first_visit_db, " dB"),
        _at_most("4", "RPE-rot over the estimator floor", over_floor(action["rpe_rot"], action["floor_rot"]),
                 cfg.max_rpe_over_floor, "x"),
        _at_most("4", "RPE-trans over the estimator floor",
                 over_floor(action["rpe_trans"], action["floor_trans"]), cfg.max_rpe_over_floor, "x"),
        _at_least("5", f"headless end-to-end FPS ({p}, {reports['speed']['settings']['torch_threads']} threads)",
                  float(speed["end_to_end_fps_steady"]), cfg.min_headless_fps),
    ]
    if browser is None:
        gates.append(_not_measured("5", "FPS shown in the browser", f">= {cfg.min_browser_fps:g}",
                                   "scripts/bench_browser_fps.py --model --json B.json, then --browser-report B.json"))
    else:
        # the window counts whole frames: a stream at exactly the video rate shows rate x seconds, give or take one
        fps, slack = float(browser["shown_fps"]), 1.0 / float(browser["seconds"])
        gates.append(Gate("5", "FPS shown in the browser", fps, f">= {cfg.min_browser_fps:g} - 1 frame",
                          bool(fps + slack >= cfg.min_browser_fps)))
    if teacher is None:
        gates.append(_not_measured("6", "picture scores the teacher is behind on", "= 0", "python -m "
                                   "relickit.evaluate.teacher --teacher T --out T.json, then --teacher-report T.json"))
    else:
        summary = teacher["summary"]
        if not {"teacher", "student"} <= set(summary):
            raise ValueError("gate 6 needs a teacher evaluation with a teacher and a student (python -m "
                             "relickit.evaluate.teacher --teacher T --out T.json); this report has "
                             f"{sorted(summary)}.")
        worse = behind(summary["teacher"]["model"], summary["student"]["model"])
        gates.append(Gate("6", "picture scores the teacher is behind on", float(len(worse)), "= 0", not worse,
                          detail=", ".join(worse)))
    gates.append(_at_least("tokenizer", f"tokenizer ceiling PSNR {s}", float(short["tokenizer_ceiling"]["psnr"]),
                           cfg.min_ceiling_db, " dB"))
    return gates


def verdict(gates: Sequence[Gate]) -> str:
    """PASS when every gate is measured and passes; FAIL when one fails; INCOMPLETE when none fails but some are
    not measured."""
    if any(g.passed is False for g in gates):
        return "FAIL"
    return "PASS" if all(g.passed for g in gates) else "INCOMPLETE"


def format_gates(gates: Sequence[Gate]) -> str:
    """A table: gate number, name, number, rule, PASS/FAIL/-; and a last line with the verdict."""
    width, rules = max(len(g.name) for g in gates), max(len(g.rule) for g in gates)
    lines = [f"{'#':<9}  {'gate':<{width}}  {'value':>12}  {'rule':<{rules}}  result"]
    for g in gates:
        lines.append(f"{g.gate:<9}  {g.name:<{width}}  {g.shown:>12}  {g.rule:<{rules}}  {g.result}"
                     + (f"  ({g.detail})" if g.detail else ""))
    n, measured = tally(gates)
    missing = len(gates) - measured
    lines.append(f"quality gates: {n} of {measured} measured pass"
                 + (f", {missing} not measured" if missing else "") + f" -> {verdict(gates)}")
    return "\n".join(lines)


def side_by_side(named: Mapping[str, Sequence[Gate]]) -> str:
    """A markdown table of several models' gates (by name): one row per gate part, a column per model, each number
    marked PASS or FAIL (or `-`, not measured), and the parts each passed."""
    parts = list(dict.fromkeys((g.gate, g.name) for gates in named.values() for g in gates))
    by_part = {name: {(g.gate, g.name): g for g in gates} for name, gates in named.items()}
    rows = [f"| gate | part | {' | '.join(named)} |", "|---|---|" + "---|" * len(named)]
    for part in parts:
        cells = [f"{g.shown} {g.result}" if (g := by_part[name].get(part)) else "" for name in named]
        rows.append(f"| {part[0]} | {part[1]} | {' | '.join(cells)} |")
    passed = ["{} of {}".format(*tally(gates)) for gates in named.values()]
    rows.append(f"| | parts passed (of measured) | {' | '.join(passed)} |")
    return "\n".join(rows)


def read_gates(spec: str) -> tuple[str, list[Gate]]:
    """`NAME=PATH` (a gates.json or the directory holding one; NAME defaults to the path) -> (NAME, its gates)."""
    name, _, path = spec.rpartition("=")
    file = Path(path) / "gates.json" if Path(path).is_dir() else Path(path)
    saved = read_report(str(file), "gates report (an earlier `--out`)")["gates"]
    return name or path, [Gate.from_json(g) for g in saved]


def read_report(path: str | None, what: str) -> dict | None:
    if path is None:
        return None
    try:
        return read_json(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no {what} at {path}: make it first (see `python -m relickit.evaluate.gates "
                                f"--help`).") from err


def run_suites(args: argparse.Namespace, cfg: GateConfig) -> dict[str, dict]:
    """`measure` on the command line's model (or oracle), maps and seed."""
    posenet, pinfo = load_posenet(args.posenet)
    if args.oracle:
        from .oracle import oracle_factory

        factory, info = oracle_factory(args.oracle), {"weights": f"oracle ({args.oracle})"}
    elif args.random:
        factory, info = session_factory(*random_assets()), {"weights": "random (smoke)"}
    else:
        model, tokenizer, info = load_assets(args.model, args.tokenizer)
        factory = session_factory(model, tokenizer)
    return measure(factory, args.maps, cfg, args.seed, args.tries, args.out, progress=True,
                   model_info={**info, **pinfo}, posenet=posenet)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the gates; 0 when every gate is measured and passes, 1 otherwise."""
    ap = argparse.ArgumentParser(description="Quality gates of a relickit world model on held-out Doom maps (CPU).")
    ap.add_argument("--model", help="world model safetensors (default relickit/assets/student.safetensors)")
    ap.add_argument("--tokenizer", help="tokenizer safetensors (default relickit/assets/tokenizer.safetensors)")
    ap.add_argument("--posenet", help="pose estimator (default relickit/assets/posenet.safetensors)")
    ap.add_argument("--oracle", choices=("truth", "degraded", "frozen"),
                    help="gate the engine's truth (or a blurred+darkened / frozen copy) instead of a model")
    ap.add_argument("--random", action="store_true", help="random tiny weights (smoke: numbers mean nothing)")
    ap.add_argument("--browser-report", help="JSON of scripts/bench_browser_fps.py --json (gate 5 in the browser)")
    ap.add_argument("--teacher-report", help="JSON of python -m relickit.evaluate.teacher with a teacher (gate 6)")
    ap.add_argument("--maps", default=",".join(DEFAULT_MAPS), help="held-out maps, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=GateConfig.seconds, help="short drift run length")
    ap.add_argument("--long-seconds", type=float, default=GateConfig.long_seconds, help="long drift run length")
    ap.add_argument("--scripts", default="", help="revisit scripts, comma-separated (default: all)")
    ap.add_argument("--action-scripts", default="", help="action scripts, comma-separated (default: all 11)")
    ap.add_argument("--action-seconds", type=float, default=GateConfig.action_seconds)
    ap.add_argument("--speed-seconds", type=float, default=GateConfig.speed_seconds)
    ap.add_argument("--tries", type=int, default=30, help="start states tried per script")
    ap.add_argument("--policy", default=GateConfig.policy)
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--out", help="directory for gates.json and the suites' reports and figures")
    ap.add_argument("--reports", help="measure nothing: read the suites' reports (drift, revisit, action, speed .json) "
                                      "from this directory (an earlier --out) and check them")
    ap.add_argument("--table", nargs="+", metavar="NAME=PATH",
                    help="measure nothing: print earlier gates.json reports (or their --out directories) side by "
                         "side as a markdown table")
    args = ap.parse_args(argv)
    if args.table:
        print(side_by_side(dict(read_gates(spec) for spec in args.table)))
        return 0
    cfg = GateConfig(seconds=args.seconds, long_seconds=args.long_seconds, policy=args.policy,
                     revisit_scripts=tuple(split(args.scripts)), action_scripts=tuple(split(args.action_scripts)),
                     action_seconds=args.action_seconds, speed_seconds=args.speed_seconds)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_eval_maps(args.maps)  # refuse training maps before loading anything
    browser = read_report(args.browser_report, "browser benchmark report")
    teacher = read_report(args.teacher_report, "teacher evaluation report")
    if args.reports:
        reports = {k: read_report(str(Path(args.reports) / f"{k}.json"), f"{k} report") for k in SUITE_REPORTS}
        short, long = reports["drift"]["settings"]["durations_s"]  # the runs the reports hold, not --seconds
        cfg = dataclasses.replace(cfg, seconds=short, long_seconds=long)
    else:
        reports = run_suites(args, cfg)
    gates = check(reports, cfg, browser, teacher)
    drift = reports["drift"]
    print(f"{drift['model']['weights']} on {','.join(drift['maps'])} (seed {drift['seed']}, "
          f"{reports['speed']['settings']['torch_threads']} CPU threads)")
    print(format_gates(gates))
    if args.out:
        write_json(Path(args.out) / "gates.json", clean({
            "config": dataclasses.asdict(cfg), "maps": drift["maps"], "seed": drift["seed"], "model": drift["model"],
            "browser_report": args.browser_report, "teacher_report": args.teacher_report,
            "verdict": verdict(gates), "gates": [dataclasses.asdict(g) for g in gates]}))
    return 0 if verdict(gates) == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
