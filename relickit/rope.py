"""3D rotary position embedding (Wan-2.1 layout) with YaRN scaling of the temporal axis.

Positions are real numbers, not table indices: a compressed memory token sits at the centre of the tokens it
pools, and RoPE rotates it there. The head dimension splits as Wan does: h and w get 2*(head_dim//6) channels
each, t gets the rest; channel pairs (0,1), (2,3), ... rotate together.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .config import ModelConfig


def _inv_freq(dim: int, theta: float) -> torch.Tensor:
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def yarn_inv_freq(dim: int, theta: float, factor: float, original_len: int,
                  beta_fast: float = 32.0, beta_slow: float = 1.0) -> torch.Tensor:
    """YaRN "NTK-by-parts": keep high frequencies, interpolate low ones by `factor`, blend in between."""
    base = _inv_freq(dim, theta)
    if factor == 1.0:
        return base
    # number of full rotations each frequency makes over the original context
    rotations = original_len * base / (2 * math.pi)
    ramp = ((rotations - beta_slow) / (beta_fast - beta_slow)).clamp(0.0, 1.0)  # 1: keep, 0: interpolate
    return base / factor * (1 - ramp) + base * ramp


def yarn_attention_scale(factor: float) -> float:
    """YaRN's temperature: logits are multiplied by this squared (we scale q and k each by it)."""
    return 1.0 if factor <= 1.0 else 0.1 * math.log(factor) + 1.0


@lru_cache(maxsize=None)
def _frequencies(head_dim: int, theta: float, yarn_factor: float, rope_frames: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse frequencies of the t, h and w channels, on `device` (copied there once per process)."""
    hw = 2 * (head_dim // 6)
    inv_t = yarn_inv_freq(head_dim - 2 * hw, theta, yarn_factor, rope_frames)
    return tuple(f.to(device) for f in (inv_t, _inv_freq(hw, theta), _inv_freq(hw, theta)))


class Rope3D:
    """Rotary embedding over (t, h, w) token positions for one model config."""

    def __init__(self, cfg: ModelConfig):
        self.key = (cfg.head_dim, cfg.rope_theta, cfg.yarn_factor, cfg.rope_frames)
        self.inv_t, self.inv_h, self.inv_w = _frequencies(*self.key, torch.device("cpu"))
        self.scale = yarn_attention_scale(cfg.yarn_factor)

    def angles(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pos (L, 3) float positions (t, h, w) -> cos, sin of shape (L, head_dim), pairs interleaved, computed
        in float64 on pos's device (positions reach thousands of frames)."""
        pos = pos.double()
        inv = _frequencies(*self.key, pos.device)
        ang = torch.cat([pos[:, i:i + 1] * f for i, f in enumerate(inv)], -1)
        ang = ang.repeat_interleave(2, dim=-1)
        return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, L, H, D); cos/sin (L, D) -> rotated x (same dtype)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    c = cos[:, None, 0::2]
    s = sin[:, None, 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2).type_as(x)


def grid_positions(frames: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Positions (len(frames) * gh * gw, 3) of full-resolution tokens of the given latent frame indices."""
    gh, gw = grid
    h = torch.arange(gh, dtype=torch.float64, device=frames.device)
    w = torch.arange(gw, dtype=torch.float64, device=frames.device)
    hh, ww = torch.meshgrid(h, w, indexing="ij")
    hw = torch.stack([hh.flatten(), ww.flatten()], -1)  # (gh*gw, 2)
    t = frames.double().repeat_interleave(gh * gw)[:, None]
    return torch.cat([t, hw.repeat(len(frames), 1)], -1)
