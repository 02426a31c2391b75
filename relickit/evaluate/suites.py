"""The suites by name, and `evaluate`: run one on held-out maps and write its report."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..config import MEMORY_POLICIES
from .action import suite_action
from .drift import suite_drift
from .engine import check_eval_maps
from .report import clean, collapse_flags, write_report
from .revisit import suite_revisit
from .sessions import SessionFactory
from .sessions import model_info as model_info_of
from .speed import suite_speed

SUITES: tuple[str, ...] = ("action", "revisit", "drift", "speed")
DEFAULT_MAPS: tuple[str, ...] = ("MAP21", "E1M1")


def evaluate(suite: str, session_factory: SessionFactory, maps: Sequence[str] | str = DEFAULT_MAPS, seed: int = 0,
             out_dir: str | os.PathLike | None = None, model_info: Mapping[str, Any] | None = None,
             progress: bool = False, report_name: str = "report.json", **options: Any) -> dict:
    """Run one suite; return its report (a JSON-ready dict) and, with `out_dir`, write report + figures there.

    session_factory(policy, seed) -> a fresh relickit.play.Session (see `session_factory`). Options per suite:
      action:  seconds=4.0, policy="compressed", posenet=PoseNet (required), scripts=None (all 11), tries=30
      revisit: policies=MEMORY_POLICIES, scripts=None (look_back, pan360, walk_back), tries=30
      drift:   durations=(20.0, 120.0), policies=("compressed",), tries=30
      speed:   seconds=20.0, policies=MEMORY_POLICIES
    Training maps are refused before anything runs. The frame-scoring suites (action, revisit, drift) report
    `pictures`: the model beside the frozen start frame and the tokenizer ceiling on the same frames, with
    sharpness, brightness and colour (relickit.evaluate.scoring); `flags` names every collapsing model.
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {SUITES}.")
    wad_maps = check_eval_maps(maps)
    fn = {"action": suite_action, "revisit": suite_revisit, "drift": suite_drift, "speed": suite_speed}[suite]
    try:
        body, figs = fn(session_factory, wad_maps, seed=seed, progress=progress, **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise TypeError(f"suite {suite!r}: {err}; see evaluate.__doc__ for its options.") from err
        raise
    probe = session_factory(MEMORY_POLICIES[2], seed)
    report = clean({"suite": suite, "seed": seed, "maps": [m for _, m in wad_maps],
                    "model": {**model_info_of(probe), **dict(model_info or {})}, **body,
                    "flags": collapse_flags(body.get("summary", {}))})
    if out_dir is not None:
        write_report(report, figs, out_dir, report_name)
    return report
