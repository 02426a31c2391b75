"""Streaming speed and memory of the world model: per-chunk latency over a long session, per memory policy.

    python scripts/bench_stream.py --preset tiny --device cpu --minutes 2              # the CPU joystick preset
    python scripts/bench_stream.py --preset wan-1.3b --device cuda --dtype bf16        # Wan shapes on a GPU

Random weights (speed does not depend on them). One chunk = `chunk` latent frames = 4 denoising steps + one
context pass. Reports denoise-only FPS, per-chunk latency at 0 s, 20 s and the end, KV tokens and bytes, and
peak GPU memory; with --decoder it decodes with the tiny decoder too (end-to-end FPS). Prints one JSON line
per policy.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from relickit.config import MemoryConfig, preset
from relickit.diffusion import Chunk, SamplerConfig, commit, denoise_chunk
from relickit.model import WorldModel


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(cfg, mem, device, dtype, seconds: float, decoder=None, backend="auto") -> dict:
    model = WorldModel(cfg, backend=backend).to(device, dtype).eval()
    sig = SamplerConfig().sigmas
    chunk_frames = cfg.chunk * cfg.temporal_down
    chunks = max(1, round(seconds * cfg.fps / chunk_frames))
    lh, lw = cfg.latent_size
    shape = (1, cfg.latent_channels, cfg.chunk, lh, lw)
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim, device=device, dtype=dtype)
    acts = torch.zeros(1, chunk_frames, 13, device=device, dtype=dtype)
    acts[..., 0] = 1
    pose = torch.zeros(1, chunk_frames, 12, device=device, dtype=dtype)
    cache = WorldModel.new_cache(model, MemoryConfig(policy=mem, capacity=1 + chunks * cfg.chunk))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        t0 = time.perf_counter()
        first = torch.randn(1, cfg.latent_channels, 1, lh, lw, device=device, dtype=dtype)
        commit(model, cache, first, Chunk(ctx, acts[:, :1], pose[:, :1]))
        cond = Chunk(ctx, acts, pose)
        lat, dec_state = [], decoder.tiny.new_state() if decoder is not None else None
        if decoder is not None:
            decoder.decode_tiny_stream(dec_state, first.float())
        sync(device)
        first_frame = time.perf_counter() - t0
        for j in range(chunks):
            s = time.perf_counter()
            noise = torch.randn(shape, device=device, dtype=dtype)
            x0, _, _ = denoise_chunk(model, cache, noise, cond, sig)
            commit(model, cache, x0, cond)
            if decoder is not None:
                decoder.decode_tiny_stream(dec_state, x0.float())
            sync(device)
            lat.append(time.perf_counter() - s)
    stats = cache.stats()
    at = lambda sec: lat[min(len(lat) - 1, max(0, round(sec * cfg.fps / chunk_frames) - 1))]
    warm = lat[1:] or lat
    return {
        "preset": cfg.name, "policy": mem, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "decoder": "tiny" if decoder is not None else "none", "seconds": chunks * chunk_frames / cfg.fps,
        "fps": chunk_frames / (sum(warm) / len(warm)),
        "time_to_first_frame_s": first_frame,
        "chunk_ms_first": 1e3 * lat[0], "chunk_ms_at_20s": 1e3 * at(20), "chunk_ms_end": 1e3 * lat[-1],
        "kv_tokens": stats["total_tokens"], "kv_full_tokens": stats["full_tokens"], "kv_bytes": stats["bytes"],
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--policies", default="none,window,compressed,full")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--decoder", help="tokenizer checkpoint: decode with its tiny decoder (end-to-end FPS)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    device = torch.device(args.device)
    decoder = None
    if args.decoder:
        from relickit.vae import Tokenizer

        decoder = Tokenizer.load(args.decoder).to(device).eval()
    for policy in args.policies.split(","):
        print(json.dumps(bench(preset(args.preset), policy, device, dtype, 60 * args.minutes, decoder, args.backend)), flush=True)


if __name__ == "__main__":
    main()
