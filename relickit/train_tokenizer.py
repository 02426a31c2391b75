"""Train the tokenizer: (1) the Wan VAE on clips, (2) latent statistics, (3) the tiny decoder. Then save.

    python -m relickit.train_tokenizer --data data/doom --out relickit/assets/tokenizer.safetensors
    python -m relickit.train_tokenizer --data data/doom --layout f4c16 --bank --mixed-precision bf16 --vae-minutes 10
    RELICKIT_SMOKE=1 python -m relickit.train_tokenizer        # two steps on the sample dataset

Losses (relickit.adversarial): the VAE learns L1 + MSE + an image-gradient L1 + a small KL, and from
`vae_adv.start` a patch discriminator's hinge loss with the adaptive weight; the tiny decoder learns the TRUE frames
the same way (L1 + gradient L1 + adversarial), plus L1 to the Wan decoder's frames as a guide. The statistics come
before the tiny decoder because it reads normalised latents (what the world model produces). Each stage is its own
resumable run under `run_dir/` (`--resume` continues an interrupted one); `--init` starts from a tokenizer
checkpoint (a campaign's committed state) with fresh optimizers. `--bank` holds every training frame in one uint8
tensor on the training device (`FrameBank`): a batch is one gather, no loader workers.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .adversarial import Adversarial, AdversarialConfig, adversarial_terms, gradient_l1
from .clip_pass import decode_clip, encode_clip
from . import checkpoint
from .train import CKPT_KIND, Batches, TrainConfig, TrainResult, newest_weights, random_batches, train
from .tutorial import SMOKE_ENV, sample_data
from .tutorial import smoke as smoke_mode
from .vae import LAYOUTS, Tokenizer, VAEConfig, kl_divergence
from .widen import widen_latent


@dataclass(frozen=True)
class TokenizerTrainConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    frames: int = 17  # frames per training clip: 1 + 4k
    # with a FrameBank: clip lengths mixed batch by batch, frames * batch_size frames per batch (first = frames)
    lengths: tuple[int, ...] = ()
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    grad_weight: float = 1.0  # L1 between image gradients (relickit.adversarial.gradient_l1), VAE and tiny decoder
    kl_weight: float = 1e-5  # on the mean KL per latent element; small: the latents are normalised afterwards
    truth_weight: float = 1.0  # tiny decoder: L1 to the true frames
    teacher_weight: float = 0.5  # tiny decoder: L1 to the Wan decoder's frames from the same latents
    # train the decoders only: the encoder and the latent stats stay as `init` has them, so a world model trained on
    # its latents keeps working with the result (decoder fine-tuning; needs `init`)
    decoder_only: bool = False
    hflip: bool = True  # mirror half of the training clips left-right (Doom's worlds look as plausible mirrored)
    # weights and clips in channels-last memory (to_memory_format): 4-9% more frames/s on an H200 (the step
    # benchmark in docs/runs/campaign.md, 2026-12-03); the same numbers as contiguous up to rounding
    channels_last: bool = False
    stats_batches: int = 16  # batches encoded to measure the per-channel latent mean and std
    vae_adv: AdversarialConfig = field(default_factory=lambda: AdversarialConfig(weight=0.5, start=2000, ramp=1000))
    tiny_adv: AdversarialConfig = field(default_factory=lambda: AdversarialConfig(weight=0.5, start=500, ramp=1000))
    # one H100 with --mixed-precision bf16: ~3 VAE steps/s, ~7 tiny steps/s (docs/tokenizer.md)
    vae_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=6000, lr=3e-4, batch_size=16, warmup=200, log_every=50, ckpt_every=250))
    tiny_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, lr=1e-3, batch_size=8, warmup=100, log_every=50, ckpt_every=250))
    run_dir: str = "runs/tokenizer"
    out: str = "relickit/assets/tokenizer.safetensors"

    def __post_init__(self) -> None:
        for n in (self.frames, *self.lengths):
            if n < 1 or (n - 1) % self.vae.temporal_down:
                raise ValueError(f"clip length {n}: training clips need 1 + {self.vae.temporal_down}k frames.")
        if self.lengths and self.lengths[0] != self.frames:
            raise ValueError(f"lengths {self.lengths} must start with frames={self.frames}, the length batch_size "
                             "refers to.")

    @classmethod
    def quick(cls, steps: int, frames: int = 5, batch_size: int = 1, **overrides: Any) -> "TokenizerTrainConfig":
        """A short run for tutorials and checks: `steps` steps per stage on short clips, logging every step."""
        stage = dict(steps=steps, batch_size=batch_size, warmup=0, log_every=1, ckpt_every=0)
        adv = AdversarialConfig(weight=0.5, start=steps // 2)  # the second half of the steps is adversarial
        return cls(**{"frames": frames, "stats_batches": 2, "vae_train": TrainConfig(lr=3e-4, **stage),
                      "tiny_train": TrainConfig(lr=1e-3, **stage), "vae_adv": adv, "tiny_adv": adv, **overrides})

    @classmethod
    def smoke(cls, **overrides: Any) -> "TokenizerTrainConfig":
        """Two steps per stage on 5-frame clips: checks the wiring in well under a minute on a 2-core CPU."""
        return cls.quick(steps=2, **overrides)


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
class SyntheticClips(Dataset):
    """Procedural stand-in for the Doom clips: a textured wall band panning sideways, a floor, a moving block.

    Deterministic per index; frames (T, 3, H, W) in [-1, 1], like relickit.dataset.ClipDataset.
    """

    def __init__(self, size: int = 256, frames: int = 17, height: int = 96, width: int = 128, seed: int = 0) -> None:
        self.size, self.frames, self.height, self.width, self.seed = size, frames, height, width, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * self.size + index)
        t = torch.arange(self.frames).view(-1, 1, 1, 1).float()
        y = torch.linspace(0, 1, self.height).view(1, 1, -1, 1)
        x = torch.linspace(0, 1, self.width).view(1, 1, 1, -1)
        colors = torch.rand(3, 3, generator=g) * 2 - 1  # wall, floor, block
        speed, freq, phase = (torch.rand(3, generator=g) * torch.tensor([0.03, 12.0, 6.28])).tolist()
        horizon = 0.45 + 0.2 * float(torch.rand(1, generator=g))
        wall = colors[0].view(1, 3, 1, 1) * (0.6 + 0.4 * torch.sin(2 * math.pi * freq * (x + speed * t) + phase))
        floor = colors[1].view(1, 3, 1, 1) * (0.4 + 0.6 * y)
        video = torch.where(y < horizon, wall, floor)
        bx = 0.2 + 0.6 * float(torch.rand(1, generator=g)) + 0.01 * t
        block = ((x - bx).abs() < 0.08) & ((y - horizon).abs() < 0.12)
        video = torch.where(block, colors[2].view(1, 3, 1, 1), video)
        return {"frames": video.clamp(-1, 1).expand(self.frames, 3, self.height, self.width).contiguous()}


def clip_dataset(root: str | os.PathLike, frames: int, vae: VAEConfig, split: str | None = "train") -> Dataset:
    """relickit.dataset.ClipDataset at `root`, checked against the tokenizer's frame size."""
    from .dataset import ClipDataset

    ds = ClipDataset(root, frames=frames, split=split)
    shape = tuple(ds[0]["frames"].shape)
    if shape != (frames, 3, vae.height, vae.width):
        raise ValueError(f"{root}: clips have frames {shape}, the tokenizer needs ({frames}, 3, {vae.height}, "
                         f"{vae.width}); render the data at that size or change VAEConfig.")
    return ds


