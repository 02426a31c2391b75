"""Doom datasets: generation, storage, and a torch dataset of RELIC training clips.

On-disk format (one directory per dataset):

  manifest.json        {"format": 1, "config": DatasetConfig as a dict, "split": "train" | "eval",
                        "episodes": [{"name", "file", "index", "map", "wad", "seed", "frames", "step", "caption"}]}
  ep00000_MAP01.npz    one episode, an .npz as np.savez_compressed writes it (zip + deflate), members:
      frames_00000, frames_00001, ...  uint8 (<= chunk_frames, H, W, 3) RGB, consecutive chunks of the episode
      rotations  float64 (T, 3, 3)  world-to-camera, OpenCV camera (x right, y down, z forward)
      positions  float64 (T, 3)     camera centre, Doom world units (X east, Y north, Z up)
      actions    float32 (T, 13)    relickit.controls.labels_from_poses(rotations, positions) - from the POSES
      step       float64 ()         the episode's mean non-zero step length (world units per frame)
      commands   float32 (T, 5)     the engine command that led into each frame (relickit.doom.COMMANDS)
      seed, spawn (2,) or (0,), prefix (B, 5): the relickit.doom.StartState that replays the episode exactly
      chunk_frames int64 ()          frames per chunk
      map, wad, caption  str

Why npz: frames must be lossless, because evaluation scores generated video against these exact engine frames
(and `replay` reproduces them bit for bit); Doom's flat, palettised textures deflate well, and
scripts/bench_data.py measures the size and the decode speed (docs/data.md). Frames are stored in chunks so that
a clip decodes only the chunks it covers, never the whole episode.
Writes are atomic: an episode goes to a hidden temp file that is renamed into place when complete, so an
interrupted run never leaves a half-written episode, and re-running `generate` resumes: it skips complete
episodes and deletes temp files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import zipfile
import zlib
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .controls import ACTIONS, ControlsConfig, labels_from_poses, pose_vector, relative_to_first
from .doom import DoomConfig, DoomEnv, StartState, check_split, wad_of
from .explore import ExploreConfig, explore
from .pool import imap_guarded

FORMAT = 1
MANIFEST = "manifest.json"
STALL_TIMEOUT = 180.0  # seconds without a finished episode before generate() takes its workers for deadlocked

# ---- captions: what each map looks like, static content only -------------------------------------------------
CAPTIONS: dict[str, str] = {
    "MAP01": "a grey tech base with brown metal walls, hazard-striped crates and blue-lit panels",
    "MAP02": "brown brick and grey stone corridors with low stairs and green marble walls",
    "MAP03": "dark brown stone halls with deep blue water pools and grey tech pillars",
    "MAP04": "a brown wooden hall and grey tiled rooms with brown checkered floors",
    "MAP05": "a rocky brown cavern with blue water channels beside a grassy outdoor yard",
    "MAP06": "a brown dirt courtyard under a cloudy sky, walled with green stone",
    "MAP07": "grey-green rock walls and brown earthen passages with green slime floors",
    "MAP08": "a brown brick base with blue water moats, computer panels and a rocky field",
    "MAP09": "dark green tech corridors with circuit walls and red marble altars",
    "MAP10": "a wide brown dirt canyon with dead trees under a cloudy sky",
    "MAP11": "wooden and brown stone rooms by a blue pool with dead trees and grey rock",
    "MAP12": "dark city buildings around a tan tiled plaza under a red night skyline",
    "MAP13": "a night city street of lit skyscrapers with green grass and brown brick walls",
    "MAP14": "brown stone and riveted metal walls beside green grass under a city skyline",
    "MAP15": "cobblestone courtyards and green mossy walls under a red city skyline",
    "MAP16": "a dark waterfront of deep blue water in front of a red night skyline",
    "MAP17": "tall brown brick buildings around a blue water canal under a city skyline",
    "MAP18": "a brown wooden fortress with grey stone stairs on a green lawn",
    "MAP19": "grey metal corridors with ribbed pillars and dark computer rooms",
    "MAP20": "a red lava lake between brown and mossy stone walls under a city skyline",
    "MAP21": "grey riveted walls and brown cave rock over a glowing orange lava floor",
    "MAP22": "red flesh-rock walls and grey tech panels over a brown cobbled floor",
    "MAP23": "a red lava cavern with flesh walls next to a grey hazard-striped tech room",
    "MAP24": "dark tech halls with green marble pillars, blue pools and a red sky",
    "MAP25": "tan brick corridors and a green mossy yard under a red sky",
    "MAP26": "dark speckled stone rooms with orange lava and green brick blocks",
    "MAP27": "green marble walls, brown cracked rock floors and red flesh passages",
    "MAP28": "green marble halls over a red blood floor with dark doorways",
    "MAP29": "a red hellish canyon of lava and flesh rock with grey stone towers",
    "MAP30": "a red flesh-rock arena over lava with a wall of demon faces",
    "MAP31": "dark metal corridors with brown wood trims and grey floors",
    "MAP32": "dim halls with green mossy stone walls and brown floors",
    "E1M1": "a grey tech hangar with hazard-striped walls, brown crates and blue lights",
    "E1M2": "grey metal rooms with computer walls, hexagon floors and a rocky outdoor yard",
    "E1M3": "green and grey stone corridors with brown dirt floors and green slime",
    "E1M4": "a tech base with computer panels, green slime pools and blue water",
    "E1M5": "bright hallways with tan wall panels and grey metal pillars",
    "E1M6": "brown wooden rooms with grey metal grates and a view of mountains",
    "E1M7": "dark computer rooms with blue-lit walls and a blue water channel",
    "E1M8": "green circuit walls and brown floors beside an outdoor yard with red crates",
    "E1M9": "grey stone halls with lit columns and a green grassy courtyard",
    "E2M1": "grey stone walls and red cracked floors beside a green lawn under a brown sky",
    "E2M2": "black metal rooms with hexagon floors under a brown rocky sky",
    "E2M3": "grey tech corridors with green computer lights and brown rock caves",
    "E2M4": "dark grey halls with white marbled walls and wooden paneling",
    "E2M5": "dark grey rooms with pipe-covered walls and hexagon floors",
    "E2M6": "green riveted metal walls and brown wooden corridors with grey floors",
    "E2M7": "green riveted walls around a muddy brown yard under a rocky sky",
    "E2M8": "brown dirt yards walled by green metal under an orange rocky sky",
    "E2M9": "dark walls around green slime and grey stone under an orange sky",
    "E3M1": "red hell-rock walls and red brick under a fiery red sky",
    "E3M2": "grey stone rooms with orange lava pools under a red sky",
    "E3M3": "green stone walls and wooden balconies over a red blood pool under a red sky",
    "E3M4": "mossy green stone halls with blue torches under a red sky",
    "E3M5": "skull-decorated wooden walls, grey rock yards and lava under a red sky",
    "E3M6": "dark green stone rooms and red flesh walls over lava",
    "E3M7": "dark green halls with red flesh walls and candelabras",
    "E3M8": "mossy green walls with brown spotted floors and candles",
    "E3M9": "dark wooden halls with grey stone and green marble under a red sky",
    "E4M1": "green and grey stone corridors opening onto a starry night sky",
    "E4M2": "a green grass yard among grey stone and wooden buildings",
    "E4M3": "brown dirt rooms and wooden walls under a green starry sky",
    "E4M4": "wooden walls and tan hexagon floors under a green starry sky",
    "E4M5": "brown wooden paneled rooms with grey metal and green grass",
    "E4M6": "very dark grey stone rooms with wooden trims",
    "E4M7": "brown wooden walls with grey metal signs over green grass",
    "E4M8": "mossy green pillars on brown hexagon floors in a dim hall",
    "E4M9": "grey stone and metal corridors with blue lights and dark floors",
}


def caption(map_name: str) -> str:
    wad_of(map_name)  # raises for unknown maps
    return CAPTIONS[map_name]


# ---- configuration ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetConfig:
    """Everything that determines a dataset's content; stored in the manifest and checked when resuming."""

    maps: tuple[str, ...]
    split: str = "train"
    frames_per_episode: int = 200
    seed: int = 0
    height: int = 96
    width: int = 128
    frame_skip: int = 2
    fly: bool = True
    chunk_frames: int = 8  # frames per chunk: a clip decodes only its chunks (deflate finds no matches across frames anyway)
    compress_level: int = 3  # deflate level: 1% larger than the default 6 at half the encoding time
    still: float = 0.05  # labels: ControlsConfig.still (Doom's momentum and fixed-point angles leave tiny residues)
    explore: ExploreConfig = field(default_factory=ExploreConfig)

    def __post_init__(self) -> None:
        if not self.maps:
            raise ValueError("no maps given; pass e.g. maps=['MAP01', 'MAP02'] (see relickit.doom.TRAIN_MAPS).")
        for m in self.maps:
            check_split(wad_of(m), m, self.split)
        if self.frames_per_episode < 2 or self.chunk_frames < 1:
            raise ValueError(f"frames_per_episode must be >= 2 and chunk_frames >= 1, got {self.frames_per_episode}, {self.chunk_frames}.")
        self.doom(self.maps[0])  # validates the frame size

    def doom(self, map_name: str) -> DoomConfig:
        return DoomConfig(wad=wad_of(map_name), map=map_name, height=self.height, width=self.width,
                          frame_skip=self.frame_skip, fly=self.fly)

    @property
    def controls(self) -> ControlsConfig:
        return ControlsConfig(still=self.still)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, as in the manifest

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetConfig":
        d = dict(d)
        d["maps"] = tuple(d["maps"])
        d["explore"] = ExploreConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["explore"].items()})
        return cls(**d)


