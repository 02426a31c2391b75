"""The engine side of an evaluation: held-out maps, start states, and the truth the engine renders.

Every suite refuses training maps (`check_eval_maps`, through `doom.check_split`) before anything runs. A start is a
seeded random spawn point and view direction from which the engine plays a script without the camera getting stuck;
its replay is the truth that generated frames are scored against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..doom import EVAL_MAPS, DoomConfig, DoomEnv, Rollout, StartState, check_split, random_spawn, replay, wad_of
from .scripts import EngineActions, Script
from .sessions import session_geometry


def check_eval_maps(maps: Sequence[str]) -> list[tuple[str, str]]:
    """(wad, map) of each map; refuses training maps (and unknown ones) with a clear error."""
    if isinstance(maps, str):
        maps = [m.strip() for m in maps.split(",") if m.strip()]
    if not maps:
        raise ValueError("no maps given; evaluation runs on held-out maps, e.g. MAP21..MAP32 or E1M1..E4M9.")
    out = []
    for m in maps:
        wad = wad_of(m)
        try:
            check_split(wad, m, "eval")
        except ValueError as err:
            held = ", ".join(n for _, n in EVAL_MAPS)
            raise ValueError(f"evaluation refuses {wad} {m}: it is a TRAINING map (the model has seen it). "
                             f"Use held-out maps: {held}.") from err
        out.append((wad, m))
    return out


@dataclass
class Start:
    """A start state found for a script, with the truth it renders."""

    state: StartState
    truth: Rollout
    blocked_frames: int  # frames where a held translation made no progress (the camera hit a wall)
    tries: int


def _blocked(truth: Rollout, engine_script: list[dict[str, float]], min_progress: float = 1.0, grace: int = 3) -> int:
    moving = np.array([any(k in s for k in ("forward", "backward", "left", "right")) for s in engine_script])
    steps = np.linalg.norm(np.diff(truth.positions[:, :2], axis=0), axis=1)
    run, blocked = 0, 0
    for t, m in enumerate(moving[: len(steps)]):
        run = run + 1 if m else 0
        if m and run > grace and steps[t] < min_progress:
            blocked += 1
    return blocked + max(0, len(engine_script) + 1 - len(truth))  # a level that ended counts every missing frame


def find_start(doom: DoomConfig, engine_script: list[dict[str, float]], seed: int, tries: int = 30,
               env: DoomEnv | None = None, min_detail: float = 12.0) -> Start:
    """The first of `tries` seeded random start states (a spawn point and a view direction) from which the engine
    plays `engine_script` without the camera getting stuck, looking at something (frame std >= min_detail);
    the least blocked one if none is clean. Deterministic per (map, script, seed)."""
    best, best_score = None, math.inf
    for k in range(tries):
        rng = np.random.default_rng([seed, k, 101])
        spawn = random_spawn(doom, rng)
        turn = int(rng.integers(0, 72))  # view direction: a full-speed pan of 0-355 degrees, then stand still
        prefix = np.zeros((turn + 4, 5), np.float32)
        prefix[:turn, 2] = 1.0
        state = StartState(seed, spawn, prefix)
        truth = replay(doom, state, engine_script, env)
        off = np.abs(truth.positions[0, :2] - np.array(spawn)).max() > doom.spawn_tolerance
        blocked = _blocked(truth, engine_script)
        dull = float(truth.frames[0].std()) < min_detail
        score = blocked + 1000 * dull + 10_000 * off
        if score == 0:
            return Start(state, truth, blocked, k + 1)
        if score < best_score:
            best, best_score = Start(state, truth, blocked, tries), score
    assert best is not None
    return best


def starts(maps: Sequence[tuple[str, str]], scripts: dict[str, Script], session: Any, seed: int, tries: int,
           engine: EngineActions) -> Iterator[tuple[int, str, str, Script, int, Start]]:
    """Per map and script: (map index, map, script name, script, run seed, a start where the engine's replay of the
    script is not blocked). The action and revisit suites run their sessions from these."""
    h, w, fps_step, _, controls = session_geometry(session)
    for mi, (wad, m) in enumerate(maps):
        doom = DoomConfig(wad=wad, map=m, height=h, width=w)
        with DoomEnv(doom) as env:
            for si, (name, script) in enumerate(scripts.items()):
                run_seed = seed + 1000 * mi + si
                start = find_start(doom, engine.script(script, fps_step, doom, controls), run_seed, tries, env)
                yield mi, m, name, script, run_seed, start