def demo_clips(frames: int, vae: VAEConfig, split: str = "train") -> Dataset:
    """The sample dataset's clips (relickit.tutorial.sample_data, generated on first use): for tutorials and smoke."""
    return clip_dataset(sample_data(split), frames, vae, split=split)


def video_of(batch: dict[str, torch.Tensor], channels_last: bool = False) -> torch.Tensor:
    """Dataset frames (B, T, 3, H, W) -> the VAE's layout (B, 3, T, H, W), its memory channels-last-3d if asked."""
    video = batch["frames"].transpose(1, 2)
    return video.contiguous(memory_format=torch.channels_last_3d) if channels_last else video


def to_memory_format(module: nn.Module, channels_last: bool) -> nn.Module:
    """Every 5-d weight in channels-last-3d and every 4-d one in channels-last (or both back to contiguous), in
    place: Module.to(memory_format=...) takes one format, and the VAE holds 2D convolutions beside its 3D ones."""
    formats = {5: torch.channels_last_3d, 4: torch.channels_last} if channels_last else {}
    for param in module.parameters():
        if param.dim() in (4, 5):
            param.data = param.data.contiguous(memory_format=formats.get(param.dim(), torch.contiguous_format))
    return module


class FrameBank(Dataset):
    """Every frame of a dataset in one uint8 tensor (on the training device), and every window of `frames`
    consecutive frames that stays inside one episode and spans no teleport.

    `batches(batch_size, seed, lengths)` draws a batch as one gather on the device (deterministic per index, like
    relickit.train.random_batches, so resuming needs no sampler state), mirrored left-right with probability 1/2
    when `hflip`. With `lengths`, each batch takes one of those clip lengths (the first frames of its windows) and
    as many clips as keep batch_size * frames frames per batch: the causal VAE must see long clips, or its
    streaming state leaves the training distribution after `frames` frames. As a Dataset, item i is window i as
    {"frames": (T, 3, H, W) float in [-1, 1]}.
    """

    def __init__(self, root: str | os.PathLike, frames: int, vae: VAEConfig, split: str | None = "train",
                 device: str | torch.device = "cpu", hflip: bool = False, threads: int = 8,
                 jump_units: float = 128.0) -> None:
        from .dataset import load_episodes, load_manifest

        manifest = load_manifest(root)
        if split is not None and manifest["split"] != split:
            raise ValueError(f"{root} is a {manifest['split']!r} dataset, not {split!r}.")
        episodes = [e for e in load_episodes(root) if len(e) >= frames]
        if not episodes:
            raise ValueError(f"no episode of {root} has {frames} frames; generate longer episodes or use shorter clips.")
        with ThreadPoolExecutor(threads) as pool:  # zlib releases the GIL: episodes decompress in parallel
            arrays = list(pool.map(lambda e: e.frames(), episodes))
        if arrays[0].shape[1:] != (vae.height, vae.width, 3):
            raise ValueError(f"{root}: frames are {arrays[0].shape[1:3]}, the tokenizer needs {vae.height}x{vae.width}; "
                             "render the data at that size or change VAEConfig.")
        starts, offset = [], 0
        for ep, arr in zip(episodes, arrays):
            jump = np.linalg.norm(np.diff(ep.positions, axis=0), axis=1) > jump_units
            cut = np.concatenate([[0], np.cumsum(jump)])  # windows must not cross a teleport
            s = np.arange(len(arr) - frames + 1)
            starts.append(offset + s[cut[s + frames - 1] == cut[s]])
            offset += len(arr)
        self.frames, self.hflip = frames, hflip
        self.pixels = torch.from_numpy(np.concatenate(arrays)).to(device)  # (N, H, W, 3) uint8
        self.starts = torch.from_numpy(np.concatenate(starts)).to(device)
        self._steps = torch.arange(frames, device=device)

    def __len__(self) -> int:
        return len(self.starts)

    def _clips(self, index: torch.Tensor, flip: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """The first `length` frames of windows `index` as float clips (n, T, 3, H, W) in [-1, 1], mirrored where
        `flip`."""
        x = self.pixels[self.starts[index][:, None] + self._steps[:length]]  # (n, T, H, W, 3)
        x = torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(3), x)
        return x.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = torch.tensor([index], device=self.starts.device)
        return {"frames": self._clips(i, torch.zeros(1, dtype=torch.bool, device=i.device))[0]}

    def batches(self, batch_size: int, seed: int, lengths: tuple[int, ...] = ()) -> Batches:
        lengths = lengths or (self.frames,)
        if max(lengths) > self.frames:
            raise ValueError(f"clip lengths {lengths} exceed the bank's windows of {self.frames} frames; build the "
                             f"FrameBank with frames={max(lengths)}.")

        def batch(index: int) -> dict[str, torch.Tensor]:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
            length = lengths[int(torch.randint(len(lengths), (), generator=g))]
            n = max(1, round(batch_size * lengths[0] / length))
            rows = torch.randint(len(self), (n,), generator=g)
            flip = (torch.rand(n, generator=g) < 0.5) & self.hflip
            device = self.starts.device
            return {"frames": self._clips(rows.to(device), flip.to(device), length)}

        return batch


