"""Test helpers for the joystick: a fake session, a notebook that plays it, and a JupyterLab + Chromium driver.

Kernel side (imported by the notebook's kernel, needs only relickit): `FakeSession`, `make_joystick`,
`make_model_joystick` (the shipped model, or a random one where relickit/assets has no weights).
Host side (used by tests/test_browser.py and scripts/bench_browser_fps.py): `write_fake_notebook`,
`write_model_notebook`, `JupyterLab` (a fresh server in a temporary directory), `open_browser`, `LabPage` (run a
notebook and drive its joystick and its memory view).
Nothing here ships with relickit.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("RELICKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm, too small for Chromium's renderer
)

# ---------------------------------------------------------------- kernel side


class FakeSession:
    """A deterministic stand-in for relickit.play's session.

    Frames are a colour pattern that pans with pan_left/pan_right and scrolls with forward/backward, plus a
    bar that moves one column per frame, so every frame differs. `received` keeps every action stepped.
    `step_s` emulates model time: sleeping (`busy=False`) or spinning a CPU core (`busy=True`).
    """

    def __init__(
        self, height: int = 96, width: int = 128, fps: int = 16, frames_per_step: int = 12,
        step_s: float = 0.0, busy: bool = False, fail_after: int | None = None,
    ) -> None:
        self.height, self.width, self.fps, self.frames_per_step = height, width, fps, frames_per_step
        self.step_s, self.busy, self.fail_after = step_s, busy, fail_after
        self.received: list[Any] = []
        self.t = self.x = self.y = 0

    def reset(self, image: np.ndarray, text: str) -> np.ndarray:
        self.received, self.t, self.x, self.y = [], 0, 0, 0
        return self._frame()

    def step(self, action: Any) -> np.ndarray:
        if self.fail_after is not None and len(self.received) >= self.fail_after:
            raise RuntimeError("fake session failure")
        self._spend(self.step_s)
        self.received.append(action.clone())
        a = action.tolist()
        frames = []
        for _ in range(self.frames_per_step):
            self.t += 1
            self.x += round(4 * (a[8] - a[9]) + 2 * (a[2] - a[3]))  # pan / strafe
            self.y += round(2 * (a[0] - a[1]))  # forward / backward
            frames.append(self._frame())
        return np.stack(frames)

    def memory_stats(self) -> dict:
        latents = 1 + self.t // 4
        window = min(latents, 3)
        compressed = {4: 3 * (latents - window) // 4, 2: 12 * (latents - window) // 4}
        total = 48 * window + sum(compressed.values())
        return {
            "frames": latents, "window_tokens": 48 * window, "compressed_tokens": compressed,
            "total_tokens": total, "full_tokens": 48 * latents, "bytes": total * 2 * 8 * 256 * 2,
        }

    def _spend(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        if not self.busy:
            time.sleep(seconds)
            return
        while time.monotonic() < end:
            pass

    def _frame(self) -> np.ndarray:
        rows = (np.arange(self.height)[:, None] + self.y) % 256
        cols = (np.arange(self.width)[None, :] + self.x) % 256
        frame = np.stack(np.broadcast_arrays(rows * 2 % 256, cols * 2 % 256, (rows + cols) % 256), -1)
        frame = frame.astype(np.uint8)
        frame[:, self.t % self.width] = 255
        return frame


def make_joystick(**session_kwargs: Any) -> Any:
    """A Joystick over a FakeSession (what the fake notebook displays)."""
    from relickit.joystick import Joystick

    session = FakeSession(**session_kwargs)
    image = np.zeros((session.height, session.width, 3), np.uint8)
    return Joystick(session, image, "a fake world")


def make_model_joystick(threads: int = 1) -> Any:
    """A Joystick over the default session (relickit.tutorial) from the first bundled start frame."""
    import torch

    from relickit import tutorial
    from relickit.joystick import Joystick
    from relickit.play import load_start

    torch.set_num_threads(threads)  # the tiny model is fastest single-threaded on a shared 2-core CPU
    session, _ = tutorial.default_session()
    image, caption = load_start(index=0)
    return Joystick(session, image, caption)


# ---------------------------------------------------------------- host side


def write_fake_notebook(directory: Path, **session_kwargs: Any) -> Path:
    """A notebook that displays `joy`, a joystick over FakeSession(**session_kwargs); copies this module along."""
    kwargs = {"step_s": 0.05, **session_kwargs}
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return _write_notebook(directory, "joystick_fake.ipynb", "make_joystick", arguments)


def write_model_notebook(directory: Path) -> Path:
    """A notebook that displays `joy`, a joystick over the default model session; copies this module along."""
    return _write_notebook(directory, "joystick_model.ipynb", "make_model_joystick", "")


def _write_notebook(directory: Path, name: str, factory: str, arguments: str) -> Path:
    """A one-cell notebook `joy = factory(arguments); joy`, with this module copied beside it."""
    shutil.copy(Path(__file__), directory / "browser_fixture.py")
    cells = [f"from browser_fixture import {factory}\njoy = {factory}({arguments})\njoy"]
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
             "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4, "nbformat_minor": 5,
    }
    path = directory / name
    path.write_text(json.dumps(notebook, indent=1))
    return path


def browser_available() -> str | None:
    """None when Playwright and Chromium are there, else the reason they are not."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright python package is not installed (pip install playwright; Chromium comes from apt)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set RELICKIT_CHROMIUM)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LabConfig:
    startup_timeout_s: float = 60.0
    request_timeout_s: float = 2.0
    poll_s: float = 0.2
    shutdown_timeout_s: float = 10.0
    log_tail_chars: int = 3000  # how much of the server log an error shows


