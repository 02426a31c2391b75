"""Attention backends on the streaming shape: one chunk's queries against a long KV cache.

    python scripts/bench_attention.py                       # Wan-1.3B: 3 x 1560 queries, ~30K keys, 12 x 128, bf16

Prints one JSON line per backend: milliseconds (median of --repeats after warm-up), TFLOP/s, and the max abs
difference to SDPA on the same inputs (the backends must agree within bf16 tolerance).
"""
from __future__ import annotations

import argparse
import json

import torch

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
    for backend in ("sdpa", "xformers"):
        if backend == "xformers" and not xformers_available():
            print(json.dumps({"backend": backend, "available": False}))
            continue
        ms = time_ms(lambda: attention(q, k, v, backend=backend), args.repeats)
        out = attention(q, k, v, backend=backend)
        print(json.dumps({"backend": backend, "preset": cfg.name, "queries": nq, "keys": nk, "heads": cfg.heads,
                          "head_dim": cfg.head_dim, "ms": ms, "tflops": flops / ms / 1e9,
                          "max_abs_diff_vs_sdpa": (out.float() - ref.float()).abs().max().item(),
                          "device": torch.cuda.get_device_name()}), flush=True)


if __name__ == "__main__":
    main()
