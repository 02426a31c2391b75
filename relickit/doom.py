"""The engine: a thin wrapper over ViZDoom with Freedoom, delivering RGB frames and exact camera poses.

One `DoomEnv` plays one map. `reset(seed)` starts the map, `step(command)` holds a 5-D command for
`frame_skip` engine tics and returns the next frame with its camera pose. A command is signed and unit-less,
one entry per `COMMANDS` name, each in [-1, 1]; `DoomConfig` says how many engine units a full-speed command is.
Doom has no roll, so the 13-D vocabulary of `relickit.controls` minus `roll_cw`/`roll_ccw` is what Doom data
contains. Up/down come from the `fly` cheat (`DoomConfig.fly`); without it the camera only moves up and down
on stairs and lifts.

Poses follow `relickit.controls`: world-to-camera rotation R (3x3, OpenCV camera: x right, y down, z forward)
and camera centre P (3) in world units. World frame: X east, Y north, Z up. From ViZDoom's CAMERA_ANGLE (yaw,
degrees counter-clockwise from east) and CAMERA_PITCH (degrees, NEGATIVE looks up, checked on rendered frames):
  forward f = (cos yaw cos up, sin yaw cos up, sin up),   up = -PITCH
  right   r = (sin yaw, -cos yaw, 0)
  camera-to-world C = [r, f x r, f] (columns: camera x, y = down, z), and R = C^T.

Everything is deterministic: the same config, seed and command list give the same frames and poses, bit for bit.
`rollout` plays a command list from a reset; `replay` plays an action script from a `StartState` (a seed and
the commands that led to the start frame), which is how evaluation gets the engine's TRUE frames for a script.
"""
from __future__ import annotations

import functools
import math
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import vizdoom as vzd

from .controls import ACTIONS

# ---- maps and splits ---------------------------------------------------------------------------------------
WADS: tuple[str, ...] = ("freedoom2", "freedoom1")
MAPS: dict[str, tuple[str, ...]] = {
    "freedoom2": tuple(f"MAP{i:02d}" for i in range(1, 33)),
    "freedoom1": tuple(f"E{e}M{m}" for e in range(1, 5) for m in range(1, 10)),
}
TRAIN_MAPS: tuple[tuple[str, str], ...] = tuple(("freedoom2", f"MAP{i:02d}") for i in range(1, 21))
EVAL_MAPS: tuple[tuple[str, str], ...] = tuple(("freedoom2", f"MAP{i:02d}") for i in range(21, 33)) + tuple(
    ("freedoom1", m) for m in MAPS["freedoom1"]
)
SPLITS: dict[str, tuple[tuple[str, str], ...]] = {"train": TRAIN_MAPS, "eval": EVAL_MAPS}


