"""Time one VAE training step (forward + backward of L1 + KL) per job, batch size and execution variant.

    python scripts/bench_tokenizer_step.py --jobs f4c16,f4c16-64x2 --batch 16 32 64 --variants whole,channels_last

A job is a layout of relickit.vae.LAYOUTS, or LAYOUT-WxB for a VAE of base width W and B residual blocks per stage
(as in scripts/device_tokenizer.sh). Variants:
- `streaming`: the per-frame loop of relickit.vae (a video's first frame, then groups of 4, each causal convolution
  fed from its cache), which the tokenizer trained through before relickit.clip_pass;
- `whole`: the whole-clip pass (one convolution per layer over the clip), the training path;
- `channels_last`: the whole-clip pass with the model and the clip in channels-last-3d memory;
- `compile`: the whole-clip pass under torch.compile (one clip shape: compiled once).
Each line gives ms per step, frames/s, the arithmetic rate they imply (FLOPs of a step counted by torch's FLOP
counter on the meta device, so what the GPU achieves reads beside its peak) and peak memory. Random clips, bf16
autocast on CUDA: this measures the step, not what it learns.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relickit.config import parse_size  # noqa: E402
from relickit.train_tokenizer import to_memory_format  # noqa: E402
from relickit.vae import LAYOUTS, Tokenizer, VAEConfig, kl_divergence  # noqa: E402

VARIANTS = ("streaming", "whole", "channels_last", "compile")


def job_config(job: str) -> VAEConfig:
    """'f4c16' -> LAYOUTS['f4c16']; 'f4c16-64x2' -> the same layout at base width 64 with 2 residual blocks."""
    layout, _, width = job.partition("-")
    if layout not in LAYOUTS:
        raise SystemExit(f"unknown layout {layout!r} in job {job!r}; layouts: {', '.join(sorted(LAYOUTS))}")
    if not width:
        return LAYOUTS[layout]
    try:
        base, blocks = parse_size(width)
    except ValueError:
        raise SystemExit(f"job {job!r}: write a width as LAYOUT-WxB, e.g. f4c16-64x2") from None
    return dataclasses.replace(LAYOUTS[layout], base_dim=base, num_res_blocks=blocks)


def streaming(tok: Tokenizer, video: torch.Tensor):
    mean, logvar = tok._encode_frames(tok.new_encode_cache(), video)
    return tok._decode_frames(tok.new_decode_cache(), mean), mean, logvar


def whole(tok: torch.nn.Module, video: torch.Tensor):
    return tok(video)


def train_step(tok: torch.nn.Module, forward, video: torch.Tensor) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16) if video.is_cuda else contextlib.nullcontext():
        recon, mean, logvar = forward(tok, video)
        loss = (recon.float() - video).abs().mean() + 1e-5 * kl_divergence(mean.float(), logvar.float())
    loss.backward()


def step_flops(cfg: VAEConfig, frames: int) -> float:
    """FLOPs of one training step (forward and backward) per frame of a clip of `frames`, counted on the meta
    device: no arithmetic is done."""
    with torch.device("meta"):
        tok = Tokenizer(cfg).train()
        tok.tiny.requires_grad_(False)
        video = torch.zeros(1, 3, frames, cfg.height, cfg.width)
    with FlopCounterMode(display=False) as counter:
        train_step(tok, whole, video)
    return counter.get_total_flops() / frames


def step_seconds(tok: torch.nn.Module, forward, video: torch.Tensor, steps: int, warmup: int = 3) -> float:
    sync = torch.cuda.synchronize if video.is_cuda else (lambda: None)
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        train_step(tok, forward, video)
        tok.zero_grad(set_to_none=True)
    sync()
    return (time.perf_counter() - start) / steps


def prepared(tok: Tokenizer, video: torch.Tensor, variant: str):
    """The module, forward and input a variant runs."""
    if variant == "streaming":
        return tok, streaming, video
    if variant == "channels_last":
        return to_memory_format(tok, True), whole, video.contiguous(memory_format=torch.channels_last_3d)
    tok = to_memory_format(tok, False)
    return (torch.compile(tok, dynamic=False) if variant == "compile" else tok), whole, video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", "--layouts", default="f4c16", help="comma-separated LAYOUT or LAYOUT-WxB (--layouts: the "
                   "name of earlier runs' commands)")
    p.add_argument("--batch", type=int, nargs="+", default=[16])
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN's autotuning, compilation)")
    p.add_argument("--variants", default="streaming,whole", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    variants = a.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        p.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.backends.cudnn.benchmark = True
    cuda = a.device.startswith("cuda")
    for job in a.jobs.split(","):
        cfg = job_config(job)
        tok = Tokenizer(cfg).to(a.device).train()
        tok.tiny.requires_grad_(False)  # the VAE stage trains the VAE only
        params = sum(p.numel() for p in tok.vae.parameters())
        flops = step_flops(cfg, a.frames)
        print(f"{job}: VAE {params / 1e6:.1f}M parameters, {flops / 1e9:.1f} GFLOP per frame and training step "
              f"({a.device}, torch {torch.__version__})", flush=True)
        for batch in a.batch:
            video = torch.rand(batch, 3, a.frames, cfg.height, cfg.width, device=a.device) * 2 - 1
            for variant in variants:
                module, forward, x = prepared(tok, video, variant)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                try:
                    s = step_seconds(module, forward, x, a.steps, a.warmup)
                except torch.OutOfMemoryError:
                    print(f"  {variant:13s} batch {batch:3d} x {a.frames} frames: out of memory", flush=True)
                    tok.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    continue
                fps = batch * a.frames / s
                peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
                print(f"  {variant:13s} batch {batch:3d} x {a.frames} frames: {s * 1000:8.1f} ms/step "
                      f"{fps:8.1f} frames/s {fps * flops / 1e12:7.1f} TFLOP/s  peak {peak:5.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
