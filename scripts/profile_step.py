"""Where a chunk's time goes: a torch.profiler table of one streamed chunk, by kernel, at a given play time.

    python scripts/profile_step.py --preset wan-1.3b --dtype bf16 --seconds 25 --variant compressed+h90 --compile

Streams `--seconds` of play (random weights) to fill the memory, then profiles one chunk (4 denoising passes,
the context pass and the tiny decoder) and prints the kernels that take the most GPU time, grouped into
attention / matmul / other, with the chunk's compute floor for comparison.
"""
from __future__ import annotations

import argparse
import json

import torch
from bench_stream import matmul_rate, parse_variant
from torch.profiler import ProfilerActivity, profile

from relickit.config import preset
from relickit.diffusion import Chunk, SamplerConfig, commit, denoise_chunk
from relickit.graphs import GraphedStep
from relickit.model import WorldModel, step_flops
from relickit.play import to_uint8
from relickit.vae import TinyDecoder, VAEConfig


def kind(name: str) -> str:
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "attention", "cudnn", "sdpa")):
        return "attention"
    if any(s in n for s in ("gemm", "cutlass", "sm90_xmma", "nvjet", "matmul", "cublas")):
        return "matmul"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="wan-1.3b")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--variant", default="compressed+h90")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--graphs", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    cfg = preset(args.preset)
    mem, _ = parse_variant(args.variant, 0)
    model = WorldModel(cfg).cuda().to(dtype).eval()
    if args.compile:
        model.compile_blocks()
    runner = GraphedStep(model) if args.graphs else model
    decoder = TinyDecoder(VAEConfig.for_model(cfg)).cuda().to(dtype).eval()
    lh, lw = cfg.latent_size
    per_chunk = cfg.chunk * cfg.temporal_down
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim, device="cuda", dtype=dtype)
    acts = torch.zeros(1, per_chunk, cfg.action_dim, device="cuda", dtype=dtype)
    pose = torch.zeros(1, per_chunk, cfg.pose_dim, device="cuda", dtype=dtype)
    cond, sig = Chunk(ctx, acts, pose), SamplerConfig().sigmas
    cache = model.new_cache(mem)
    state = decoder.new_state()
    with torch.no_grad():
        commit(runner, cache, torch.randn(1, cfg.latent_channels, 1, lh, lw, device="cuda", dtype=dtype),
               Chunk(ctx, acts[:, :1], pose[:, :1]))

        def chunk():
            x0, _, _ = denoise_chunk(runner, cache, torch.randn(1, cfg.latent_channels, cfg.chunk, lh, lw,
                                                                device="cuda", dtype=dtype), cond, sig)
            commit(runner, cache, x0, cond)
            to_uint8(decoder.decode_stream(state, x0)[0])

        for _ in range(round(args.seconds * cfg.fps / per_chunk)):
            chunk()
        keys = cache.valid
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            chunk()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    groups: dict[str, float] = {}
    for e in events:
        groups[kind(e.key)] = groups.get(kind(e.key), 0.0) + e.self_device_time_total
    floor = (len(sig) + 1) * step_flops(cfg, cfg.chunk, keys) / matmul_rate(torch.device("cuda"), dtype)
    print(json.dumps({"preset": cfg.name, "variant": args.variant, "compiled": args.compile, "graphs": args.graphs,
                      "cached_keys": keys, "gpu_ms": total / 1e3, "floor_ms": floor * 1e3,
                      "by_kind_ms": {k: v / 1e3 for k, v in sorted(groups.items())}}))
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[: args.top]:
        print(f"{e.self_device_time_total / 1e3:9.2f} ms {e.count:6d}x  {kind(e.key):9s} {e.key[:110]}")


if __name__ == "__main__":
    main()
