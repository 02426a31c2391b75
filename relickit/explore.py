"""An exploration policy that drives the camera like RELIC's human trajectories, for Doom.

The policy plays short segments, each a few dozen frames of one kind:
  - move:      1-3 keys pressed together (forward/back, strafe, pan, tilt, fly), each at its own speed;
               which keys is decided by how far behind each key is in the counts so far, so the actions
               come out balanced (the counts are of COMMANDED frames; the labels come from the poses later);
  - static:    no key (Doom's momentum makes the first frames slide);
  - revisits:  a 360-degree pan; a look back (turn 180, hold, turn back); an out-and-back walk (a move
               segment followed by its palindrome: the same commands negated, in reverse order, which walks
               the camera back along the same path, as far as Doom's momentum allows);
  - tilt and fly segments are palindromes too (up then down), so the camera returns to level view and the floor.
Collisions: while a translation key is held, a frame that moves the camera less than `min_progress` world
units counts as blocked; after `stuck_steps` blocked frames the segment is dropped and the policy backs off
and turns away, so it never grinds into a wall for long.
Doom has no roll key: roll_cw/roll_ccw labels appear only as a side effect of panning while the view is tilted
(Doom turns about the world's vertical axis, which the tilted camera sees as pan plus a little roll).
Up/down need `DoomConfig.fly` (the fly cheat, on by default); without it they occur only on stairs and lifts.
Episodes start at a random point of the map (`relickit.doom.random_spawn`) after a short unrecorded burn-in.
Everything is drawn from one seeded generator: deterministic per seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .doom import COMMAND_DIM, KEYS, DoomConfig, DoomEnv, Observation, Rollout, StartState, random_spawn

PITCH_UP_LIMIT_DEG = 32.0  # Doom clamps the view to 32 degrees up ...
PITCH_DOWN_LIMIT_DEG = 56.0  # ... and 56 degrees down
_TRANSLATION_AXES = (0, 1)  # command entries that move the camera horizontally (forward, right)


@dataclass(frozen=True)
class ExploreConfig:
    segment_steps: tuple[int, int] = (6, 28)  # frames per segment, min and max
    speed: tuple[float, float] = (0.3, 1.0)  # range of key speeds (fractions of the full-speed command)
    combo: tuple[float, ...] = (0.5, 0.35, 0.15)  # probability of pressing 1, 2, 3 keys at once
    revisit: float = 0.3  # probability that a segment is a revisit (360 pan, look back, out-and-back)
    revisit_pan_speed: tuple[float, float] = (0.6, 1.0)  # pan speed of 360s and look-backs (a slow 360 is long)
    static: float = 0.08  # probability that a segment is static
    balance_power: float = 2.0  # key weight = (mean count / key count) ** power: higher balances harder
    tilt_margin_deg: float = 4.0  # stay this far inside Doom's pitch limits
    level_deg: float = 0.05  # between segments, a view tilted more than this is tilted back to level
    max_fly_height: float = 6.0  # at most this many full-speed frames of net climb before flying down
    stuck_steps: int = 3  # blocked frames in a row before backing off
    min_progress: float = 1.0  # world units per frame below which a moving camera counts as blocked
    grace_steps: int = 2  # frames at the start of a move to speed up before blocking is checked
    backoff_steps: tuple[int, int] = (3, 6)  # frames of backing off after a block
    random_start: bool = True  # warp to a random point of the map (else start at the player start)
    spawn_tries: int = 10  # warps that land off target (e.g. inside a closed door) are retried this often
    burn_in: tuple[int, int] = (0, 60)  # unrecorded policy frames before frame 0 (so the start view varies too)


@dataclass
class _Step:
    command: np.ndarray
    checked: bool  # whether blocking is checked on this step


class Explorer:
    """The policy: `act(obs)` returns the next command (COMMAND_DIM entries in [-1, 1])."""

    def __init__(self, doom: DoomConfig, cfg: ExploreConfig = ExploreConfig(), seed: int = 0):
        self.doom, self.cfg = doom, cfg
        self.rng = np.random.default_rng(seed)
        self.keys = [k for k in KEYS if doom.fly or k not in ("up", "down")] + ["static"]
        self.counts = {k: 0.0 for k in self.keys}
        self.queue: list[_Step] = []
        self.prev: Observation | None = None
        self.last: _Step | None = None
        self.seg_step = 0
        self.blocked = 0
        self.height = 0.0  # net fly climb, in full-speed frames
        self.recoveries = 0  # times the policy backed off a wall
        self.pan_deg = doom.max_turn_deg * doom.frame_skip  # degrees per frame at full speed
        self.tilt_deg = doom.max_look_deg * doom.frame_skip

    # ---- the loop -----------------------------------------------------------------------------------------
    def act(self, obs: Observation) -> np.ndarray:
        if self._is_blocked(obs):
            self.queue = self._recover()
        if not self.queue:
            self.queue = self._plan(obs)
            self.seg_step = 0
        step = self.queue.pop(0)
        step.command = self._limit(step.command, obs)
        self._count(step.command)
        self.prev, self.last = obs, step
        self.seg_step += 1
        return step.command.astype(np.float32)

    def _is_blocked(self, obs: Observation) -> bool:
        if self.prev is None or self.last is None or not self.last.checked or self.seg_step <= self.cfg.grace_steps:
            self.blocked = 0
            return False
        if np.abs(self.last.command[list(_TRANSLATION_AXES)]).max() == 0:
            self.blocked = 0
            return False
        moved = float(np.linalg.norm(obs.position[:2] - self.prev.position[:2]))
        self.blocked = self.blocked + 1 if moved < self.cfg.min_progress else 0
        return self.blocked >= self.cfg.stuck_steps

    def _limit(self, cmd: np.ndarray, obs: Observation) -> np.ndarray:
        """Drop tilt beyond Doom's pitch limits and descent below the floor, so counts match what happens."""
        cmd = cmd.copy()
        up_room = PITCH_UP_LIMIT_DEG - self.cfg.tilt_margin_deg - obs.pitch_up_deg
        down_room = PITCH_DOWN_LIMIT_DEG - self.cfg.tilt_margin_deg + obs.pitch_up_deg
        if (cmd[3] > 0 and cmd[3] * self.tilt_deg > up_room) or (cmd[3] < 0 and -cmd[3] * self.tilt_deg > down_room):
            cmd[3] = 0.0
        if cmd[4] < 0 and self.height <= 0:
            cmd[4] = 0.0
        self.height = max(0.0, self.height + cmd[4])
        return cmd

    def _count(self, cmd: np.ndarray) -> None:
        pressed = [k for k, (i, sign) in KEYS.items() if k in self.counts and cmd[i] * sign > 0]
        for k in pressed or ["static"]:
            self.counts[k] += 1.0

    # ---- planning -----------------------------------------------------------------------------------------
    def _speed(self) -> float:
        return float(self.rng.uniform(*self.cfg.speed))

    def _length(self) -> int:
        lo, hi = self.cfg.segment_steps
        return int(self.rng.integers(lo, hi + 1))

    def _pan_sign(self) -> float:
        return 1.0 if self._pick(["pan_right", "pan_left"]) == "pan_right" else -1.0

    def _pick(self, keys: list[str]) -> str:
        counts = np.array([self.counts[k] for k in keys])
        w = ((counts.mean() + 1.0) / (counts + 1.0)) ** self.cfg.balance_power
        return keys[int(self.rng.choice(len(keys), p=w / w.sum()))]

    def _plan(self, obs: Observation) -> list[_Step]:
        relevel = self._relevel(obs)
        if relevel:
            return relevel
        u = self.rng.random()
        if u < self.cfg.revisit:
            # the revisit kind is balanced too: pans when pans lag behind, walks when walks do
            pans = (self.counts["pan_left"] + self.counts["pan_right"]) / 2
            walks = np.mean([self.counts[k] for k in ("forward", "backward", "right", "left")])
            w = ((np.array([walks, pans, pans]) + 1.0) ** -self.cfg.balance_power) * np.array([1.0, 0.5, 0.5])
            kind = ["out_and_back", "pan360", "look_back"][int(self.rng.choice(3, p=w / w.sum()))]
            return {"pan360": self._pan360, "look_back": self._look_back, "out_and_back": self._out_and_back}[kind]()
        first = self._pick(self.keys)
        if first == "static" or u < self.cfg.revisit + self.cfg.static:
            return [_Step(np.zeros(COMMAND_DIM), False) for _ in range(self._length())]
        return self._move(first)

    def _move(self, first: str) -> list[_Step]:
        """Press `first` plus 0-2 more keys on other axes, each at its own speed, for one segment."""
        n_keys = 1 + int(self.rng.choice(len(self.cfg.combo), p=np.array(self.cfg.combo) / sum(self.cfg.combo)))
        cmd = np.zeros(COMMAND_DIM)
        cmd[KEYS[first][0]] = KEYS[first][1] * self._speed()
        for _ in range(n_keys - 1):
            free = [k for k in self.keys if k != "static" and cmd[KEYS[k][0]] == 0]
            if not free:
                break
            k = self._pick(free)
            cmd[KEYS[k][0]] = KEYS[k][1] * self._speed()
        length = self._length()
        if cmd[3]:  # tilt: go and come back (palindrome), within the pitch limits
            limit = (PITCH_UP_LIMIT_DEG if cmd[3] > 0 else PITCH_DOWN_LIMIT_DEG) - self.cfg.tilt_margin_deg
            length = max(1, min(length, int(limit / (abs(cmd[3]) * self.tilt_deg))))
        if cmd[4] > 0:
            length = max(1, min(length, int(self.cfg.max_fly_height / cmd[4])))
        out = [_Step(cmd.copy(), True) for _ in range(length)]
        if cmd[3] or cmd[4]:
            back = np.zeros(COMMAND_DIM)
            back[3:] = -cmd[3:]
            out += [_Step(back.copy(), False) for _ in range(length)]
        return out

    def _relevel(self, obs: Observation) -> list[_Step]:
        """Tilt back to level view / fly back down when a recovery left the camera off level."""
        out: list[_Step] = []
        if abs(obs.pitch_up_deg) > self.cfg.level_deg:
            speed = self._speed()
            n = int(math.ceil(abs(obs.pitch_up_deg) / (speed * self.tilt_deg)))
            speed = abs(obs.pitch_up_deg) / (n * self.tilt_deg)
            out += [_Step(np.array([0, 0, 0, -math.copysign(speed, obs.pitch_up_deg), 0]), False) for _ in range(n)]
        if self.height > self.cfg.max_fly_height:
            out += [_Step(np.array([0, 0, 0, 0, -1.0]), False) for _ in range(int(math.ceil(self.height)))]
        return out

    def _turn(self, degrees: float, speed: float) -> list[_Step]:
        """Pan by exactly `degrees` (+ right) at about `speed`."""
        n = max(1, int(math.ceil(abs(degrees) / (speed * self.pan_deg))))
        per = math.copysign(abs(degrees) / (n * self.pan_deg), degrees)
        return [_Step(np.array([0, 0, per, 0, 0]), False) for _ in range(n)]

    def _pan360(self) -> list[_Step]:
        return self._turn(360.0 * self._pan_sign(), float(self.rng.uniform(*self.cfg.revisit_pan_speed)))

    def _look_back(self) -> list[_Step]:
        sign, speed = self._pan_sign(), float(self.rng.uniform(*self.cfg.revisit_pan_speed))
        hold = [_Step(np.zeros(COMMAND_DIM), False) for _ in range(int(self.rng.integers(1, self.cfg.segment_steps[0] + 1)))]
        return self._turn(sign * 180.0, speed) + hold + self._turn(-sign * 180.0, speed)

    def _out_and_back(self) -> list[_Step]:
        key = self._pick([k for k in ("forward", "backward", "right", "left") if k in self.keys])
        out = [s for s in self._move(key)]
        back = [_Step(-s.command, True) for s in reversed(out)]
        return out + back

    def _recover(self) -> list[_Step]:
        """Back off the way we came, then turn away by 90-180 degrees."""
        back = np.zeros(COMMAND_DIM)
        back[list(_TRANSLATION_AXES)] = -np.sign(self.last.command[list(_TRANSLATION_AXES)]) * self._speed()
        n = int(self.rng.integers(self.cfg.backoff_steps[0], self.cfg.backoff_steps[1] + 1))
        turn = self._pan_sign() * float(self.rng.uniform(90.0, 180.0))
        self.blocked = 0
        self.recoveries += 1
        return [_Step(back.copy(), False) for _ in range(n)] + self._turn(turn, 1.0)


