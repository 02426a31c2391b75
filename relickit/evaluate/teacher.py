"""Teacher against student on held-out dataset clips, beside the frozen start frame and the tokenizer ceiling.

    python -m relickit.evaluate.teacher --teacher runs/default/teacher/stage2.safetensors --out eval/tvs.json
    python -m relickit.evaluate.teacher --out eval/student.json     # the student alone (no teacher is shipped)
    python -m relickit.evaluate.teacher --teacher T --held-out data/eval_tokenizer_f2 --out R  # 12 held-out maps
    python -m relickit.evaluate.teacher --teacher T --held-out data/eval_12s --latent-frames 49 --out R  # 12-s clips
    python -m relickit.evaluate.teacher --compare BEFORE.json AFTER.json  # two reports' teachers, clip by clip

Clips of `latent_frames` latent frames (13: 49 frames, 3 s; a teacher trained on shorter clips is stretched to them
by YaRN, as the recipe's DMD stages score long rollouts) from an eval-split dataset (default the sample's eval
split, relickit.tutorial.sample_data: held-out MAP21 and E1M1; `--held-out`: one episode on each of twelve held-out
maps), with their true actions and poses. The teacher samples each clip whole (Euler, `teacher_steps`) from its
first frame, caption, actions and poses; the student rolls it out chunk by chunk with compressed memory (4 steps per
chunk) from the same conditions. Both are decoded by the tiny decoder and scored on frames 1.. against the truth,
beside the frozen start frame and the tokenizer ceiling, per clip and per second, and the first `strip_clips` clips
drawn as a PNG strip to look at (truth, teacher, student, tokenizer ceiling). With a teacher, its clip in one step
from pure noise is scored and drawn too (`one_step_clip`): a blur is the mean it has learnt, speckle is noise it
hands back instead of removing; and its sampler from the true clip noised to `from_truth` (0.75), which separates
what it smooths (denoising below that level) from what it cannot invent (the new frames' content, decided above it).
With a teacher, `start_frame_reliance` asks whether it uses its start frame at all: its flow-matching loss on the
clips at fixed noise levels with each clip's own clean first latent frame, another clip's, and zeros;
`control_reliance` asks the same of its actions and poses (its own, another clip's, none); and `held_out_loss` is
its loss on the clips over the training noise distribution, beside the training log's. `--split train` scores the
same kind of episodes on training maps, to tell a failure on new maps from one on every map. With `draws` > 1 the
teacher draws each clip that many times from independent noise (`scoring.draw_spread`): the truth is one more draw
for a teacher that samples its distribution, so draws that agree with each other better than with the truth are a
blur (under-dispersed), which PSNR to the truth rewards and this gap does not. `paired_change` sets two reports on
the same clips side by side (`--compare`): one rollout per clip from one noise draw moves a model's mean PSNR by a
few tenths of a dB between two equally good teachers, so a change is read against the standard error of its per-clip
changes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from ..config import MemoryConfig
from ..teacher import HELD_OUT_LEVELS, HeldOut, TeacherConfig, held_out_loss  # noqa: F401 (scripts import it from here)
from .report import clean, pictures_over_time_figure, read_json, write_report
from .scoring import change_stats, compare, mean_pictures, references
from .tokenizer import HELD_OUT, TokenizerEvalConfig, held_out_episodes

HELD_OUT_FREEDOOM2 = tuple(m for m in HELD_OUT if m.startswith("MAP"))  # the tokenizer runs' set (freedoom2.wad)


ONE_STEP = "teacher_one_step"  # the teacher's clip in one step from pure noise (one_step_clip)
FROM_TRUTH = "teacher_from_truth"  # its sampler from the true clip noised to TeacherEvalConfig.from_truth (SDEdit)
SPREAD = "teacher_spread"  # its draws from independent noise against each other and the ceiling (draw_spread)
STRIP_ROWS = ("truth", "teacher", ONE_STEP, FROM_TRUTH, "student", "tokenizer_ceiling")
MODELS = ("teacher", ONE_STEP, FROM_TRUTH, "student")  # the rows scored as models, which --compare can name


@dataclass(frozen=True)
class TeacherEvalConfig:
    clips: int = 8  # evenly spaced over the dataset's clips
    latent_frames: int = 13
    teacher_steps: int = 32
    guidance: float = 1.0  # the teacher sampler's classifier-free guidance on text (SamplerConfig.guidance; 1: off)
    # FROM_TRUTH's noise level: what the teacher adds below it is denoising, what it decides above it (the content of
    # new frames) is not measured by this row; 0: no such row
    from_truth: float = 0.75
    stride: int = 4  # clip start stride in frames
    seed: int = 0
    strip_clips: int = 3  # clips drawn in the PNG strip (0: none)
    # noise levels of start_frame_reliance; its `own` column at every level is the teacher's held-out loss curve
    reliance_sigmas: tuple[float, ...] = (0.2, 0.5, 0.8, 0.95, 1.0)
    train_shift: float = TeacherConfig.shift  # held_out_loss's noise distribution, as the teacher trains
    loss_levels: int = HELD_OUT_LEVELS
    # the dataset's split: "train" scores episodes on training maps (new trajectories), the held-out numbers' mirror
    split: str = "eval"
    # the teacher's clips per start frame from independent noise, the scored one included (scoring.draw_spread; 1: none)
    draws: int = 3


PAIRED_METRICS = ("psnr", "ssim", "sharpness", "brightness", "saturation")


@dataclass
class TeacherEval:
    report: dict
    figures: dict  # plotly figures
    strip: np.ndarray  # (H, W, 3) uint8: per strip clip, the rows of STRIP_ROWS there are


def evaluation_clips(root: str | os.PathLike, frames: int, count: int, stride: int = TeacherEvalConfig.stride,
                     split: str = TeacherEvalConfig.split) -> Iterator[tuple[int, dict]]:
    """The clips this evaluation scores, as (index, clip): `count` clips of `frames` video frames, evenly spaced over
    an eval-split dataset's clips (from a `--held-out` directory of one episode per map, one clip per map; a
    train-split one only where `split` says so). Scripts that probe a teacher on the evaluation's clips take them
    from here."""
    from ..dataset import ClipDataset

    data = ClipDataset(root, frames=frames, split=split, stride=stride)
    for i in np.linspace(0, len(data) - 1, count).round().astype(int):
        yield int(i), data[int(i)]


@torch.no_grad()
def held_out_set(root: str | os.PathLike, tokenizer, latent_frames: int = TeacherEvalConfig.latent_frames,
                 maps: tuple[str, ...] = HELD_OUT_FREEDOOM2, every: int = 500,
                 cfg: TeacherEvalConfig = TeacherEvalConfig()) -> HeldOut:
    """The clips whose loss this evaluation reports as `teacher_held_out_loss` with `--held-out root` (one clip of
    `latent_frames` per map of `maps`, by default the CLI's twelve Freedoom2 maps, episodes generated into `root` on
    first use), encoded by `tokenizer`, as a `HeldOut` the recipe's teacher stage scores every `every` steps: the
    keep rule's number while the run trains."""
    clip_frames = 1 + tokenizer.cfg.temporal_down * (latent_frames - 1)
    data = held_out_episodes(root, TokenizerEvalConfig(maps=maps, frames=max(TokenizerEvalConfig.frames, clip_frames)))
    clips = list(evaluation_clips(data, clip_frames, len(maps), cfg.stride))
    latents = torch.cat([tokenizer.encode_frames(c["frames"]) for _, c in clips])
    return HeldOut(latents.float(), [c["caption"] for _, c in clips], torch.stack([c["actions"] for _, c in clips]),
                   torch.stack([c["poses"] for _, c in clips]), every, cfg.train_shift, cfg.loss_levels, cfg.seed)


