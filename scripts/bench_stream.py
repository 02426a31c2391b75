"""Streaming speed and memory of the world model: per-chunk latency over a long session, per memory variant.

    python scripts/bench_stream.py --preset tiny --device cpu --minutes 2                     # the CPU joystick preset
    python scripts/bench_stream.py --layout f4c16 --size 256x12 --device cpu --threads 1 \
        --variants compressed+h90                                            # a model size for the f4c16 tokenizer
    python scripts/bench_stream.py --preset wan-1.3b --dtype bf16 --modes eager,compiled,compiled+graphs \\
        --variants compressed+h90,compressed+h90+fp8,full@0.34                            # Wan shapes on a GPU
    torchrun --nproc-per-node 2 scripts/bench_stream.py --parallel --preset wan-14b --dtype bf16 \\
        --modes compiled --variants compressed+h90                                        # 14B on two GPUs

Random weights (speed does not depend on them). One chunk = `chunk` latent frames = 4 denoising steps + one
context pass, then a tiny decoder (random weights at the preset's frame size; or --decoder CHECKPOINT; or none).
`--layout` and `--size DIMxLAYERS` build the model with relickit.config.model_for instead of a preset (96x128
frames, 48 tokens per latent frame; the tiny preset's layout f8c16 and size 192x8 where one is not given); the
random tiny decoder is then the layout's.

A variant is `policy[+h<horizon>][+fp8][@minutes]`: `compressed+h90` is RELIC's memory bounded to the last 90
compressed latent frames, `+fp8` stores the cache as E4M3, `@0.34` plays 20 s instead of --minutes.
With --parallel (under torchrun) every GPU of the launch runs relickit.parallel.HeadParallel: head-parallel
attention, sequence-parallel layers, the KV cache sharded by heads; the floor is then per GPU.
--modes runs every variant eagerly, with CUDA graphs of the denoising passes once a bounded memory is full
(`relickit.graphs.GraphedStep`), with `WorldModel.compile_blocks()`, or compiled and graphed.

Prints one JSON line per (mode, variant): end-to-end FPS (denoise + decode) and denoise-only FPS over the session
after the first chunk, time to first frame, mean ms per chunk (denoise, decode, both), per-chunk latency at the
start, at 20 s, at 2 min and at the end, KV tokens and bytes, peak GPU memory, parameters, GFLOP per chunk, and the
ratio of the denoising time to its compute floor: `model.step_flops` of the chunk's 5 passes over the bf16
matmul rate measured here.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch
import torch.distributed as dist

from relickit.config import MemoryConfig, ModelConfig, model_for, parse_size, preset
from relickit.diffusion import Chunk, SamplerConfig, commit, denoise_chunk
from relickit.graphs import GraphedStep
from relickit.model import WorldModel, step_flops
from relickit.parallel import HeadParallel
from relickit.play import to_uint8
from relickit.vae import LAYOUTS, TinyDecoder, Tokenizer, VAEConfig

MODES = ("eager", "graphs", "compiled", "compiled+graphs")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float:
    """Measured FLOP/s of a square matmul (the compute floor's rate)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def parse_variant(text: str, minutes: float) -> tuple[MemoryConfig, float]:
    """`policy[+h<horizon>][+fp8][@minutes]` -> (MemoryConfig, seconds)."""
    spec, _, mins = text.partition("@")
    policy, *opts = spec.split("+")
    fields: dict = {"policy": policy}
    for o in opts:
        if o == "fp8":
            fields["kv_format"] = "fp8"
        elif o.startswith("h") and o[1:].isdigit():
            fields["horizon"] = int(o[1:])
        else:
            raise ValueError(f"unknown variant option {o!r} in {text!r}: use +h<frames> or +fp8.")
    return MemoryConfig(**fields), 60 * float(mins or minutes)


def bench(model: WorldModel, mem: MemoryConfig, seconds: float, decoder: TinyDecoder | None, rate: float,
          graphs: bool = False, parallel: bool = False) -> dict:
    cfg = model.cfg
    # what denoise_chunk and commit call .step on
    runner = HeadParallel(model) if parallel else GraphedStep(model) if graphs else model
    world = runner.world if parallel else 1
    p = next(model.parameters())
    device, dtype = p.device, p.dtype
    sig = SamplerConfig().sigmas
    chunk_frames = cfg.chunk * cfg.temporal_down
    chunks = max(1, round(seconds * cfg.fps / chunk_frames))
    mem = dataclasses.replace(mem, capacity=1 + chunks * cfg.chunk)
    lh, lw = cfg.latent_size
    shape = (1, cfg.latent_channels, cfg.chunk, lh, lw)
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim, device=device, dtype=dtype)
    acts = torch.zeros(1, chunk_frames, cfg.action_dim, device=device, dtype=dtype)
    acts[..., 0] = 1
    pose = torch.zeros(1, chunk_frames, cfg.pose_dim, device=device, dtype=dtype)
    cache = runner.new_cache(mem)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    state = decoder.new_state() if decoder is not None else None
    total, denoise, floor, valid, flops = [], [], [], [], []
    with torch.no_grad():
        t0 = time.perf_counter()
        first = torch.randn(1, cfg.latent_channels, 1, lh, lw, device=device, dtype=dtype)
        commit(runner, cache, first, Chunk(ctx, acts[:, :1], pose[:, :1]))
        if decoder is not None:
            to_uint8(decoder.decode_stream(state, first)[0])
        sync(device)
        first_frame = time.perf_counter() - t0
        cond = Chunk(ctx, acts, pose)
        for _ in range(chunks):
            valid.append(cache.valid)
            s = time.perf_counter()
            x0, _, _ = denoise_chunk(runner, cache, torch.randn(shape, device=device, dtype=dtype), cond, sig)
            commit(runner, cache, x0, cond)
            sync(device)
            denoise.append(time.perf_counter() - s)
            if decoder is not None:
                to_uint8(decoder.decode_stream(state, x0)[0])  # uint8 frames reach the host, as in play
            total.append(time.perf_counter() - s)
            flops.append((len(sig) + 1) * step_flops(cfg, cfg.chunk, valid[-1]))  # denoising steps + context pass
            floor.append(flops[-1] / (rate * world))
    stats = cache.stats()
    at = lambda sec: min(len(total) - 1, max(0, round(sec * cfg.fps / chunk_frames) - 1))
    mean = lambda xs: sum(xs[1:] or xs) / len(xs[1:] or xs)
    i20, i120 = at(20), at(120)
    played = chunks * chunk_frames / cfg.fps
    return {
        "preset": cfg.name, "size": f"{cfg.dim}x{cfg.layers}", "latent": f"{cfg.latent_channels}x{lh}x{lw}",
        "patch": cfg.patch[1], "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        "policy": mem.policy, "horizon": mem.horizon, "kv_format": mem.kv_format,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "dtype": str(dtype).replace("torch.", ""),
        "decoder": "tiny" if decoder is not None else "none", "seconds": played, "ranks": world,
        "graph_replays": runner.replays if graphs else 0,
        "fps": chunk_frames / mean(total), "denoise_fps": chunk_frames / mean(denoise),
        "time_to_first_frame_s": first_frame,
        "chunk_ms_first": 1e3 * total[0], "chunk_ms_at_20s": 1e3 * total[i20] if played >= 20 else None,
        "chunk_ms_at_2min": 1e3 * total[i120] if played >= 120 else None,
        "chunk_ms_end": 1e3 * total[-1], "chunk_ms_mean": 1e3 * mean(total), "denoise_ms_mean": 1e3 * mean(denoise),
        "decode_ms_mean": 1e3 * (mean(total) - mean(denoise)), "gflop_per_chunk_mean": mean(flops) / 1e9,
        "floor_ms_mean": 1e3 * mean(floor), "floor_ratio": mean(denoise) / mean(floor),
        "floor_ratio_at_20s": denoise[i20] / floor[i20], "keys_at_20s": valid[i20] + cfg.chunk * cfg.tokens_per_frame,
        "kv_tokens": stats["total_tokens"], "kv_full_tokens": stats["full_tokens"], "kv_bytes_per_gpu": stats["bytes"],
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }


