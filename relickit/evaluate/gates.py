"""Quality gates: one command that says whether the model is a world model or a still photo in a blur.

    python -m relickit.evaluate.gates                              # the shipped model, CPU, MAP21 + E1M1
    python -m relickit.evaluate.gates --oracle truth               # the evaluation's own check: must pass
    python -m relickit.evaluate.gates --oracle degraded            # a blurred, darkened truth: must fail

It runs the drift suite for `seconds` (the picture gates) and the revisit suite under the gated policy and
window-only (the memory gates) on held-out maps, prints each gate with its number and PASS/FAIL, and exits 1 when
any gate fails. The defaults are the targets of the world-model campaign:

| gate | number | default |
|---|---|---|
| sharpness | mean sharpness ratio (generated / truth) of the drift run | >= 0.75 over 20 s |
| brightness | mean brightness ratio of the drift run | 0.9 .. 1.1 |
| revisit gain over the frozen start | return-frame PSNR vs truth, model - start frame repeated | >= 3 dB |
| revisit gain over window-only | return-frame PSNR vs truth, gated policy - window policy | >= 2 dB |
| tokenizer ceiling | PSNR vs truth of the truth through tokenizer + play decoder (drift run) | >= 28 dB |

A NaN number (nothing to measure) fails its gate.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .engine import check_eval_maps
from .report import clean, write_json
from .sessions import SessionFactory, load_assets, random_assets, session_factory
from .suites import DEFAULT_MAPS, evaluate


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, and what is run to measure them."""

    seconds: float = 20.0  # length of the drift run the picture gates read
    min_sharpness: float = 0.75
    brightness: tuple[float, float] = (0.9, 1.1)
    min_gain_over_frozen_db: float = 3.0
    min_gain_over_window_db: float = 2.0
    min_ceiling_db: float = 28.0
    policy: str = "compressed"  # the memory policy whose numbers are gated
    revisit_scripts: tuple[str, ...] = ()  # () = all revisit scripts

    def __post_init__(self) -> None:
        lo, hi = self.brightness
        if not lo <= hi:
            raise ValueError(f"brightness gate must be (low, high) with low <= high, got {self.brightness}.")
        if self.policy == "window":
            raise ValueError("the gated policy cannot be 'window': one gate compares it against window-only.")
        if self.seconds < 1.0:
            raise ValueError(f"the drift run needs at least 1 second, got seconds={self.seconds}.")


@dataclass(frozen=True)
class Gate:
    name: str
    value: float
    rule: str
    passed: bool
    unit: str = ""


def _at_least(name: str, value: float, threshold: float, unit: str = "") -> Gate:
    return Gate(name, value, f">= {threshold:g}{unit}", bool(value >= threshold), unit)


def measure(factory: SessionFactory, maps: Sequence[str] | str = DEFAULT_MAPS, cfg: GateConfig = GateConfig(),
            seed: int = 0, tries: int = 30, out_dir: str | Path | None = None, progress: bool = False,
            model_info: dict | None = None) -> dict[str, dict]:
    """The drift and revisit reports the gates read (written to out_dir as drift.json / revisit.json + figures)."""
    common = dict(maps=maps, seed=seed, out_dir=out_dir, progress=progress, model_info=model_info, tries=tries)
    drift = evaluate("drift", factory, durations=(cfg.seconds,), policies=(cfg.policy,), report_name="drift.json",
                     **common)
    revisit = evaluate("revisit", factory, policies=(cfg.policy, "window"), scripts=list(cfg.revisit_scripts),
                       report_name="revisit.json", **common)
    return {"drift": drift, "revisit": revisit}


def check(reports: dict[str, dict], cfg: GateConfig = GateConfig()) -> list[Gate]:
    """The gates from the reports of `measure` (cleaned JSON: "inf"/"nan" strings read back as floats)."""
    drift = reports["drift"]["summary"][f"{int(cfg.seconds)}s"][cfg.policy]["pictures"]
    revisit = reports["revisit"]["summary"]
    model, ceiling = drift["model"], drift["tokenizer_ceiling"]
    lo, hi = cfg.brightness
    brightness = float(model["brightness"])
    s = f"over {cfg.seconds:g} s"
    return [
        _at_least(f"sharpness ratio {s}", float(model["sharpness"]), cfg.min_sharpness),
        Gate(f"brightness ratio {s}", brightness, f"{lo:g} .. {hi:g}", bool(lo <= brightness <= hi)),
        _at_least(f"revisit gain over frozen start ({cfg.policy})",
                  float(revisit["pictures"][cfg.policy]["gain_over_frozen_db"]), cfg.min_gain_over_frozen_db, " dB"),
        _at_least(f"revisit gain over window-only ({cfg.policy})",
                  float(revisit["gain_over_window_db"][cfg.policy]), cfg.min_gain_over_window_db, " dB"),
        _at_least(f"tokenizer ceiling PSNR {s}", float(ceiling["psnr"]), cfg.min_ceiling_db, " dB"),
    ]


