"""The gallery: fixed held-out cases rendered as pictures to look at, beside the numbers (docs/gallery/).

    python -m relickit.evaluate.gallery --out docs/gallery      # the shipped model; regenerate when it changes

A case is a (map, script, seed); its start and truth come from the engine exactly as in the suites (find_start).
Per case, a PNG strip with one row per video, one frame every `every` frames: the engine's truth, the model, the
frozen start frame, and the tokenizer ceiling (the truth through the tokenizer and play decoder); each row is
labelled with its PSNR, sharpness ratio and brightness ratio against the truth over the case's generated frames.
And a short GIF: truth and model side by side. `index.json` holds every case's numbers.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..doom import DoomConfig, DoomEnv
from .engine import check_eval_maps, find_start
from .report import LABELS, clean, write_json
from .scoring import compare, play_with_references
from .scripts import EngineActions, Script, action_scripts, drift_script, revisit_scripts, select_scripts
from .sessions import SessionFactory, load_assets, random_assets, session_factory, session_geometry


@dataclass(frozen=True)
class Case:
    map: str  # a held-out map
    script: str  # a revisit script (look_back, pan360, walk_back), an action script (forward, arc_left, ...) or drift
    seed: int = 0
    seconds: float = 6.0  # length of an action or drift script


MAX_BYTES = 2_000_000  # docs/gallery stays small
CASES: tuple[Case, ...] = (Case("MAP21", "look_back"), Case("E1M1", "pan360"), Case("MAP23", "walk_back"),
                           Case("E1M2", "drift"))


@dataclass(frozen=True)
class GalleryConfig:
    every: int = 12  # a strip shows frames 0, every, 2 * every, ...
    max_columns: int = 9  # ... at most this many (wider steps for longer cases)
    gif_every: int = 3  # the GIF plays every gif_every-th frame (more for long cases) ...
    gif_fps: float = 6.0  # ... at this rate
    gif_frames: int = 24  # at most
    gif_colours: int = 48  # palette size: keeps docs/gallery under MAX_BYTES (textured frames need it)
    policy: str = "compressed"
    tries: int = 30


@dataclass
class Rendered:
    case: Case
    script: Script
    videos: dict[str, np.ndarray]  # truth, model, frozen_start, tokenizer_ceiling: (T, H, W, 3) uint8 each
    scores: dict[str, Any]  # relickit.evaluate.scoring.compare of the generated frames


def parse_case(text: str) -> Case:
    """'MAP21:look_back' or 'MAP21:look_back:3' -> Case."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"a gallery case is map:script[:seed], e.g. MAP21:look_back:0; got {text!r}.")
    return Case(parts[0], parts[1], int(parts[2]) if len(parts) == 3 else 0)


def case_script(case: Case, frames_per_step: int, fps: float, controls) -> Script:
    steps = max(1, round(case.seconds * fps / frames_per_step))
    if case.script == "drift":
        return drift_script(steps, case.seed, frames_per_step)
    known = {**revisit_scripts(frames_per_step, controls), **action_scripts(frames_per_step, steps)}
    return select_scripts(known, [case.script], "gallery")[case.script]


def render_case(factory: SessionFactory, case: Case, cfg: GalleryConfig = GalleryConfig(),
                engine: EngineActions = EngineActions()) -> Rendered:
    """Play one case on a fresh session (policy cfg.policy, seed case.seed) and on the engine."""
    from ..dataset import caption

    [(wad, m)] = check_eval_maps([case.map])
    h, w, fps_step, fps, controls = session_geometry(factory(cfg.policy, case.seed))
    script = case_script(case, fps_step, fps, controls)
    doom = DoomConfig(wad=wad, map=m, height=h, width=w)
    with DoomEnv(doom) as env:
        start = find_start(doom, engine.script(script, fps_step, doom, controls), case.seed, cfg.tries, env)
    truth = start.truth.frames
    run, refs = play_with_references(factory, cfg.policy, case.seed, caption(m), script, truth)
    n = min(len(run.frames), len(truth))
    videos = {"truth": truth, "model": run.frames, **refs}
    return Rendered(case, script, {k: v[:n] for k, v in videos.items()}, compare({"model": run.frames, **refs}, truth))


@lru_cache(maxsize=1)
def _font():
    return ImageFont.load_default()


def _label(name: str, scores: dict[str, Any]) -> list[str]:
    if name == "truth":
        return ["truth (engine)"]
    s = scores[name]
    return [LABELS.get(name, name), f"{s['psnr']:.1f} dB", f"sharp {s['sharpness']:.2f}", f"bright {s['brightness']:.2f}"]


