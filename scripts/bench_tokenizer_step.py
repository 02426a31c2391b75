"""Time one VAE training step (forward + backward of L1 + KL) through the streaming loop and the whole-clip pass.

    python scripts/bench_tokenizer_step.py --layouts f8c16,f4c16 --batch 16 --frames 17 --steps 10

The streaming loop (relickit.vae: a video's first frame, then groups of 4 frames, each causal convolution fed from
its cache) is what the tokenizer trained through before relickit.clip_pass; the whole-clip pass computes the same
function with one convolution per layer. Random clips, bf16 autocast on CUDA. Prints one line per path and layout.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relickit.vae import LAYOUTS, Tokenizer, kl_divergence  # noqa: E402


def streaming(tok: Tokenizer, video: torch.Tensor):
    mean, logvar = tok._encode_frames(tok.new_encode_cache(), video)
    return tok._decode_frames(tok.new_decode_cache(), mean), mean, logvar


def step_seconds(tok: Tokenizer, forward, video: torch.Tensor, steps: int, warmup: int = 2) -> float:
    cuda = video.is_cuda
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(video.device.type, dtype=torch.bfloat16, enabled=cuda):
            recon, mean, logvar = forward(tok, video)
            loss = (recon.float() - video).abs().mean() + 1e-5 * kl_divergence(mean.float(), logvar.float())
        loss.backward()
        tok.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layouts", default="f8c16")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--paths", default="streaming,whole")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    for name in a.layouts.split(","):
        cfg = LAYOUTS[name]
        tok = Tokenizer(cfg).to(a.device).train()
        video = torch.rand(a.batch, 3, a.frames, cfg.height, cfg.width, device=a.device) * 2 - 1
        for path in a.paths.split(","):
            forward = streaming if path == "streaming" else (lambda t, v: t(v))
            s = step_seconds(tok, forward, video, a.steps)
            print(f"{name:6s} {path:9s} batch {a.batch} x {a.frames} frames: {s * 1000:7.1f} ms/step, "
                  f"{a.batch * a.frames / s:8.1f} frames/s  ({a.device}, {torch.__version__})", flush=True)


if __name__ == "__main__":
    main()
