"""The recipe that trains the default model, stage by stage, each stage resumable and skipped once done.

    data -> tokenizer -> latents -> teacher (3-stage horizon curriculum) -> ode -> hybrid -> dmd (curriculum) -> export

    python -m relickit.recipe --out runs/default --stages all            # on a GPU machine
    python -m relickit.recipe --out runs/f4c16 --tokenizer data/weights/tokenizer/f4c16.safetensors \
        --size 256x12 --minutes teacher=12 hybrid=3 dmd=4                  # a trained tokenizer, a model size
    RELICKIT_SMOKE=1 python -m relickit.recipe --out /tmp/smoke           # every stage, a few steps, on CPU

Stage outputs live in `out/` (data/, tokenizer.safetensors, latents.safetensors, teacher/stage*.safetensors,
ode.safetensors, hybrid.safetensors, dmd/stage*.safetensors); `export` writes the shipped assets (int8 student,
int8 tokenizer without the Wan decoder) into relickit/assets/. `--tokenizer` copies a trained tokenizer in as
out/tokenizer.safetensors (the tokenizer stage is then skipped) and builds the model for its latent layout;
`--size` sets the model's width and depth (relickit.config.model_for); `--minutes` sets the stages' time limits;
`--student-from` starts the student from another checkpoint than its teacher (a narrower model for the CPU);
`--student-layers` keeps some of its start's blocks (a shallower one, without a second checkpoint to carry; by
default 3, the shipped student's depth); `--dmd-from` starts the DMD stages from a given student (more DMD for
the shipped one, without its hybrid and ODE stages), `--dmd-stages` picks which of them run.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import filecmp
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoint
from .checkpoint import atomic_copy
from .config import (LATENT_SIGMA, MemoryConfig, ModelConfig, layout_diff, layout_fields, model_for, parse_size, preset,
                     size_fields)
from .diffusion import SamplerConfig, chunk_slices
from .distill import DistillConfig, DMDPair, ODESet, check_rollout, dmd_mix_loss_fn, hybrid_loss_fn, make_ode_set
from .latents import LatentClips, encode_clips
from .memory import hybrid_visibility
from .model import WorldModel
from .teacher import (STAGE_MODEL, Stage, TeacherConfig, check_architecture, load_weights, newest_model, numbered,
                      stage_config, train_teacher)
from .train import TrainConfig, train
from .train_tokenizer import TokenizerTrainConfig
from .vae import LAYOUTS, VAEConfig, read_config, wan_decoder_part

SHIPPED_LAYOUT = "f4c16"  # the shipped pair's latent layout (relickit/assets, since 2026-12-02)
# the shipped student's teacher (width, depth) and the blocks of it the student keeps: three 384-wide blocks are the
# joystick's CPU budget (docs/runs/campaign.md, "CPU cost of shallow, wide sizes"); shipped since run 12, 2026-12-04
TEACHER_SIZE = (384, 5)
STUDENT_LAYERS = 3

# what a student must share with its teacher to be distilled from it: the latents it streams and the chunk it denoises
STUDENT_MUST_MATCH = ("height", "width", "fps", "latent_channels", "spatial_down", "temporal_down", "chunk", "controls")

COMPILE_BACKEND = "inductor"  # --compile's torch.compile backend
STAGES = ("data", "tokenizer", "latents", "teacher", "ode", "hybrid", "dmd", "export")
ASSETS = Path(__file__).parent / "assets"
TOKENIZER = "tokenizer.safetensors"  # the run's tokenizer, in out/
# --minutes KEY=M: the time limit each key sets (a stage also stops at its step count; 0 = no time limit)
MINUTES = {
    "tokenizer": "the tokenizer's VAE stage",
    "tiny_decoder": "the tokenizer's tiny-decoder stage",
    "teacher": "the first teacher stage (the short horizon, where the teacher learns most)",
    "teacher_long": "each longer-horizon teacher stage",
    "hybrid": "the hybrid-forcing student",
    "dmd": "each DMD stage",
}


@dataclass(frozen=True)
class DMDStage:
    latent_frames: int  # rollout length
    steps: int
    teacher_stage: int  # which teacher stage scores it (the one of matching horizon)


@dataclass(frozen=True)
class RecipeConfig:
    # the shipped student's teacher: its layout and size, with the velocity skip
    model: ModelConfig = field(default_factory=lambda: model_for(LAYOUTS[SHIPPED_LAYOUT], *TEACHER_SIZE,
                                                                 sigma_data=LATENT_SIGMA))
    episodes: int = 200  # exploration episodes over the 20 training maps
    frames_per_episode: int = 600
    workers: int = 16
    clips: int = 1024  # long clips encoded once for teacher and student
    clip_latents: int = 49  # latent frames per encoded clip (the longest horizon)
    palindrome: float = 0.3
    # the latents stage draws its clips with their dominant actions balanced to this power (ClipDataset.balance):
    # 1 draws camera tilts and vertical moves about twice as often as they come (17% -> 36% of the clips), 0 draws
    # what a player's walks and pans look like. Run 20 (docs/runs/campaign.md): 0 gave a lower held-out loss (0.1951
    # against 0.1977) and the same pictures; 1 stays, the draw the walking students were distilled from
    balance: float = 1.0
    # encode each latent frame's video frame alone too (LatentClips.images): every stage then draws all windows of
    # a clip, not only its prefix (37 windows of 13 in 49: run 5's teacher over-fitted 4,096 prefixes, training
    # loss 0.159 against 0.195 held out), for a quarter more encoding
    windows: bool = True
    # stages stop at their step count or their time limit (one H100, ~10-minute device calls), whichever is first
    tokenizer: TokenizerTrainConfig = field(default_factory=lambda: TokenizerTrainConfig(
        vae=LAYOUTS[SHIPPED_LAYOUT],
        vae_train=TrainConfig(steps=20_000, lr=3e-4, batch_size=8, warmup=200, log_every=50, ckpt_every=1000,
                              time_limit_s=300, mixed_precision="bf16"),
        tiny_train=TrainConfig(steps=10_000, lr=1e-3, batch_size=8, warmup=100, log_every=50, ckpt_every=1000,
                               time_limit_s=100, mixed_precision="bf16")))
    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig(
        # step caps far above what a time limit allows: with the batch gathered on the GPU, the 384 x 3 teacher
        # could pass 20,000 steps in one 19-minute campaign run and end early with device time left
        stages=(Stage(13, 1_000_000), Stage(25, 1_000_000), Stage(49, 1_000_000)),
        train=TrainConfig(lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01, warmup=200, ema_decay=0.999, batch_size=128,
                          log_every=50, ckpt_every=1000, time_limit_s=45, mixed_precision="bf16")))
    teacher_first_stage_s: float = 120  # the first (short) stage gets more time than the fine-tuning stages
    warm_start: str | None = None  # a teacher checkpoint every stage-0 run starts from (continuing earlier runs)
    # a directory of the evaluation's held-out episodes (relickit.evaluate.teacher.held_out_set, generated there on
    # first use): each teacher stage logs its held-out loss every `held_out_every` steps (teacher/stage<i>/
    # held_out.jsonl), the number a run is kept by, while it trains; None: not measured
    held_out: str | None = None
    held_out_every: int = 500
    # a world model the student starts from instead of its teacher's weights: a student narrower than its teacher
    # (the CPU budget), e.g. a teacher of that size trained beside it; same latent layout and chunk as the teacher
    student_from: str | None = None
    # the student keeps this many of its start's blocks (relickit.teacher.shrink): a 384 x 3 student of a 384 x 5
    # teacher for the joystick's CPU budget, without carrying a second checkpoint; None keeps them all
    student_layers: int | None = STUDENT_LAYERS
    # a trained tokenizer checkpoint used instead of the tokenizer stage (copied to out/; model must fit its layout)
    tokenizer_from: str | None = None
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(memory=MemoryConfig(window=3)))
    ode_batches: int = 16
    ode_batch: int = 64
    ode_latents: int = 25
    hybrid_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, lr=1e-4, betas=(0.9, 0.99), warmup=100, batch_size=64, ema_decay=0.99, log_every=50,
        ckpt_every=1000, time_limit_s=90, mixed_precision="bf16"))
    # the rollout curriculum, 3 -> 6 -> 12 s: 20 s of play darkened a student distilled on the first two alone (run 12)
    dmd: tuple[DMDStage, ...] = (DMDStage(13, 2000, 0), DMDStage(25, 2000, 1), DMDStage(49, 2000, 2))
    # a student the DMD curriculum starts from instead of the hybrid stage's (out/hybrid.safetensors), e.g. the
    # shipped one, to distil it on without its hybrid and ODE stages; the student's architecture
    dmd_from: str | None = None
    # the curriculum's stages this run trains (None: all); the others are skipped (one done before still hands its
    # student on), so `dmd_from` + (2,) in a new run directory continues a student at the longest rollout alone
    dmd_stages: tuple[int, ...] | None = None
    # stages trained together as one mixed stage (e.g. (0, 0, 0, 2)): the student cycles through their rollout
    # lengths in this order, a critic cycle (`distill.critic_steps` steps: one generator update) at a time, each
    # length scored by its own stage's teacher, one critic for all; repeats weight a length. Short rollouts taught
    # run 15's C to walk and long ones taught B the colours of long play: one stage keeps both. It trains and is
    # written as the mix's longest stage; the other stages named are not trained on their own
    dmd_mix: tuple[int, ...] | None = None
    dmd_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr=5e-5, betas=(0.0, 0.999), batch_size=32, ema_decay=0.99, log_every=10, ckpt_every=200,
        time_limit_s=45, mixed_precision="bf16"))
    seed: int = 0  # episodes, clips and batches; a campaign run that continues a teacher takes a new one (new data)

    def student_model(self) -> ModelConfig:
        """The student's architecture: the teacher's, or that of the checkpoint in `student_from`, with
        `student_layers` blocks when given."""
        start = self.model if self.student_from is None else checkpoint.load_config(self.student_from, "world_model",
                                                                                     ModelConfig)
        if self.student_layers is None:
            return start
        if not 1 <= self.student_layers <= start.layers:
            raise ValueError(f"student_layers={self.student_layers}: the student keeps 1 to {start.layers} of the "
                             f"blocks it starts from (--student-layers).")
        return dataclasses.replace(start, layers=self.student_layers)

    @classmethod
    def smoke(cls) -> "RecipeConfig":
        """Every stage for a few steps with a 2-layer model: checks the wiring on a CPU in a few minutes."""
        quick = dict(batch_size=2, warmup=0, log_every=1, ckpt_every=0)
        return cls(
            model=preset("tiny", layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8, rope_frames=7),
            episodes=2, frames_per_episode=64, workers=1, clips=4, clip_latents=13, palindrome=0.5,
            tokenizer=TokenizerTrainConfig.smoke(vae=VAEConfig(base_dim=8, dim_mult=(1, 2, 2, 2))),
            teacher=TeacherConfig(stages=(Stage(7, 2), Stage(13, 1)), train=TrainConfig(steps=1, **quick)),
            distill=DistillConfig(memory=MemoryConfig(window=3, capacity=64), sampler=SamplerConfig(teacher_steps=4)),
            ode_batches=1, ode_batch=2, ode_latents=7,
            hybrid_train=TrainConfig(steps=2, **quick),
            dmd=(DMDStage(7, 2, 0), DMDStage(13, 1, 1)),
            dmd_train=TrainConfig(steps=1, betas=(0.0, 0.999), **quick), student_layers=None,
        )

    def check(self) -> None:
        """Shapes and horizons of every stage, checked before the first stage runs: a late stage that cannot run
        should not fail hours into the recipe."""
        cfg, stages, dist = self.model, self.teacher.stages, self.distill
        if self.tokenizer_from is not None:
            check_tokenizer(cfg, read_config(self.tokenizer_from), f"the tokenizer {self.tokenizer_from}")
        else:
            check_tokenizer(cfg, self.tokenizer.vae, "the recipe's tokenizer config (RecipeConfig.tokenizer.vae)")
        if self.warm_start is not None:  # before hours of data and latents, not at the teacher stage
            check_architecture(cfg, self.warm_start, deeper=True, narrower=True)
        student = self.student_model()
        differ = {k: (getattr(student, k), getattr(cfg, k)) for k in STUDENT_MUST_MATCH
                  if getattr(student, k) != getattr(cfg, k)}
        if differ:
            raise ValueError(f"the student {self.student_from} does not stream the teacher's latents; (student, "
                             f"teacher): {differ}. Start it from a model built for the same tokenizer (model_for).")
        base = stages[0]
        frames = {f"teacher stage {i}": s.latent_frames for i, s in enumerate(stages)}
        frames |= {"ode_latents": self.ode_latents} | {f"dmd stage {i}": s.latent_frames for i, s in enumerate(self.dmd)}
        for name, f in frames.items():
            chunk_slices(cfg, f)
            if f > self.clip_latents:
                raise ValueError(f"{name} uses {f} latent frames, but the encoded clips hold clip_latents="
                                 f"{self.clip_latents}; raise clip_latents to {max(frames.values())}.")
        ode = next((s for s in stages if s.latent_frames >= self.ode_latents), None)
        if ode is None:
            raise ValueError(f"ode_latents={self.ode_latents} is longer than every teacher stage "
                             f"{[s.latent_frames for s in stages]}; add a longer teacher stage or shorten ode_latents.")
        check_rollout(stage_config(cfg, ode, base), self.ode_latents, dist, "the ODE set's teacher")
        hybrid_visibility(self.ode_latents, cfg.chunk, dist.noisy_blocks, dist.memory)
        if self.dmd_from is not None:
            check_architecture(student, self.dmd_from)
        if self.dmd_stages is not None and not (self.dmd_stages and set(self.dmd_stages) <= set(range(len(self.dmd)))):
            raise ValueError(f"dmd_stages={self.dmd_stages}: name some of the curriculum's stages 0..{len(self.dmd) - 1}.")
        if self.dmd_mix is not None:
            lengths = {self.dmd[i].latent_frames for i in set(self.dmd_mix) if 0 <= i < len(self.dmd)}
            if not set(self.dmd_mix) <= set(range(len(self.dmd))) or len(lengths) < 2:
                raise ValueError(f"dmd_mix={self.dmd_mix}: name curriculum stages 0..{len(self.dmd) - 1} of at "
                                 "least two rollout lengths, e.g. 0,2 (--dmd-mix).")
            if len(lengths) < len(set(self.dmd_mix)):
                raise ValueError(f"dmd_mix={self.dmd_mix}: two of its stages roll out the same length; name one.")
            if self.dmd_stages is not None:
                raise ValueError("dmd_mix trains its stages as one; leave dmd_stages out (--dmd-stages or --dmd-mix).")
        for i, st in enumerate(self.dmd):
            if not 0 <= st.teacher_stage < len(stages):
                raise ValueError(f"dmd stage {i} names teacher stage {st.teacher_stage}; there are {len(stages)}.")
            check_rollout(stage_config(cfg, stages[st.teacher_stage], base), st.latent_frames, dist,
                          f"dmd stage {i}, scored by teacher stage {st.teacher_stage}")


def check_tokenizer(model: ModelConfig, vae: VAEConfig, what: str) -> None:
    """Refuse a tokenizer whose latents are not the ones the model is built for, naming the fix."""
    diff = layout_diff(model, vae)
    if diff:
        raise ValueError(
            f"{what} does not make the latents the model reads; (model, tokenizer): {diff}. Build the model for the "
            "tokenizer with relickit.config.model_for(tokenizer config, dim, layers) (the recipe's CLI does: "
            "--tokenizer PATH [--size DIMxLAYERS]), or use a tokenizer of the model's layout.")


def use_tokenizer(src: str | Path, out: Path) -> None:
    """Copy a trained tokenizer (and its split Wan decoder, if there) in as the run's tokenizer: the tokenizer
    stage then has nothing to do. A run that already has another tokenizer is refused: its later stage outputs
    were made with that one."""
    src, dst = Path(src), out / TOKENIZER
    pairs = [(src, dst)]
    if wan_decoder_part(src).exists():
        pairs.append((wan_decoder_part(src), wan_decoder_part(dst)))
    for a, b in pairs:
        if b.exists() and not filecmp.cmp(a, b, shallow=False):
            raise ValueError(f"{b} is another tokenizer than {a}, and this run's later stages were made with it; "
                             f"start a new --out for {a}, or delete {b} and the stage outputs after it.")
    for a, b in pairs:
        if not b.exists():
            atomic_copy(a, b)


def with_minutes(recipe: RecipeConfig, minutes: dict[str, float]) -> RecipeConfig:
    """The recipe with the time limits `minutes` names (keys of MINUTES) replaced. A teacher budget of 0 trains
    those teacher stages no steps (each passes the stage before it on, RoPE stretched): `teacher_long=0` is the first
    stage alone. Other stages are left out with the recipe's `stages`, not with 0 minutes."""
    unknown = set(minutes) - set(MINUTES)
    if unknown:
        raise ValueError(f"unknown time budgets {sorted(unknown)}; the keys are {list(MINUTES)}.")
    skipped = sorted(k for k, v in minutes.items() if v == 0 and k not in ("teacher", "teacher_long"))
    if skipped:
        raise ValueError(f"{skipped} = 0 minutes: leave a stage out with --stages instead (a time limit of 0 is none).")
    seconds = {k: 60 * v for k, v in minutes.items()}

    def limit(cfg: TrainConfig, key: str) -> TrainConfig:
        return dataclasses.replace(cfg, time_limit_s=seconds[key]) if seconds.get(key) else cfg

    tok, teacher = recipe.tokenizer, recipe.teacher
    stages = tuple(dataclasses.replace(s, steps=0) if seconds.get("teacher_long" if i else "teacher") == 0 else s
                   for i, s in enumerate(teacher.stages))
    return dataclasses.replace(
        recipe,
        tokenizer=dataclasses.replace(tok, vae_train=limit(tok.vae_train, "tokenizer"),
                                      tiny_train=limit(tok.tiny_train, "tiny_decoder")),
        teacher=dataclasses.replace(teacher, stages=stages, train=limit(teacher.train, "teacher_long")),
        teacher_first_stage_s=seconds.get("teacher", recipe.teacher_first_stage_s),
        hybrid_train=limit(recipe.hybrid_train, "hybrid"), dmd_train=limit(recipe.dmd_train, "dmd"))


