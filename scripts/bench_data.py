"""Measure Doom data generation: throughput per core, dataset size per hour of frames, clip read speed, codecs.

    /work/venv/bin/python scripts/bench_data.py                       # 96x128 and 120x160, under a minute
    /work/venv/bin/python scripts/bench_data.py --sizes 240x320 --episodes 2

Prints markdown tables (docs/data.md quotes them). Writes its datasets under runs/bench_data/ (deleted after).
"""
from __future__ import annotations

import argparse
import io
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from relickit.dataset import ClipDataset, generate, load_episode
from relickit.doom import DoomConfig, DoomEnv

ROOT = Path(__file__).resolve().parents[1]
SECONDS_PER_HOUR = 3600


def engine_fps(height: int, width: int, frames: int) -> float:
    """Frames/s of the bare engine (render + resize), random commands, one process."""
    rng = np.random.default_rng(0)
    cmds = rng.uniform(-1, 1, (frames, 5))
    with DoomEnv(DoomConfig(height=height, width=width)) as env:
        env.reset(0)
        t = time.perf_counter()
        for c in cmds:
            env.step(c)
        return frames / (time.perf_counter() - t)


def generation(height: int, width: int, episodes: int, frames: int, workers: int, out: Path) -> tuple[float, float]:
    """(frames/s of generate() incl. exploration, labels, compression and writing; bytes per frame)."""
    shutil.rmtree(out, ignore_errors=True)
    maps = ["MAP01", "MAP02"]  # episodes alternate between two maps: each worker starts an engine per map
    t = time.perf_counter()
    generate(out, maps, episodes, frames, seed=0, height=height, width=width, workers=workers, progress=False)
    fps = episodes * frames / (time.perf_counter() - t)
    size = sum(p.stat().st_size for p in out.glob("*.npz"))
    return fps, size / (episodes * frames)


def clip_reads(root: Path, clips: int = 200) -> float:
    ds = ClipDataset(root, 17)
    idx = np.random.default_rng(0).integers(0, len(ds), clips)
    t = time.perf_counter()
    for i in idx:
        ds[int(i)]
    return clips / (time.perf_counter() - t)


def codecs(frames: np.ndarray) -> list[tuple[str, float, float, bool]]:
    """(codec, KB per frame, decode ms per frame, lossless) for one episode's frames."""
    def pil(fmt: str, **kw):
        def enc(a: np.ndarray) -> bytes:
            b = io.BytesIO()
            Image.fromarray(a).save(b, fmt, **kw)
            return b.getvalue()
        return enc, lambda b: np.array(Image.open(io.BytesIO(b)).convert("RGB"))

    shape = frames.shape
    rows = []
    for level in (3, 6):
        blob = zlib.compress(frames.tobytes(), level)
        t = time.perf_counter()
        out = np.frombuffer(zlib.decompress(blob), np.uint8).reshape(shape)
        rows.append((f"npz deflate level {level} (chunk)", len(blob), time.perf_counter() - t, np.array_equal(out, frames)))
    for name, (enc, dec) in {
        "PNG per frame": pil("PNG"), "WebP lossless per frame": pil("WEBP", lossless=True),
        "JPEG q90 per frame": pil("JPEG", quality=90),
    }.items():
        blobs = [enc(f) for f in frames]
        t = time.perf_counter()
        out = np.stack([dec(b) for b in blobs])
        rows.append((name, sum(map(len, blobs)), time.perf_counter() - t, np.array_equal(out, frames)))
    n = len(frames)
    return [(name, size / n / 1024, sec / n * 1000, ok) for name, size, sec, ok in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["96x128", "120x160"])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="also time generate() with this many workers")
    args = parser.parse_args()
    work = ROOT / "runs" / "bench_data"
    fps_video = DoomConfig().fps
    frames_per_hour = fps_video * SECONDS_PER_HOUR
    print(f"| frames (HxW) | engine only, frames/s (1 core) | generate(), frames/s per core (1 worker) | "
          f"generate(), frames/s with {args.workers} workers | KB per frame | GB per hour of frames "
          f"({fps_video:g} FPS) | 17-frame clips read/s |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        eng = engine_fps(h, w, args.episodes * args.frames)
        one, per_frame = generation(h, w, args.episodes, args.frames, 1, work / f"{size}-1")
        many, _ = generation(h, w, args.episodes, args.frames, args.workers, work / f"{size}-n")
        reads = clip_reads(work / f"{size}-1")
        print(f"| {h}x{w} | {eng:,.0f} | {one:,.0f} | {many:,.0f} | {per_frame / 1024:.1f} | "
              f"{per_frame * frames_per_hour / 1e9:.2f} | {reads:,.0f} |")
    ep = load_episode(next((work / f"{args.sizes[0]}-1").glob("*.npz")))
    print(f"\ncodecs on one {args.sizes[0]} episode ({len(ep)} frames):\n")
    print("| codec | KB per frame | decode ms per frame | lossless |")
    print("|---|---|---|---|")
    for name, kb, ms, ok in codecs(ep.frames()):
        print(f"| {name} | {kb:.1f} | {ms:.2f} | {'yes' if ok else 'no'} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
