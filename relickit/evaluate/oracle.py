"""Oracle sessions: the engine's truth (or a spoiled copy of it) played back through the evaluation, no model.

They check the evaluation itself. The truth must pass every quality gate; a blurred, darkened copy must fail the
picture gates however well its PSNR holds up; the start frame held still must score exactly the frozen reference
(gain 0). `run_script(..., truth=...)` hands an oracle the truth of each script before it plays it.

    python -m relickit.evaluate.gates --oracle truth      # every gate passes
    python -m relickit.evaluate.gates --oracle degraded   # the sharpness and brightness gates fail

Memory policies: an oracle cannot generate what it has not seen, so under a policy that forgets (`none`, `window`)
it holds the last frame before a revisit script's return phase for the whole return, the picture of a model with
no memory of the first visit; under `compressed` and `full` it plays the return as it is.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MemoryConfig, ModelConfig, preset
from ..controls import ControlsConfig
from .scripts import Script
from .sessions import SessionFactory

SHOWS: tuple[str, ...] = ("truth", "degraded", "frozen")
FORGETFUL: tuple[str, ...] = ("none", "window")


def degrade(frames: np.ndarray, blur: int = 5, gain: float = 0.6) -> np.ndarray:
    """A blurred (box filter of `blur` pixels, edges averaged over what is inside) and darkened (x gain) copy."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, blur, stride=1, padding=blur // 2, count_include_pad=False) * gain
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


class PixelModel(torch.nn.Module):
    """An oracle's stand-in for a world model: the frame geometry of a config, no weights."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg


class OracleSession:
    """Plays back the truth handed to it by `load_truth` (see the module docstring), one chunk per step."""

    tokenizer = None  # pixels in, pixels out: the tokenizer ceiling of an oracle is the truth itself
    decoder = "pixels"

    def __init__(self, cfg: ModelConfig, policy: str = "compressed", show: str = "truth",
                 controls: ControlsConfig = ControlsConfig()) -> None:
        if show not in SHOWS:
            raise ValueError(f"an oracle shows one of {SHOWS}, got {show!r}.")
        self.model, self.show, self.controls = PixelModel(cfg), show, controls
        self.memory = MemoryConfig(policy=policy)
        self.frames_per_step, self.fps = cfg.chunk * cfg.temporal_down, cfg.fps
        self._frames: np.ndarray | None = None
        self._t = 0

    def load_truth(self, truth: np.ndarray, script: Script) -> None:
        n = 1 + len(script) * self.frames_per_step
        frames = np.concatenate([truth[:n], np.repeat(truth[-1:], max(0, n - len(truth)), 0)])
        if self.show == "degraded":
            frames = degrade(frames)
        elif self.show == "frozen":
            frames = np.repeat(frames[:1], n, 0)
        if self.memory.policy in FORGETFUL and script.revisit_step is not None:
            first_return = 1 + script.revisit_step * self.frames_per_step
            frames[first_return:] = frames[first_return - 1]
        self._frames = frames

    def reset(self, image: np.ndarray, text: str) -> np.ndarray:
        if self._frames is None:
            raise RuntimeError("an oracle plays the engine's truth: run it with run_script(session, image, text, "
                               "script, truth=...) so that it gets the truth first.")
        if self.show == "truth" and not np.array_equal(image, self._frames[0]):
            raise ValueError("the start image is not the first frame of the truth this oracle was given.")
        self._t = 1
        return self._frames[0]

    def step(self, action: Any) -> np.ndarray:
        if self._frames is None or self._t == 0:
            raise RuntimeError("call reset(image, text) before step(action).")
        out = self._frames[self._t:self._t + self.frames_per_step]
        self._t += self.frames_per_step
        return out

    def memory_stats(self) -> dict[str, Any]:
        return {"frames": self._t, "total_tokens": 0, "bytes": 0}


def oracle_factory(show: str = "truth", cfg: ModelConfig | None = None) -> SessionFactory:
    """(policy, seed) -> an OracleSession showing `show` with the frame geometry of `cfg` (default: the tiny preset)."""
    cfg = cfg or preset("tiny")
    if show not in SHOWS:
        raise ValueError(f"an oracle shows one of {SHOWS}, got {show!r}.")
    return lambda policy, seed: OracleSession(cfg, policy, show)