def strip(rendered: Rendered, cfg: GalleryConfig = GalleryConfig(),
          rows: Sequence[str] = ("truth", "model", "frozen_start", "tokenizer_ceiling")) -> np.ndarray:
    """One row per video, one frame every `every` frames (at most max_columns), labels on the left and on top."""
    n = len(rendered.videos["truth"])
    every = max(cfg.every, math.ceil((n - 1) / (cfg.max_columns - 1) / cfg.every) * cfg.every)
    idx = list(range(0, n, every))
    h, w = rendered.videos["truth"].shape[1:3]
    left, top, gap = 92, 14, 2
    canvas = Image.new("RGB", (left + len(idx) * (w + gap), top + len(rows) * (h + gap)), "white")
    draw, font = ImageDraw.Draw(canvas), _font()
    for c, t in enumerate(idx):
        draw.text((left + c * (w + gap) + 2, 1), f"frame {t}", fill="black", font=font)
    for r, name in enumerate(rows):
        y = top + r * (h + gap)
        for k, line in enumerate(_label(name, rendered.scores)):
            draw.text((2, y + 2 + 12 * k), line, fill="black", font=font)
        for c, t in enumerate(idx):
            canvas.paste(Image.fromarray(rendered.videos[name][t]), (left + c * (w + gap), y))
    return np.asarray(canvas)


def gif_frames(rendered: Rendered, cfg: GalleryConfig = GalleryConfig(),
               panels: Sequence[str] = ("truth", "model")) -> list[np.ndarray]:
    """Panels side by side, every gif_every-th frame (at most gif_frames), each panel named on top."""
    n = len(rendered.videos["truth"])
    step = max(cfg.gif_every, math.ceil(n / cfg.gif_frames))
    h, w = rendered.videos["truth"].shape[1:3]
    top, gap = 12, 2
    out = []
    for t in range(0, n, step):
        canvas = Image.new("RGB", (len(panels) * (w + gap) - gap, top + h), "white")
        draw = ImageDraw.Draw(canvas)
        for p, name in enumerate(panels):
            canvas.paste(Image.fromarray(rendered.videos[name][t]), (p * (w + gap), top))
            draw.text((p * (w + gap) + 2, 0), f"{LABELS.get(name, name)} {t}", fill="black", font=_font())
        out.append(np.asarray(canvas))
    return out


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: float, colours: int = 64) -> Path:
    """An adaptive-palette GIF that loops."""
    images = [Image.fromarray(f).quantize(colors=colours, method=Image.Quantize.MEDIANCUT) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=True)
    return path


def write_gallery(factory: SessionFactory, out_dir: str | Path, cases: Sequence[Case] = CASES,
                  cfg: GalleryConfig = GalleryConfig(), model_info: dict | None = None) -> dict[str, Any]:
    """Render every case into out_dir: <map>_<script>_s<seed>.png / .gif and index.json (the numbers)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for case in cases:
        r = render_case(factory, case, cfg)
        stem = f"{case.map}_{case.script}_s{case.seed}"
        Image.fromarray(strip(r, cfg)).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            out / f"{stem}.png", optimize=True)
        write_gif(gif_frames(r, cfg), out / f"{stem}.gif", cfg.gif_fps, cfg.gif_colours)
        entries.append({"case": asdict(case), "png": f"{stem}.png", "gif": f"{stem}.gif", "frames": len(r.videos["truth"]),
                        "script": r.script.to_json(), "scores": r.scores})
    index = clean({"config": asdict(cfg), "model": model_info or {}, "cases": entries})
    write_json(out / "index.json", index)
    return index


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="Render the gallery of fixed held-out cases (PNG strips and GIFs).")
    ap.add_argument("--out", default="docs/gallery")
    ap.add_argument("--model", help="world model safetensors (default relickit/assets/student.safetensors)")
    ap.add_argument("--tokenizer", help="tokenizer safetensors (default relickit/assets/tokenizer.safetensors)")
    ap.add_argument("--random", action="store_true", help="random tiny weights (smoke: pictures mean nothing)")
    ap.add_argument("--cases", help="map:script[:seed],... (default: the fixed gallery cases)")
    args = ap.parse_args(argv)
    if args.random:
        factory, info = session_factory(*random_assets()), {"weights": "random (smoke)"}
    else:
        model, tokenizer, info = load_assets(args.model, args.tokenizer)
        factory = session_factory(model, tokenizer)
    cases = CASES
    if args.cases:
        cases = tuple(parse_case(c) for c in args.cases.split(","))
    index = write_gallery(factory, args.out, cases, model_info=info)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    print(f"wrote {len(index['cases'])} cases to {args.out} ({size / 1e6:.2f} MB, {info['weights']} weights)")
    if size > MAX_BYTES:
        print(f"warning: {args.out} holds {size / 1e6:.2f} MB, more than the {MAX_BYTES / 1e6:.0f} MB a docs folder should; "
              "lower GalleryConfig.gif_frames or gif_colours, or render fewer cases.")
    return index


if __name__ == "__main__":
    main()