def episode_seed(seed: int, index: int) -> int:
    """The engine and policy seed of episode `index` (independent streams per episode)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def episode_name(index: int, map_name: str) -> str:
    return f"ep{index:05d}_{map_name}"


# ---- errors -------------------------------------------------------------------------------------------------------
class CorruptEpisodeError(RuntimeError):
    pass


def _corrupt(path: Path, err: BaseException) -> CorruptEpisodeError:
    return CorruptEpisodeError(
        f"episode file {path} is corrupt or truncated ({type(err).__name__}: {err}). Delete it and re-run "
        "relickit.dataset.generate(...) with the same arguments: it regenerates exactly the missing episodes."
    )


_REWRITE_MANIFEST = ("delete it and re-run relickit.dataset.generate(...) with the dataset's original arguments: "
                     "finished episodes are found by name and kept.")
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError)

# ---- writing ------------------------------------------------------------------------------------------------------
def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _write_episode(path: Path, arrays: dict[str, np.ndarray], level: int) -> None:
    """An .npz (what np.savez_compressed writes, at deflate `level`) into a hidden temp file, then an atomic
    rename: all or nothing. The temp name carries the pid, so two runs never write into the same temp file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
            for name, value in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_ENV: dict[str, DoomEnv] = {}  # one engine per worker process, reused while the map stays the same