def parse_minutes(items: list[str]) -> dict[str, float]:
    """["teacher=12", "dmd=4"] -> {"teacher": 12.0, "dmd": 4.0}."""
    minutes = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            minutes[key] = float(value)
        except ValueError:
            minutes[key] = float("nan")
        if key not in MINUTES or not minutes[key] >= 0:
            raise ValueError(f"--minutes {item!r}: write KEY=MINUTES (e.g. teacher=12) with a key of "
                             f"{list(MINUTES)} and minutes >= 0.")
    return minutes


def _runs(out: Path, name: str, cfg: TrainConfig, steps: int | None = None) -> TrainConfig:
    return dataclasses.replace(cfg, out_dir=str(out / "runs" / name), steps=cfg.steps if steps is None else steps)


def dmd_cycle(recipe: RecipeConfig, i: int) -> tuple[int, ...]:
    """The curriculum stages whose rollouts DMD stage `i` cycles through when it trains: (i,), the mix when `i` is
    the mix's longest stage, () when this run does not train it (dmd_stages, or a shorter stage of the mix)."""
    if recipe.dmd_mix is not None:
        longest = max(set(recipe.dmd_mix), key=lambda j: recipe.dmd[j].latent_frames)
        return recipe.dmd_mix if i == longest else ()
    return (i,) if recipe.dmd_stages is None or i in recipe.dmd_stages else ()


