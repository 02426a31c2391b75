"""Frames actually shown per second by the notebook joystick in a real browser, and time to first frame.

Starts a fresh JupyterLab on a free localhost port, opens the notebook in headless Chromium (Playwright),
runs all cells, clicks start, focuses the key pad and holds W. In the page, every animation frame polls the
joystick image's src; the shown FPS is the number of distinct srcs per second over the measuring window.
Time to first frame is from the click on start to the first new src in the page.

    python scripts/bench_browser_fps.py                                   # fake session, 50 ms sleeping step
    python scripts/bench_browser_fps.py --step-s 0.5 --busy               # fake session spinning a core 0.5 s/step
    python scripts/bench_browser_fps.py --notebook notebooks/00_quickstart.ipynb --joystick joy

The notebook must display a relickit Joystick bound to the variable named by --joystick.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser_fixture import LabPage, browser_available, jupyter_lab, open_browser, write_fake_notebook  # noqa: E402

MS = 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", type=Path, help="notebook to play (default: a generated fake-session notebook)")
    parser.add_argument("--joystick", default="joy", help="name of the Joystick variable in the notebook")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of play before the window opens")
    parser.add_argument("--step-s", type=float, default=0.05, help="fake session: seconds per step")
    parser.add_argument("--busy", action="store_true", help="fake session: spin a CPU core during the step")
    parser.add_argument("--session-fps", type=int, default=16, help="fake session: video frames per second")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot here at the end")
    args = parser.parse_args()
    reason = browser_available()
    if reason:
        sys.exit(f"cannot run: {reason}")

    root = Path(tempfile.mkdtemp(prefix="relickit-bench-"))
    if args.notebook:
        notebook = root / args.notebook.name
        shutil.copy(args.notebook, notebook)
    else:
        notebook = write_fake_notebook(root, step_s=args.step_s, busy=args.busy, fps=args.session_fps)
    try:
        with jupyter_lab(root) as lab, open_browser() as page:
            lab_page = LabPage(page)
            opened = time.monotonic()
            lab_page.open(lab.url(notebook.name))
            lab_page.run_all()
            widget_s = time.monotonic() - opened
            t_click = lab_page.start_counting()
            lab_page.click_button("start")
            lab_page.focus_pad()
            page.keyboard.down("KeyW")
            page.wait_for_function(
                f"() => window.__relickitFrames.changes.some(t => t > {t_click})", timeout=120 * MS
            )
            time.sleep(args.warmup)
            window_start = page.evaluate("() => performance.now()")
            time.sleep(args.seconds)
            window_end = page.evaluate("() => performance.now()")
            page.keyboard.up("KeyW")
            changes = lab_page.frame_changes()
            state = json.loads(
                lab_page.kernel_eval(
                    f"import json as _j; print(_j.dumps({{'fps': {args.joystick}.video_fps,"
                    f" 'shown': {args.joystick}.frames_shown, 'dropped': {args.joystick}.frames_dropped,"
                    f" 'steps': {args.joystick}.steps}})); {args.joystick}.stop()"
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
    source = args.notebook or (
        f"fake session, {args.session_fps} fps, step {args.step_s} s ({'busy' if args.busy else 'sleeping'})"
    )
    print(f"notebook: {source}")
    print(f"page + kernel + run all until the joystick shows: {widget_s:.1f} s")
    print(f"time to first frame (click start -> new frame in the page): {(first - t_click) / MS:.3f} s")
    shown_fps = len(in_window) / seconds
    print(f"shown in the browser: {shown_fps:.1f} FPS over {seconds:.1f} s (session fps {state['fps']:g})")
    print(f"per second: {per_second}")
    print(f"kernel side: {state['shown']} frames pushed, {state['dropped']} dropped, {state['steps']} steps")


if __name__ == "__main__":
    main()
