"""Attention in one place: xformers' memory-efficient kernels where they load (CUDA), PyTorch SDPA otherwise.

`attention(q, k, v, mask)` takes (B, L, H, D) tensors and an optional boolean mask (Lq, Lk), True = attend.
The streaming step never needs a mask (a chunk sees all it attends to); the full-sequence forward passes one.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

Backend = Literal["auto", "sdpa", "xformers", "math"]
BACKENDS = ("auto", "sdpa", "xformers", "math")


@lru_cache(maxsize=None)
def xformers_available() -> bool:
    """True when xformers imports and its CUDA kernels run here (its PyPI wheel needs libcudart.so.12)."""
    if not torch.cuda.is_available():
        return False
    try:
        import xformers.ops as xops

        q = torch.zeros(1, 8, 1, 64, device="cuda", dtype=torch.float16)
        xops.memory_efficient_attention(q, q, q)
        return True
    except Exception:
        return False


def resolve(backend: Backend, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}.")
    if backend == "xformers" and not (device.type == "cuda" and xformers_available()):
        raise RuntimeError(
            "xformers attention needs a CUDA device and a working xformers install "
            "(pip install 'relickit[xformers]'; with torch built for CUDA 13 also put libcudart.so.12 from "
            "nvidia-cuda-runtime-cu12 on LD_LIBRARY_PATH). Use backend='sdpa' otherwise."
        )
    if backend == "auto":
        return "xformers" if device.type == "cuda" and xformers_available() else "sdpa"
    return backend


def _xformers_bias(mask: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # xformers wants an additive bias whose last dim is stored with a stride that is a multiple of 8
    lq, lk = mask.shape
    pad = -lk % 8
    bias = torch.zeros(lq, lk + pad, device=q.device, dtype=q.dtype)
    bias[:, :lk].masked_fill_(~mask, float("-inf"))
    return bias[:, :lk].expand(q.shape[0], q.shape[2], lq, lk)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              backend: Backend = "auto", scale: float | None = None) -> torch.Tensor:
    """Softmax attention. q (B, Lq, H, D), k/v (B, Lk, H, D), mask (Lq, Lk) bool or None -> (B, Lq, H, D)."""
    which = resolve(backend, q.device)
    if which == "xformers":
        import xformers.ops as xops

        bias = None if mask is None else _xformers_bias(mask, q)
        return xops.memory_efficient_attention(q, k, v, attn_bias=bias, scale=scale)
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    if which == "math":
        s = (qt.float() @ kt.float().transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return (s.softmax(-1) @ vt.float()).to(q.dtype).transpose(1, 2)
    return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=scale).transpose(1, 2)
