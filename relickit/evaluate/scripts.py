"""Evaluation scripts: sequences of 13-D actions that the Doom engine can play too.

Every script holds one action per session step (`Session.step` holds one action for a chunk) and is made only of
what Doom can play (forward/back, strafe, pan, tilt, static), so `EngineActions` turns it into the engine commands
that render the truth from the same start state.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..controls import ACTION_DIM, ACTIONS, ControlsConfig, accumulate
from ..doom import DoomConfig

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


def video_actions(script: Script, frames_per_step: int) -> torch.Tensor:
    """(1 + T, 13): the per-frame actions of a script's video, the start frame `static` as a session commits it."""
    first = torch.zeros(1, ACTION_DIM)
    first[0, -1] = 1.0
    return torch.cat([first, script.frame_actions(frames_per_step)])


def commanded_poses(script: Script, frames_per_step: int, controls: ControlsConfig = ControlsConfig()):
    """The commanded camera path of a script's video (1 + T frames): rotations (1+T, 3, 3), positions (1+T, 3)
    in step units, relative to the start frame; exactly what the session integrates."""
    r, p = accumulate(video_actions(script, frames_per_step).double(), controls)
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
    from ..dataset import load_manifest

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


def select_scripts(known: dict[str, Script], scripts: Sequence[str | Script] | None, kind: str) -> dict[str, Script]:
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
