"""Attention in one place: PyTorch SDPA (cuDNN's kernel first on CUDA), or xformers' memory-efficient kernels.

`auto` picks by measurement: SDPA on CPU and on Hopper or newer, xformers on older CUDA GPUs where it loads.

`attention(q, k, v, mask)` takes (B, L, H, D) tensors and an optional boolean mask (Lq, Lk), True = attend.
The streaming step never needs a mask (a chunk sees all it attends to); the full-sequence forward passes one.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

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
        return "xformers" if prefer_xformers(device) else "sdpa"
    return backend


def prefer_xformers(device: torch.device) -> bool:
    """`auto`'s choice. On Hopper and newer, SDPA with cuDNN first is faster than xformers' FlashAttention-2
    (1.76 vs 3.11 ms on the 20-s streaming shape, H100, docs/benchmarks.md); on older CUDA GPUs xformers' kernels
    are used where they load (not measured here)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 9 and xformers_available()


def _xformers_bias(mask: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # xformers wants an additive bias whose last dim is stored with a stride that is a multiple of 8
    lq, lk = mask.shape
    pad = -lk % 8
    bias = torch.zeros(lq, lk + pad, device=q.device, dtype=q.dtype)
    bias[:, :lk].masked_fill_(~mask, float("-inf"))
    return bias[:, :lk].expand(q.shape[0], q.shape[2], lq, lk)


# SDPA's kernels in the order relickit prefers them on CUDA: cuDNN's attention is the fastest on Hopper for the
# streaming shape (scripts/bench_attention.py, docs/benchmarks.md); PyTorch's own order may pick FlashAttention-2.
CUDA_PRIORITY = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float | None) -> torch.Tensor:
    """F.scaled_dot_product_attention on (B, H, L, D) tensors. Unmasked inference on CUDA (the streaming step, where
    it was measured) uses relickit's kernel priority; training and masks keep PyTorch's own choice."""
    if q.is_cuda and mask is None and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
        with sdpa_kernel(CUDA_PRIORITY, set_priority=True):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              backend: Backend = "auto", scale: float | None = None) -> torch.Tensor:
    """Softmax attention. q (B, Lq, H, D), k/v (B, Lk, H, D), mask (Lq, Lk) bool or None -> (B, Lq, H, D)."""
    which = backend if backend in ("sdpa", "math") else resolve(backend, q.device)
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
    return sdpa(qt, kt, vt, mask, scale).transpose(1, 2)