def batches_of(data: Dataset, batch_size: int, seed: int, lengths: tuple[int, ...] = ()) -> Batches:
    """A FrameBank's own gather (mixing clip `lengths`), or relickit.train.random_batches for any other dataset."""
    if isinstance(data, FrameBank):
        return data.batches(batch_size, seed, lengths)
    return random_batches(data, batch_size, seed)


# ---------------------------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------------------------
def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DDP wraps the module it trains


def _pixel_terms(cfg: TokenizerTrainConfig, pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"l1": F.l1_loss(pred, truth), "mse": F.mse_loss(pred, truth), "grad": gradient_l1(pred, truth)}


def vae_loss(cfg: TokenizerTrainConfig) -> Callable:
    """Reconstruction (L1 + MSE + gradient L1) + KL, plus the adversarial terms once they start."""

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        pair = _unwrap(model)
        video = video_of(batch, cfg.channels_last)
        recon, mean, logvar = model(video)
        terms = _pixel_terms(cfg, recon, video)
        rec = cfg.l1_weight * terms["l1"] + cfg.mse_weight * terms["mse"] + cfg.grad_weight * terms["grad"]
        kl = kl_divergence(mean, logvar)
        adv, logs = adversarial_terms(pair, recon, video, rec, pair.generator.vae.decoder.conv_out.weight, step)
        return rec + cfg.kl_weight * kl + adv, {**terms, "kl": kl, **logs}

    return loss_fn