def _env(doom: DoomConfig) -> DoomEnv:
    env = _ENV.get("env")
    if env is None or env.cfg != doom:
        if env is not None:
            env.close()
        env = _ENV["env"] = DoomEnv(doom)
    return env


def _make_episode(cfg: DatasetConfig, index: int, out_dir: Path) -> dict[str, Any]:
    """Generate, label and write episode `index`; return its manifest entry."""
    map_name = cfg.maps[index % len(cfg.maps)]
    doom = cfg.doom(map_name)
    seed = episode_seed(cfg.seed, index)
    ro, start = explore(_env(doom), seed, cfg.frames_per_episode, cfg.explore)
    actions, step = labels_from_poses(torch.from_numpy(ro.rotations), torch.from_numpy(ro.positions), cfg.controls)
    name = episode_name(index, map_name)
    arrays: dict[str, np.ndarray] = {
        f"frames_{c:05d}": ro.frames[i:i + cfg.chunk_frames]
        for c, i in enumerate(range(0, len(ro), cfg.chunk_frames))
    }
    arrays.update(
        rotations=ro.rotations, positions=ro.positions, actions=actions.numpy(), step=np.float64(step),
        commands=ro.commands, seed=np.int64(seed), chunk_frames=np.int64(cfg.chunk_frames),
        spawn=np.array(start.spawn if start.spawn is not None else [], np.float64), prefix=start.prefix,
        map=np.array(map_name), wad=np.array(doom.wad), caption=np.array(caption(map_name)),
    )
    _write_episode(out_dir / f"{name}.npz", arrays, cfg.compress_level)
    return {"name": name, "file": f"{name}.npz", "index": index, "map": map_name, "wad": doom.wad, "seed": seed,
            "frames": len(ro), "step": float(step), "caption": caption(map_name)}


def _close_env() -> None:
    env = _ENV.pop("env", None)
    if env is not None:
        env.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    _close_env()  # the engine is a child process that outlives a killed worker unless closed
    os._exit(128 + signum)


