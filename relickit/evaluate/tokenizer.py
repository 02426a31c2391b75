"""How well the tokenizer sees Doom: held-out clips encoded and decoded, scored against the engine's frames.

    python -m relickit.evaluate.tokenizer --tokenizer relickit/assets/tokenizer.safetensors --out docs/eval/tokenizer

Every reconstruction is the suites' tokenizer ceiling (`scoring.tokenizer_ceiling`: the clip encoded and decoded
chunk by chunk, as play decodes) and is scored as the world model's frames are: PSNR and SSIM, and beside them
the picture statistics that PSNR hides (sharpness, brightness and saturation ratios, per-channel colour shift clip
by clip) and the first frame of each video on its own, since the causal VAE codes it alone. `TARGETS` are issue
15's quality gates. The held-out clips come from the engine (maps the tokenizer never trained on), generated once
into `--data`.
Writes report.json and strip.png (rows: truth, then each decoder, every `every`-th frame of a few clips).

    python -m relickit.evaluate.tokenizer --compare BEFORE/report.json AFTER/report.json   # two tokenizers, paired

Each report keeps every clip's scores (`per_clip`), so two tokenizers scored on the same clips are compared clip by
clip (`paired_change`): a change of a few tenths of a dB, or of a colour score, is read against the standard error
of its per-clip changes rather than against the spread between maps.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..doom import map_names
from ..vae import Tokenizer
from .report import read_json, write_json
from .scoring import change_stats, picture_frames, thumbnail, tokenizer_ceiling

HELD_OUT = tuple(m for m in map_names("eval") if m.startswith("MAP")) + ("E1M1", "E1M4", "E2M2", "E3M3", "E4M5")


@dataclass(frozen=True)
class Target:
    """A gate: the number passes when lo <= value <= hi."""

    lo: float = -np.inf
    hi: float = np.inf

    def passes(self, value: float) -> bool:
        return bool(self.lo <= value <= self.hi)

    def __str__(self) -> str:
        if np.isinf(self.hi):
            return f">= {self.lo:g}"
        return f"<= {self.hi:g}" if np.isinf(self.lo) else f"{self.lo:g}-{self.hi:g}"


# Colour is gated clip by clip (`score`): a green wall decoded beige in one clip and a grey floor tinted green in
# another cancel in a mean over clips. saturation_error is each clip's saturation ratio off 1, averaged over clips,
# held to brightness's band (issue 15's "true colours"); the mean ratio itself is reported beside it.
TARGETS: dict[str, Target] = {
    "psnr": Target(28.0), "ssim": Target(0.85), "sharpness": Target(0.85), "brightness": Target(0.97, 1.03),
    "saturation_error": Target(hi=0.03), "colour_shift": Target(hi=2.0), "first_frame_gap": Target(hi=1.0),
}


@dataclass(frozen=True)
class TokenizerEvalConfig:
    maps: tuple[str, ...] = HELD_OUT  # Freedoom2 MAP21-MAP32 and five Freedoom1 maps, never trained on
    # per clip: 1 + 4 * 24, longer than the clips the tokenizer trains on: a causal VAE whose streaming state
    # drifts past its training length shows it here (psnr_over_time)
    frames: int = 97
    seed: int = 20261201
    strip_clips: int = 4
    every: int = 8  # strip: every n-th frame
    decoders: tuple[str, ...] = field(default=("tiny", "vae"))  # the play decoder and the full Wan decoder
    # the references beside the decoders: the truth through 2x and 4x smaller pictures (scoring.thumbnail)
    thumbnails: tuple[int, ...] = (2, 4)


CLIP_FIELDS = ("maps", "frames", "seed")  # the TokenizerEvalConfig fields that pick the clips two reports pair on


def held_out_episodes(root: str | Path, cfg: TokenizerEvalConfig, workers: int = 1, split: str = "eval") -> Path:
    """The folder `root` holding one exploration episode per held-out map (an eval-split dataset with actions and
    poses, which the teacher evaluation reads too), generated there on first use. split="train": the same episodes
    on training maps (`cfg.maps` must be training maps; the evaluation's seed, not a training run's), to tell what a
    model does on the maps it trained on from what it does on held-out ones."""
    from ..dataset import generate

    return generate(root, cfg.maps, episodes=len(cfg.maps), frames_per_episode=cfg.frames, seed=cfg.seed,
                    split=split, workers=workers, progress=False)


def held_out_clips(root: str | Path, cfg: TokenizerEvalConfig, workers: int = 1) -> np.ndarray:
    """(N, T, H, W, 3) uint8: the frames of `held_out_episodes`."""
    from ..dataset import load_episodes

    return np.stack([e.frames() for e in load_episodes(held_out_episodes(root, cfg, workers))])


def frame_change(video: np.ndarray) -> float:
    """Mean absolute change from one frame to the next of a uint8 video (T, H, W, 3), in levels."""
    return float(np.abs(np.diff(video.astype(np.int16), axis=0)).mean())


def score(recon: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Mean scores over every frame of every clip (N, T, H, W, 3), the first frames' PSNR gap to the rest, and
    PSNR over time (mean of every 8 frames). colour_shift is the largest channel's mean over clips of each clip's
    absolute shift (levels); colour_shift_rgb the signed shift pooled over clips, as reports before 2026-12-03
    gave it (their colour_shift: its largest absolute value); saturation_error the mean over clips of each clip's
    saturation ratio off 1; frame_change the mean over clips of each clip's frame-to-frame change, reconstruction
    over truth: under 1 smears motion, over 1 is texture that flickers (what a discriminator may invent);
    edge_error (metrics.edge_error_frames) the mean over clips: a blur ~1, edges the truth lacks push it over 1."""
    frames = [picture_frames(r, t) for r, t in zip(recon, truth)]
    change = [frame_change(r) / c if (c := frame_change(t)) else np.nan for r, t in zip(recon, truth)]  # nan: still
    per = {k: np.stack([f[k] for f in frames]) for k in frames[0]}  # (N, T) each; colour_shift (N, T, 3)
    psnr, clip_shift = per["psnr"], per["colour_shift"].mean(1)  # (N, 3)
    clip = {"psnr": psnr.mean(1), "ssim": per["ssim"].mean(1),
            **{k: np.nanmean(per[k], 1) for k in ("sharpness", "brightness", "edge_error")},
            "saturation_error": np.abs(np.nanmean(per["saturation"], 1) - 1),
            "colour_shift": np.abs(clip_shift).max(1),  # each clip's largest channel
            "frame_change": np.array(change)}
    return {"psnr": float(psnr.mean()), "ssim": float(per["ssim"].mean()),
            **{k: float(np.nanmean(per[k])) for k in ("sharpness", "brightness", "saturation", "edge_error")},
            "saturation_error": float(clip["saturation_error"].mean()),
            "frame_change": float(np.nanmean(clip["frame_change"])),
            "colour_shift": float(np.abs(clip_shift).mean(0).max()),
            "colour_shift_rgb": clip_shift.mean(0).round(3).tolist(),
            "first_frame_psnr": float(psnr[:, 0].mean()), "later_psnr": float(psnr[:, 1:].mean()),
            "first_frame_gap": float(psnr[:, 1:].mean() - psnr[:, 0].mean()),
            "psnr_over_time": [round(float(psnr[:, s:s + 8].mean()), 3) for s in range(0, psnr.shape[1], 8)],
            "per_clip": {k: v.round(4).tolist() for k, v in clip.items()}}


