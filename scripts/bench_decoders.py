"""Time the two decoders chunk by chunk, as the world model uses them: ms per chunk of latent frames.

    python scripts/bench_decoders.py                      # CPU (and the GPU when there is one), random weights
    python scripts/bench_decoders.py --checkpoint data/weights/tokenizer/f4c16.safetensors --device cpu  # Wan part beside it

A chunk of 3 latent frames decodes to 12 video frames. Both decoders keep their causal memory between chunks
(streaming); the first latent frame and one chunk warm up, the next `--repeats` chunks are timed
(relickit.vae.benchmark_decoders). Weights do not change the timing. With a trained checkpoint it also prints
PSNRs on held-out clips (relickit.tutorial.sample_data("eval"), maps the tokenizer never trained on; `--data` for
another directory).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relickit.train_tokenizer import clip_dataset, video_of  # noqa: E402
from relickit.tutorial import sample_data  # noqa: E402
from relickit.vae import Tokenizer, VAEConfig, benchmark_decoders, psnr  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a trained tokenizer; default: random weights of the default VAEConfig")
    p.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    p.add_argument("--chunk", type=int, default=3, help="latent frames per chunk")
    p.add_argument("--repeats", type=int, default=6, help="timed chunks per decoder (after the first latent frame)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--data", help="clips for the PSNRs (a relickit.dataset directory; default the sample's eval split)")
    p.add_argument("--clips", type=int, default=8, help="clips of 25 frames for the PSNRs")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    tok = Tokenizer.load(a.checkpoint) if a.checkpoint else Tokenizer(VAEConfig()).eval()
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    frames = a.chunk * tok.cfg.temporal_down
    print(f"tokenizer {tok.cfg.height}x{tok.cfg.width}, params {tok.num_params()}; chunk = {a.chunk} latent frames "
          f"-> {frames} frames; {a.repeats} timed chunks; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads of {os.cpu_count()} cores")
    print(f"{'device':<6} {'decoder':<7} {'median ms/chunk':>15} {'min ms':>8} {'frames/s':>9}")
    for device in devices:
        tok.to(device)
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        for decoder, times in benchmark_decoders(tok, a.chunk, a.repeats).items():
            med = statistics.median(times)
            print(f"{device:<6} {decoder:<7} {med:>15.1f} {min(times):>8.1f} {frames / med * 1000:>9.1f}   ({name})")

    if a.checkpoint:
        a.data = a.data or sample_data("eval")
        tok.to(devices[-1])
        data = clip_dataset(a.data, 1 + 6 * tok.cfg.temporal_down, tok.cfg, split=None)
        step = max(1, len(data) // a.clips)
        video = video_of({"frames": torch.stack([data[i]["frames"] for i in range(0, len(data), step)][:a.clips])})
        video = video.to(tok.device)
        z = tok.encode(video)
        full, tiny = tok.decode(z), tok.decode_tiny(z)
        print(f"PSNR on {video.shape[0]} clips x {video.shape[2]} frames of {a.data}: "
              f"wan vs truth {psnr(full, video):.2f} dB, tiny vs truth {psnr(tiny, video):.2f} dB, "
              f"tiny vs wan {psnr(tiny, full):.2f} dB")


if __name__ == "__main__":
    main()
