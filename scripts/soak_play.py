"""A long play session: does it stay real time? Frames shown, step latency, resident memory and KV tokens over time.

    python scripts/soak_play.py --minutes 10 --out docs/eval/soak_10min.jsonl     # the joystick, default memory
    python scripts/soak_play.py --minutes 10 --horizon none                        # RELIC's unbounded memory
    python scripts/soak_play.py --minutes 1.5 --fast --horizon 90                  # steps back to back, no joystick
    python scripts/soak_play.py --against-fresh 800                                # 10 minutes in vs a fresh session

The shipped model plays from the bundled start frame while a seeded "player" holds a random key combo for 1-3 s at
a time. By default it plays through `relickit.joystick.Joystick`, headless, in real time: the producer and pacer
threads, JPEG encoding and the FPS readout run exactly as in the notebook, only the browser is missing, so
`fps` counts frames pushed to the view per second. With --fast it calls `Session.step` back to back (no pacing):
`fps` is then the model's own speed (frames made per second of stepping).

One JSON line per --every seconds of play (of video with --fast): fps, steps and their latency (mean, p90, max,
ms), the CPU time of the stepping thread per step (with one torch thread that is the step's own work, which,
unlike latency, does not grow when other jobs share the cores), resident memory (MB), KV tokens per layer and
bytes, frames dropped, the load average. The last line is a summary: the first and last minute's mean step latency
and CPU time, resident memory's range after the first minute, the lowest fps.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from relickit.config import MemoryConfig
from relickit.joystick import Joystick, JoystickConfig
from relickit.keys import action_from_keys
from relickit.play import PLAY_MEMORY, Session, horizon_arg, load_start

COMBOS = [["W"], ["S"], ["A"], ["D"], ["Left"], ["Right"], ["W", "Left"], ["W", "Right"], ["Up"], ["Down"], []]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class TimedSession:
    """A Session that records how long each step took (thread-safe: the joystick steps from its producer)."""

    def __init__(self, session: Session):
        self.session, self.fps, self.frames_per_step = session, session.fps, session.frames_per_step
        self.step_ms: list[float] = []
        self.lock = threading.Lock()

    def reset(self, image: np.ndarray, text: str) -> np.ndarray:
        return self.session.reset(image, text)

    def step(self, action: torch.Tensor) -> np.ndarray:
        t, cpu = time.perf_counter(), time.thread_time()
        frames = self.session.step(action)
        with self.lock:
            self.step_ms.append((1e3 * (time.perf_counter() - t), 1e3 * (time.thread_time() - cpu)))
        return frames

    def memory_stats(self) -> dict:
        return self.session.memory_stats()

    def take_times(self) -> list[tuple[float, float]]:
        """(wall ms, CPU ms of the stepping thread) of each step since the last call."""
        with self.lock:
            times, self.step_ms = self.step_ms, []
        return times


def report(t: float, times: list[tuple[float, float]], fps: float, dropped: int, stats: dict) -> dict:
    wall, cpu = [w for w, _ in times], [c for _, c in times]
    return {
        "play_s": round(t, 1), "fps": round(fps, 2), "steps": len(times),
        "step_ms_mean": round(statistics.fmean(wall), 1) if times else None,
        "step_ms_p90": round(float(np.percentile(wall, 90)), 1) if times else None,
        "step_ms_max": round(max(wall), 1) if times else None,
        "step_cpu_ms_mean": round(statistics.fmean(cpu), 1) if times else None,
        "rss_mb": round(rss_mb(), 1), "kv_tokens": stats["total_tokens"], "kv_mb": round(stats["bytes"] / 2**20, 2),
        "frames_dropped": dropped, "load1": round(os.getloadavg()[0], 2),
    }


def summary(rows: list[dict], every: float) -> dict:
    """First vs last minute of step latency, resident memory after the first minute, the lowest fps."""
    per_min = max(1, round(60 / every))

    def mean_step(part: list[dict], key: str = "step_ms_mean") -> float:
        total = sum(r["steps"] for r in part)
        return sum(r[key] * r["steps"] for r in part if r["steps"]) / max(1, total)

    first, last = mean_step(rows[:per_min]), mean_step(rows[-per_min:])
    first_cpu, last_cpu = (mean_step(part, "step_cpu_ms_mean") for part in (rows[:per_min], rows[-per_min:]))
    settled = [r["rss_mb"] for r in rows[per_min:]] or [rows[-1]["rss_mb"]]
    ref = rows[per_min - 1]["rss_mb"] if len(rows) >= per_min else rows[0]["rss_mb"]
    return {
        "summary": True, "minutes": round(rows[-1]["play_s"] / 60, 2),
        "step_ms_first_min": round(first, 1), "step_ms_last_min": round(last, 1),
        "step_ratio_last_first": round(last / first, 3),
        "step_cpu_ms_first_min": round(first_cpu, 1), "step_cpu_ms_last_min": round(last_cpu, 1),
        "rss_mb_at_1min": ref, "rss_mb_min": min(settled), "rss_mb_max": max(settled),
        "rss_change_max": round(max(abs(r - ref) for r in settled) / ref, 3),
        "fps_min": min(r["fps"] for r in rows), "kv_tokens_end": rows[-1]["kv_tokens"],
        "load1_mean": round(statistics.fmean(r["load1"] for r in rows), 2),
    }


def play_joystick(session: TimedSession, image, text, seconds: float, every: float, rng, emit,
                  threads: int) -> list[dict]:
    joy = Joystick(session, image, text, config=JoystickConfig(threads=threads))
    rows, t0, t, next_key, next_report, shown, dropped = [], time.monotonic(), 0.0, 0.0, every, joy.frames_shown, 0
    joy.start()
    try:
        while next_report <= seconds + 1e-9 and joy.error is None:  # ends with the report at `seconds`
            t = time.monotonic() - t0
            if t >= next_key:
                joy.keypad.pressed = COMBOS[rng.integers(len(COMBOS))]
                next_key = t + rng.uniform(1.0, 3.0)
            if t >= next_report:
                rows.append(emit(report(t, session.take_times(), (joy.frames_shown - shown) / every,
                                        joy.frames_dropped - dropped, session.memory_stats())))
                shown, dropped, next_report = joy.frames_shown, joy.frames_dropped, next_report + every
            time.sleep(0.02)
    finally:
        joy.stop()
    if joy.error is not None:
        raise RuntimeError(f"the joystick stopped at {t:.0f} s: {joy.error!r}") from joy.error
    return rows


def play_fast(session: TimedSession, seconds: float, every: float, rng, emit) -> list[dict]:
    """Step back to back; `seconds` and `every` are seconds of video, not of wall time."""
    steps = round(seconds * session.fps / session.frames_per_step)
    per_report = max(1, round(every * session.fps / session.frames_per_step))
    rows, combo = [], []
    for i in range(1, steps + 1):
        if rng.random() < 0.25:  # a new combo about every 4 steps (3 s of video)
            combo = COMBOS[rng.integers(len(COMBOS))]
        session.step(action_from_keys(combo))
        if i % per_report == 0:
            times = session.take_times()
            video_s = i * session.frames_per_step / session.fps
            fps = 1e3 * len(times) * session.frames_per_step / sum(w for w, _ in times)
            rows.append(emit(report(video_s, times, fps, 0, session.memory_stats())))
    return rows


def play_against_fresh(session: TimedSession, memory: MemoryConfig, image, text, steps: int, emit) -> list[dict]:
    """Does a step get dearer with play? After `steps` steps, alternate steps of this session and of a fresh one whose
    memory has just filled, so both see the same contention; their CPU time per step should be equal."""
    fresh = TimedSession(Session.from_pretrained(memory=memory))
    fresh.reset(image, text)
    action = action_from_keys({"W", "Left"})
    for s, n in ((session, steps), (fresh, 2 + (memory.window + (memory.horizon or 0)) // 3)):
        for _ in range(n):
            s.step(action)
        s.take_times()
    for _ in range(40):
        session.step(action)
        fresh.step(action)
    rows = []
    for name, s in (("played", session), ("fresh", fresh)):
        cpu = [c for _, c in s.take_times()]
        rows.append(emit({"session": name, "latent_frames": s.memory_stats()["frames"],
                          "step_cpu_ms_median": round(statistics.median(cpu), 1), "load1": round(os.getloadavg()[0], 2)}))
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--horizon", type=horizon_arg, default=PLAY_MEMORY.horizon,
                    help=f"compressed frames kept (default {PLAY_MEMORY.horizon}, play's); 'none': RELIC's memory")
    ap.add_argument("--policy", default=PLAY_MEMORY.policy)
    ap.add_argument("--every", type=float, default=30.0, help="seconds of play per report")
    ap.add_argument("--fast", action="store_true", help="step back to back instead of playing the joystick in real time")
    ap.add_argument("--against-fresh", type=int, metavar="STEPS",
                    help="play STEPS steps, then alternate 40 steps with a fresh session: CPU per step, old vs new")
    ap.add_argument("--threads", type=int, default=JoystickConfig.threads,
                    help="torch threads of the steps (the joystick's producer thread; with --fast, the process)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the JSON lines here")
    args = ap.parse_args(argv)
    # room for the whole soak: an unbounded memory holds 10 minutes by default (a ring has no capacity to reach)
    latent_frames = 1 + round(args.minutes * 60 * 16 / 4)
    memory = MemoryConfig(policy=args.policy, horizon=args.horizon, capacity=max(MemoryConfig.capacity, latent_frames))
    session = TimedSession(Session.from_pretrained(memory=memory))
    image, text = load_start()
    rng = np.random.default_rng(args.seed)
    lines = [{"command": "python scripts/soak_play.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "memory": {"policy": memory.policy, "horizon": memory.horizon, "window": memory.window},
              "mode": "against-fresh" if args.against_fresh is not None else "fast" if args.fast else "joystick",
              "threads": args.threads, "cpus": os.cpu_count(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}]
    print(json.dumps(lines[0]), flush=True)

    def emit(row: dict) -> dict:
        print(json.dumps(row), flush=True)
        lines.append(row)
        return row

    session.reset(image, text)
    if args.against_fresh is not None:
        torch.set_num_threads(args.threads)
        play_against_fresh(session, memory, image, text, args.against_fresh, emit)
    elif args.fast:
        torch.set_num_threads(args.threads)
        emit(summary(play_fast(session, 60 * args.minutes, args.every, rng, emit), args.every))
    else:
        rows = play_joystick(session, image, text, 60 * args.minutes, args.every, rng, emit, args.threads)
        emit(summary(rows, args.every))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


if __name__ == "__main__":
    main()