def map_names(split: str) -> tuple[str, ...]:
    """The map names of a split: map_names("train") == ("MAP01", ..., "MAP20")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLITS)}.")
    return tuple(m for _, m in SPLITS[split])


def wad_of(map_name: str) -> str:
    """The WAD that holds a map: MAPxx maps are Freedoom2 (Phase 2), ExMy maps are Freedoom1 (Phase 1)."""
    for wad, names in MAPS.items():
        if map_name in names:
            return wad
    raise ValueError(
        f"unknown map {map_name!r}; valid maps are freedoom2 {MAPS['freedoom2'][0]}..{MAPS['freedoom2'][-1]} "
        f"and freedoom1 {MAPS['freedoom1'][0]}..{MAPS['freedoom1'][-1]} (E1-E4, M1-M9)."
    )


def check_map(wad: str, map_name: str) -> None:
    if wad not in MAPS:
        raise ValueError(f"unknown wad {wad!r}; choose one of {WADS}.")
    if map_name not in MAPS[wad]:
        raise ValueError(f"{wad} has no map {map_name!r}; valid maps: {', '.join(MAPS[wad])}.")


def check_split(wad: str, map_name: str, split: str) -> None:
    """Raise unless (wad, map) belongs to `split`: train maps never appear in eval and vice versa."""
    check_map(wad, map_name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLITS)}.")
    if (wad, map_name) not in SPLITS[split]:
        other = "a held-out eval" if split == "train" else "a training"
        raise ValueError(
            f"{wad} {map_name} is {other} map and cannot be used in a {split} split; "
            f"{split} maps are: {', '.join(m for _, m in SPLITS[split])}."
        )


# ---- frame sizes ---------------------------------------------------------------------------------------------
# delivered (height, width) -> (ViZDoom render resolution, integer area-downsampling factor per side)
RESOLUTIONS: dict[tuple[int, int], tuple[vzd.ScreenResolution, int]] = {
    (96, 128): (vzd.ScreenResolution.RES_256X192, 2),
    (120, 160): (vzd.ScreenResolution.RES_160X120, 1),
    (240, 320): (vzd.ScreenResolution.RES_320X240, 1),
}

# ---- commands ------------------------------------------------------------------------------------------------
# signed command entries, in this order; + is the first name of each pair in the comment
COMMANDS: tuple[str, ...] = ("forward", "right", "pan_right", "tilt_up", "up")  # -: backward, left, pan_left, tilt_down, down
COMMAND_DIM = len(COMMANDS)
# the 13-D action names Doom can produce, as (command index, sign); "static" is the zero command
KEYS: dict[str, tuple[int, float]] = {
    "forward": (0, 1.0), "backward": (0, -1.0), "right": (1, 1.0), "left": (1, -1.0),
    "pan_right": (2, 1.0), "pan_left": (2, -1.0), "tilt_up": (3, 1.0), "tilt_down": (3, -1.0),
    "up": (4, 1.0), "down": (4, -1.0),
}
_BUTTONS = (
    vzd.Button.MOVE_FORWARD_BACKWARD_DELTA,  # + forward
    vzd.Button.MOVE_LEFT_RIGHT_DELTA,  # + right
    vzd.Button.TURN_LEFT_RIGHT_DELTA,  # + turns right (yaw decreases), degrees per tic
    vzd.Button.LOOK_UP_DOWN_DELTA,  # + looks up (PITCH decreases), degrees per tic
    vzd.Button.MOVE_UP_DOWN_DELTA,  # + up, only while flying
)
_VARIABLES = (
    vzd.GameVariable.CAMERA_POSITION_X,
    vzd.GameVariable.CAMERA_POSITION_Y,
    vzd.GameVariable.CAMERA_POSITION_Z,  # eye height, includes the view height above the floor
    vzd.GameVariable.CAMERA_ANGLE,
    vzd.GameVariable.CAMERA_PITCH,
)


@dataclass(frozen=True)
class DoomConfig:
    """One map, one frame size, and what a full-speed command means in engine units."""

    wad: str = "freedoom2"
    map: str = "MAP01"
    height: int = 96
    width: int = 128
    frame_skip: int = 2  # engine tics per delivered frame; Doom runs at 35 tics/s, so 2 -> 17.5 FPS
    fly: bool = True  # the `fly` cheat: lets the `up` command lift the camera (Doom has no other up/down)
    warmup_tics: int = 10  # Doom ignores input for the first tics of a level; these are played before frame 0
    max_move: float = 50.0  # forward/strafe delta of a full-speed command (Doom's run speed)
    max_turn_deg: float = 2.5  # degrees per tic of a full-speed pan (5 deg per frame at frame_skip 2)
    max_look_deg: float = 1.5  # degrees per tic of a full-speed tilt; Doom clamps pitch to [-32 up, +56 down]
    max_fly: float = 400.0  # up/down delta of a full-speed fly command (about 3 units per tic at top speed)
    spawn_margin: float = 32.0  # random start points keep this far from their sector's walls (player radius 16)
    spawn_height: float = 64.0  # ... and need this much room between floor and ceiling (player height 56)
    spawn_tolerance: float = 1.0  # a warp that lands further than this from its target is retried elsewhere

    def __post_init__(self) -> None:
        check_map(self.wad, self.map)
        if (self.height, self.width) not in RESOLUTIONS:
            sizes = ", ".join(f"{h}x{w}" for h, w in RESOLUTIONS)
            raise ValueError(
                f"unsupported frame size {self.height}x{self.width} (HxW); supported sizes are {sizes}. "
                "Pick one, or add a render resolution to relickit.doom.RESOLUTIONS."
            )
        if self.frame_skip < 1 or self.warmup_tics < 0:
            raise ValueError(f"frame_skip must be >= 1 and warmup_tics >= 0, got {self.frame_skip}, {self.warmup_tics}.")

    @property
    def fps(self) -> float:
        return vzd.DEFAULT_TICRATE / self.frame_skip


@dataclass
class Observation:
    frame: np.ndarray  # (H, W, 3) uint8 RGB
    rotation: np.ndarray  # (3, 3) float64, world-to-camera
    position: np.ndarray  # (3,) float64, camera centre in world units
    yaw_deg: float  # counter-clockwise from east
    pitch_up_deg: float  # positive looks up
    done: bool = False  # the level ended (a walk-over exit); no further steps are possible


@dataclass
class Rollout:
    """Frames and poses of consecutive steps, and the command that led into each frame."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    rotations: np.ndarray  # (T, 3, 3) float64
    positions: np.ndarray  # (T, 3) float64
    commands: np.ndarray  # (T, COMMAND_DIM) float32; row t led from frame t-1 to frame t (row 0: zeros after a reset)

    def __len__(self) -> int:
        return len(self.frames)