def _worker_init() -> None:
    torch.set_num_threads(1)
    # pool workers leave through os._exit (no atexit, no destructors): close the engine on the way out
    Finalize(None, _close_env, exitpriority=100)
    signal.signal(signal.SIGTERM, _on_sigterm)


def _work(args: tuple[DatasetConfig, int, str]) -> dict[str, Any]:
    cfg, index, out_dir = args
    return _make_episode(cfg, index, Path(out_dir))


def _is_complete(path: Path) -> bool:
    """A complete episode file opens as a zip with all its members (a temp file is never at this name)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
        return {"rotations.npy", "positions.npy", "actions.npy", "frames_00000.npy"} <= names
    except (zipfile.BadZipFile, OSError):
        return False


def _entry_from_file(path: Path, index: int) -> dict[str, Any]:
    ep = load_episode(path)
    return {"name": path.stem, "file": path.name, "index": index, "map": ep.map, "wad": ep.wad, "seed": ep.start.seed,
            "frames": len(ep), "step": ep.step, "caption": ep.caption}


def generate(
    out_dir: str | os.PathLike,
    maps: Sequence[str],
    episodes: int,
    frames_per_episode: int = 200,
    seed: int = 0,
    height: int = 96,
    width: int = 128,
    workers: int = 1,
    split: str = "train",
    explore_cfg: ExploreConfig = ExploreConfig(),
    frame_skip: int = 2,
    fly: bool = True,
    progress: bool = True,
    stall_timeout: float = STALL_TIMEOUT,
) -> Path:
    """Generate `episodes` episodes round-robin over `maps` into `out_dir`; resumable; returns the directory.

    Episode i plays maps[i % len(maps)] with seed episode_seed(seed, i). Re-running with the same arguments
    skips finished episodes; re-running with a larger `episodes` adds episodes. With several workers, an episode
    that has not finished for `stall_timeout` seconds is taken for a deadlocked engine (relickit.pool): the workers
    are killed and the unfinished episodes generated again.
    """
    cfg = DatasetConfig(tuple(maps), split, frames_per_episode, seed, height, width, frame_skip, fly,
                        explore=explore_cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest_path} is not valid JSON ({err}); {_REWRITE_MANIFEST}") from err
        if old.get("config") != cfg.to_dict():
            diff = {k: (old.get("config", {}).get(k), v) for k, v in cfg.to_dict().items() if old.get("config", {}).get(k) != v}
            raise ValueError(
                f"{out} holds a dataset made with other settings ({diff}, as (existing, requested)); "
                "use another out_dir, or delete this one to regenerate it."
            )
    for tmp in out.glob(".*.tmp"):  # left by an interrupted run
        tmp.unlink()
    entries: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    for i in range(episodes):
        path = out / f"{episode_name(i, cfg.maps[i % len(cfg.maps)])}.npz"
        if path.exists() and _is_complete(path):
            entries[i] = _entry_from_file(path, i)
        else:
            todo.append(i)

    def save_manifest() -> None:
        _atomic_write_json(manifest_path, {"format": FORMAT, "config": cfg.to_dict(), "split": split,
                                           "episodes": [entries[i] for i in sorted(entries)]})

    save_manifest()
    todo.sort(key=lambda i: (cfg.maps[i % len(cfg.maps)], i))  # consecutive tasks share a map: fewer engine restarts
    bar = tqdm(total=episodes, initial=len(entries), desc=f"generate {out.name}", unit="ep", disable=not progress)
    try:
        workers = min(workers, len(todo))
        if workers <= 1:
            for i in todo:
                entries[i] = _make_episode(cfg, i, out)
                save_manifest()
                bar.update()
        else:
            tasks = {i: (cfg, i, str(out)) for i in todo}
            for i, entry in imap_guarded(_work, tasks, workers, stall_timeout, initializer=_worker_init):
                entries[i] = entry
                save_manifest()
                bar.update()
    finally:
        bar.close()
        _close_env()
    return out


# ---- reading ------------------------------------------------------------------------------------------------------
@dataclass
class Episode:
    """An episode's poses, labels and metadata; frames are read on demand, chunk by chunk."""

    path: Path
    map: str
    wad: str
    caption: str
    rotations: np.ndarray  # (T, 3, 3)
    positions: np.ndarray  # (T, 3)
    actions: np.ndarray  # (T, 13)
    step: float
    commands: np.ndarray  # (T, 5)
    start: StartState  # replays frame 0
    chunk_frames: int

    def __len__(self) -> int:
        return len(self.positions)

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames [start, stop) as uint8 (n, H, W, 3), decoding only the chunks they lie in."""
        stop = len(self) if stop is None else stop
        if not 0 <= start < stop <= len(self):
            raise IndexError(f"frames [{start}, {stop}) out of range for {self.path.name} with {len(self)} frames.")
        try:
            with np.load(self.path) as z:
                return _read_frames(z, start, stop, self.chunk_frames)
        except _READ_ERRORS as err:
            raise _corrupt(self.path, err) from err

    def start_state(self, frame: int) -> StartState:
        """The StartState from which relickit.doom.replay starts exactly at `frame` of this episode."""
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} out of range for {self.path.name} with {len(self)} frames.")
        prefix = np.concatenate([self.start.prefix, self.commands[1:frame + 1]])
        return StartState(self.start.seed, self.start.spawn, prefix)


def _read_frames(z: Any, start: int, stop: int, chunk_frames: int) -> np.ndarray:
    c0, c1 = start // chunk_frames, (stop - 1) // chunk_frames
    block = np.concatenate([z[f"frames_{c:05d}"] for c in range(c0, c1 + 1)])
    return block[start - c0 * chunk_frames: stop - c0 * chunk_frames]


def load_episode(path: str | os.PathLike) -> Episode:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"episode file {path} is missing; re-run relickit.dataset.generate(...) with the dataset's arguments to regenerate it."
        )
    try:
        with np.load(path) as z:
            spawn = z["spawn"]
            ep = Episode(
                path=path, map=str(z["map"]), wad=str(z["wad"]), caption=str(z["caption"]),
                rotations=z["rotations"], positions=z["positions"], actions=z["actions"], step=float(z["step"]),
                commands=z["commands"],
                start=StartState(int(z["seed"]), tuple(spawn.tolist()) if spawn.size else None, z["prefix"]),
                chunk_frames=int(z["chunk_frames"]),
            )
    except _READ_ERRORS as err:
        raise _corrupt(path, err) from err
    return ep


def load_manifest(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {root} is not a relickit dataset; make one with relickit.dataset.generate(...).")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {_REWRITE_MANIFEST}") from err
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} has format {manifest.get('format')}, this relickit reads format {FORMAT}; regenerate it.")
    return manifest


def load_episodes(root: str | os.PathLike) -> list[Episode]:
    """All episodes of a dataset (poses and labels in memory, frames on demand)."""
    manifest = load_manifest(root)
    return [load_episode(Path(root) / e["file"]) for e in manifest["episodes"]]


# ---- training clips -----------------------------------------------------------------------------------------------
def clip_targets(
    rotations: np.ndarray, positions: np.ndarray, controls: ControlsConfig = ControlsConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip's own labels: actions (T, 13) by Algorithm 1 on its poses, and poses (T, 12) relative to its first
    frame, positions divided by the clip's step length."""
    r, p = torch.from_numpy(np.ascontiguousarray(rotations)), torch.from_numpy(np.ascontiguousarray(positions))
    actions, step = labels_from_poses(r, p, controls)
    rel_r, rel_p = relative_to_first(r.double(), p.double(), step.double())
    return actions, pose_vector(rel_r, rel_p).float()