def paired_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each decoder of report `after` against the same decoder of `before`, two reports on the same clips: per
    per-clip score, the mean change over the clips, its standard error and how many clips went up
    (scoring.change_stats). Reports from before 2026-12-04 keep no per-clip scores."""
    same = [{k: report["config"].get(k) for k in CLIP_FIELDS} for report in (before, after)]
    if before["clips"] != after["clips"] or same[0] != same[1]:
        raise ValueError("the reports must score the same clips (the same --data and --maps); they hold "
                         f"clips of shape {before['clips']} and {after['clips']}.")
    out = {}
    for name in before["decoders"].keys() & after["decoders"].keys():
        clips = [report["decoders"][name]["scores"].get("per_clip") for report in (before, after)]
        if None in clips:
            raise ValueError(f"a report keeps no per-clip scores of its {name!r} decoder (written before "
                             "2026-12-04): evaluate that tokenizer again.")
        shared = [k for k in clips[0] if k in clips[1]]  # frame_change and edge_error: reports from 2026-12-05 on
        out[name] = {k: change_stats(np.subtract(clips[1][k], clips[0][k])) for k in shared}
    return out


def gates(scores: dict[str, float]) -> dict[str, dict[str, Any]]:
    return {k: {"value": scores[k], "target": str(t), "pass": t.passes(scores[k])} for k, t in TARGETS.items()}


def strip(rows: list[np.ndarray], path: str | Path, every: int, gap: int = 2) -> Path:
    """A PNG of videos (each (T, H, W, 3) uint8) as rows, every `every`-th frame, on a white background."""
    rows = [r[::every] for r in rows]
    t, h, w, _ = rows[0].shape
    canvas = np.full((len(rows) * (h + gap) - gap, t * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = frame
    Image.fromarray(canvas).save(path)
    return Path(path)


def evaluate_tokenizer(tok: Tokenizer, clips: np.ndarray, cfg: TokenizerEvalConfig = TokenizerEvalConfig(),
                       out: str | Path | None = None) -> dict[str, Any]:
    """Scores and gates of each decoder the tokenizer has; with `out`, report.json and strip.png there."""
    decoders = [d for d in cfg.decoders if d == "tiny" or tok.has_wan_decoder]
    recons = {d: np.stack([tokenizer_ceiling(tok, c, d) for c in clips]) for d in decoders}
    report = {"config": asdict(cfg), "tokenizer": asdict(tok.cfg), "clips": list(clips.shape),
              "decoders": {d: {"scores": (s := score(r, clips)), "gates": gates(s)} for d, r in recons.items()},
              "thumbnails": {f"{f}x": score(thumbnail(clips, f), clips) for f in cfg.thumbnails}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "report.json", report)
        picks = np.linspace(0, len(clips) - 1, min(cfg.strip_clips, len(clips))).astype(int)
        rows = [v for i in picks for v in (clips[i], *(recons[d][i] for d in decoders))]
        strip(rows, out / "strip.png", cfg.every)
    return report


UNGATED = ("edge_error", "frame_change")  # read beside sharpness: invented speckle, smeared or flickering motion


def table(report: dict[str, Any]) -> str:
    """The gates as text: one line per decoder and gate, then the ungated scores, the thumbnails' values beside."""
    thumbs = report.get("thumbnails", {})  # reports before 2026-12-05 have none

    def line(name: str, key: str, value: float, verdict: str) -> str:
        return f"{name:5s} {key:16s} {value:8.3f}  {verdict:22s} " + " ".join(f"{t.get(key, np.nan):9.3f}"
                                                                        for t in thumbs.values())

    lines = [f"{'':5s} {'score':16s} {'value':>8s}  {'target':22s} " + " ".join(f"{'thumb ' + k:>9s}" for k in thumbs)]
    for name, r in report["decoders"].items():
        lines += [line(name, gate, g["value"], f"target {g['target']:10s} {'pass' if g['pass'] else 'FAIL'}")
                  for gate, g in r["gates"].items()]
        lines += [line(name, key, r["scores"][key], "") for key in UNGATED if key in r["scores"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", default="relickit/assets/tokenizer.safetensors", help="'' only makes the clips")
    p.add_argument("--data", default="data/eval_tokenizer", help="held-out clips (generated here on first use)")
    p.add_argument("--out", help="folder for report.json and strip.png")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--maps", help="comma-separated held-out maps (default: Freedoom2 MAP21-MAP32 and five of "
                   "Freedoom1's); each --data folder belongs to one list of maps")
    p.add_argument("--workers", type=int, default=1, help="engine processes generating the clips")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="instead of evaluating: the decoders of "
                   "report AFTER against those of BEFORE, clip by clip (paired_change)")
    a = p.parse_args(argv)
    if a.compare:
        before, after = (read_json(path) for path in a.compare)
        try:
            change = paired_change(before, after)
        except ValueError as err:
            p.error(str(err))
        for name, metrics in change.items():
            for metric, c in metrics.items():
                print(f"{name:5s} {metric:16s} {c['mean']:+8.3f} +- {c['stderr']:.3f}  up in {c['up']} of "
                      f"{before['clips'][0]} clips")
        return change
    cfg = TokenizerEvalConfig(**({"maps": tuple(a.maps.split(","))} if a.maps else {}))
    clips = held_out_clips(a.data, cfg, workers=a.workers)
    if not a.tokenizer:
        return {}
    report = evaluate_tokenizer(Tokenizer.load(a.tokenizer, device=a.device), clips, cfg, a.out)
    print(table(report))
    return report


if __name__ == "__main__":
    main()
