"""A long scripted play session: process memory and chunk latency over time (no leak once memory fills).

    python scripts/soak_play.py --minutes 10 --policy compressed

Plays the shipped model with a seeded random walk of held keys, one session step per chunk, and prints one JSON
line every --every seconds of video: resident memory (MB), the last chunk's latency, and KV tokens.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from relickit.config import MemoryConfig
from relickit.keys import action_from_keys
from relickit.play import Session, load_start

KEYS = [{"W"}, {"S"}, {"A"}, {"D"}, {"Left"}, {"Right"}, {"W", "Left"}, {"W", "Right"}, set()]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--policy", default="compressed")
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    session = Session.from_pretrained(memory=MemoryConfig(policy=args.policy))
    image, text = load_start()
    session.reset(image, text)
    rng = np.random.default_rng(0)
    steps = int(args.minutes * 60 * session.fps / session.frames_per_step)
    per_report = max(1, int(args.every * session.fps / session.frames_per_step))
    for i in range(1, steps + 1):
        t = time.perf_counter()
        session.step(action_from_keys(KEYS[rng.integers(len(KEYS))]))
        ms = 1e3 * (time.perf_counter() - t)
        if i % per_report == 0 or i == steps:
            s = session.memory_stats()
            print(json.dumps({"video_s": i * session.frames_per_step / session.fps, "rss_mb": round(rss_mb(), 1),
                              "chunk_ms": round(ms, 1), "kv_tokens": s["total_tokens"], "kv_mb": round(s["bytes"] / 2**20, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