def palindrome_indices(frames: int, pivot: int) -> np.ndarray:
    """0, 1, ..., pivot, pivot - 1, ...: `frames` indices that play to `pivot` and then back."""
    if not frames // 2 <= pivot < frames:
        raise ValueError(f"pivot {pivot} must lie in [{frames // 2}, {frames}) for a {frames}-frame clip.")
    return np.concatenate([np.arange(pivot + 1), np.arange(pivot - 1, 2 * pivot - frames, -1)])


def check_balance(balance: float) -> float:
    """`balance` if it is a ClipDataset balance exponent, else a ValueError naming the range."""
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance is an exponent from 0 (clips as they come) to 1 (dominant actions balanced), "
                         f"got {balance}.")
    return balance


class ClipDataset(torch.utils.data.Dataset):
    """Clips of `frames` = 1 + temporal_down * k consecutive frames from a dataset directory, read lazily.

    Item: {"frames": (T, 3, H, W) float in [-1, 1], "actions": (T, 13), "poses": (T, 12), "caption": str,
    "map": str, "episode": str, "start": int, "pivot": int (-1 when not a palindrome)}.
    Actions and poses are recomputed from the clip's own poses. `weights` balance the clips by their dominant
    action (inverse frequency to the power `balance`: 1 gives every dominant action the same total weight, 0 draws
    clips as they come; use `sampler()`). With probability `palindrome` a clip plays to a pivot
    t* ~ U(T/2, T) and back, with actions and poses recomputed from the reversed pose sequence.
    Clips never span a teleport (a step longer than `jump_units`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        frames: int = 17,
        split: str | None = None,
        palindrome: float = 0.0,
        stride: int = 1,
        seed: int = 0,
        temporal_down: int = 4,
        jump_units: float = 128.0,
        balance: float = 1.0,
    ):
        if frames < 1 or (frames - 1) % temporal_down:
            raise ValueError(f"clip length {frames} is not 1 + {temporal_down}*k frames; pick e.g. {1 + temporal_down * 4}.")
        if not 0.0 <= palindrome <= 1.0:
            raise ValueError(f"palindrome is a probability, got {palindrome}.")
        check_balance(balance)
        self.root = Path(root)
        manifest = load_manifest(root)
        self.config = DatasetConfig.from_dict(manifest["config"])
        if split is not None:
            if manifest["split"] != split:
                raise ValueError(f"{root} is a {manifest['split']!r} dataset, not {split!r}; load it with split={manifest['split']!r}.")
            for e in manifest["episodes"]:
                check_split(e["wad"], e["map"], split)
        self.frames, self.palindrome, self.seed, self.epoch = frames, palindrome, seed, 0
        self.episodes = manifest["episodes"]
        self.controls = self.config.controls
        starts, eps, dominant = [], [], []
        for k, e in enumerate(self.episodes):
            ep = load_episode(self.root / e["file"])
            n = len(ep)
            if n < frames:
                continue
            jump = np.linalg.norm(np.diff(ep.positions, axis=0), axis=1) > jump_units  # jump[t]: t -> t+1
            blocked = np.concatenate([[0], np.cumsum(jump)])
            s = np.arange(0, n - frames + 1, stride)
            s = s[blocked[s + frames - 1] == blocked[s]]
            active = np.concatenate([np.zeros((1, len(ACTIONS))), np.cumsum(ep.actions[1:] > 0, axis=0)])
            counts = active[s + frames - 1] - active[s]  # active frames per action in each clip
            starts.append(s)
            eps.append(np.full(len(s), k))
            dominant.append(counts.argmax(1))
        if not starts or not sum(len(s) for s in starts):
            raise ValueError(f"no clip of {frames} frames fits in {root}; generate longer episodes or ask for shorter clips.")
        self._starts = np.concatenate(starts)
        self._episode = np.concatenate(eps)
        self.dominant = np.concatenate(dominant)
        freq = np.bincount(self.dominant, minlength=len(ACTIONS)).astype(np.float64)
        self.weights = torch.from_numpy(freq[self.dominant] ** -balance)

    def __len__(self) -> int:
        return len(self._starts)

    def set_epoch(self, epoch: int) -> None:
        """Palindrome draws depend on (seed, epoch, index): set the epoch for fresh draws each epoch."""
        self.epoch = epoch

    def sampler(self, num_samples: int | None = None, generator: torch.Generator | None = None):
        """A WeightedRandomSampler that balances clips by dominant action."""
        return torch.utils.data.WeightedRandomSampler(self.weights, num_samples or len(self), True, generator)

    def __getitem__(self, index: int) -> dict[str, Any]:
        e = self.episodes[int(self._episode[index])]
        s = int(self._starts[index])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        pivot = -1
        idx = np.arange(self.frames)
        if rng.random() < self.palindrome:
            pivot = int(rng.integers(math.ceil(self.frames / 2), self.frames))
            idx = palindrome_indices(self.frames, pivot)
        span = int(idx.max()) + 1
        path = self.root / e["file"]
        try:
            with np.load(path) as z:
                rotations, positions = z["rotations"][s:s + span][idx], z["positions"][s:s + span][idx]
                frames = _read_frames(z, s, s + span, self.config.chunk_frames)[idx]
        except _READ_ERRORS as err:
            raise _corrupt(path, err) from err
        actions, poses = clip_targets(rotations, positions, self.controls)
        x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).astype(np.float32)  # numpy: no thread pool
        x *= 2.0 / 255.0
        x -= 1.0
        return {"frames": torch.from_numpy(x), "actions": actions, "poses": poses, "caption": e["caption"], "map": e["map"],
                "episode": e["name"], "start": s, "pivot": pivot}
