"""How relickit measures itself (RELIC.md section 4): four named suites on HELD-OUT Doom maps.

    report = evaluate("revisit", session_factory(model, tokenizer), maps=("MAP21",), out_dir="eval/revisit")
    python -m relickit.evaluate --suite revisit --out eval/revisit/report.json          # shipped assets
    RELICKIT_SMOKE=1 python -m relickit.evaluate --suite action --out /tmp/action.json  # random tiny model

Suites
- `action`:  11 scripted action sequences (as the paper's 11) per map; the generated frames go through the pose
             estimator (relickit.posenet, the stand-in for ViPE) and the recovered path is scored against the
             COMMANDED path (the actions integrated by relickit.controls, what the model was asked to do) with
             Sim(3)-aligned RPE-trans (step units) / RPE-rot (degrees). Beside it, the floors: the estimator on the
             engine's TRUE frames of the same script, against the command (the best a perfect generator can score
             through this estimator) and against the engine's true poses (the estimator's own error).
- `revisit`: look away and back (pan right 180 deg, then back), a 360-degree pan (and a quarter turn more), walk
             out and return; the revisit frames are scored with PSNR/SSIM against the engine's TRUE frames
             (doom.replay) and against the model's own first-visit frames (matched by commanded pose), for each
             memory policy none / window / compressed / full, everything else (map, start, script, seed) fixed.
- `drift`:   per-second PSNR/SSIM against the engine's truth over 20 s and 2 min of a seeded random script;
             the least-squares slope per second is the drift.
- `speed`:   end-to-end FPS (denoise + decode), denoise-only FPS, time to first frame, KV tokens and bytes
             over time, per policy, on whatever device the session runs on (the report names it).

Every script is a sequence of 13-D actions, one held per session step (`Session.step` holds one action for a
chunk), made only of what Doom can play (forward/back, strafe, pan, tilt, static), so `EngineActions` turns it
into the engine commands that render the truth from the same start state. Every suite refuses training maps
(`doom.check_split`). Reports are pure functions of (suite, model, maps, seed, settings): the same JSON twice
(the `speed` suite's timings excepted). Each suite writes `report.json` and plotly figures (HTML) to `out_dir`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .config import MEMORY_POLICIES, MemoryConfig
from .controls import ACTION_DIM, ACTIONS, ControlsConfig, accumulate
from .doom import EVAL_MAPS, DoomConfig, DoomEnv, Rollout, StartState, check_split, random_spawn, replay, wad_of
from .metrics import drift_slope, per_second, psnr_frames, rotation_angle_deg, rpe, ssim_frames

SUITES: tuple[str, ...] = ("action", "revisit", "drift", "speed")
DEFAULT_MAPS: tuple[str, ...] = ("MAP21", "E1M1")
SMOKE_ENV = "RELICKIT_SMOKE"

# a factory makes a fresh session for (memory policy, seed); sessions follow relickit.play.Session
SessionFactory = Callable[[str, int], Any]


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV, "0") not in ("", "0")


# ---------------------------------------------------------------------------------------------------------------
# scripts: 13-D actions that the engine can play too
# ---------------------------------------------------------------------------------------------------------------
ENGINE_ACTIONS: tuple[str, ...] = ("forward", "backward", "right", "left", "pan_right", "pan_left",
                                   "tilt_up", "tilt_down", "static")
Step = tuple[tuple[str, float], ...]  # the actions held during one session step: ((name, magnitude), ...)


@dataclass(frozen=True)
class Script:
    """An action script: one 13-D action per session step (held for the step's frames).

    `revisit_step` (revisit scripts): the first step of the return phase; frames from there on are revisits of
    views shown before it."""

    name: str
    steps: tuple[Step, ...]
    revisit_step: int | None = None

    def __post_init__(self) -> None:
        for i, step in enumerate(self.steps):
            for name, mag in step:
                if name not in ENGINE_ACTIONS:
                    why = "Doom cannot roll the camera" if name in ("roll_cw", "roll_ccw") else (
                        "evaluation scripts keep the camera on the floor" if name in ("up", "down") else "unknown action")
                    raise ValueError(f"script {self.name!r} step {i} uses {name!r} ({why}); use {ENGINE_ACTIONS}.")
                if not (0.0 <= mag and math.isfinite(mag)):
                    raise ValueError(f"script {self.name!r} step {i}: magnitude of {name!r} must be >= 0, got {mag}.")

    def __len__(self) -> int:
        return len(self.steps)

    def step_actions(self) -> torch.Tensor:
        """(steps, 13): one action per session step, `static` = 1 where nothing moves."""
        out = torch.zeros(len(self.steps), ACTION_DIM)
        for i, step in enumerate(self.steps):
            for name, mag in step:
                if name != "static":
                    out[i, ACTIONS.index(name)] += mag
            if out[i].sum() == 0:
                out[i, ACTIONS.index("static")] = 1.0
        return out

    def frame_actions(self, frames_per_step: int) -> torch.Tensor:
        """(steps * frames_per_step, 13): the per-frame actions the session integrates."""
        return self.step_actions().repeat_interleave(frames_per_step, 0)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "revisit_step": self.revisit_step,
                "steps": [{n: m for n, m in step} for step in self.steps]}


def commanded_poses(script: Script, frames_per_step: int, controls: ControlsConfig = ControlsConfig()):
    """The commanded camera path of a script's video (1 + T frames): rotations (1+T, 3, 3), positions (1+T, 3)
    in step units, relative to the start frame; exactly what the session integrates."""
    acts = script.frame_actions(frames_per_step)
    first = torch.zeros(1, ACTION_DIM)
    first[0, -1] = 1.0
    r, p = accumulate(torch.cat([first, acts]).double(), controls)
    return r.double(), p.double()


@dataclass(frozen=True)
class EngineActions:
    """Turns 13-D action magnitudes into Doom commands (relickit.doom's signed speeds in [-1, 1]).

    Rotations are exact: a magnitude of 1 is `rotation_unit_deg` degrees per frame, and a full-speed Doom pan is
    max_turn_deg * frame_skip degrees per frame (tilt: max_look_deg * frame_skip). Translations are in step units
    (Algorithm 1 divides by the clip's mean step length), so a magnitude of 1 is `step_units` world units per
    frame; Doom's steady-state speed is linear in the command, `run_units_per_tic` * frame_skip at full speed
    (measured: 37.5 units per frame at frame_skip 2). Doom accelerates over ~10 frames (momentum); the model's
    commanded path does not: that gap is part of what the truth shows.
    """

    step_units: float = 8.0  # typical mean step length of the Doom dataset episodes (see `dataset_step_units`)
    run_units_per_tic: float = 18.75

    def command(self, step: Step, doom: DoomConfig, controls: ControlsConfig = ControlsConfig()) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, mag in step:
            if name == "static" or mag == 0:
                continue
            if name in ("pan_right", "pan_left"):
                speed = mag * controls.rotation_unit_deg / (doom.max_turn_deg * doom.frame_skip)
            elif name in ("tilt_up", "tilt_down"):
                speed = mag * controls.rotation_unit_deg / (doom.max_look_deg * doom.frame_skip)
            else:
                speed = mag * self.step_units / (self.run_units_per_tic * doom.frame_skip)
            if speed > 1.0 + 1e-9:
                raise ValueError(f"{name} at magnitude {mag} needs a Doom command of {speed:.2f} > 1 (full speed); "
                                 "use a smaller magnitude.")
            out[name] = min(1.0, out.get(name, 0.0) + speed)
        return out or {"static": 1.0}

    def script(self, script: Script, frames_per_step: int, doom: DoomConfig,
               controls: ControlsConfig = ControlsConfig()) -> list[dict[str, float]]:
        """The per-frame engine script (for relickit.doom.replay) of a session script."""
        return [self.command(step, doom, controls) for step in script.steps for _ in range(frames_per_step)]


def dataset_step_units(root: str | os.PathLike) -> float:
    """The mean of a relickit dataset's per-episode step lengths: the world units of a unit translation."""
    from .dataset import load_manifest

    steps = [e["step"] for e in load_manifest(root)["episodes"]]
    if not steps:
        raise ValueError(f"{root} holds no episodes.")
    return float(np.mean(steps))


def _steps_for(degrees: float, unit_deg: float, frames_per_step: int, max_mag: float = 1.0) -> tuple[int, float]:
    """Session steps and magnitude that turn exactly `degrees` at <= max_mag."""
    frames = abs(degrees) / (unit_deg * max_mag)
    n = max(1, math.ceil(frames / frames_per_step - 1e-9))
    return n, abs(degrees) / (n * frames_per_step * unit_deg)


def revisit_scripts(frames_per_step: int, controls: ControlsConfig = ControlsConfig(),
                    walk_frames: int = 24) -> dict[str, Script]:
    """The revisit scripts: look away and back, a 360-degree pan (+90), walk out and return."""
    u = controls.rotation_unit_deg
    n, mag = _steps_for(180.0, u, frames_per_step)
    look = Script("look_back", ((("pan_right", mag),),) * n + ((("pan_left", mag),),) * n, revisit_step=n)
    n360, mag360 = _steps_for(360.0, u, frames_per_step)
    extra = max(1, round(n360 / 4))
    pan = Script("pan360", ((("pan_right", mag360),),) * (n360 + extra), revisit_step=n360)
    k = max(1, math.ceil(walk_frames / frames_per_step))
    walk = Script("walk_back", ((("forward", 1.0),),) * k + ((),) + ((("backward", 1.0),),) * k, revisit_step=k + 1)
    return {s.name: s for s in (look, pan, walk)}


def action_scripts(frames_per_step: int, steps: int) -> dict[str, Script]:
    """The action-accuracy scripts, `steps` session steps each (11, like the paper's 11 sequences)."""
    def held(*keys: tuple[str, float]) -> tuple[Step, ...]:
        return (tuple(keys),) * steps

    tilt_cycle = ((("tilt_up", 0.3),), (("tilt_down", 0.3),), (("tilt_down", 0.3),), (("tilt_up", 0.3),))
    zig = ((("forward", 1.0), ("pan_left", 0.5)), (("forward", 1.0), ("pan_right", 0.5)))
    scripts = [
        Script("forward", held(("forward", 1.0))),
        Script("backward", held(("backward", 1.0))),
        Script("strafe_left", held(("left", 1.0))),
        Script("strafe_right", held(("right", 1.0))),
        Script("pan_left", held(("pan_left", 0.6))),
        Script("pan_right", held(("pan_right", 0.6))),
        Script("tilt", tuple(tilt_cycle[i % 4] for i in range(steps))),
        Script("arc_left", held(("forward", 1.0), ("pan_left", 0.4))),
        Script("arc_right", held(("forward", 1.0), ("pan_right", 0.4))),
        Script("zigzag", tuple(zig[i % 2] for i in range(steps))),
        Script("static", held()),
    ]
    return {s.name: s for s in scripts}


def drift_script(steps: int, seed: int, frames_per_step: int) -> Script:
    """A seeded random script of `steps` steps that stays near its start: pans, tilts (up then down), and walks
    and arcs that come back (out, then the same steps reversed)."""
    rng = np.random.default_rng([seed, 7])
    out: list[Step] = []
    tilt_mag = min(0.3, 20.0 / (5.0 * frames_per_step))  # <= 20 degrees per step: inside Doom's pitch range
    while len(out) < steps:
        kind = rng.choice(["pan", "tilt", "walk", "arc", "static"], p=[0.35, 0.1, 0.3, 0.15, 0.1])
        if kind == "pan":
            name = str(rng.choice(["pan_left", "pan_right"]))
            out += [((name, round(float(rng.uniform(0.4, 1.0)), 2)),)] * int(rng.integers(1, 5))
        elif kind == "tilt":
            out += [(("tilt_up", tilt_mag),), (("tilt_down", tilt_mag),)]
        elif kind == "walk":
            name = str(rng.choice(["forward", "backward", "left", "right"]))
            back = {"forward": "backward", "backward": "forward", "left": "right", "right": "left"}[name]
            k, mag = int(rng.integers(1, 3)), round(float(rng.uniform(0.5, 1.0)), 2)
            out += [((name, mag),)] * k + [((back, mag),)] * k
        elif kind == "arc":
            turn = str(rng.choice(["pan_left", "pan_right"]))
            other = "pan_right" if turn == "pan_left" else "pan_left"
            k = int(rng.integers(1, 3))
            out += [(("forward", 1.0), (turn, 0.4))] * k + [(("backward", 1.0), (other, 0.4))] * k
        else:
            out += [()] * int(rng.integers(1, 3))
    return Script(f"drift_{steps}", tuple(out[:steps]))


def _select(known: dict[str, Script], scripts: Sequence[str | Script] | None, kind: str) -> dict[str, Script]:
    """The scripts to run: all known ones, or the named ones and/or custom Script objects."""
    if not scripts:
        return dict(known)
    out: dict[str, Script] = {}
    for s in scripts:
        if isinstance(s, Script):
            out[s.name] = s
        elif s in known:
            out[s] = known[s]
        else:
            raise ValueError(f"unknown {kind} script {s!r}; choose from {sorted(known)} or pass Script objects.")
    return out


# ---------------------------------------------------------------------------------------------------------------
# the engine side: start states and the truth
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# the model side
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    frames: np.ndarray  # (1 + T, H, W, 3) uint8: the decoded start frame, then every step's frames
    step_s: list[float]  # wall time of each step
    decode_s: list[float]  # of which decoding (NaN when the session has no `_decode` to time)
    reset_s: float
    stats: list[dict[str, Any]]  # memory_stats() after reset and after each step


def run_script(session: Any, image: np.ndarray, text: str, script: Script) -> Run:
    """Play a script on a session: reset(image, text), then one step per script step."""
    decode = getattr(session, "_decode", None)
    spent = [0.0]
    if decode is not None:  # time the decoder through an instance attribute (the class is untouched)
        def timed(latents):
            t0 = time.perf_counter()
            out = decode(latents)
            spent[0] += time.perf_counter() - t0
            return out

        session._decode = timed
    try:
        t0 = time.perf_counter()
        frames = [session.reset(image, text)[None]]
        reset_s = time.perf_counter() - t0
        stats = [dict(session.memory_stats())]
        step_s, decode_s = [], []
        for action in script.step_actions():
            spent[0] = 0.0
            t0 = time.perf_counter()
            frames.append(session.step(action))
            step_s.append(time.perf_counter() - t0)
            decode_s.append(spent[0] if decode is not None else math.nan)
            stats.append(dict(session.memory_stats()))
    finally:
        if decode is not None:
            del session._decode
    return Run(np.concatenate(frames), step_s, decode_s, reset_s, stats)


def _session_geometry(session: Any) -> tuple[int, int, int, float, ControlsConfig]:
    cfg = session.model.cfg
    return cfg.height, cfg.width, session.frames_per_step, float(session.fps), getattr(session, "controls", ControlsConfig())


# ---------------------------------------------------------------------------------------------------------------
# helpers for reports
# ---------------------------------------------------------------------------------------------------------------
def clean(obj: Any, digits: int = 6) -> Any:
    """JSON-safe and stable: floats rounded to `digits` significant decimals, inf/nan as strings."""
    if isinstance(obj, dict):
        return {str(k): clean(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v, digits) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist(), digits)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return float(f"{x:.{digits}g}")
    if isinstance(obj, torch.Tensor):
        return clean(obj.tolist(), digits)
    return obj


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else math.nan


def _model_info(session: Any) -> dict[str, Any]:
    cfg = session.model.cfg
    info = {"preset": cfg.name, "height": cfg.height, "width": cfg.width, "dim": cfg.dim, "layers": cfg.layers,
            "chunk": cfg.chunk, "frames_per_step": session.frames_per_step, "fps": session.fps,
            "params": int(sum(p.numel() for p in session.model.parameters()))}
    return info


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled)


# ---------------------------------------------------------------------------------------------------------------
# suite: action
# ---------------------------------------------------------------------------------------------------------------
def _starts(maps, scripts: dict[str, Script], session: Any, seed: int, tries: int, engine: EngineActions):
    """Per map and script: (map index, map, script name, script, run seed, a start where the engine's replay of the
    script is not blocked). The action and revisit suites run their sessions from these."""
    h, w, fps_step, _, controls = _session_geometry(session)
    for mi, (wad, m) in enumerate(maps):
        doom = DoomConfig(wad=wad, map=m, height=h, width=w)
        with DoomEnv(doom) as env:
            for si, (name, script) in enumerate(scripts.items()):
                run_seed = seed + 1000 * mi + si
                start = find_start(doom, engine.script(script, fps_step, doom, controls), run_seed, tries, env)
                yield mi, m, name, script, run_seed, start


def suite_action(factory: SessionFactory, maps, seed: int = 0, seconds: float = 4.0, policy: str = "compressed",
                 posenet: Any = None, scripts: Sequence[str] | None = None, tries: int = 30,
                 engine: EngineActions = EngineActions(), progress: bool = True) -> tuple[dict, dict]:
    from .dataset import caption

    if posenet is None:
        raise ValueError("the action suite needs a pose estimator: pass posenet=PoseNet.load(path) "
                         "(train one with `python -m relickit.posenet`).")
    probe = factory(policy, seed)
    _, _, fps_step, fps, controls = _session_geometry(probe)
    steps = max(1, round(seconds * fps / fps_step))
    all_scripts = _select(action_scripts(fps_step, steps), scripts, "action")
    names = list(all_scripts)
    rows, examples = [], {}
    bar = _progress(len(maps) * len(names), "action", progress)
    for mi, m, name, script, run_seed, start in _starts(maps, all_scripts, probe, seed, tries, engine):
        run = run_script(factory(policy, run_seed), start.truth.frames[0], caption(m), script)
        n = min(len(run.frames), len(start.truth))
        cr, cp = commanded_poses(script, fps_step, controls)
        er, ep = _recover(posenet, run.frames[:n])
        tr, tp = _recover(posenet, start.truth.frames[:n])
        gen = rpe(er, ep, cr[:n], cp[:n])
        est_truth_cmd = rpe(tr, tp, cr[:n], cp[:n])
        est_truth_true = rpe(tr, tp, start.truth.rotations[:n], start.truth.positions[:n])
        engine_cmd = rpe(start.truth.rotations[:n], start.truth.positions[:n], cr[:n], cp[:n])
        rows.append({"map": m, "script": name, "seed": run_seed, "frames": n,
                     "blocked_frames": start.blocked_frames,
                     "rpe_trans": gen["trans"], "rpe_rot": gen["rot"], "scale": gen["scale"],
                     "floor_trans": est_truth_cmd["trans"], "floor_rot": est_truth_cmd["rot"],
                     "estimator_trans_world": est_truth_true["trans"], "estimator_rot": est_truth_true["rot"],
                     "engine_vs_command_trans": engine_cmd["trans"], "engine_vs_command_rot": engine_cmd["rot"]})
        if mi == 0:
            examples[name] = {"commanded": cp[:n].numpy(), "generated": _aligned(ep, cp[:n]),
                              "truth_estimated": _aligned(tp, cp[:n])}
        bar.update()
    bar.close()
    keys = ["rpe_trans", "rpe_rot", "floor_trans", "floor_rot", "estimator_trans_world", "estimator_rot",
            "engine_vs_command_trans", "engine_vs_command_rot"]
    summary = {"overall": {k: _mean(r[k] for r in rows) for k in keys},
               "by_script": {n: {k: _mean(r[k] for r in rows if r["script"] == n) for k in keys} for n in names}}
    report = {"settings": {"seconds": seconds, "steps_per_script": steps, "policy": policy, "scripts":
                           [all_scripts[n].to_json() for n in names], "posenet": dataclasses.asdict(posenet.cfg)},
              "rows": rows, "summary": summary,
              "units": {"rpe_trans": "commanded step lengths per frame, after Sim(3) alignment",
                        "rpe_rot": "degrees per frame", "estimator_trans_world": "Doom world units per frame"},
              "notes": ["rpe_*: generated frames -> posenet -> path vs the commanded path.",
                        "floor_*: the estimator on the engine's TRUE frames of the same script vs the commanded "
                        "path: what a perfect generator would score through this estimator (includes Doom's momentum).",
                        "estimator_*: the estimator on true frames vs the engine's true poses (its own error).",
                        "pan/tilt-only scripts have no commanded translation: Sim(3) scales the estimate to 0, "
                        "so their rpe_trans is 0 by construction."]}
    return report, _action_figures(summary, examples)


def _recover(posenet, frames):
    from .posenet import recover_trajectory

    return recover_trajectory(posenet, frames)


def _aligned(est_pos, ref_pos) -> np.ndarray:
    from .metrics import umeyama

    s, r, t = umeyama(est_pos, ref_pos)
    return (s * (r @ np.asarray(est_pos, dtype=np.float64).T)).T + t


def _action_figures(summary: dict, examples: dict) -> dict:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(summary["by_script"])
    bs = summary["by_script"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RPE-trans (step units / frame)", "RPE-rot (deg / frame)"))
    for col, (k, f) in enumerate((("rpe_trans", "floor_trans"), ("rpe_rot", "floor_rot")), start=1):
        fig.add_bar(x=names, y=[bs[n][k] for n in names], name="generated" if col == 1 else None,
                    marker_color="#1f77b4", showlegend=col == 1, row=1, col=col)
        fig.add_bar(x=names, y=[bs[n][f] for n in names], name="floor (estimator on engine truth)" if col == 1 else None,
                    marker_color="#aaaaaa", showlegend=col == 1, row=1, col=col)
    fig.update_layout(title="Action following: Sim(3)-aligned RPE vs the commanded path", barmode="group", height=420)
    traj = go.Figure()
    for name, ex in examples.items():
        for key, dash in (("commanded", "solid"), ("generated", "dot"), ("truth_estimated", "dash")):
            p = ex[key]
            traj.add_scatter(x=p[:, 0], y=p[:, 2], mode="lines", name=f"{name}: {key}", line=dict(dash=dash),
                             legendgroup=name, visible=True if name == next(iter(examples)) else "legendonly")
    traj.update_layout(title="Top-down paths (x right, z forward; step units), Sim(3)-aligned to the command",
                       xaxis_title="x", yaxis_title="z", yaxis_scaleanchor="x", height=520)
    return {"action_rpe": fig, "action_paths": traj}


# ---------------------------------------------------------------------------------------------------------------
# suite: revisit
# ---------------------------------------------------------------------------------------------------------------
def match_revisits(script: Script, frames_per_step: int, controls: ControlsConfig = ControlsConfig(),
                   max_angle_deg: float = 2.5, max_dist: float = 0.5) -> list[tuple[int, int]]:
    """(revisit frame j, first-visit frame i) pairs: each frame of the return phase with the frame before the
    return phase whose commanded pose is closest (within max_angle_deg and max_dist step units)."""
    if script.revisit_step is None:
        raise ValueError(f"script {script.name!r} has no return phase (revisit_step).")
    r, p = commanded_poses(script, frames_per_step, controls)
    first = 1 + script.revisit_step * frames_per_step  # first frame of the return phase
    pairs = []
    for j in range(first, len(r)):
        ang = rotation_angle_deg((r[:first] @ r[j].T).numpy())
        dist = (p[:first] - p[j]).norm(dim=1).numpy()
        i = int(np.argmin(ang + 10.0 * dist))
        if ang[i] <= max_angle_deg and dist[i] <= max_dist:
            pairs.append((j, i))
    return pairs


def _image_scores(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    if len(a) == 0:
        return {"psnr": math.nan, "ssim": math.nan, "n": 0}
    return {"psnr": float(np.mean(psnr_frames(a, b))), "ssim": float(np.mean(ssim_frames(a, b))), "n": len(a)}


def score_revisit(frames: np.ndarray, truth: np.ndarray, pairs: list[tuple[int, int]], first_return: int,
                  far_lag: int) -> dict[str, Any]:
    """PSNR/SSIM of a revisit run: return frames vs truth, vs the model's own first visits (all pairs and those
    older than `far_lag` frames), the outbound frames vs truth, and the engine's own revisit consistency."""
    n = min(len(frames), len(truth))
    pairs = [(j, i) for j, i in pairs if j < n]
    far = [(j, i) for j, i in pairs if j - i > far_lag]
    out = {"return_vs_truth": _image_scores(frames[first_return:n], truth[first_return:n]),
           "outbound_vs_truth": _image_scores(frames[1:first_return], truth[1:first_return])}
    for key, ps in (("vs_first_visit", pairs), ("vs_first_visit_far", far)):
        j, i = [p[0] for p in ps], [p[1] for p in ps]
        out[key] = _image_scores(frames[j], frames[i])
        out[f"truth_{key}"] = _image_scores(truth[j], truth[i])
        out[f"{key}_truth"] = _image_scores(frames[j], truth[j])
    return out


def suite_revisit(factory: SessionFactory, maps, seed: int = 0, policies: Sequence[str] = MEMORY_POLICIES,
                  scripts: Sequence[str] | None = None, tries: int = 30, engine: EngineActions = EngineActions(),
                  progress: bool = True) -> tuple[dict, dict]:
    from .dataset import caption

    for p in policies:
        if p not in MEMORY_POLICIES:
            raise ValueError(f"unknown memory policy {p!r}; choose from {MEMORY_POLICIES}.")
    probe = factory(policies[0], seed)
    _, _, fps_step, _, controls = _session_geometry(probe)
    cfg, window = probe.model.cfg, getattr(probe, "memory", MemoryConfig()).window
    far_lag = (window + cfg.chunk) * cfg.temporal_down  # older than this, the window policy has forgotten it
    all_scripts = _select(revisit_scripts(fps_step, controls), scripts, "revisit")
    names = list(all_scripts)
    for n, sc in all_scripts.items():
        if sc.revisit_step is None:
            raise ValueError(f"revisit script {n!r} needs a revisit_step (the first step of its return phase).")
    rows, curves, strips = [], {}, {}
    bar = _progress(len(maps) * len(names) * len(policies), "revisit", progress)
    for mi, m, name, script, run_seed, start in _starts(maps, all_scripts, probe, seed, tries, engine):
        pairs = match_revisits(script, fps_step, controls)
        first_return = 1 + script.revisit_step * fps_step
        for policy in policies:
            run = run_script(factory(policy, run_seed), start.truth.frames[0], caption(m), script)
            scores = score_revisit(run.frames, start.truth.frames, pairs, first_return, far_lag)
            rows.append({"map": m, "script": name, "policy": policy, "seed": run_seed,
                         "blocked_frames": start.blocked_frames, "pairs": len(pairs), **scores})
            if mi == 0:
                n = min(len(run.frames), len(start.truth))
                curves[(name, policy)] = psnr_frames(run.frames[:n], start.truth.frames[:n])
                strips[(name, policy)] = run.frames
                strips[(name, "truth")] = start.truth.frames
            bar.update()
    bar.close()
    metrics = ["return_vs_truth", "vs_first_visit", "vs_first_visit_far", "outbound_vs_truth"]

    def agg(sel) -> dict:
        return {k: {q: _mean(r[k][q] for r in sel) for q in ("psnr", "ssim")} for k in metrics} | {
            "truth_vs_first_visit": {q: _mean(r["truth_vs_first_visit"][q] for r in sel) for q in ("psnr", "ssim")}}

    summary = {"by_policy": {p: agg([r for r in rows if r["policy"] == p]) for p in policies},
               "by_script": {n: {p: agg([r for r in rows if r["policy"] == p and r["script"] == n]) for p in policies}
                             for n in names}}
    report = {"settings": {"policies": list(policies), "scripts": [all_scripts[n].to_json() for n in names],
                           "far_lag_frames": far_lag, "window_latent_frames": window},
              "rows": rows, "summary": summary,
              "notes": ["return_vs_truth: every frame of the return phase vs the engine's true frame.",
                        "vs_first_visit: revisit frame vs the model's own frame at the matched commanded pose; "
                        "_far: only pairs more than far_lag_frames apart (beyond what the window policy holds).",
                        "truth_vs_first_visit: the same pairs in the engine's truth (Doom's momentum makes walks "
                        "return inexactly; pans are exact): the ceiling of self-consistency.",
                        "outbound_vs_truth: the frames before the return phase, for reference.",
                        "frame 0 is the tokenizer's reconstruction of the start image, not generated."]}
    return report, _revisit_figures(summary, curves, strips, names, list(policies), first_returns={
        n: 1 + all_scripts[n].revisit_step * fps_step for n in names}, fps_step=fps_step)


def _revisit_figures(summary, curves, strips, names, policies, first_returns, fps_step) -> dict:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .viz import frame_grid

    bp = summary["by_policy"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR (dB)", "SSIM"))
    for k, color in (("return_vs_truth", "#1f77b4"), ("vs_first_visit", "#ff7f0e"), ("vs_first_visit_far", "#d62728"),
                     ("truth_vs_first_visit", "#aaaaaa")):
        for col, q in ((1, "psnr"), (2, "ssim")):
            fig.add_bar(x=policies, y=[bp[p][k][q] for p in policies], name=k, marker_color=color,
                        showlegend=col == 1, legendgroup=k, row=1, col=col)
    fig.update_layout(title="Revisits by memory policy (same maps, starts, scripts, seeds)", barmode="group", height=420)
    figs = {"revisit_policies": fig}
    curve = go.Figure()
    for (name, policy), y in curves.items():
        curve.add_scatter(y=np.minimum(y, 60.0), mode="lines", name=f"{name} / {policy}", legendgroup=name,
                          visible=True if name == names[0] else "legendonly")
    for name in names:
        curve.add_vline(x=first_returns[name], line_dash="dot", annotation_text=f"{name}: return", opacity=0.4)
    curve.update_layout(title="PSNR against the engine's truth, frame by frame (first map)", xaxis_title="frame",
                        yaxis_title="PSNR (dB)", height=420)
    figs["revisit_psnr_curves"] = curve
    name = names[0]
    if (name, "truth") in strips:
        idx = list(range(0, len(strips[(name, "truth")]), fps_step))
        rows = [strips[(name, "truth")][idx]] + [strips[(name, p)][idx] for p in policies if (name, p) in strips]
        labels = ["truth"] + [p for p in policies if (name, p) in strips]
        grid = np.concatenate(rows)
        titles = [f"{lab} t={t}" for lab in labels for t in idx]
        figs["revisit_frames"] = frame_grid(grid, cols=len(idx), titles=titles,
                                            title=f"{name}: truth and each policy (rows), one frame per step")
    return figs


# ---------------------------------------------------------------------------------------------------------------
# suite: drift
# ---------------------------------------------------------------------------------------------------------------
def suite_drift(factory: SessionFactory, maps, seed: int = 0, durations: Sequence[float] = (20.0, 120.0),
                policies: Sequence[str] = ("compressed",), tries: int = 30, engine: EngineActions = EngineActions(),
                progress: bool = True) -> tuple[dict, dict]:
    from .dataset import caption

    probe = factory(policies[0], seed)
    h, w, fps_step, fps, controls = _session_geometry(probe)
    rows, curves = [], {}
    bar = _progress(len(maps) * len(durations) * len(policies), "drift", progress)
    for mi, (wad, m) in enumerate(maps):
        doom = DoomConfig(wad=wad, map=m, height=h, width=w)
        with DoomEnv(doom) as env:
            for di, seconds in enumerate(durations):
                steps = max(1, math.ceil(seconds * fps / fps_step))
                run_seed = seed + 1000 * mi + di
                script = drift_script(steps, run_seed, fps_step)
                start = find_start(doom, engine.script(script, fps_step, doom, controls), run_seed, tries, env)
                for policy in policies:
                    run = run_script(factory(policy, run_seed), start.truth.frames[0], caption(m), script)
                    n = min(len(run.frames), len(start.truth))
                    p = psnr_frames(run.frames[1:n], start.truth.frames[1:n])
                    s = ssim_frames(run.frames[1:n], start.truth.frames[1:n])
                    ps, ss = per_second(p, fps, complete=True), per_second(s, fps, complete=True)
                    rows.append({"map": m, "seconds": seconds, "policy": policy, "seed": run_seed, "frames": n,
                                 "blocked_frames": start.blocked_frames, "psnr_per_second": ps, "ssim_per_second": ss,
                                 "psnr_slope": drift_slope(ps), "ssim_slope": drift_slope(ss),
                                 "psnr_first_s": float(ps[0]), "psnr_last_s": float(ps[-1]),
                                 "ssim_first_s": float(ss[0]), "ssim_last_s": float(ss[-1]),
                                 "script": script.to_json()})
                    curves[(m, seconds, policy)] = (ps, ss)
                    bar.update()
    bar.close()
    summary = {f"{int(d)}s": {p: {k: _mean(r[k] for r in rows if r["seconds"] == d and r["policy"] == p)
                                  for k in ("psnr_slope", "ssim_slope", "psnr_first_s", "psnr_last_s",
                                            "ssim_first_s", "ssim_last_s")} for p in policies} for d in durations}
    report = {"settings": {"durations_s": list(durations), "policies": list(policies), "fps": fps},
              "rows": rows, "summary": summary,
              "units": {"psnr_slope": "dB per second", "ssim_slope": "SSIM per second"},
              "notes": ["per second: generated frame t (t >= 1) belongs to second floor((t - 1) / fps) at the "
                        "session's fps; the start frame (a reconstruction, not generated) and a last partial second "
                        "are left out.",
                        "scripts: seeded random pans, tilts and out-and-back walks that stay near the start."]}
    return report, _drift_figures(curves)


def _drift_figures(curves) -> dict:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR per second (dB)", "SSIM per second"))
    for (m, seconds, policy), (ps, ss) in curves.items():
        name = f"{m} {int(seconds)}s {policy}"
        for col, y in ((1, ps), (2, ss)):
            x = np.arange(len(y))
            fig.add_scatter(x=x, y=y, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                            row=1, col=col)
            slope = drift_slope(y)
            if np.isfinite(slope):
                fit = np.polyfit(x, y, 1) if len(y) > 1 else [0.0, float(y[0])]
                fig.add_scatter(x=x, y=np.polyval(fit, x), mode="lines", line=dict(dash="dot"),
                                name=f"{name} slope {slope:.3g}/s", legendgroup=name, showlegend=False, row=1, col=col)
    fig.update_layout(title="Long-horizon stability against the engine's truth (dotted: least-squares drift)",
                      xaxis_title="second", height=440)
    return {"drift": fig}


# ---------------------------------------------------------------------------------------------------------------
# suite: speed
# ---------------------------------------------------------------------------------------------------------------
def suite_speed(factory: SessionFactory, maps, seed: int = 0, seconds: float = 20.0,
                policies: Sequence[str] = MEMORY_POLICIES, progress: bool = True) -> tuple[dict, dict]:
    from .dataset import caption

    probe = factory(policies[0], seed)
    h, w, fps_step, fps, controls = _session_geometry(probe)
    wad, m = maps[0]
    doom = DoomConfig(wad=wad, map=m, height=h, width=w)
    steps = max(2, math.ceil(seconds * fps / fps_step))
    script = Script("pan_right", ((("pan_right", 0.5),),) * steps)
    with DoomEnv(doom) as env:
        start = find_start(doom, [{"pan_right": 0.5}], seed, 5, env)
    image = start.truth.frames[0]
    rows, series = [], {}
    device = str(next(probe.model.parameters()).device)
    bar = _progress(len(policies), "speed", progress)
    for policy in policies:
        run = run_script(factory(policy, seed), image, caption(m), script)
        step_s, dec_s = np.array(run.step_s), np.array(run.decode_s)
        den_s = step_s - np.nan_to_num(dec_s)
        steady = slice(1, None) if len(step_s) > 1 else slice(None)
        rows.append({
            "policy": policy, "steps": len(step_s), "frames": int(len(step_s) * fps_step),
            "end_to_end_fps": float(fps_step * len(step_s) / step_s.sum()),
            "end_to_end_fps_steady": float(fps_step / np.median(step_s[steady])),
            "denoise_only_fps": float(fps_step * len(step_s) / den_s.sum()),
            "denoise_only_fps_steady": float(fps_step / np.median(den_s[steady])),
            "decode_ms_per_frame": float(np.nanmedian(dec_s) / fps_step * 1000) if np.isfinite(dec_s).any() else math.nan,
            "reset_s": run.reset_s, "time_to_first_frame_s": run.reset_s + float(step_s[0]),
            "kv_tokens_final": run.stats[-1]["total_tokens"], "kv_bytes_final": run.stats[-1]["bytes"],
            "realtime": bool(fps_step / np.median(step_s[steady]) >= fps),
        })
        series[policy] = {"t_s": [i * fps_step / fps for i in range(len(run.stats))],
                          "tokens": [s["total_tokens"] for s in run.stats], "bytes": [s["bytes"] for s in run.stats],
                          "step_s": run.step_s}
        bar.update()
    bar.close()
    report = {"settings": {"seconds": seconds, "steps": steps, "policies": list(policies), "device": device,
                           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "fps_target": fps},
              "rows": rows, "series": series,
              "notes": ["end_to_end: denoise (4 steps + context pass) + decode, per generated frame; denoise_only "
                        "leaves the decoder out; _steady: median step after the first (warm-up).",
                        "time_to_first_frame: reset (encode image + commit) + the first step.",
                        "timings vary from run to run (shared CPU cores); tokens and bytes do not."]}
    return report, _speed_figures(rows, series)


def _speed_figures(rows, series) -> dict:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("KV tokens", "KV bytes (MB)", "FPS"))
    for policy, s in series.items():
        fig.add_scatter(x=s["t_s"], y=s["tokens"], name=policy, legendgroup=policy, row=1, col=1)
        fig.add_scatter(x=s["t_s"], y=np.array(s["bytes"]) / 1e6, name=policy, legendgroup=policy, showlegend=False,
                        row=1, col=2)
    pols = [r["policy"] for r in rows]
    fig.add_bar(x=pols, y=[r["end_to_end_fps_steady"] for r in rows], name="end-to-end", row=1, col=3)
    fig.add_bar(x=pols, y=[r["denoise_only_fps_steady"] for r in rows], name="denoise only", row=1, col=3)
    fig.update_xaxes(title_text="seconds of video", row=1, col=1)
    fig.update_xaxes(title_text="seconds of video", row=1, col=2)
    fig.update_layout(title="Speed and memory per policy", height=420, barmode="group")
    return {"speed": fig}


# ---------------------------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------------------------
def evaluate(suite: str, session_factory: SessionFactory, maps: Sequence[str] | str = DEFAULT_MAPS, seed: int = 0,
             out_dir: str | os.PathLike | None = None, model_info: Mapping[str, Any] | None = None,
             progress: bool = False, report_name: str = "report.json", **options: Any) -> dict:
    """Run one suite; return its report (a JSON-ready dict) and, with `out_dir`, write report + figures there.

    session_factory(policy, seed) -> a fresh relickit.play.Session (see `session_factory`). Options per suite:
      action:  seconds=4.0, policy="compressed", posenet=PoseNet (required), scripts=None (all 11), tries=30
      revisit: policies=MEMORY_POLICIES, scripts=None (look_back, pan360, walk_back), tries=30
      drift:   durations=(20.0, 120.0), policies=("compressed",), tries=30
      speed:   seconds=20.0, policies=MEMORY_POLICIES
    Training maps are refused before anything runs.
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
                    "model": {**_model_info(probe), **dict(model_info or {})}, **body})
    if out_dir is not None:
        write_report(report, figs, out_dir, report_name)
    return report


def write_report(report: dict, figs: Mapping[str, Any], out_dir: str | os.PathLike, name: str = "report.json") -> Path:
    """report.json (sorted keys, 1-space indent) and one HTML file per figure (plotly.js written once beside)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    stem = Path(name).stem
    for fig_name, fig in figs.items():
        fig.write_html(out / f"{stem}_{fig_name}.html", include_plotlyjs="directory", full_html=True)
    return path


# ---------------------------------------------------------------------------------------------------------------
# sessions: from files, or random tiny weights for smoke runs
# ---------------------------------------------------------------------------------------------------------------
def session_factory(model, tokenizer, memory: MemoryConfig = MemoryConfig(), **session_kwargs: Any) -> SessionFactory:
    """(policy, seed) -> relickit.play.Session(model, tokenizer, memory with that policy, seed)."""
    from .play import Session

    def make(policy: str, seed: int):
        return Session(model, tokenizer, memory=dataclasses.replace(memory, policy=policy), seed=seed, **session_kwargs)

    return make


def random_assets(seed: int = 0, preset_name: str = "tiny", smoke: bool = True, **overrides: Any):
    """A randomly initialised world model + tokenizer, for smoke runs, tests and speed measurements only.

    smoke=True: the preset's frame geometry with 2 layers of width 64 and a narrow VAE / tiny decoder (fast).
    smoke=False: the preset's real shapes and the default tokenizer (what the speed suite should time).
    The zero-initialised control terms are randomised too, so actions and poses matter."""
    from .config import preset
    from .model import WorldModel
    from .vae import TinyDecoderConfig, Tokenizer, VAEConfig

    kw = dict(layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8) if smoke else {}
    kw.update(overrides)
    cfg = preset(preset_name, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WorldModel(cfg, backend="sdpa").eval()
        with torch.no_grad():
            for p in model.parameters():
                if p.abs().sum() == 0:
                    p.normal_(std=0.05)
        vae = (VAEConfig.for_model(cfg, base_dim=16, tiny=TinyDecoderConfig(channels=(32, 16, 16, 8))) if smoke
               else VAEConfig.for_model(cfg))
        tokenizer = Tokenizer(vae).eval()
    return model, tokenizer


def load_assets(model_path: str | os.PathLike | None = None, tokenizer_path: str | os.PathLike | None = None,
                allow_random: bool | None = None):
    """(model, tokenizer, info): the trained files (default relickit/assets/), or, when they are missing and
    `allow_random` (default: smoke mode, RELICKIT_SMOKE=1), random tiny weights; info says which."""
    from .model import WorldModel
    from .play import DEFAULT_MODEL, DEFAULT_TOKENIZER
    from .vae import Tokenizer

    mp, tp = Path(model_path or DEFAULT_MODEL), Path(tokenizer_path or DEFAULT_TOKENIZER)
    if mp.exists() and tp.exists():
        return WorldModel.load(mp), Tokenizer.load(tp), {"weights": "trained", "model_path": str(mp),
                                                          "tokenizer_path": str(tp)}
    if allow_random is None:
        allow_random = smoke_mode()
    if not allow_random:
        missing = [str(p) for p in (mp, tp) if not p.exists()]
        raise FileNotFoundError(f"no trained weights at {', '.join(missing)}; pass --model/--tokenizer, or set "
                                f"{SMOKE_ENV}=1 to run with random tiny weights (numbers then mean nothing).")
    model, tokenizer = random_assets()
    return model, tokenizer, {"weights": "random (smoke)", "model_path": None, "tokenizer_path": None}


def load_posenet(path: str | os.PathLike | None = None, allow_random: bool | None = None):
    """(PoseNet, info): the trained estimator, or in smoke mode an untrained one (the floor then means nothing)."""
    from .posenet import DEFAULT_PATH, PoseNet

    p = Path(path or DEFAULT_PATH)
    if p.exists():
        return PoseNet.load(p), {"posenet": str(p)}
    if allow_random is None:
        allow_random = smoke_mode()
    if not allow_random:
        raise FileNotFoundError(f"no pose estimator at {p}; train one with `python -m relickit.posenet --out {p}` "
                                f"or set {SMOKE_ENV}=1 to use an untrained one.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PoseNet().eval(), {"posenet": "random (smoke)"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Evaluate a relickit world model on held-out Doom maps.")
    ap.add_argument("--suite", required=True, choices=SUITES)
    ap.add_argument("--model", help="world model safetensors (default relickit/assets/student.safetensors)")
    ap.add_argument("--tokenizer", help="tokenizer safetensors (default relickit/assets/tokenizer.safetensors)")
    ap.add_argument("--posenet", help="pose estimator (action suite; default relickit/assets/posenet.safetensors)")
    ap.add_argument("--out", required=True, help="report path (.json; figures go beside it) or a directory")
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
    split = (lambda s: [x.strip() for x in s.split(",") if x.strip()])
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
    report = evaluate(args.suite, session_factory(model, tokenizer), split(args.maps), args.seed, out_dir,
                      model_info=info, progress=True, report_name=name, **opts)
    print(f"wrote {out_dir / name} ({info['weights']} weights)")
    print(json.dumps(report.get("summary", report.get("rows")), indent=1)[:4000])
    return report


if __name__ == "__main__":
    main()