def format_gates(gates: Sequence[Gate]) -> str:
    """A table: gate, number, rule, PASS/FAIL; and a last line with the verdict."""
    width = max(len(g.name) for g in gates)
    lines = [f"{'gate':<{width}}  {'value':>10}  {'rule':<14}  result"]
    for g in gates:
        value = "nan" if math.isnan(g.value) else f"{g.value:.3g}{g.unit}"
        lines.append(f"{g.name:<{width}}  {value:>10}  {g.rule:<14}  {'PASS' if g.passed else 'FAIL'}")
    n = sum(g.passed for g in gates)
    lines.append(f"quality gates: {n} of {len(gates)} pass -> {'PASS' if n == len(gates) else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the gates; 0 when every gate passes, 1 otherwise."""
    ap = argparse.ArgumentParser(description="Quality gates of a relickit world model on held-out Doom maps (CPU).")
    ap.add_argument("--model", help="world model safetensors (default relickit/assets/student.safetensors)")
    ap.add_argument("--tokenizer", help="tokenizer safetensors (default relickit/assets/tokenizer.safetensors)")
    ap.add_argument("--oracle", choices=("truth", "degraded", "frozen"),
                    help="gate the engine's truth (or a blurred+darkened / frozen copy) instead of a model")
    ap.add_argument("--random", action="store_true", help="random tiny weights (smoke: numbers mean nothing)")
    ap.add_argument("--maps", default=",".join(DEFAULT_MAPS), help="held-out maps, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=GateConfig.seconds, help="drift run length")
    ap.add_argument("--scripts", default="", help="revisit scripts, comma-separated (default: all)")
    ap.add_argument("--tries", type=int, default=30, help="start states tried per script")
    ap.add_argument("--min-sharpness", type=float, default=GateConfig.min_sharpness)
    ap.add_argument("--brightness", default="{},{}".format(*GateConfig.brightness), help="low,high")
    ap.add_argument("--min-gain-frozen", type=float, default=GateConfig.min_gain_over_frozen_db, help="dB")
    ap.add_argument("--min-gain-window", type=float, default=GateConfig.min_gain_over_window_db, help="dB")
    ap.add_argument("--min-ceiling", type=float, default=GateConfig.min_ceiling_db, help="dB")
    ap.add_argument("--policy", default=GateConfig.policy)
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--out", help="directory for gates.json and the drift / revisit reports and figures")
    args = ap.parse_args(argv)
    lo, hi = (float(x) for x in args.brightness.split(","))
    cfg = GateConfig(seconds=args.seconds, min_sharpness=args.min_sharpness, brightness=(lo, hi),
                     min_gain_over_frozen_db=args.min_gain_frozen, min_gain_over_window_db=args.min_gain_window,
                     min_ceiling_db=args.min_ceiling, policy=args.policy,
                     revisit_scripts=tuple(s.strip() for s in args.scripts.split(",") if s.strip()))
    if args.threads:
        torch.set_num_threads(args.threads)
    check_eval_maps(args.maps)  # refuse training maps before loading anything
    if args.oracle:
        from .oracle import oracle_factory

        factory, info = oracle_factory(args.oracle), {"weights": f"oracle ({args.oracle})"}
    elif args.random:
        factory, info = session_factory(*random_assets()), {"weights": "random (smoke)"}
    else:
        model, tokenizer, info = load_assets(args.model, args.tokenizer)
        factory = session_factory(model, tokenizer)
    reports = measure(factory, args.maps, cfg, args.seed, args.tries, args.out, progress=True, model_info=info)
    gates = check(reports, cfg)
    print(f"{info['weights']} on {args.maps} (seed {args.seed}, {torch.get_num_threads()} CPU threads)")
    print(format_gates(gates))
    if args.out:
        write_json(Path(args.out) / "gates.json", clean({"config": dataclasses.asdict(cfg), "maps": args.maps,
                                                        "seed": args.seed, "model": info,
                                                        "gates": [dataclasses.asdict(g) for g in gates]}))
    return 0 if all(g.passed for g in gates) else 1


if __name__ == "__main__":
    sys.exit(main())
