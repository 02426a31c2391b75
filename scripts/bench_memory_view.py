"""What the joystick's memory view costs per chunk, in CPU time, beside the model's own step.

    python scripts/bench_memory_view.py                       # the shipped model, 20 s of play
    python scripts/bench_memory_view.py --seconds 60 --horizon 90

Plays the same seeded walk twice on the default session (relickit.tutorial): once with the view off, once with a
RetrievalPanel attached, doing what the joystick does per chunk (session.step with the probe's hook, tracker.step,
and a redraw of the view with its thumbnail decodes). Times are CPU seconds of this thread (`time.thread_time`,
torch single-threaded), so other processes on a shared machine slow the wall clock but not these numbers much.
Prints one JSON line per run and the view's overhead: (step on + tracker + redraw) / step off - 1.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from relickit import tutorial
from relickit.config import MemoryConfig
from relickit.keys import action_from_keys
from relickit.play import load_start
from relickit.retrieval_view import RetrievalPanel

KEYS = [{"Right"}, {"Right"}, {"W"}, {"Left"}, {"W", "Right"}, set(), {"S"}, {"Left"}]


def timed(fn, *args):
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0


def time_hooks(probe, spent: list[float]) -> None:
    """Count the CPU time of the probe's two hooks in spent[0] (wrapped before they are registered)."""
    for name in ("_before_block", "_check_output"):
        hook = getattr(probe, name)

        def wrapped(module, args, hook=hook):
            _, dt = timed(hook, module, args)
            spent[0] += dt

        setattr(probe, name, wrapped)


def play(memory: MemoryConfig, steps: int, seed: int, view: bool) -> dict:
    session, trained = tutorial.default_session(memory=memory, seed=seed)
    image, caption = load_start(index=0)
    rng = np.random.default_rng(seed)
    actions = [action_from_keys(KEYS[i]) for i in rng.integers(len(KEYS), size=steps)]
    panel = RetrievalPanel(session) if view else None
    hooks = [0.0]
    if panel is not None:
        time_hooks(panel.tracker.probe, hooks)
        panel.tracker.attach()  # the hook only: redraws are timed below rather than run by the refresh thread
    first = session.reset(image, caption)
    if panel is not None:
        panel.observe_reset(first)
    rows = {"step": [], "hooks": [], "tracker": [], "redraw": []}
    for action in actions:
        hooks[0] = 0.0
        frames, dt = timed(session.step, action)
        rows["step"].append(dt)
        if panel is not None:
            rows["hooks"].append(hooks[0])
            _, dt = timed(panel.observe_step, frames)
            rows["tracker"].append(dt)
            _, dt = timed(panel.refresh)
            rows["redraw"].append(dt)
    out = {"view": view, "trained": trained, "steps": steps, "policy": memory.policy, "horizon": memory.horizon,
           "kv_tokens_end": session.memory_stats()["total_tokens"]}
    for name, xs in rows.items():
        if xs:
            out[f"{name}_cpu_s_median"] = round(float(np.median(xs[1:])), 4)
            out[f"{name}_cpu_s_last"] = round(float(np.mean(xs[-3:])), 4)
    if panel is not None:
        out["max_abs_error"] = float(max(s.max_abs_error for s in panel.snapshots))
        out["redraws"] = panel.refreshes
        panel.detach()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of video per run")
    parser.add_argument("--horizon", type=int, help="bound the compressed memory (MemoryConfig.horizon)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    memory = MemoryConfig(horizon=args.horizon)
    session, _ = tutorial.default_session()
    steps = max(2, round(args.seconds * session.fps / session.frames_per_step))
    load = os.getloadavg()[0]
    off = play(memory, steps, args.seed, view=False)
    on = play(memory, steps, args.seed, view=True)
    for row in (off, on):
        print(json.dumps(row))
    view = {k: on[f"{k}_cpu_s_median"] for k in ("hooks", "tracker", "redraw")}
    share = sum(view.values()) / off["step_cpu_s_median"]
    print(f"the view's CPU per chunk (median): probe hooks {view['hooks']:.4f} s (inside the step) + tracker "
          f"{view['tracker']:.4f} s + redraw {view['redraw']:.4f} s = {share:.1%}"
          f" of the step with the view off ({off['step_cpu_s_median']:.3f} s; {on['step_cpu_s_median']:.3f} s with it"
          f" on); load average {load:.2f} -> {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
