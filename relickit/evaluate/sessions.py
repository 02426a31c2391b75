"""The model side of an evaluation: sessions, playing a script on one, and the assets to build them from.

A session follows relickit.play.Session: reset(image, text) -> first frame, step(action) -> the step's frames,
memory_stats(), and the attributes model (with .cfg), frames_per_step, fps, controls, memory, tokenizer and
decoder. A `SessionFactory` makes a fresh one for (memory policy, seed).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import MemoryConfig
from ..controls import ControlsConfig
from .scripts import Script

SMOKE_ENV = "RELICKIT_SMOKE"

# a factory makes a fresh session for (memory policy, seed); sessions follow relickit.play.Session
SessionFactory = Callable[[str, int], Any]


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV, "0") not in ("", "0")


@dataclass
class Run:
    frames: np.ndarray  # (1 + T, H, W, 3) uint8: the decoded start frame, then every step's frames
    step_s: list[float]  # wall time of each step
    decode_s: list[float]  # of which decoding (NaN when the session has no `_decode` to time)
    reset_s: float
    stats: list[dict[str, Any]]  # memory_stats() after reset and after each step


def run_script(session: Any, image: np.ndarray, text: str, script: Script, truth: np.ndarray | None = None) -> Run:
    """Play a script on a session: reset(image, text), then one step per script step.

    `truth` (the engine's frames of this script from this start) is handed to sessions that play it back instead
    of generating (`relickit.evaluate.oracle`, the evaluation's own sanity checks); a model never sees it."""
    if truth is not None and hasattr(session, "load_truth"):
        session.load_truth(truth, script)
    if hasattr(session, "load_script"):  # a teacher draws the whole clip at reset (TeacherSession)
        session.load_script(script)
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


def session_geometry(session: Any) -> tuple[int, int, int, float, ControlsConfig]:
    """(height, width, frames per step, fps, controls) of a session."""
    cfg = session.model.cfg
    return cfg.height, cfg.width, session.frames_per_step, float(session.fps), getattr(session, "controls", ControlsConfig())


def model_info(session: Any) -> dict[str, Any]:
    """The model's shape, for the report."""
    cfg = session.model.cfg
    return {"preset": cfg.name, "height": cfg.height, "width": cfg.width, "dim": cfg.dim, "layers": cfg.layers,
            "chunk": cfg.chunk, "frames_per_step": session.frames_per_step, "fps": session.fps,
            "params": int(sum(p.numel() for p in session.model.parameters()))}


def session_factory(model, tokenizer, memory: MemoryConfig = MemoryConfig(), **session_kwargs: Any) -> SessionFactory:
    """(policy, seed) -> relickit.play.Session(model, tokenizer, memory with that policy, seed)."""
    from ..play import Session

    def make(policy: str, seed: int):
        return Session(model, tokenizer, memory=dataclasses.replace(memory, policy=policy), seed=seed, **session_kwargs)

    return make


class TeacherSession:
    """The bidirectional teacher played as a session, so that every frame-scoring suite scores it as it scores a
    student (which stage limits a gate: the teacher's draws, or the distillation).

    A teacher cannot stream: `run_script` hands it the script first (`load_script`), and `reset` draws the whole
    clip in one `sample_teacher` call from the start image's latent and the caption, with the per-frame actions and
    camera poses a `relickit.play.Session` feeds its model for the same script (its RoPE stretched by YaRN where
    the clip is longer than its range, as the DMD stages score long rollouts); `step` hands the clip out chunk by
    chunk and refuses an action that is not the script's. Memory policies mean nothing to it (it sees the whole
    clip), so the window-only and no-memory rows of a teacher are its compressed row again."""

    decoder = "tiny"

    def __init__(self, model, tokenizer, memory: MemoryConfig = MemoryConfig(), seed: int = 0,
                 controls: ControlsConfig = ControlsConfig(), sampler: Any = None) -> None:
        from ..diffusion import SamplerConfig

        self.model, self.tokenizer, self.memory, self.seed, self.controls = model, tokenizer, memory, seed, controls
        self.sampler = sampler or SamplerConfig()
        self.frames_per_step, self.fps = model.cfg.chunk * model.cfg.temporal_down, model.cfg.fps
        self._script: Script | None = None
        self._steps: torch.Tensor | None = None  # the script's action per step, which `step` must be handed
        self._frames: np.ndarray | None = None
        self._t = 0

    def load_script(self, script: Script) -> None:
        self._script, self._steps, self._frames = script, script.step_actions(), None

    def controls_of(self, script: Script) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, F, 13) actions and (1, F, 12) poses of the script's video (frame 0 static at the origin), as a
        Session feeds them chunk by chunk."""
        from ..controls import accumulate, pose_vector
        from .scripts import video_actions

        actions = video_actions(script, self.frames_per_step)[None]
        return actions, pose_vector(*accumulate(actions, self.controls))

    @torch.no_grad()
    def reset(self, image: np.ndarray, text: str) -> np.ndarray:
        from ..diffusion import sample_teacher
        from ..play import image_clip, to_uint8
        from ..teacher import stretch_horizon

        if self._script is None:
            raise RuntimeError("a teacher draws the whole clip at once: play it with run_script(session, image, "
                               "text, script), which hands it the script before reset.")
        cfg = self.model.cfg
        latent_frames = 1 + len(self._script) * cfg.chunk
        model = stretch_horizon(self.model, latent_frames)
        first = self.tokenizer.encode(image_clip(image))
        noise = torch.randn((1, cfg.latent_channels, latent_frames, *cfg.latent_size),
                            generator=torch.Generator().manual_seed(self.seed))
        actions, poses = self.controls_of(self._script)
        z, _ = sample_teacher(model, first, latent_frames, model.encode_text([text]), actions, poses, self.sampler,
                              noise=noise)
        self._frames, self._t = to_uint8(self.tokenizer.decode_tiny(z)[0].float()), 1
        return self._frames[0]

    def step(self, action: torch.Tensor) -> np.ndarray:
        if self._frames is None or self._steps is None:
            raise RuntimeError("call reset(image, text) before step(action).")
        i = (self._t - 1) // self.frames_per_step
        if i >= len(self._steps) or not torch.equal(torch.as_tensor(action).float(), self._steps[i]):
            raise ValueError(f"step {i}: a teacher plays the script it was given, and this action is not its step.")
        out = self._frames[self._t:self._t + self.frames_per_step]
        self._t += self.frames_per_step
        return out

    def memory_stats(self) -> dict[str, Any]:
        return {"frames": self._t, "total_tokens": 0, "bytes": 0}


def teacher_factory(model, tokenizer, **session_kwargs: Any) -> SessionFactory:
    """(policy, seed) -> a TeacherSession of the teacher `model` (float, eval mode) with that seed."""
    model = model.float().eval()
    return lambda policy, seed: TeacherSession(model, tokenizer, MemoryConfig(policy=policy), seed, **session_kwargs)


def random_assets(seed: int = 0, preset_name: str = "tiny", smoke: bool = True, **overrides: Any):
    """A randomly initialised world model + tokenizer, for smoke runs, tests and speed measurements only.

    smoke=True: the preset's frame geometry with 2 layers of width 64 and a narrow VAE / tiny decoder (fast).
    smoke=False: the preset's real shapes and the default tokenizer (what the speed suite should time).
    The zero-initialised control terms are randomised too, so actions and poses matter."""
    from ..config import preset
    from ..model import WorldModel
    from ..vae import TinyDecoderConfig, Tokenizer, VAEConfig

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
    from ..model import WorldModel
    from ..play import DEFAULT_MODEL, DEFAULT_TOKENIZER
    from ..vae import Tokenizer

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
    from ..posenet import DEFAULT_PATH, PoseNet

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
