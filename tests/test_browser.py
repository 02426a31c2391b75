"""End to end in a real browser: JupyterLab + headless Chromium drive the joystick of a notebook.

A fresh JupyterLab server per test (a re-opened notebook would reconnect to an old kernel with old threads).
Two notebooks: the quickstart (the shipped model, or a random one before weights exist) and a generated one over
tests/browser_fixture.FakeSession (the widget alone, at a known rate). RELICKIT_BROWSER_NOTEBOOK runs another
notebook whose cells display a Joystick bound to the variable named by RELICKIT_BROWSER_JOYSTICK (default `joy`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from browser_fixture import (
    LabPage,
    browser_available,
    jupyter_lab,
    open_browser,
    write_fake_notebook,
    write_model_notebook,
)

from relickit.keys import action_from_keys

pytestmark = pytest.mark.browser

HOLD_S = 1.0
MIN_FRAME_CHANGES = 5


QUICKSTART = Path(__file__).resolve().parents[1] / "notebooks" / "00_quickstart.ipynb"


def need_browser() -> None:
    reason = browser_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(params=["quickstart", "fake"])
def notebook(request, tmp_path: Path) -> tuple[Path, str]:
    """(notebook copied into a fresh root directory, name of the joystick variable in it)."""
    need_browser()
    root = tmp_path / "lab"
    root.mkdir()
    given = os.environ.get("RELICKIT_BROWSER_NOTEBOOK") or (QUICKSTART if request.param == "quickstart" else None)
    if given:
        source = Path(given).resolve()
        shutil.copy(source, root / source.name)
        return root / source.name, os.environ.get("RELICKIT_BROWSER_JOYSTICK", "joy")
    return write_fake_notebook(root), "joy"


def joystick_state(lab_page: LabPage, name: str) -> dict:
    code = (
        "import json as _json\n"
        f"print(_json.dumps({{'last_action': None if {name}.last_action is None else {name}.last_action.tolist(),"
        f" 'frames_shown': {name}.frames_shown, 'speed': {name}.speed.value, 'running': {name}.running}}))"
    )
    return json.loads(lab_page.kernel_eval(code).strip().splitlines()[-1])


def save_screenshot(target, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    """A screenshot of the page (full_page=False: of one element, given a locator)."""
    path = tmp_path / name
    target.screenshot(path=str(path), **({"full_page": True} if full_page else {}))
    artifacts = os.environ.get("RELICKIT_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    return path


def test_joystick_streams_and_follows_keys(notebook, tmp_path):
    path, joy = notebook
    with jupyter_lab(path.parent) as lab, open_browser() as page:
        lab_page = LabPage(page)
        lab_page.open(lab.url(path.name))
        lab_page.run_all()
        try:
            first_src = lab_page.image_src()
            lab_page.click_button("start")
            lab_page.focus_pad()
            assert lab_page.pad_focused(), "clicking the key pad must give it keyboard focus"
            lab_page.start_counting()

            page.keyboard.down("KeyW")
            time.sleep(HOLD_S)
            lab_page.wait_label("action", "text.includes('forward') && !text.includes('pan_right')")
            state = joystick_state(lab_page, joy)
            assert torch.equal(torch.tensor(state["last_action"]), action_from_keys({"W"}, state["speed"]))

            page.keyboard.down("ArrowRight")
            lab_page.wait_label("action", "text.includes('forward+pan_right')")
            state = joystick_state(lab_page, joy)
            assert torch.equal(torch.tensor(state["last_action"]), action_from_keys({"W", "Right"}, state["speed"]))
            assert lab_page.pad_focused(), "the notebook took keyboard focus away from the key pad"

            fps_text = lab_page.label("fps")
            fps = float(re.match(r"([\d.]+) FPS", fps_text).group(1))
            assert fps > 0, f"FPS readout is {fps_text!r}"
            changes = lab_page.frame_changes()
            assert len(changes) >= MIN_FRAME_CHANGES, f"the page showed only {len(changes)} new frames"
            assert lab_page.image_src() != first_src

            save_screenshot(page, tmp_path, "joystick_browser.png")

            # focus loss releases every key, even though no keyup ever arrives
            page.evaluate("() => document.activeElement.blur()")
            lab_page.wait_label("action", "text.includes('static')")
            page.keyboard.up("ArrowRight")
            page.keyboard.up("KeyW")

            # on-screen buttons press while held
            button = page.locator(".relickit-key[data-key='S']").last
            button.hover()
            page.mouse.down()
            lab_page.wait_label("action", "text.includes('backward')")
            page.mouse.up()
            lab_page.wait_label("action", "text.includes('static')")
        except Exception:
            save_screenshot(page, tmp_path, "joystick_browser_failure.png")
            raise
        finally:
            with contextlib.suppress(Exception):  # the server's shutdown ends the kernel anyway
                lab_page.kernel_eval(f"{joy}.stop()")


MEMORY_TIMEOUT_MS = 120_000  # the shipped model steps in ~0.5 s on a busy 2-core CPU; a 360-degree pan is 6 steps
LATENT_STEPS = 2  # redraws of one chunk's later latent frames (a chunk has 3; the first is drawn on arrival)


def test_memory_view_updates_and_compares_a_bookmark(tmp_path):
    """Switch the memory view on, bookmark the start view, pan right a full turn: the view redraws while playing,
    steps through each chunk's latent frames on its own (the kernel sends one state per chunk), shows thumbnails,
    and puts the bookmarked view beside the live one with a PSNR when the camera is back."""
    need_browser()
    root = tmp_path / "lab"
    root.mkdir()
    path = write_model_notebook(root)
    with jupyter_lab(root) as lab, open_browser() as page:
        lab_page = LabPage(page)
        lab_page.open(lab.url(path.name))
        lab_page.run_all()
        try:
            assert lab_page.memory_data("chunk") is None, "the memory view must be off by default"
            lab_page.click_button("memory-toggle")
            lab_page.wait_memory("true", MEMORY_TIMEOUT_MS)
            lab_page.click_button("bookmark")
            lab_page.wait_label("memory-message", "text === 'bookmarked video frame 0'")
            lab_page.click_button("start")
            lab_page.focus_pad()
            page.keyboard.down("ArrowRight")
            lab_page.wait_memory("Number(view.dataset.chunk) >= 2", MEMORY_TIMEOUT_MS)
            chunk = int(lab_page.memory_data("chunk"))
            lab_page.wait_memory(f"Number(view.dataset.chunk) > {chunk}", MEMORY_TIMEOUT_MS)  # updates while playing
            # within one chunk's display the page redraws as each of its latent frames comes on screen: it changed
            # at least twice (latent frame 1 -> 2 -> 3) between two states from the kernel
            lab_page.wait_memory(f"Number(view.dataset.steps) >= {LATENT_STEPS}", MEMORY_TIMEOUT_MS)
            shown = json.loads(lab_page.kernel_eval(
                "import json as _j\n"
                "print(_j.dumps({'chunks': joy.memory.tracker.chunks, 'sent': joy.memory.refreshes}))"
            ).strip().splitlines()[-1])
            drawn = int(lab_page.memory_data("updates"))
            assert drawn > shown["sent"], f"the page drew {drawn} times for {shown['sent']} states sent"
            lab_page.wait_memory("Number(view.dataset.thumbs) > 0", MEMORY_TIMEOUT_MS)
            lab_page.wait_memory("!!view.querySelector('.relickit-bookmark-compare:not([hidden])')", MEMORY_TIMEOUT_MS)
            psnr = page.locator(".relickit-bookmark-compare:not([hidden])").last.get_attribute("data-psnr")
            assert float(psnr) > 0, psnr
            assert page.locator(".relickit-memory-timeline").last.bounding_box()["width"] > 100
            page.keyboard.up("ArrowRight")
            save_screenshot(page, tmp_path, "memory_view_browser.png")
            save_screenshot(page.locator(".relickit-memory-panel").last, tmp_path, "memory_view_panel.png", False)
            state = json.loads(lab_page.kernel_eval(
                "import json as _j\n"
                "_s = joy.memory.view.state\n"
                "print(_j.dumps({'verified': _s['verified'], 'error': _s['error'], 'top': len(_s['top']),"
                " 'comparison': joy.memory.tracker.comparison is not None}))"
            ).strip().splitlines()[-1])
            assert state["verified"] and state["error"] < 1e-3 and state["top"] > 0 and state["comparison"], state

            lab_page.click_button("memory-toggle")  # off: the view, the hook and the refresh thread go away
            page.wait_for_function("() => !document.querySelector('.relickit-memory')", timeout=MEMORY_TIMEOUT_MS)
            off = json.loads(lab_page.kernel_eval(  # the producer unhooks between two steps
                "import json as _j, threading as _t, time as _time\n"
                "_off = lambda: (sum(len(m._forward_pre_hooks) for m in joy.session.model.modules()),"
                " [t.name for t in _t.enumerate() if t.name == 'relickit-memory-view'])\n"
                "_end = _time.monotonic() + 10\n"
                "while _off() != (0, []) and _time.monotonic() < _end: _time.sleep(0.1)\n"
                "print(_j.dumps(_off()))"
            ).strip().splitlines()[-1])
            assert off == [0, []], off
        except Exception:
            save_screenshot(page, tmp_path, "memory_view_browser_failure.png")
            raise
        finally:
            with contextlib.suppress(Exception):
                lab_page.kernel_eval("joy.stop()")
