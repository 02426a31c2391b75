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