@torch.no_grad()
def loss_per_variant(model, context: torch.Tensor, variants: dict[str, tuple[torch.Tensor, ...]],
                     sigmas=TeacherEvalConfig.reliance_sigmas, seed: int = 0) -> dict:
    """The bidirectional model's flow-matching loss on variants of the same clips, {name: (latents (B, C, F, h, w),
    actions, poses)}, every later frame at noise level sigma, the same noise for every variant: {sigma: {name:
    loss}}."""
    from ..diffusion import flow_matching_loss
    from ..memory import bidirectional_visibility

    shape = next(iter(variants.values()))[0].shape
    gen = torch.Generator().manual_seed(seed)
    vis = bidirectional_visibility(shape[2])
    out = {}
    for s in sigmas:
        sigma = torch.full((shape[0], shape[2]), float(s))
        noise = torch.randn(shape, generator=gen)
        out[str(s)] = {name: flow_matching_loss(model, lat, context, actions, poses, vis, sigma=sigma,
                                                noise=noise).item() for name, (lat, actions, poses) in variants.items()}
    return out


def start_frame_reliance(model, latents: torch.Tensor, context: torch.Tensor, actions: torch.Tensor,
                         poses: torch.Tensor, sigmas=TeacherEvalConfig.reliance_sigmas, seed: int = 0) -> dict:
    """`loss_per_variant` with three first latent frames: each clip's own, the next clip's (`other`, rolled by one),
    and zeros. A model that carries its start frame forward loses more without it; at low sigma the noisy frames
    themselves tell it most of the clip, so the gap shows at high sigma."""
    firsts = {"own": latents[:, :, :1], "other": latents[:, :, :1].roll(1, 0),
              "zero": torch.zeros_like(latents[:, :, :1])}
    return loss_per_variant(model, context, {name: (torch.cat([first, latents[:, :, 1:]], 2), actions, poses)
                                             for name, first in firsts.items()}, sigmas, seed)