def _spawn(
    env: DoomEnv, seed: int, cfg: ExploreConfig, rng: np.random.Generator
) -> tuple[tuple[float, float] | None, Observation]:
    """Reset at a random point of the map; fall back to the player start if no warp lands where it should."""
    if cfg.random_start:
        for _ in range(cfg.spawn_tries):
            spawn = random_spawn(env.cfg, rng)
            obs = env.reset(seed, spawn)
            if np.abs(obs.position[:2] - np.array(spawn)).max() <= env.cfg.spawn_tolerance:
                return spawn, obs
    return None, env.reset(seed)


def explore(
    env: DoomEnv, seed: int, frames: int, cfg: ExploreConfig = ExploreConfig()
) -> tuple[Rollout, StartState]:
    """Run the policy for a random burn-in, then record `frames` frames (fewer if the level ends).

    Returns the recorded rollout and the start state from which `replay(env.cfg, start, rollout.commands[1:])`
    reproduces it exactly.
    """
    policy = Explorer(env.cfg, cfg, seed)
    burn_in = int(policy.rng.integers(cfg.burn_in[0], cfg.burn_in[1] + 1))
    spawn, obs = _spawn(env, seed, cfg, policy.rng)
    commands: list[np.ndarray] = []
    kept: list[Observation] = []
    for t in range(burn_in + frames):
        if t >= burn_in:
            kept.append(obs)
        if len(kept) == frames:
            break
        cmd = policy.act(obs)
        obs = env.step(cmd)
        if obs.done:
            break
        commands.append(cmd)
    all_cmds = np.array(commands, np.float32).reshape(-1, COMMAND_DIM)
    start = min(burn_in, len(all_cmds))
    prefix = all_cmds[:start]
    if not kept:  # the level ended during burn-in: record from where it stopped
        kept = [obs]
    before = prefix[-1:] if len(prefix) else np.zeros((1, COMMAND_DIM), np.float32)
    played = np.concatenate([before, all_cmds[start:start + len(kept) - 1]])
    rollout = Rollout(
        np.stack([o.frame for o in kept]), np.stack([o.rotation for o in kept]),
        np.stack([o.position for o in kept]), played,
    )
    return rollout, StartState(seed, spawn, prefix)