@dataclass
class JupyterLab:
    """A running JupyterLab server (fresh settings, workspaces and runtime dirs) serving `root`."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}"


@contextmanager
def jupyter_lab(root: Path, config: LabConfig = LabConfig()) -> Iterator[JupyterLab]:
    """Start JupyterLab on a free localhost port with a token; stop it (and its kernels) on exit."""
    state = Path(tempfile.mkdtemp(prefix="relickit-lab-"))
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    no_news = {"fetchNews": "false", "checkForUpdates": False}  # no network calls, no toast over the notebook
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(no_news))
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(state / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    port, token = free_port(), secrets.token_hex(16)
    log = state / "lab.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    lab = JupyterLab(root, port, token, process, log)
    try:
        deadline = time.monotonic() + config.startup_timeout_s
        while True:
            if process.poll() is not None:
                tail = log.read_text()[-config.log_tail_chars:]
                raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{tail}")
            try:
                status = f"http://127.0.0.1:{port}/api/status?token={token}"
                with urllib.request.urlopen(status, timeout=config.request_timeout_s):
                    break
            except OSError as err:
                if time.monotonic() > deadline:
                    tail = log.read_text()[-config.log_tail_chars:]
                    message = f"JupyterLab did not answer within {config.startup_timeout_s} s:\n{tail}"
                    raise TimeoutError(message) from err
                time.sleep(config.poll_s)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(config.shutdown_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def open_browser(viewport: tuple[int, int] = (1400, 1000)) -> Iterator[Any]:
    """Headless Chromium (system binary) through Playwright's sync API; yields a page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            yield page
        finally:
            browser.close()


# records the page time of every change of the last joystick image's src, and of every redraw of the memory
# view, polled each animation frame; what is shown when counting starts is not a change
_COUNTER_JS = """
() => {
  const current = () => {
    const imgs = document.querySelectorAll("img.relickit-view");
    return imgs.length ? imgs[imgs.length - 1].src : null;
  };
  const view = () => {
    const views = document.querySelectorAll(".relickit-memory");
    return views.length ? views[views.length - 1] : undefined;
  };
  const memory = () => view()?.dataset.updates;
  const state = { changes: [], last: current(), memory: [], latents: [], lastMemory: memory() };
  window.__relickitFrames = state;
  const tick = () => {
    const src = current();
    if (src && src !== state.last) {
      state.last = src;
      state.changes.push(performance.now());
    }
    const drawn = memory();
    if (drawn !== undefined && drawn !== state.lastMemory) {
      state.lastMemory = drawn;
      state.memory.push(performance.now());
      state.latents.push(Number(view().dataset.latent));
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return performance.now();
}
"""