def control_reliance(model, latents: torch.Tensor, context: torch.Tensor, actions: torch.Tensor,
                     poses: torch.Tensor, sigmas=TeacherEvalConfig.reliance_sigmas, seed: int = 0) -> dict:
    """`loss_per_variant` with three sets of controls: each clip's own actions and poses, the next clip's (`other`,
    rolled by one), and `still` (no key pressed, the camera at its first pose throughout). A model that follows its
    controls loses more with another clip's; one whose `other` is close to `own` has learnt to ignore them, and what
    the camera does in its clips is a guess (a blur, where the truth moves)."""
    controls = {"own": (actions, poses), "other": (actions.roll(1, 0), poses.roll(1, 0)),
                "still": (torch.zeros_like(actions), poses[:, :1].expand_as(poses))}
    return loss_per_variant(model, context, {name: (latents, a, p) for name, (a, p) in controls.items()}, sigmas,
                            seed)


@torch.no_grad()
def one_step_clip(model, first: torch.Tensor, noise: torch.Tensor, context: torch.Tensor, actions: torch.Tensor,
                  poses: torch.Tensor) -> torch.Tensor:
    """The bidirectional model's clip (B, C, F, h, w) in one Euler step from pure noise: the clean `first` latent
    frame (B, C, 1, h, w), every later frame noise[:, :, 1:] at sigma 1, then x0 = x - v. A model that removes the
    noise returns its blurred mean of the clip; one too narrow to carry the noise through (the width finding of
    docs/runs/campaign.md) returns speckle."""
    from ..diffusion import timesteps, x0_from_velocity
    from ..memory import bidirectional_visibility

    x = torch.cat([first, noise[:, :, 1:]], 2)
    sigma = torch.ones(x.shape[0], x.shape[2])
    sigma[:, 0] = 0.0  # the clean first frame comes back as it is
    v = model(x, timesteps(sigma), context, actions, poses, bidirectional_visibility(x.shape[2]))
    return x0_from_velocity(x, v, sigma)