def tiny_loss(cfg: TokenizerTrainConfig, teacher: Tokenizer) -> Callable:
    """The tiny decoder learns the true frames from the frozen encoder's (normalised) latents, with the Wan
    decoder's frames from the same latents as a guide, plus the adversarial terms once they start."""

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        pair = _unwrap(model)
        video = video_of(batch, cfg.channels_last)
        with torch.no_grad():
            mean, _ = encode_clip(teacher.vae, video)
            target = decode_clip(teacher.vae, mean).clamp(-1, 1) if cfg.teacher_weight > 0 else None
        pred = model(teacher.normalize(mean))
        to_truth = F.l1_loss(pred, video)
        to_teacher = F.l1_loss(pred, target) if target is not None else torch.zeros_like(to_truth)
        grad = gradient_l1(pred, video)
        rec = cfg.truth_weight * to_truth + cfg.teacher_weight * to_teacher + cfg.grad_weight * grad
        adv, logs = adversarial_terms(pair, pred, video, rec, pair.generator.conv_out.weight, step)
        return rec + adv, {"l1_truth": to_truth, "l1_teacher": to_teacher, "grad": grad, **logs}

    return loss_fn


@torch.no_grad()
def latent_stats(tok: Tokenizer, batches: Callable[[int], Any], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the raw posterior means over n batches."""
    total = torch.zeros(3, tok.cfg.z_dim, dtype=torch.float64)  # count, sum, sum of squares
    for i in range(n):
        mean, _ = encode_clip(tok.vae, video_of(batches(i)).to(tok.device))
        z = mean.transpose(0, 1).flatten(1).double().cpu()
        total += torch.stack([torch.full_like(z[:, 0], z.shape[1]), z.sum(1), z.square().sum(1)])
    mu = total[1] / total[0]
    std = (total[2] / total[0] - mu.square()).clamp_min(1e-12).sqrt()
    return mu.float(), std.float()


# ---------------------------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TokenizerRuns:
    tokenizer: Tokenizer
    vae: TrainResult
    tiny: TrainResult


RUN_CONFIG = "config.json"  # in run_dir: the TokenizerTrainConfig of the run
STAGE_ONE = "vae.safetensors"  # in run_dir: the tokenizer after the VAE stage and the latent stats


def _trained(run: TrainResult) -> nn.Module:
    """A stage's generator as trained: the EMA copy when the stage keeps one."""
    pair = run.ema_model if run.ema_model is not None else run.model
    return pair.generator


def _start_from(init: str | os.PathLike, cfg: TokenizerTrainConfig) -> Tokenizer:
    """`init`'s tokenizer for cfg.vae: as it is, or with its latent widened (`relickit.widen`) where cfg.vae is the
    same layout with more latent channels (f4c16 -> f4c32) and the encoder trains."""
    start = Tokenizer.load(init)
    if not start.has_wan_decoder:
        raise ValueError(f"{init} is a play export without the Wan decoder; training continues from a full "
                         "tokenizer checkpoint (Tokenizer.save(path) with wan_decoder=True).")
    if start.cfg == cfg.vae:
        return start
    if dataclasses.replace(start.cfg, z_dim=cfg.vae.z_dim) == cfg.vae and start.cfg.z_dim < cfg.vae.z_dim:
        if cfg.decoder_only:
            raise ValueError(f"{init} has {start.cfg.z_dim} latent channels and this run {cfg.vae.z_dim}: new "
                             "channels need the encoder to train; leave out --decoder-only.")
        return widen_latent(start, cfg.vae.z_dim)
    raise ValueError(f"{init} was trained with another config (checkpoint, this run): "
                     f"{checkpoint.config_differences(start.cfg, cfg.vae)}; pick its layout, or one that only adds "
                     "latent channels (relickit.widen).")


def train_tokenizer(cfg: TokenizerTrainConfig, data: Dataset, *, tokenizer: Tokenizer | None = None,
                    init: str | os.PathLike | None = None, resume: bool = False,
                    callback: Callable | None = None) -> TokenizerRuns:
    """VAE -> latent stats -> tiny decoder; saves the tokenizer to cfg.out (skipped when cfg.out is empty).

    `init`: a full tokenizer checkpoint (with its Wan decoder) of the same config to start from, e.g. a campaign's
    committed state; the optimizers and discriminators start fresh. With cfg.decoder_only the encoder and the
    latent stats stay as they are in `init` (or `tokenizer`): the latents a world model was trained on do not move."""
    if cfg.decoder_only and init is None and tokenizer is None:
        raise ValueError("decoder_only fine-tunes the decoders of a trained tokenizer: pass init (a full tokenizer "
                         "checkpoint, e.g. data/weights/tokenizer/f4c16.safetensors).")
    tok = tokenizer if tokenizer is not None else Tokenizer(cfg.vae)
    if init is not None:
        tok.load_state_dict(_start_from(init, cfg).state_dict())
    run = Path(cfg.run_dir)
    checkpoint.save_config(run / RUN_CONFIG, cfg)
    vae_cfg = dataclasses.replace(cfg.vae_train, out_dir=str(run / "vae"))
    tiny_cfg = dataclasses.replace(cfg.tiny_train, out_dir=str(run / "tiny"))

    tok.tiny.requires_grad_(False)  # stage 1 trains the VAE only
    if cfg.decoder_only:  # and of the VAE, only what maps latents to frames
        tok.vae.encoder.requires_grad_(False)
        tok.vae.quant_conv.requires_grad_(False)
    vae_run = train(vae_cfg, to_memory_format(Adversarial(tok, cfg.vae_adv), cfg.channels_last), vae_loss(cfg),
                    batches_of(data, vae_cfg.batch_size, vae_cfg.seed, cfg.lengths), resume=resume,
                    callback=callback)
    tok = _trained(vae_run)
    tok.requires_grad_(False).eval()

    if not cfg.decoder_only:
        stats_batches = batches_of(data, vae_cfg.batch_size, vae_cfg.seed + 1)
        tok.set_latent_stats(*latent_stats(tok, stats_batches, cfg.stats_batches))
    tok.save(run / STAGE_ONE)

    tok.tiny.requires_grad_(True).train()
    tiny_run = train(tiny_cfg, to_memory_format(Adversarial(tok.tiny, cfg.tiny_adv), cfg.channels_last),
                     tiny_loss(cfg, tok),
                     batches_of(data, tiny_cfg.batch_size, tiny_cfg.seed, cfg.lengths), resume=resume,
                     callback=callback)
    tok.tiny.load_state_dict(_trained(tiny_run).state_dict())
    to_memory_format(tok, False).requires_grad_(False).eval()
    if cfg.out:
        tok.save(cfg.out)
    return TokenizerRuns(tokenizer=tok, vae=vae_run, tiny=tiny_run)


def _generator(weights: Path) -> dict[str, torch.Tensor]:
    """The generator's weights in a stage checkpoint of an Adversarial pair (without the discriminator's)."""
    prefix = "generator."
    return {k[len(prefix):]: v for k, v in checkpoint.load(weights, CKPT_KIND)[0].items() if k.startswith(prefix)}


def newest_tokenizer(run_dir: str | os.PathLike) -> tuple[Tokenizer, str] | None:
    """The newest tokenizer a run directory of `train_tokenizer` holds, and where its trained part came from: the
    tiny stage's newest checkpoint on the VAE stage's tokenizer (after the tiny stage's end, the tokenizer the run
    saved), else the VAE stage's tokenizer, else, in a decoder-only run, the VAE stage's newest checkpoint (its
    latents are the init's); None before any. What a GPU machine that can go back at any minute should bring home."""
    run = Path(run_dir)
    if (run / STAGE_ONE).exists():
        tok, tiny = Tokenizer.load(run / STAGE_ONE), newest_weights(run / "tiny")
        if tiny is None:
            return tok, str(run / STAGE_ONE)
        checkpoint.load_into(tok.tiny, _generator(tiny), tiny)
        return tok, str(tiny)
    vae = newest_weights(run / "vae")
    if vae is None or not (run / RUN_CONFIG).exists():
        return None
    cfg = checkpoint.read_config(run / RUN_CONFIG, TokenizerTrainConfig)
    if not cfg.decoder_only:  # the encoder moved, the latent stats are not measured yet
        return None
    tok = Tokenizer(cfg.vae)
    checkpoint.load_into(tok, _generator(vae), vae)
    return tok.eval(), str(vae)


def config_from_cli(argv: list[str] | None = None) -> tuple[TokenizerTrainConfig, argparse.Namespace]:
    """The training config the command line asks for (smoke mode: TokenizerTrainConfig.smoke's), and the arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a relickit.dataset directory of the train split (required; smoke mode: the "
                   "sample dataset's)")
    p.add_argument("--out", default=TokenizerTrainConfig.out, help="where to save the tokenizer checkpoint")
    p.add_argument("--run-dir", default=TokenizerTrainConfig.run_dir, help="checkpoints and logs of both stages")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help="latent layout (relickit.vae.LAYOUTS); default f8c16")
    p.add_argument("--base-dim", type=int, help="the VAE's base width (VAEConfig.base_dim; the layouts': 32); a wider "
                   "VAE keeps the layout's latents and its tiny decoder")
    p.add_argument("--res-blocks", type=int, help="residual blocks per VAE stage (VAEConfig.num_res_blocks; 1)")
    p.add_argument("--init", help="a full tokenizer checkpoint to start from (fresh optimizers)")
    p.add_argument("--bank", action="store_true", help="hold all training frames on the training device")
    p.add_argument("--frames", type=int, help="frames per training clip (1 + 4k)")
    p.add_argument("--lengths", type=int, nargs="+", help="with --bank: clip lengths mixed batch by batch "
                   "(the first is --frames, the one --batch-size counts)")
    p.add_argument("--vae-steps", type=int)
    p.add_argument("--tiny-steps", type=int)
    p.add_argument("--vae-minutes", type=float, help="stop the VAE stage after this long (checkpointed)")
    p.add_argument("--tiny-minutes", type=float, help="stop the tiny-decoder stage after this long")
    p.add_argument("--vae-lr", type=float)
    p.add_argument("--cooldown", type=float, metavar="F", help="the last fraction of each stage (of its steps, or of "
                   "its minutes where those end it first) over which the learning rate decays linearly to zero "
                   "(TrainConfig.cooldown; default 0: constant to the end)")
    p.add_argument("--gan-start", type=int, nargs=2, metavar=("VAE", "TINY"),
                   help="steps at which the discriminators switch on, per stage")
    p.add_argument("--gan-ramp", type=int, help="steps over which the adversarial terms ramp in (both stages)")
    p.add_argument("--gan-weight", type=float, help="scale of the adversarial terms before the adaptive weight "
                   "(AdversarialConfig.weight; both stages; default 0.5)")
    p.add_argument("--texture-sigma", type=float, help="the discriminators see frames minus their gaussian blur of "
                   "this sigma in pixels: texture only, no say in brightness or colour (AdversarialConfig."
                   "texture_sigma; both stages; default 0: whole frames)")
    p.add_argument("--grad-weight", type=float, help="weight of the image-gradient L1 (0: off)")
    p.add_argument("--decoder-only", action="store_true", help="with --init: fine-tune the decoders only; the "
                   "latents (encoder, latent stats) stay, so world models trained on them keep working")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--channels-last", action="store_true", help="weights and clips in channels-last memory (faster "
                   "on a GPU)")
    p.add_argument("--resume", action="store_true", help="continue the runs in --run-dir")
    a = p.parse_args(argv)

    cfg = TokenizerTrainConfig.smoke() if smoke_mode() else TokenizerTrainConfig()
    stage = {k: v for k, v in {"batch_size": a.batch_size, "mixed_precision": a.mixed_precision}.items() if v}

    def stage_cfg(base: TrainConfig, steps: int | None, minutes: float | None, **more: Any) -> TrainConfig:
        extra = {"steps": steps} if steps is not None else {}
        extra.update({"time_limit_s": 60 * minutes} if minutes else {})
        more["cooldown"] = a.cooldown
        return dataclasses.replace(base, **stage, **extra, **{k: v for k, v in more.items() if v is not None})

    vae_adv, tiny_adv = cfg.vae_adv, cfg.tiny_adv
    if a.gan_start:
        vae_adv = dataclasses.replace(vae_adv, start=a.gan_start[0])
        tiny_adv = dataclasses.replace(tiny_adv, start=a.gan_start[1])
    both = {k: v for k, v in {"ramp": a.gan_ramp, "weight": a.gan_weight, "texture_sigma": a.texture_sigma}.items()
            if v is not None}  # the discriminator settings both stages take
    vae_adv, tiny_adv = (dataclasses.replace(adv, **both) for adv in (vae_adv, tiny_adv))
    if a.grad_weight is not None:
        cfg = dataclasses.replace(cfg, grad_weight=a.grad_weight)
    if a.decoder_only and not a.init:
        p.error("--decoder-only fine-tunes a trained tokenizer's decoders: give --init PATH.")
    if a.cooldown is not None and not 0.0 <= a.cooldown <= 1.0:
        p.error(f"--cooldown is a fraction of each stage in [0, 1] (0 = off), got {a.cooldown}.")
    cfg = dataclasses.replace(
        cfg, out=a.out, run_dir=a.run_dir, decoder_only=a.decoder_only, channels_last=a.channels_last,
        vae_adv=vae_adv, tiny_adv=tiny_adv,
        vae_train=stage_cfg(cfg.vae_train, a.vae_steps, a.vae_minutes, lr=a.vae_lr),
        tiny_train=stage_cfg(cfg.tiny_train, a.tiny_steps, a.tiny_minutes),
        **({"frames": a.frames} if a.frames else {}), **({"lengths": tuple(a.lengths)} if a.lengths else {}),
        **({"vae": LAYOUTS[a.layout]} if a.layout else {}))
    for flag, name, value in (("--base-dim", "base_dim", a.base_dim), ("--res-blocks", "num_res_blocks", a.res_blocks)):
        if value is not None:
            if value < 1:
                p.error(f"{flag} must be at least 1 (got {value}).")
            cfg = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, **{name: value}))
    if a.data is None and not smoke_mode():
        p.error(f"--data is required (a ClipDataset directory, e.g. data/doom/train); {SMOKE_ENV}=1 uses the samples.")
    return cfg, a


def main(argv: list[str] | None = None) -> None:
    cfg, a = config_from_cli(argv)
    torch.backends.cudnn.benchmark = True  # a few clip shapes, each tuned once
    if a.data and a.bank:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        data = FrameBank(a.data, max((cfg.frames, *cfg.lengths)), cfg.vae, device=device, hflip=cfg.hflip)
    else:
        data = clip_dataset(a.data, cfg.frames, cfg.vae) if a.data else demo_clips(cfg.frames, cfg.vae)
    runs = train_tokenizer(cfg, data, init=a.init, resume=a.resume)
    last = runs.tiny.log[-1] if runs.tiny.log else {}
    print(f"saved {cfg.out}; vae loss {runs.vae.log[-1]['loss'] if runs.vae.log else float('nan'):.4f}, "
          f"tiny l1 to truth {last.get('l1_truth', float('nan')):.4f}")


if __name__ == "__main__":
    main()