@dataclass(frozen=True)
class PageTimeouts:
    load_ms: float = 90_000
    widget_ms: float = 90_000
    label_ms: float = 15_000


class LabPage:
    """Drive one notebook's joystick in a JupyterLab page (the last joystick on the page)."""

    def __init__(self, page: Any, timeouts: PageTimeouts = PageTimeouts()) -> None:
        self.page = page
        self.timeouts = timeouts

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_function(
            "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=self.timeouts.load_ms
        )
        # the kernel must be up before run-all, or the cells queue behind the kernel start
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.connectionStatus === 'connected'"
            " && w.sessionContext.session.kernel.status === 'idle'; }",
            timeout=self.timeouts.load_ms,
        )

    def run_all(self) -> None:
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.locator(".relickit-pad").last.wait_for(state="visible", timeout=self.timeouts.widget_ms)

    def click_button(self, name: str) -> None:
        self.page.locator(f"button.relickit-{name}").last.click()

    def focus_pad(self) -> None:
        self.page.locator(".relickit-pad").last.click()

    def pad_focused(self) -> bool:
        return self.page.evaluate(
            "() => !!document.activeElement && document.activeElement.classList.contains('relickit-pad')"
        )

    def label(self, name: str) -> str:
        return self.page.locator(f".relickit-{name}").last.inner_text()

    def wait_label(self, name: str, predicate_js: str) -> str:
        """Wait until the label's text satisfies `predicate_js` (a JS expression over `text`)."""
        self.page.wait_for_function(
            f"() => {{ const els = document.querySelectorAll('.relickit-{name}');"
            f" const text = els.length ? els[els.length - 1].textContent : ''; return {predicate_js}; }}",
            timeout=self.timeouts.label_ms,
        )
        return self.label(name)

    def image_src(self) -> str:
        return self.page.locator("img.relickit-view").last.get_attribute("src") or ""

    def start_counting(self) -> float:
        """Start recording frame changes; returns the page time (ms) counting started."""
        return self.page.evaluate(_COUNTER_JS)

    def frame_changes(self) -> list[float]:
        """Page times (ms) at which the shown frame changed since start_counting()."""
        return self.page.evaluate("() => window.__relickitFrames.changes.slice()")

    def memory_redraws(self) -> list[float]:
        """Page times (ms) at which the memory view redrew since start_counting()."""
        return self.page.evaluate("() => window.__relickitFrames.memory.slice()")

    def memory_latents(self) -> list[int]:
        """The latent frame the memory view showed after each of its redraws (memory_redraws)."""
        return self.page.evaluate("() => window.__relickitFrames.latents.slice()")

    def memory_data(self, name: str) -> str | None:
        """A data attribute of the memory view (chunk, thumbs, updates), None when it is not on the page."""
        return self.page.evaluate(
            f"() => {{ const v = document.querySelectorAll('.relickit-memory');"
            f" return v.length ? (v[v.length - 1].dataset.{name} ?? null) : null; }}"
        )

    def wait_memory(self, predicate_js: str, timeout_ms: float) -> None:
        """Wait until `predicate_js` (a JS expression over `view`, the memory view's root element) holds."""
        self.page.wait_for_function(
            f"() => {{ const v = document.querySelectorAll('.relickit-memory'); const view = v[v.length - 1];"
            f" return !!view && ({predicate_js}); }}",
            timeout=timeout_ms,
        )

    def kernel_eval(self, code: str) -> str:
        """Run `code` in the notebook's kernel (not as a cell) and return its stdout, or raise on an error."""
        result = self.page.evaluate(
            """async (code) => {
              const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              const future = kernel.requestExecute({ code, silent: false, store_history: false });
              let out = "", error = null;
              future.onIOPub = (msg) => {
                if (msg.header.msg_type === "stream") out += msg.content.text;
                if (msg.header.msg_type === "error") error = `${msg.content.ename}: ${msg.content.evalue}`;
              };
              await future.done;
              return { out, error };
            }""",
            code,
        )
        if result["error"]:
            raise RuntimeError(f"kernel error running {code!r}: {result['error']}")
        return result["out"]