@torch.no_grad()
def teacher_vs_student(student, tokenizer, teacher=None, data_root: str | os.PathLike | None = None,
                       cfg: TeacherEvalConfig = TeacherEvalConfig(), figures: bool = True,
                       teacher_tokenizer=None) -> TeacherEval:
    """Per clip and on average, each model's frames against the truth beside the references, and a strip.
    figures=False skips the plotly figures (for machines without plotly, e.g. the GPU box). `teacher_tokenizer`:
    the tokenizer whose latents the teacher was trained on, where it is not the student's (a new tokenizer's
    teacher trains ahead of its student): the teacher's clips are encoded, decoded and given their tokenizer
    ceiling with it, the student's with `tokenizer`; the strip's ceiling row is then the teacher's."""
    from ..config import check_rope_range
    from ..diffusion import SamplerConfig, add_noise, chunk_slices, rollout, sample_teacher
    from ..play import to_uint8
    from ..tutorial import sample_data
    from .gallery import GalleryConfig, Rendered, strip
    from .scoring import draw_spread

    chunk_slices(student.cfg, cfg.latent_frames)  # the image plus whole chunks, before any work
    if teacher is not None:
        check_rope_range(teacher.cfg, cfg.latent_frames, "the teacher samples each clip whole")
    models = {"student": student.float().eval(), **({"teacher": teacher.float().eval()} if teacher is not None else {})}
    teacher_tok = teacher_tokenizer if teacher_tokenizer is not None else tokenizer
    tok_of = lambda name: tokenizer if name == "student" else teacher_tok  # noqa: E731
    pixels = lambda tok, z: to_uint8(tok.decode_tiny(z)[0].float())  # noqa: E731  latents -> (T, H, W, 3) uint8
    fps = student.cfg.fps
    gen = torch.Generator().manual_seed(cfg.seed)
    chunk = (1, student.cfg.latent_channels, student.cfg.chunk, *student.cfg.latent_size)
    rows, strips, inputs = [], [], []
    guided = teacher is not None and cfg.guidance != 1.0
    sampler = SamplerConfig(teacher_steps=cfg.teacher_steps, guidance=cfg.guidance)
    null_context = teacher.encode_text([""]) if guided else None  # the unconditional caption, once
    spread_gen = torch.Generator().manual_seed(cfg.seed + 1)  # the further draws' noise: the scored draws' stays
    data_root = data_root or sample_data("eval")
    for i, clip in evaluation_clips(data_root, student.cfg.video_frames(cfg.latent_frames),
                                    cfg.clips, cfg.stride, cfg.split):
        truth = to_uint8(clip["frames"].transpose(0, 1))
        encoded = {t: t.encode_frames(clip["frames"]) for t in dict.fromkeys((tokenizer, teacher_tok))}
        lat = encoded[teacher_tok]  # the teacher's clip (the student's where they share a tokenizer)
        acts, poses = clip["actions"][None], clip["poses"][None]
        noise = torch.randn(lat.shape, generator=gen)  # drawn with or without a teacher: the student's noise stays
        table = [[torch.randn(chunk, generator=gen) for _ in range(4)] for _ in range(cfg.latent_frames)]
        latents = {"student": rollout(student, student.new_cache(MemoryConfig()), encoded[tokenizer][:, :, :1],
                                      student.encode_text([clip["caption"]]), acts, poses, cfg.latent_frames,
                                      SamplerConfig().sigmas, lambda j, k: table[j][k]).latents}
        if teacher is not None:
            context = teacher.encode_text([clip["caption"]])
            latents["teacher"], _ = sample_teacher(
                teacher, lat[:, :, :1], cfg.latent_frames, context, acts, poses,
                sampler, null_context=null_context, noise=noise)
            latents[ONE_STEP] = one_step_clip(teacher, lat[:, :, :1], noise, context, acts, poses)
            if cfg.from_truth:
                latents[FROM_TRUTH], _ = sample_teacher(
                    teacher, lat[:, :, :1], cfg.latent_frames, context, acts, poses, sampler, null_context=null_context,
                    noise=add_noise(lat, noise, torch.full((1, cfg.latent_frames), cfg.from_truth)),
                    start_sigma=cfg.from_truth)
            inputs.append((lat, context, acts, poses))
        refs = {t: references(SimpleNamespace(tokenizer=t, decoder="tiny"), truth) for t in encoded}
        videos = {name: pixels(tok_of(name), z) for name, z in latents.items()}
        scores = {name: compare({"model": v, **refs[tok_of(name)]}, truth, fps=fps) for name, v in videos.items()}
        rows.append({"clip": i, "map": clip["map"], "episode": clip["episode"], "start": clip["start"], **scores})
        if teacher is not None and cfg.draws > 1:
            more = [sample_teacher(teacher, lat[:, :, :1], cfg.latent_frames, context, acts, poses, sampler,
                                   null_context=null_context, noise=torch.randn(lat.shape, generator=spread_gen))[0]
                    for _ in range(cfg.draws - 1)]
            draws = [videos["teacher"], *(pixels(teacher_tok, z) for z in more)]
            rows[-1][SPREAD] = draw_spread(draws, refs[teacher_tok]["tokenizer_ceiling"], fps)
        if len(strips) < cfg.strip_clips:
            names = [n for n in STRIP_ROWS if n in videos or n in ("truth", "tokenizer_ceiling")]
            ceiling = "teacher" if teacher is not None else "student"
            drawn = Rendered(None, None, {"truth": truth, **videos,
                                          "tokenizer_ceiling": refs[tok_of(ceiling)]["tokenizer_ceiling"]},
                             {**{n: s["model"] for n, s in scores.items()},
                              "tokenizer_ceiling": scores[ceiling]["tokenizer_ceiling"]})
            strips.append(strip(drawn, GalleryConfig(every=8), names))
    summary = {name: mean_pictures([r[name] for r in rows]) for name in latents}
    spread = {}
    if rows and SPREAD in rows[0]:
        spreads = [r[SPREAD] for r in rows]
        seconds = min(len(x["to_truth"]) for x in spreads)
        spread = {**{k: np.mean([x[k][:seconds] for x in spreads], 0).tolist() for k in ("to_truth", "to_each_other")},
                  "gap_db": float(np.mean([x["gap_db"] for x in spreads]))}
    reliance, controls, loss = {}, {}, None
    if len(inputs) > 1:  # a teacher, and clips to swap first frames between
        lat, ctx, acts, poses = (torch.cat(x) for x in zip(*inputs))
        reliance = start_frame_reliance(teacher, lat.float(), ctx, acts, poses, cfg.reliance_sigmas, cfg.seed)
        controls = control_reliance(teacher, lat.float(), ctx, acts, poses, cfg.reliance_sigmas, cfg.seed)
        loss = held_out_loss(teacher, lat.float(), ctx, acts, poses, cfg.train_shift, cfg.loss_levels, cfg.seed)
    report = {"settings": {**dataclasses.asdict(cfg), "models": list(models), "fps": fps,
                           "data": str(data_root)},
              "rows": rows, "summary": summary, "teacher_start_frame_reliance": reliance,
              "teacher_control_reliance": controls, "teacher_held_out_loss": loss, SPREAD: spread,
              "notes": ["each model's frames 1.. against the true clip, beside the frozen start frame (the clip's "
                        "first frame repeated) and the tokenizer ceiling (the clip through encoder + tiny decoder); "
                        "per_second: second k holds frames 1 + k * fps .. of the clip.",
                        "both models start from the encoded true first frame, with the clip's caption, actions and "
                        "poses; the student's noise is the same with or without a teacher.",
                        f"{ONE_STEP}: the teacher's clip in one step from pure noise (one_step_clip), from the "
                        "noise its sampler starts from.",
                        f"{FROM_TRUTH}: the teacher's sampler from the true clip noised to sigma "
                        f"{cfg.from_truth} with that noise (SDEdit): near the ceiling, the teacher keeps the detail "
                        "it is given, and what its own clip lacks is decided above that level.",
                        "teacher_start_frame_reliance: the teacher's flow-matching loss per noise level with each "
                        "clip's own first latent frame, another clip's and zeros (start_frame_reliance).",
                        "teacher_control_reliance: the same with each clip's own actions and poses, another clip's, "
                        "and none (no key, the first pose throughout; control_reliance).",
                        "teacher_held_out_loss: its flow-matching loss on the clips over the training noise "
                        "distribution (held_out_loss), to set beside the training log's loss.",
                        f"{SPREAD}: the teacher's {cfg.draws} clips per start frame from independent noise (the "
                        "scored one first), per second their PSNR to the tokenizer ceiling and to each other "
                        "(scoring.draw_spread); gap_db about 0 for samples of the truth's distribution, positive "
                        "where the draws agree on one guess (a blur)."]}
    curves = {name: {v: summary[name][v] for v in ("model", "frozen_start", "tokenizer_ceiling")} for name in summary}
    figs = {"teacher_pictures": pictures_over_time_figure(
        curves, "Teacher and student on held-out clips (solid: the model; dashed: references)")} if figures else {}
    width = max((x.shape[1] for x in strips), default=0)
    pad = [np.pad(x, ((0, 6), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in strips]
    return TeacherEval(report, figs, np.concatenate(pad) if pad else np.zeros((0, 0, 3), np.uint8))


def paired_change(before: dict, after: dict, name: str = "teacher", after_name: str | None = None) -> dict:
    """Model `after_name` (default: `name`) of report `after` against model `name` of `before`, two reports of this
    evaluation on the same clips: per metric the mean change over the clips, its standard error (the per-clip
    changes' standard deviation over sqrt(clips)) and how many clips went up, for the metrics both reports have;
    with teachers on both sides, both held-out losses and, where both have them, the teacher's draw spread gaps. A
    change within about two standard errors is the noise of the draws, not the model. A student against its
    teacher (`name="teacher", after_name="student"`) is the distillation gap."""
    after_name = after_name or name

    def per_clip(report: dict, field: str, key: str) -> dict:
        return {(r["episode"], r["start"]): r[field][key] for r in report["rows"] if field in r}

    a, b = per_clip(before, name, "model"), per_clip(after, after_name, "model")
    if not a or a.keys() != b.keys():
        raise ValueError(f"the reports must score {name!r} and {after_name!r} on the same clips (the same --held-out "
                         f"or --data, --clips and --seed); they hold {len(a)} and {len(b)}, "
                         f"{len(a.keys() ^ b.keys())} not in both.")
    out: dict = {"model": name if name == after_name else f"{after_name} - {name}", "clips": len(a)}
    both = [m for m in PAIRED_METRICS if all(m in s for s in (*a.values(), *b.values()))]  # older reports lack some
    for metric in both:
        out[metric] = change_stats(np.array([b[k][metric] - a[k][metric] for k in a]))
    if name == after_name == "teacher":
        out["held_out_loss"] = {"before": before.get("teacher_held_out_loss"),
                                "after": after.get("teacher_held_out_loss")}
        gaps = [per_clip(report, SPREAD, "gap_db") for report in (before, after)]
        if gaps[0] and gaps[0].keys() == gaps[1].keys():  # reports before 2026-12-04 have no draws
            out["spread_gap_db"] = change_stats(np.array([gaps[1][k] - gaps[0][k] for k in gaps[0]]))
    return out


def _report_and_model(arg: str) -> tuple[str, str | None]:
    """"report.json:student" -> ("report.json", "student"); a plain path names no model."""
    path, sep, model = arg.rpartition(":")
    return (path, model) if sep and model in MODELS else (arg, None)


def main(argv: list[str] | None = None) -> dict:
    from ..diffusion import chunk_slices
    from ..model import WorldModel
    from ..play import DEFAULT_MODEL, DEFAULT_TOKENIZER
    from ..teacher import stretch_horizon
    from ..vae import Tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", help="teacher safetensors (not shipped; without it the student is scored alone)")
    ap.add_argument("--student", default=str(DEFAULT_MODEL))
    ap.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    ap.add_argument("--teacher-tokenizer", help="the tokenizer whose latents the teacher was trained on, where not "
                    "--tokenizer (the campaign's: data/weights/world/tokenizer.safetensors)")
    ap.add_argument("--data", help="an eval-split dataset (default the sample's eval split)")
    ap.add_argument("--held-out", metavar="DIR", help="instead of --data: one episode per map of --maps, generated "
                    "into DIR on first use (relickit.evaluate.tokenizer.held_out_episodes: the tokenizer "
                    "evaluation's clips), one clip scored from each")
    ap.add_argument("--maps", default=",".join(HELD_OUT_FREEDOOM2), help="--held-out's comma-separated maps "
                    "(default Freedoom2 MAP21-MAP32); each DIR belongs to one list of maps")
    ap.add_argument("--split", choices=("eval", "train"), default=TeacherEvalConfig.split, help="train: --held-out's "
                    "episodes on training maps (give them with --maps), to set the teacher on the maps it trained on "
                    "beside the held-out ones")
    ap.add_argument("--workers", type=int, default=1, help="engine processes generating --held-out's episodes")
    ap.add_argument("--clips", type=int, help=f"clips scored (default {TeacherEvalConfig.clips}; with --held-out "
                    "one per map)")
    ap.add_argument("--latent-frames", type=int, default=TeacherEvalConfig.latent_frames, help="clip length in latent "
                    "frames (default 13: 3 s; 49: 12 s, the teacher's longest stage); --held-out's episodes are "
                    "generated long enough, so each length needs its own DIR")
    ap.add_argument("--steps", type=int, default=TeacherEvalConfig.teacher_steps, help="teacher Euler steps")
    ap.add_argument("--guidance", type=float, default=TeacherEvalConfig.guidance,
                    help="the teacher's classifier-free guidance on text (1: off)")
    ap.add_argument("--from-truth", type=float, default=TeacherEvalConfig.from_truth, metavar="SIGMA",
                    help="also score the teacher's sampler from the true clip noised to SIGMA (0: not)")
    ap.add_argument("--draws", type=int, default=TeacherEvalConfig.draws, help="the teacher's clips per start frame "
                    "from independent noise, scored against each other and the tokenizer ceiling (1: only one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--out", help="report path (.json; figures beside it)")
    ap.add_argument("--no-figures", action="store_true", help="no plotly figures (the report and strip only)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="instead of evaluating: the teacher of "
                    "report AFTER against that of BEFORE, clip by clip (paired_change; the student where a report "
                    "has no teacher); REPORT:MODEL picks the model, e.g. --compare T.json:teacher S.json:student "
                    "for the distillation gap")
    args = ap.parse_args(argv)
    if args.compare:
        (before_path, before_name), (after_path, after_name) = (_report_and_model(arg) for arg in args.compare)
        before, after = (read_json(path) for path in (before_path, after_path))
        if not (before_name and after_name):
            found = "teacher" if all("teacher" in r for r in (*before["rows"], *after["rows"])) else "student"
            before_name, after_name = before_name or found, after_name or found
        try:
            change = paired_change(before, after, before_name, after_name)
        except ValueError as err:
            ap.error(str(err))
        print(json.dumps(change))
        return change
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.teacher_tokenizer and not args.teacher:
        ap.error("--teacher-tokenizer is the teacher's: give --teacher too, or drop it")
    if args.held_out and args.data:
        ap.error("--held-out generates its own dataset: drop --data, or --held-out to read --data")
    teacher = WorldModel.load(args.teacher) if args.teacher else None
    if teacher is not None and args.latent_frames > teacher.cfg.rope_frames * teacher.cfg.yarn_factor:
        # as the recipe's later stages begin, and as its DMD stages score rollouts longer than the teacher trained on
        teacher = stretch_horizon(teacher, args.latent_frames)
        print(f"the teacher's RoPE range is stretched by YaRN to {args.latent_frames} latent frames "
              f"(factor {teacher.cfg.yarn_factor:.4g}), weights unchanged")
    student = WorldModel.load(args.student)
    try:
        chunk_slices(student.cfg, args.latent_frames)
    except ValueError as err:
        ap.error(f"--latent-frames: {err}")
    data, clips = args.data, args.clips or TeacherEvalConfig.clips
    if args.held_out:
        maps = tuple(args.maps.split(","))
        frames = max(TokenizerEvalConfig.frames, student.cfg.video_frames(args.latent_frames))
        try:  # maps outside the split (e.g. --split train with the default held-out maps) are refused, named
            data = held_out_episodes(args.held_out, TokenizerEvalConfig(maps=maps, frames=frames), args.workers,
                                     args.split)
        except ValueError as err:
            ap.error(str(err))
        clips = args.clips or len(maps)
    if args.draws < 1:
        ap.error(f"--draws is how many clips the teacher draws per start frame, at least 1 (got {args.draws})")
    if not 0 <= args.from_truth < 1:
        ap.error(f"--from-truth is a noise level below 1, or 0 for none (got {args.from_truth})")
    cfg = TeacherEvalConfig(clips=clips, latent_frames=args.latent_frames, teacher_steps=args.steps,
                            guidance=args.guidance, seed=args.seed, from_truth=args.from_truth, split=args.split,
                            draws=args.draws)
    teacher_tok = Tokenizer.load(args.teacher_tokenizer) if args.teacher_tokenizer else None
    result = teacher_vs_student(student, Tokenizer.load(args.tokenizer), teacher, data, cfg,
                                figures=not args.no_figures, teacher_tokenizer=teacher_tok)
    report = clean({**result.report, "model": {"student": args.student, "teacher": args.teacher,
                                               "tokenizer": args.tokenizer,
                                               "teacher_tokenizer": args.teacher_tokenizer or args.tokenizer,
                                               "teacher_yarn_factor": teacher.cfg.yarn_factor if teacher else None}})
    if args.out:
        out = Path(args.out)
        write_report(report, result.figures, out.parent, out.name)
        if result.strip.size:
            Image.fromarray(result.strip).save(out.with_name(f"{out.stem}_strip.png"))
    for name, s in report["summary"].items():
        print(json.dumps({"name": name, **{v: {k: s[v][k] for k in PAIRED_METRICS}
                                             for v in ("model", "frozen_start", "tokenizer_ceiling")},
                          "gain_over_frozen_db": s["gain_over_frozen_db"], "to_ceiling_db": s["to_ceiling_db"]}))
    if report["teacher_start_frame_reliance"]:
        print(json.dumps({k: report[k] for k in ("teacher_start_frame_reliance", "teacher_control_reliance",
                                                 "teacher_held_out_loss", SPREAD)}))
    return report


if __name__ == "__main__":
    main()