def model_of(name: str, layout: str | None, size: str | None) -> tuple[ModelConfig, VAEConfig | None]:
    """The benchmarked model: a preset, or with --layout / --size the model_for model (and its tokenizer layout)."""
    if layout is None and size is None:
        return preset(name), None
    if name != "tiny":
        raise SystemExit(f"--layout/--size build 96x128 models of the tiny preset's family (model_for); drop "
                         f"--preset {name} or drop --layout/--size.")
    base = preset("tiny")
    vae = LAYOUTS[layout or "f8c16"]  # f8c16 is the tiny preset's layout
    dim, layers = parse_size(size) if size else (base.dim, base.layers)
    return model_for(vae, dim, layers), vae


def trained_decoder(path: str, cfg: ModelConfig) -> TinyDecoder:
    """The tiny decoder of a tokenizer checkpoint, refused when its latents are not the model's."""
    tok = Tokenizer.load(path)
    if (tok.cfg.z_dim, *tok.cfg.latent_size) != (cfg.latent_channels, *cfg.latent_size):
        raise SystemExit(f"{path} decodes {tok.cfg.z_dim}x{tok.cfg.latent_size} latents, the model makes "
                         f"{cfg.latent_channels}x{cfg.latent_size}; pass --layout for that tokenizer or another one.")
    return tok.tiny


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--layout", choices=sorted(LAYOUTS),
                    help="tokenizer layout (relickit.vae.LAYOUTS) to build the model for with model_for")
    ap.add_argument("--size", help="DIMxLAYERS of a model_for model (heads dim/64, ffn 4*dim), e.g. 256x12")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--variants", default="none,window,compressed,full", help="policy[+h<horizon>][+fp8][@minutes], comma-separated")
    ap.add_argument("--modes", default="eager", help=f"comma-separated, of {MODES}")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--decoder", default="random",
                    help="'random' (a tiny decoder with random weights), 'none' (denoise only), or a tokenizer checkpoint")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--parallel", action="store_true",
                    help="head-parallel over the GPUs of a torchrun launch (relickit.parallel.HeadParallel)")
    args = ap.parse_args()
    if args.parallel:  # torchrun --nproc-per-node N scripts/bench_stream.py --parallel ...
        cuda = torch.cuda.is_available()
        rank = int(os.environ["LOCAL_RANK"])
        if cuda:
            torch.cuda.set_device(rank)
        dist.init_process_group("nccl" if cuda else "gloo")
        args.device = f"cuda:{rank}" if cuda else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    device = torch.device(args.device)
    cfg, layout = model_of(args.preset, args.layout, args.size)
    variants = [parse_variant(v, args.minutes) for v in args.variants.split(",")]
    rate = matmul_rate(device, dtype, *((8192, 20) if device.type == "cuda" else (1024, 5)))
    lead = not args.parallel or dist.get_rank() == 0  # the rank that prints
    if lead:
        print(json.dumps({"matmul_tflops": rate / 1e12, "dtype": args.dtype}), flush=True)
    model = WorldModel(cfg, backend=args.backend).to(device, dtype).eval()
    decoder = {"none": None, "random": lambda: TinyDecoder(layout or VAEConfig.for_model(cfg))}.get(
        args.decoder, lambda: trained_decoder(args.decoder, cfg))
    decoder = decoder().to(device, dtype).eval() if decoder else None
    compiled = False
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {MODES}.")
        if mode.startswith("compiled") and not compiled:
            model.compile_blocks()
            compiled = True
            t0 = time.perf_counter()
            bench(model, MemoryConfig(policy="window"), 2 * cfg.chunk * cfg.temporal_down / cfg.fps, decoder, rate,
                  parallel=args.parallel)
            if lead:
                print(json.dumps({"compile_and_warmup_s": time.perf_counter() - t0}), flush=True)
        for mem, seconds in variants:
            row = bench(model, mem, seconds, decoder, rate, graphs=mode.endswith("graphs"), parallel=args.parallel)
            if lead:
                print(json.dumps({"mode": mode, **row}), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