def cycled(sources: list, every: int):
    """index -> a batch of sources[k] for the k-th run of `every` indices, in turn: one batch source per
    `every` consecutive batches (a critic cycle of DMD), round and round."""
    if len(sources) == 1:
        return sources[0]
    return lambda index: sources[(index // every) % len(sources)](index)


def newest_student(out: str | Path) -> tuple[WorldModel, str] | None:
    """The newest DMD student of a recipe run directory, and where it came from: the DMD stage running after the last
    finished one, at its newest checkpoint (the student of its EMA pair; checkpoints come every
    `dmd_train.ckpt_every` steps), else the last finished stage (`dmd/stage<i>.safetensors`); None before any. What a
    GPU machine that can go back at any minute should bring home, as `newest_teacher` is for the teacher."""
    out = Path(out)
    return newest_model(numbered(out / "dmd", "stage", ".safetensors"), numbered(out / "runs", "dmd"), "student.")


def run(recipe: RecipeConfig, out: str | Path, stages=STAGES, device: str | None = None, log=print,
        data: str | Path | None = None, assets: str | Path | None = None) -> None:
    """Run the named stages; `data` puts the (regenerable) dataset elsewhere than out/data; `export` writes the
    play assets to `assets` (default out/assets; relickit/assets is what the quickstart loads)."""
    recipe.check()
    out = Path(out)
    if recipe.tokenizer_from is None and (out / TOKENIZER).exists():  # a resumed run: the model must fit it too
        check_tokenizer(recipe.model, read_config(out / TOKENIZER), f"this run's tokenizer {out / TOKENIZER}")
    if recipe.tokenizer_from is not None:
        use_tokenizer(recipe.tokenizer_from, out)
        log(f"tokenizer: {recipe.tokenizer_from} (as {out / TOKENIZER})")
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data) if data is not None else out / "data"
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = recipe.model
    clip_frames = cfg.video_frames(recipe.clip_latents)
    t0 = time.perf_counter()

    def done(name: str) -> None:
        log(f"[{time.perf_counter() - t0:7.1f}s] {name} done")

    if "data" in stages:
        from .dataset import generate
        from .doom import TRAIN_MAPS

        maps = [m for _, m in TRAIN_MAPS]
        generate(data, maps, recipe.episodes, recipe.frames_per_episode, seed=recipe.seed,
                 height=cfg.height, width=cfg.width, workers=recipe.workers)
        done("data")
    if "tokenizer" in stages and not (out / TOKENIZER).exists():
        from .train_tokenizer import clip_dataset, train_tokenizer

        tcfg = dataclasses.replace(recipe.tokenizer, run_dir=str(out / "runs" / "tokenizer"),
                                   out=str(out / TOKENIZER))
        train_tokenizer(tcfg, clip_dataset(str(data), tcfg.frames, tcfg.vae), resume=True)
        done("tokenizer")
    if "latents" in stages and not (out / "latents.safetensors").exists():
        from .dataset import ClipDataset
        from .vae import Tokenizer

        tok = Tokenizer.load(out / TOKENIZER).to(device).eval()
        clip_set = ClipDataset(data, frames=clip_frames, split="train", palindrome=recipe.palindrome,
                               stride=4, seed=recipe.seed, balance=recipe.balance)
        latents = encode_clips(tok, clip_set, recipe.clips, seed=recipe.seed, images=recipe.windows,
                               workers=recipe.workers if device != "cpu" else 0)
        latents.save(out / "latents.safetensors")
        latents.starts().save(out / "starts.safetensors")
        done("latents")
    # the teacher trains on whole clips; ODE sampling and rollouts need only each clip's image latent
    clips = LatentClips.load(out / "latents.safetensors") if "teacher" in stages else None
    if set(stages) & {"ode", "hybrid", "dmd"}:
        clips = LatentClips.load(out / ("latents.safetensors" if (out / "latents.safetensors").exists() else "starts.safetensors"))

    def batches_for(train_cfg: TrainConfig):
        return lambda latent_frames: clips.batches(latent_frames, train_cfg.batch_size, recipe.seed,
                                                   cfg.temporal_down, device)

    if "teacher" in stages:  # stage checkpoints: out/teacher/stage<i>.safetensors, runs in out/teacher/stage<i>/
        tc = dataclasses.replace(recipe.teacher, train=dataclasses.replace(recipe.teacher.train, out_dir=str(out / "teacher")))
        first = dataclasses.replace(tc, stages=tc.stages[:1], train=dataclasses.replace(tc.train, time_limit_s=recipe.teacher_first_stage_s))
        held = None
        if recipe.held_out is not None:
            from .evaluate.teacher import held_out_set
            from .vae import Tokenizer

            held = held_out_set(recipe.held_out, Tokenizer.load(out / TOKENIZER).eval(),  # at the first stage's horizon
                                latent_frames=recipe.teacher.stages[0].latent_frames, every=recipe.held_out_every)
        train_teacher(cfg, batches_for(tc.train), first, inits=[recipe.warm_start], resume=True, device=device,
                      held_out=held)
        train_teacher(cfg, batches_for(tc.train), tc, resume=True, device=device, held_out=held)
        done("teacher")
    base = recipe.teacher.stages[0]

    student_cfg = recipe.student_model()

    def model_at(arch: ModelConfig, i: int, weights: str | Path, shrink: bool = False) -> WorldModel:
        """A model of architecture `arch` with teacher stage i's RoPE range, from `weights` (with `shrink`, a deeper
        checkpoint's blocks at new_block_positions)."""
        m = WorldModel(stage_config(arch, recipe.teacher.stages[i], base)).to(device)
        load_weights(m, weights, shrink_deeper=shrink)
        return m

    def teacher_at(i: int) -> WorldModel:
        return model_at(cfg, i, out / "teacher" / f"stage{i}.safetensors").eval()

    def stage_index(latent_frames: int) -> int:
        return next(i for i, s in enumerate(recipe.teacher.stages) if s.latent_frames >= latent_frames)

    if "ode" in stages and not (out / "ode.safetensors").exists():
        teacher = teacher_at(stage_index(recipe.ode_latents))
        make_ode_set(teacher, clips.batches(recipe.ode_latents, recipe.ode_batch, recipe.seed + 1, cfg.temporal_down, device),
                     recipe.ode_batches, recipe.distill, out / "ode.safetensors")
        done("ode")
    if "hybrid" in stages and not (out / "hybrid.safetensors").exists():
        ti = stage_index(recipe.ode_latents)
        start = out / "teacher" / f"stage{ti}.safetensors" if recipe.student_from is None else recipe.student_from
        # by default from the teacher's weights; with student_layers, from some of its blocks
        student = model_at(student_cfg, ti, start, shrink=recipe.student_layers is not None).train()
        ode = ODESet(out / "ode.safetensors")
        result = train(_runs(out, "hybrid", recipe.hybrid_train), student, hybrid_loss_fn(recipe.distill),
                       ode.batches(recipe.hybrid_train.batch_size, recipe.seed, device), resume=True)
        (result.ema_model or result.model).save(out / "hybrid.safetensors")
        done("hybrid")
    if "dmd" in stages:
        previous = out / "hybrid.safetensors" if recipe.dmd_from is None else Path(recipe.dmd_from)
        for i, st in enumerate(recipe.dmd):
            path = out / "dmd" / f"stage{i}.safetensors"
            if path.exists():
                previous = path
                continue
            cycle = dmd_cycle(recipe, i)
            if not cycle:
                continue
            teachers = {recipe.dmd[j].latent_frames: teacher_at(recipe.dmd[j].teacher_stage) for j in set(cycle)}
            student = model_at(student_cfg, st.teacher_stage, previous)
            critic = copy.deepcopy(teachers[st.latent_frames]).train().requires_grad_(True)
            pair = DMDPair(student, critic)
            tcfg = _runs(out, f"dmd{i}", recipe.dmd_train, st.steps)
            checkpoint.save_config(Path(tcfg.out_dir) / STAGE_MODEL, student.cfg)  # what newest_student builds on
            sources = {j: clips.batches(recipe.dmd[j].latent_frames, recipe.dmd_train.batch_size, recipe.seed + 2 + j,
                                        cfg.temporal_down, device) for j in set(cycle)}
            result = train(tcfg, pair, dmd_mix_loss_fn(teachers, recipe.distill),
                           cycled([sources[j] for j in cycle], recipe.distill.critic_steps * recipe.dmd_train.grad_accum),
                           resume=True)
            final = (result.ema_model or result.model).student
            path.parent.mkdir(exist_ok=True)
            final.save(path)
            previous = path
        done("dmd")
    if "export" in stages:
        export(out / "dmd" / f"stage{len(recipe.dmd) - 1}.safetensors", out / TOKENIZER,
               Path(assets) if assets is not None else out / "assets")
        done("export")


def export(student_path: Path, tokenizer_path: Path, assets: Path) -> None:
    """Write the shipped default model in blockwise int8 (checkpoint.save_int8): the student (copied as it is when
    it is int8 already, as a GPU run's collected checkpoints are), and the tokenizer without its Wan decoder (play
    decodes with the tiny decoder), whether it was saved whole or split. The campaign's tokenizer is int8 already and
    the teacher learnt its latents, so its export is those same weights, at half the size of fp16
    (docs/runs/campaign.md: int8 moves the latents by 0.56% of their RMS, the picture by 0.001 dB)."""
    from .checkpoint import QUANTIZED, read_metadata, save_int8
    from .vae import Tokenizer

    student = assets / "student.safetensors"
    if read_metadata(student_path).get(QUANTIZED):
        atomic_copy(student_path, student)
    else:
        save_int8(student_path, student)
    with tempfile.TemporaryDirectory() as tmp:
        play = Path(tmp) / TOKENIZER
        Tokenizer.load(tokenizer_path).save(play, wan_decoder=False, half=True)
        save_int8(play, assets / TOKENIZER)


def recipe_from_cli(argv: list[str] | None = None) -> tuple[RecipeConfig, argparse.Namespace]:
    """The recipe the command line asks for (smoke-sized under RELICKIT_SMOKE=1), and the parsed arguments
    (`stages` as a tuple)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/default")
    ap.add_argument("--stages", default="all", help=f"comma-separated subset of {STAGES}, or 'all'")
    ap.add_argument("--device")
    ap.add_argument("--data", help="dataset directory (default: OUT/data)")
    ap.add_argument("--warm-start", help="teacher checkpoint the first teacher stage starts from")
    ap.add_argument("--student-from", help="world-model checkpoint the student starts from instead of its teacher's "
                    "weights, e.g. a narrower teacher trained beside it (the CPU budget); same tokenizer layout")
    ap.add_argument("--student-layers", type=int, metavar="N", help="the student keeps N of its start's blocks "
                    f"(relickit.teacher.shrink; first and last kept; default {STUDENT_LAYERS}, the joystick's CPU budget; "
                    "the smoke recipe keeps all)")
    ap.add_argument("--dmd-from", help="a student the DMD stages start from instead of the hybrid stage's, e.g. "
                    "relickit/assets/student.safetensors to distil the shipped student on (--stages data,latents,teacher,dmd)")
    ap.add_argument("--dmd-stages", metavar="I,J", help="the DMD curriculum's stages to train (default all), e.g. 2 "
                    "with --dmd-from to continue a student at the longest rollout alone")
    ap.add_argument("--dmd-mix", metavar="I,J,...", help="DMD stages trained together as one mixed stage: the "
                    "student cycles through their rollout lengths a critic cycle at a time (repeats weight one), e.g. "
                    "0,0,0,2 with --dmd-from: three cycles of 3-s rollouts for each of 12-s ones")
    ap.add_argument("--dmd-batch", type=int, metavar="N", help=f"clips per DMD step (default "
                    f"{RecipeConfig().dmd_train.batch_size}); the step is launch-bound on an H200 (19%% busy in "
                    "campaign run 13), so a larger batch costs little: time it with scripts/bench_train_step.py "
                    "--stages dmd --batch N first")
    ap.add_argument("--assets", help=f"where export writes the play assets (default OUT/assets; the shipped ones: {ASSETS})")
    ap.add_argument("--tokenizer", help=f"a trained tokenizer checkpoint (a split one's .wan_decoder part beside it) "
                    f"copied to OUT/{TOKENIZER} instead of training one; the model is built for its latent layout")
    ap.add_argument("--size", help="DIMxLAYERS of the model (relickit.config.model_for: heads dim/64, ffn 4*dim), "
                    "e.g. 256x12; default the recipe's (384x5, smoke 64x2)")
    ap.add_argument("--sigma-data", type=float, help=f"the velocity skip's latent RMS (ModelConfig.sigma_data; default "
                    f"{LATENT_SIGMA}); 0 turns it off, as in models trained before 2026-12-02 (to warm-start from one)")
    ap.add_argument("--episodes", type=int, help=f"exploration episodes the data stage generates "
                    f"(default {RecipeConfig.episodes})")
    ap.add_argument("--seed", type=int, help="seed of the episodes, clips and batches (default 0); a run that "
                    "continues a committed teacher takes another, so the campaign sees new episodes each run")
    ap.add_argument("--clips", type=int, help=f"long clips the latents stage encodes (default {RecipeConfig.clips})")
    ap.add_argument("--balance", type=float, help="the latents stage draws clips with their dominant actions balanced "
                    "to this power: 1 every action alike, 0 clips as they come (ClipDataset.balance; default "
                    f"{RecipeConfig.balance})")
    ap.add_argument("--windows", action=argparse.BooleanOptionalAction, default=RecipeConfig.windows,
                    help="train on every window of each encoded clip (its first frame encoded as an image), not "
                    "only on the clip's prefix; --no-windows for the prefix alone (runs 1-5)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the blocks of the teacher and of the "
                    "hybrid-forcing student while they train (TrainConfig.compile: inductor; measure it first with "
                    "scripts/bench_train_step.py --modes eager compiled)")
    ap.add_argument("--cooldown", type=float, metavar="F", help="the last fraction of each teacher stage (of its "
                    "time limit) over which the learning rate decays linearly to zero (TrainConfig.cooldown; default "
                    f"{RecipeConfig().teacher.train.cooldown})")
    ap.add_argument("--held-out", metavar="DIR", help="the evaluation's held-out episodes (generated in DIR on first "
                    "use, e.g. data/eval_tokenizer_f2): each teacher stage logs its held-out loss on their clips every "
                    f"{RecipeConfig.held_out_every} steps into teacher/stage<i>/held_out.jsonl")
    ap.add_argument("--minutes", nargs="+", default=[], metavar="KEY=M",
                    help="time limits in minutes, e.g. teacher=12 hybrid=3 dmd=4; keys: "
                    + "; ".join(f"{k}: {v}" for k, v in MINUTES.items()))
    args = ap.parse_args(argv)
    args.stages = STAGES if args.stages == "all" else tuple(args.stages.split(","))
    unknown = set(args.stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}.")
    smoke = os.environ.get("RELICKIT_SMOKE", "0") not in ("", "0")
    recipe = RecipeConfig.smoke() if smoke else RecipeConfig()
    try:
        model = recipe.model
        if args.tokenizer:
            vae = read_config(args.tokenizer)
            model = dataclasses.replace(model, **layout_fields(vae))
            recipe = dataclasses.replace(recipe, tokenizer_from=args.tokenizer,
                                         tokenizer=dataclasses.replace(recipe.tokenizer, vae=vae))
        if args.size:
            model = dataclasses.replace(model, **size_fields(*parse_size(args.size)))
        if args.sigma_data is not None:
            if not args.sigma_data >= 0:
                raise ValueError(f"--sigma-data must be >= 0 (got {args.sigma_data}); 0 turns the velocity skip off.")
            model = dataclasses.replace(model, sigma_data=args.sigma_data)
        recipe = with_minutes(dataclasses.replace(recipe, model=model), parse_minutes(args.minutes))
    except (ValueError, FileNotFoundError) as err:
        ap.error(str(err))
    if args.compile:
        recipe = dataclasses.replace(
            recipe, teacher=dataclasses.replace(recipe.teacher, train=dataclasses.replace(recipe.teacher.train,
                                                                                        compile=COMPILE_BACKEND)),
            hybrid_train=dataclasses.replace(recipe.hybrid_train, compile=COMPILE_BACKEND))
    if args.cooldown is not None:
        try:
            train = dataclasses.replace(recipe.teacher.train, cooldown=args.cooldown)
        except ValueError as err:
            ap.error(f"--cooldown: {err}")
        recipe = dataclasses.replace(recipe, teacher=dataclasses.replace(recipe.teacher, train=train))
    if args.warm_start:
        recipe = dataclasses.replace(recipe, warm_start=args.warm_start)
    if args.held_out:
        recipe = dataclasses.replace(recipe, held_out=args.held_out)
    if args.student_from:
        recipe = dataclasses.replace(recipe, student_from=args.student_from)
    if args.student_layers is not None:
        recipe = dataclasses.replace(recipe, student_layers=args.student_layers)
    if args.dmd_from:
        recipe = dataclasses.replace(recipe, dmd_from=args.dmd_from)
    for name in ("dmd_stages", "dmd_mix"):  # DMD stage indices
        text = getattr(args, name)
        if text is not None:
            try:
                recipe = dataclasses.replace(recipe, **{name: tuple(int(i) for i in text.split(","))})
            except ValueError:
                ap.error(f"--{name.replace('_', '-')} takes comma-separated stage indices, e.g. 2 or 0,2 (got {text!r}).")
    if args.dmd_batch is not None:
        if args.dmd_batch < 1:
            ap.error(f"--dmd-batch must be at least 1 (got {args.dmd_batch}).")
        recipe = dataclasses.replace(recipe, dmd_train=dataclasses.replace(recipe.dmd_train, batch_size=args.dmd_batch))
    if args.seed is not None:
        recipe = dataclasses.replace(recipe, seed=args.seed)
    if args.balance is not None:
        from .dataset import check_balance  # the latents stage's ClipDataset checks it too, hours later

        try:
            recipe = dataclasses.replace(recipe, balance=check_balance(args.balance))
        except ValueError as err:
            ap.error(f"--balance: {err}")
    recipe = dataclasses.replace(recipe, windows=args.windows)
    for name in ("episodes", "clips"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                ap.error(f"--{name} must be at least 1 (got {value}).")
            recipe = dataclasses.replace(recipe, **{name: value})
    return recipe, args


def main(argv: list[str] | None = None) -> None:
    recipe, args = recipe_from_cli(argv)
    run(recipe, args.out, args.stages, args.device, data=args.data, assets=args.assets)


if __name__ == "__main__":
    main()
