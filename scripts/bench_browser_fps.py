"""Frames actually shown per second by the notebook joystick in a real browser, and time to first frame.

Starts a fresh JupyterLab on a free localhost port, opens the notebook in headless Chromium (Playwright),
runs all cells, clicks start, focuses the key pad and holds W. In the page, every animation frame polls the
joystick image's src; the shown FPS is the number of distinct srcs per second over the measuring window.
Time to first frame is from the click on start to the first new src in the page.

    python scripts/bench_browser_fps.py                                   # fake session, 50 ms sleeping step
    python scripts/bench_browser_fps.py --step-s 0.5 --busy               # fake session spinning a core 0.5 s/step
    python scripts/bench_browser_fps.py --notebook notebooks/00_quickstart.ipynb --joystick joy
    python scripts/bench_browser_fps.py --model --memory-view            # the shipped model, memory view on

The notebook must display a relickit Joystick bound to the variable named by --joystick. With --memory-view the
"memory" toggle is clicked before start, and the memory view's redraws in the page are counted too.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser_fixture import (  # noqa: E402
    LabPage,
    browser_available,
    jupyter_lab,
    open_browser,
    write_fake_notebook,
    write_model_notebook,
)

MS = 1000.0
ROLES = (("ipykernel", "kernel"), ("jupyter", "server"), ("--type=renderer", "browser page"), ("chromium", "browser other"))


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by this benchmark's descendant processes (Linux /proc), by role."""
    parent, stat, cmd = {}, {}, {}
    for d in Path("/proc").iterdir():
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            parent[int(d.name)] = int(fields[1])
            stat[int(d.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            cmd[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    mine, grew = {os.getpid()}, True
    while grew:
        new = {pid for pid, ppid in parent.items() if ppid in mine} - mine
        mine |= new
        grew = bool(new)
    out: dict[str, float] = {}
    for pid in mine - {os.getpid()}:
        role = next((r for key, r in ROLES if key in cmd[pid]), "other")
        out[role] = out.get(role, 0.0) + stat[pid]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", type=Path, help="notebook to play (default: a generated fake-session notebook)")
    parser.add_argument("--model", action="store_true", help="a generated notebook over the default model session")
    parser.add_argument("--memory-view", action="store_true", help="switch the joystick's memory view on first")
    parser.add_argument("--joystick", default="joy", help="name of the Joystick variable in the notebook")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of play before the window opens")
    parser.add_argument("--step-s", type=float, default=0.05, help="fake session: seconds per step")
    parser.add_argument("--busy", action="store_true", help="fake session: spin a CPU core during the step")
    parser.add_argument("--session-fps", type=int, default=16, help="fake session: video frames per second")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot here at the end")
    parser.add_argument("--json", type=Path, help="write the numbers here too (python -m relickit.evaluate.gates "
                        "--browser-report reads shown_fps)")
    args = parser.parse_args()
    reason = browser_available()
    if reason:
        sys.exit(f"cannot run: {reason}")

    root = Path(tempfile.mkdtemp(prefix="relickit-bench-"))
    load_before = os.getloadavg()
    if args.notebook:
        notebook = root / args.notebook.name
        shutil.copy(args.notebook, notebook)
    elif args.model:
        notebook = write_model_notebook(root)
    else:
        notebook = write_fake_notebook(root, step_s=args.step_s, busy=args.busy, fps=args.session_fps)
    try:
        with jupyter_lab(root) as lab, open_browser() as page:
            lab_page = LabPage(page)
            opened = time.monotonic()
            lab_page.open(lab.url(notebook.name))
            lab_page.run_all()
            widget_s = time.monotonic() - opened
            if args.memory_view:
                lab_page.click_button("memory-toggle")
                page.wait_for_selector(".relickit-memory", timeout=120 * MS)
            t_click = lab_page.start_counting()
            lab_page.click_button("start")
            lab_page.focus_pad()
            page.keyboard.down("KeyW")
            page.wait_for_function(
                f"() => window.__relickitFrames.changes.some(t => t > {t_click})", timeout=120 * MS
            )
            time.sleep(args.warmup)
            window_start, cpu_start = page.evaluate("() => performance.now()"), cpu_by_role()
            time.sleep(args.seconds)
            window_end, cpu_end = page.evaluate("() => performance.now()"), cpu_by_role()
            page.keyboard.up("KeyW")
            changes, redraws, latents = lab_page.frame_changes(), lab_page.memory_redraws(), lab_page.memory_latents()
            j = args.joystick
            state = json.loads(
                lab_page.kernel_eval(
                    f"import json as _j; print(_j.dumps({{'fps': {j}.video_fps,"
                    f" 'shown': {j}.frames_shown, 'dropped': {j}.frames_dropped, 'steps': {j}.steps,"
                    f" 'refreshes': {j}.memory.refreshes if {j}.memory else 0,"
                    f" 'chunks': {j}.memory.tracker.chunks if {j}.memory else 0}})); {j}.stop()"
                ).strip().splitlines()[-1]
            )
            if args.screenshot:
                page.screenshot(path=str(args.screenshot))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    first = next(t for t in changes if t > t_click)
    in_window = [t for t in changes if window_start <= t < window_end]
    seconds = (window_end - window_start) / MS
    per_second = [
        sum(window_start + i * MS <= t < window_start + (i + 1) * MS for t in in_window) for i in range(int(seconds))
    ]
    source = args.notebook or ("the default model session" if args.model else (
        f"fake session, {args.session_fps} fps, step {args.step_s} s ({'busy' if args.busy else 'sleeping'})"
    ))
    print(f"notebook: {source}")
    print(f"page + kernel + run all until the joystick shows: {widget_s:.1f} s")
    print(f"time to first frame (click start -> new frame in the page): {(first - t_click) / MS:.3f} s")
    shown_fps = len(in_window) / seconds
    print(f"shown in the browser: {shown_fps:.1f} FPS over {seconds:.1f} s (session fps {state['fps']:g})")
    print(f"per second: {per_second} (worst 1 s window: {min(per_second, default=0)})")
    print(f"kernel side: {state['shown']} frames pushed, {state['dropped']} dropped, {state['steps']} steps")
    if args.memory_view:
        drawn = [t for t in redraws if window_start <= t < window_end]
        seen = [f for t, f in zip(redraws, latents) if window_start <= t < window_end]
        played = range(min(seen), max(seen) + 1) if seen else range(0)
        drawn_per_second = [sum(window_start + i * MS <= t < window_start + (i + 1) * MS for t in drawn)
                            for i in range(int(seconds))]
        print(f"memory view: {len(drawn) / seconds:.2f} redraws/s in the page over the window (per second: "
              f"{drawn_per_second}); kernel: {state['refreshes']} states sent for {state['chunks']} chunks")
        print(f"memory view: latent frames {played.start}-{played.stop - 1} came on screen in the window, "
              f"{len(set(seen) & set(played))} of {len(played)} were drawn")
    cpu = {role: (cpu_end.get(role, 0.0) - cpu_start.get(role, 0.0)) / seconds for role in cpu_end}
    print("CPU cores used over the window: " + ", ".join(f"{role} {c:.2f}" for role, c in sorted(cpu.items())))
    load_after = os.getloadavg()
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    if args.json:
        from relickit.evaluate.report import write_json

        write_json(args.json, {"source": source, "shown_fps": shown_fps, "per_second": per_second,
                               "seconds": seconds, "time_to_first_frame_s": (first - t_click) / MS,
                               "session_fps": state["fps"], "kernel": state, "cpu_cores_by_role": cpu,
                               "load_before_after": [load_before[0], load_after[0]], "cpu_count": os.cpu_count()})


if __name__ == "__main__":
    main()