def camera_pose(x: float, y: float, z: float, yaw_deg: float, pitch_up_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera rotation R (3, 3) and camera centre P (3,) from Doom's camera variables."""
    yaw, up = math.radians(yaw_deg), math.radians(pitch_up_deg)
    f = np.array([math.cos(yaw) * math.cos(up), math.sin(yaw) * math.cos(up), math.sin(up)])
    r = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    c = np.stack([r, np.cross(f, r), f], axis=1)  # camera-to-world, columns = camera x, y (down), z
    return c.T, np.array([x, y, z], dtype=np.float64)


def area_downsample(frame: np.ndarray, factor: int) -> np.ndarray:
    """(H*f, W*f, C) uint8 -> (H, W, C) uint8 by averaging f x f blocks (area interpolation, integer factor)."""
    if factor == 1:
        return frame
    wide = frame.astype(np.uint16)  # f*f*255 fits for f <= 16
    total = sum(wide[i::factor, j::factor] for i in range(factor) for j in range(factor))
    return ((total + factor * factor // 2) // (factor * factor)).astype(np.uint8)  # round half up


class DoomEnv:
    """ViZDoom on one map: no monsters, no HUD/weapon/crosshair/messages, invulnerable, deterministic per seed."""

    def __init__(self, cfg: DoomConfig):
        self.cfg = cfg
        resolution, self._down = RESOLUTIONS[(cfg.height, cfg.width)]
        game = vzd.DoomGame()
        # The engine makes ./_vizdoom/ in its working directory as it starts and writes an .ini on exit. Two engines
        # starting at once in one directory race for the folder, and the loser can die (it killed a dataset worker in
        # CI): each engine starts in a private directory of its own, which also keeps the user's folder clean.
        self._home = tempfile.mkdtemp(prefix="relickit-vizdoom-")
        game.set_doom_config_path(os.path.join(self._home, "_vizdoom.ini"))
        game.set_doom_game_path(os.path.join(os.path.dirname(vzd.__file__), f"{cfg.wad}.wad"))
        game.set_doom_map(cfg.map)
        game.set_screen_resolution(resolution)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        for setter in (
            game.set_render_hud, game.set_render_minimal_hud, game.set_render_weapon, game.set_render_crosshair,
            game.set_render_messages, game.set_render_decals, game.set_render_particles,
            game.set_render_effects_sprites, game.set_render_screen_flashes, game.set_console_enabled,
        ):
            setter(False)
        game.set_available_buttons(list(_BUTTONS))
        game.set_available_game_variables(list(_VARIABLES))
        game.set_episode_timeout(0)
        game.set_mode(vzd.Mode.PLAYER)
        # no monsters; cheats for god/fly; no view bobbing (the camera height is the pose, not a walking wobble)
        game.add_game_args("-nomonsters +sv_cheats 1 +movebob 0 +stillbob 0")
        here = os.getcwd()
        os.chdir(self._home)  # the engine process inherits it as it is spawned
        try:
            game.init()
        except BaseException:
            shutil.rmtree(self._home, ignore_errors=True)
            raise
        finally:
            os.chdir(here)
        self._game = game
        self._scale = np.array([cfg.max_move, cfg.max_move, cfg.max_turn_deg, cfg.max_look_deg, cfg.max_fly])
        self._last: Observation | None = None

    def reset(self, seed: int, spawn: tuple[float, float] | None = None) -> Observation:
        """Start the map with `seed`; optionally warp to `spawn` (x, y) instead of the player start."""
        game = self._game
        game.set_seed(int(seed))
        game.new_episode()
        # cheats are cleared by every new episode; god keeps damaging floors from ending it
        game.send_game_command("god")
        if self.cfg.fly:
            game.send_game_command("fly")
        if spawn is not None:
            game.send_game_command(f"warp {float(spawn[0]):.3f} {float(spawn[1]):.3f}")
        if self.cfg.warmup_tics:
            game.make_action([0.0] * COMMAND_DIM, self.cfg.warmup_tics)
        self._last = self._observe()
        return self._last

    def step(self, command: np.ndarray | Sequence[float]) -> Observation:
        """Hold `command` (COMMAND_DIM entries in [-1, 1]) for frame_skip tics; return the next observation."""
        if self._last is None:
            raise RuntimeError("call DoomEnv.reset(seed) before step().")
        if self._last.done:
            raise RuntimeError(f"the level {self.cfg.map} has ended (the player crossed an exit); call reset(seed).")
        cmd = np.clip(np.asarray(command, dtype=np.float64), -1.0, 1.0)
        if cmd.shape != (COMMAND_DIM,):
            raise ValueError(f"a command has {COMMAND_DIM} entries {COMMANDS}, got shape {cmd.shape}.")
        # ViZDoom's turn delta is + for turning right, look delta is + for looking up: as COMMANDS
        self._game.make_action((cmd * self._scale).tolist(), self.cfg.frame_skip)
        if self._game.is_episode_finished():
            self._last = Observation(self._last.frame, self._last.rotation, self._last.position,
                                     self._last.yaw_deg, self._last.pitch_up_deg, done=True)
        else:
            self._last = self._observe()
        return self._last

    def _observe(self) -> Observation:
        state = self._game.get_state()
        x, y, z, yaw, pitch = (float(v) for v in state.game_variables)
        rotation, position = camera_pose(x, y, z, yaw, -pitch)
        frame = area_downsample(state.screen_buffer, self._down)
        return Observation(frame, rotation, position, yaw, -pitch)

    def close(self) -> None:
        self._game.close()
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> "DoomEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- map geometry (parsed from the WAD), for random start points ----------------------------------------------
_ML_BLOCKING = 1  # linedef flag: blocks the player
_NO_SIDE = 0xFFFF
_MAP_LUMPS = ("THINGS", "LINEDEFS", "SIDEDEFS", "VERTEXES", "SEGS", "SSECTORS", "NODES", "SECTORS", "REJECT", "BLOCKMAP")
MIN_REACHABLE_FRACTION = 0.25  # below this share of sectors reachable by walking, spawn anywhere


@dataclass(frozen=True)
class MapGeometry:
    lines: np.ndarray  # (L, 4) float64 x1, y1, x2, y2 of every linedef
    line_sectors: np.ndarray  # (L, 2) int front/back sector of each line, -1 where there is none
    blocking: np.ndarray  # (L,) bool: one-sided or flagged impassable
    floors: np.ndarray  # (S,) floor height of each sector
    ceilings: np.ndarray  # (S,) ceiling height of each sector
    start: tuple[float, float, float]  # player 1 start: x, y, angle (degrees)
    reachable: np.ndarray  # (S,) bool: connected to the start's sector through passable two-sided lines


def _lumps(path: str) -> list[tuple[str, int, int]]:
    with open(path, "rb") as f:
        _, n, offset = struct.unpack("<4sii", f.read(12))
        f.seek(offset)
        entries = [struct.unpack("<ii8s", f.read(16)) for _ in range(n)]
    return [(name.rstrip(b"\0").decode("ascii"), pos, size) for pos, size, name in entries]


def _sector_of(x: float, y: float, lines: np.ndarray, line_sectors: np.ndarray, n_sectors: int) -> np.ndarray:
    """(S,) bool: the sectors whose boundary lines enclose (x, y) (even-odd rule over each sector's lines)."""
    x1, y1, x2, y2 = lines.T
    crosses = ((y1 > y) != (y2 > y)) & (x < x1 + (y - y1) * (x2 - x1) / np.where(y2 == y1, 1.0, y2 - y1))
    inside = np.zeros(n_sectors, dtype=np.int64)
    for side in (0, 1):
        sec = line_sectors[:, side]
        ok = crosses & (sec >= 0)
        np.add.at(inside, sec[ok], 1)
    # a two-sided line between the same sector on both sides counts twice and cancels, as it should
    return inside % 2 == 1


@functools.lru_cache(maxsize=None)
def map_geometry(wad: str, map_name: str) -> MapGeometry:
    """Lines, sectors and player start of a Doom-format map, read straight from the WAD."""
    check_map(wad, map_name)
    path = os.path.join(os.path.dirname(vzd.__file__), f"{wad}.wad")
    lumps = _lumps(path)
    first = [n for n, _, _ in lumps].index(map_name)
    found = {n: (pos, size) for n, pos, size in lumps[first + 1: first + 1 + len(_MAP_LUMPS)]}
    with open(path, "rb") as f:
        def read(name: str) -> bytes:
            pos, size = found[name]
            f.seek(pos)
            return f.read(size)
        verts = np.array(list(struct.iter_unpack("<hh", read("VERTEXES"))), dtype=np.float64)
        linedefs = list(struct.iter_unpack("<HHHHHHH", read("LINEDEFS")))
        side_sector = [s[5] for s in struct.iter_unpack("<hh8s8s8sh", read("SIDEDEFS"))]
        sectors = list(struct.iter_unpack("<hh8s8shhh", read("SECTORS")))
        things = list(struct.iter_unpack("<hhhhh", read("THINGS")))
    lines = np.array([[*verts[v1], *verts[v2]] for v1, v2, *_ in linedefs])
    line_sectors = np.array(
        [[side_sector[fr] if fr != _NO_SIDE else -1, side_sector[bk] if bk != _NO_SIDE else -1]
         for _, _, _, _, _, fr, bk in linedefs]
    )
    flags = np.array([ld[2] for ld in linedefs])
    blocking = (line_sectors[:, 1] < 0) | (line_sectors[:, 0] < 0) | (flags & _ML_BLOCKING > 0)
    floors = np.array([s[0] for s in sectors], dtype=np.float64)
    ceilings = np.array([s[1] for s in sectors], dtype=np.float64)
    px, py, pa = next((float(t[0]), float(t[1]), float(t[2])) for t in things if t[3] == 1)
    # reachable: flood fill from the start's sector over passable two-sided lines (closed doors count as open)
    n = len(sectors)
    start_sectors = np.flatnonzero(_sector_of(px, py, lines, line_sectors, n))
    reachable = np.zeros(n, dtype=bool)
    reachable[start_sectors] = True
    edges = line_sectors[~blocking]
    while True:
        grow = reachable[edges[:, 0]] ^ reachable[edges[:, 1]]
        if not grow.any():
            break
        reachable[edges[grow].ravel()] = True
    return MapGeometry(lines, line_sectors, blocking, floors, ceilings, (px, py, pa), reachable)


def _segment_distance(x: float, y: float, lines: np.ndarray) -> np.ndarray:
    p, a, b = np.array([x, y]), lines[:, :2], lines[:, 2:]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-9), 0.0, 1.0)
    return np.linalg.norm(a + t[:, None] * ab - p, axis=1)


@functools.lru_cache(maxsize=None)
def _spawn_sectors(wad: str, map_name: str, margin: float, height: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sectors a start point may lie in, their bounding boxes (x0, y0, x1, y1) and their sampling weights."""
    g = map_geometry(wad, map_name)
    n = len(g.floors)
    # maps that start in a closed teleporter room have a tiny reachable set: sample all sectors there
    area_ok = g.reachable if g.reachable.mean() >= MIN_REACHABLE_FRACTION else np.ones(n, dtype=bool)
    candidates = np.flatnonzero(area_ok & (g.ceilings - g.floors >= height))
    boxes = np.zeros((len(candidates), 4))
    for k, sector in enumerate(candidates):
        own = g.lines[(g.line_sectors == sector).any(1)]
        boxes[k] = own[:, [0, 2]].min(), own[:, [1, 3]].min(), own[:, [0, 2]].max(), own[:, [1, 3]].max()
    area = np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2] - 2 * margin, 0.0), axis=1)
    return candidates, boxes, area


def random_spawn(cfg: DoomConfig, rng: np.random.Generator, tries: int = 1000) -> tuple[float, float]:
    """A random point of the map's reachable area, `spawn_margin` from walls, with room to stand.

    Falls back to the player start when no point is found in `tries` draws.
    """
    g = map_geometry(cfg.wad, cfg.map)
    candidates, boxes, area = _spawn_sectors(cfg.wad, cfg.map, cfg.spawn_margin, cfg.spawn_height)
    if not area.any():
        return g.start[0], g.start[1]
    for _ in range(tries):
        i = int(rng.choice(len(candidates), p=area / area.sum()))
        x0, y0, x1, y1 = boxes[i]
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        if not _sector_of(x, y, g.lines, g.line_sectors, len(g.floors))[candidates[i]]:
            continue
        own = (g.line_sectors == candidates[i]).any(1)
        if _segment_distance(x, y, g.lines[own]).min() >= cfg.spawn_margin:
            return float(round(x)), float(round(y))
    return g.start[0], g.start[1]


# ---- deterministic playback ------------------------------------------------------------------------------------
def rollout(
    cfg: DoomConfig, seed: int, commands: np.ndarray, spawn: tuple[float, float] | None = None,
    env: DoomEnv | None = None,
) -> Rollout:
    """Reset with `seed` (and `spawn`), play `commands` (N, COMMAND_DIM): N + 1 frames (fewer if the level ends)."""
    commands = np.asarray(commands, dtype=np.float32).reshape(-1, COMMAND_DIM)
    own = env is None
    env = DoomEnv(cfg) if own else env
    try:
        obs = env.reset(seed, spawn)
        frames, rots, poss = [obs.frame], [obs.rotation], [obs.position]
        for cmd in commands:
            obs = env.step(cmd)
            if obs.done:
                break
            frames.append(obs.frame)
            rots.append(obs.rotation)
            poss.append(obs.position)
    finally:
        if own:
            env.close()
    played = np.concatenate([np.zeros((1, COMMAND_DIM), np.float32), commands[: len(frames) - 1]])
    return Rollout(np.stack(frames), np.stack(rots), np.stack(poss), played)


@dataclass(frozen=True)
class StartState:
    """Where a replay starts: the engine state after `prefix` commands from a reset with `seed`.

    Replaying the recorded prefix is exact (momentum, lights and all), unlike warping to a position.
    """

    seed: int
    spawn: tuple[float, float] | None = None  # warp target (x, y) right after the reset, None = player start
    prefix: np.ndarray = field(default_factory=lambda: np.zeros((0, COMMAND_DIM), np.float32))  # (N, COMMAND_DIM)


def script_to_commands(script: Sequence[Mapping[str, float]] | np.ndarray) -> np.ndarray:
    """An action script -> commands (N, COMMAND_DIM).

    A script is either commands already (an array (N, COMMAND_DIM)) or one dict per frame mapping action names
    of `relickit.controls.ACTIONS` to speeds in [0, 1], e.g. [{"forward": 1.0, "pan_left": 0.5}, {"static": 1}].
    """
    if isinstance(script, np.ndarray):
        if script.ndim != 2 or script.shape[1] != COMMAND_DIM:
            raise ValueError(f"a command array must be (N, {COMMAND_DIM}) with columns {COMMANDS}; got {script.shape}.")
        return script.astype(np.float32)
    out = np.zeros((len(script), COMMAND_DIM), np.float32)
    for t, keys in enumerate(script):
        if not isinstance(keys, Mapping):
            raise ValueError(f"script step {t} is {keys!r}; each step must be a dict of action name -> speed.")
        for name, speed in keys.items():
            if name == "static":
                continue
            if name not in KEYS:
                why = "Doom cannot roll the camera" if name in ACTIONS else "it is not an action name"
                raise ValueError(
                    f"script step {t} uses key {name!r}, which Doom cannot play ({why}); "
                    f"use one of {sorted(KEYS) + ['static']}."
                )
            if not 0.0 <= float(speed) <= 1.0:
                raise ValueError(f"script step {t}: speed of {name!r} is {speed}; speeds are in [0, 1].")
            index, sign = KEYS[name]
            out[t, index] += sign * float(speed)
    return out


def replay(
    cfg: DoomConfig, start: StartState, script: Sequence[Mapping[str, float]] | np.ndarray, env: DoomEnv | None = None
) -> Rollout:
    """The engine's true frames and poses for `script` played from `start`: frame 0 is the start frame."""
    commands = script_to_commands(script)
    prefix = np.asarray(start.prefix, dtype=np.float32).reshape(-1, COMMAND_DIM)
    full = rollout(cfg, start.seed, np.concatenate([prefix, commands]), start.spawn, env)
    k = len(prefix)
    if len(full) <= k:
        raise RuntimeError(f"{cfg.map}: the level ended during the start prefix; the StartState does not match this map.")
    return Rollout(full.frames[k:], full.rotations[k:], full.positions[k:], full.commands[k:])
