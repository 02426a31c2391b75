"""Attention backends on the streaming shape: one chunk's queries against a long KV cache.

    python scripts/bench_attention.py                       # Wan-1.3B: 3 x 1560 queries, ~30K keys, 12 x 128, bf16

Backends: relickit's "sdpa" (cuDNN first, then PyTorch's order), the same on a slice of a cache buffer with
the model's softmax scale, PyTorch's own order, "xformers", SDPA pinned to its FlashAttention, cuDNN and
memory-efficient kernels, and FlexAttention. Prints one JSON line per backend: milliseconds (median of --repeats after warm-up), TFLOP/s, and the max abs
difference to SDPA on the same inputs (the backends must agree within bf16 tolerance).
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from relickit.attention import attention, xformers_available
from relickit.config import MemoryConfig, preset
from relickit.memory import budget


def time_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="wan-1.3b")
    ap.add_argument("--seconds", type=float, default=20.0, help="play time whose compressed cache the chunk attends to")
    ap.add_argument("--keys", type=int, default=0, help="override the number of cached keys")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    cfg = preset(args.preset)
    frames = cfg.latent_frames(1 + int(args.seconds * cfg.fps) // cfg.temporal_down * cfg.temporal_down)
    nq = cfg.chunk * cfg.tokens_per_frame
    nk = args.keys or budget(cfg, MemoryConfig(policy="compressed"), frames).total_tokens + nq
    g = torch.Generator("cuda").manual_seed(0)
    q, k, v = (torch.randn(1, n, cfg.heads, cfg.head_dim, device="cuda", dtype=torch.bfloat16, generator=g)
               for n in (nq, nk, nk))
    ref = attention(q, k, v, backend="sdpa")
    flops = 4 * nq * nk * cfg.heads * cfg.head_dim
    for name, fn in candidates(q, k, v).items():
        if fn is None:
            print(json.dumps({"backend": name, "available": False}))
            continue
        try:
            ms = time_ms(fn, args.repeats)
        except RuntimeError as e:  # a kernel that does not support this shape or GPU
            print(json.dumps({"backend": name, "available": False, "error": str(e)[:200]}))
            continue
        print(json.dumps({"backend": name, "preset": cfg.name, "queries": nq, "keys": nk, "heads": cfg.heads,
                          "head_dim": cfg.head_dim, "ms": ms, "tflops": flops / ms / 1e9,
                          "max_abs_diff_vs_sdpa": (fn().float() - ref.float()).abs().max().item(),
                          "device": torch.cuda.get_device_name()}), flush=True)


def candidates(q, k, v) -> dict:
    """Every attention kernel worth timing: relickit's backends, SDPA pinned to each of its kernels, and
    FlexAttention (compiled, no score modification)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import flex_attention

    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

    def pinned(kernel):
        def fn():
            with sdpa_kernel(kernel):
                return F.scaled_dot_product_attention(qt, kt, vt).transpose(1, 2)
        return fn

    flex = torch.compile(flex_attention)
    # the model's call: keys and values are a slice of the cache's larger buffer, with the YaRN softmax scale
    buf = torch.zeros(k.shape[0], k.shape[1] + 4096, *k.shape[2:], device=k.device, dtype=k.dtype)
    buf[:, : k.shape[1]] = k
    kb = buf[:, : k.shape[1]]
    vb = buf.clone()[:, : k.shape[1]]
    vb.copy_(v)
    scale = q.shape[-1] ** -0.5
    return {
        "sdpa": lambda: attention(q, k, v, backend="sdpa"),
        "sdpa-flash": pinned(SDPBackend.FLASH_ATTENTION),
        "sdpa-cudnn": pinned(SDPBackend.CUDNN_ATTENTION),
        "sdpa-efficient": pinned(SDPBackend.EFFICIENT_ATTENTION),
        "sdpa-cache-slice": lambda: attention(q, kb, vb, backend="sdpa", scale=scale),
        "sdpa-torch-order": lambda: F.scaled_dot_product_attention(qt, kt, vt).transpose(1, 2),
        "flex": lambda: flex(qt, kt, vt).transpose(1, 2),
        "xformers": (lambda: attention(q, k, v, backend="xformers")) if xformers_available() else None,
    }

if __name__ == "__main__":
    main()
