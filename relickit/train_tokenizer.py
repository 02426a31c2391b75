"""Train the tokenizer: (1) the Wan VAE on clips, (2) latent statistics, (3) distil the tiny decoder. Then save.

    python -m relickit.train_tokenizer --data data/doom --out relickit/assets/tokenizer.safetensors
    accelerate launch -m relickit.train_tokenizer --data data/doom --mixed-precision bf16
    RELICKIT_SMOKE=1 python -m relickit.train_tokenizer        # two steps on data/sample (or synthetic clips)

The statistics come before the distillation because the tiny decoder reads normalised latents (what the world
model produces). Each stage is its own resumable run under `run_dir/` (`--resume` continues an interrupted one).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .train import TrainConfig, TrainResult, random_batches, train
from .tutorial import SAMPLE, SMOKE_ENV
from .tutorial import smoke as smoke_mode
from .vae import Tokenizer, VAEConfig, kl_divergence


@dataclass(frozen=True)
class TokenizerTrainConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    frames: int = 17  # frames per training clip: 1 + 4k
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    kl_weight: float = 1e-5  # on the mean KL per latent element; small: the latents are normalised afterwards
    truth_weight: float = 0.1  # tiny decoder: L1 to the true frames, besides L1 to the VAE decoder's frames
    stats_batches: int = 16  # batches encoded to measure the per-channel latent mean and std
    # one H100 with --mixed-precision bf16: ~3 VAE steps/s, ~7 tiny steps/s (docs/tokenizer.md)
    vae_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=6000, lr=3e-4, batch_size=16, warmup=200, log_every=50, ckpt_every=250))
    tiny_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, lr=1e-3, batch_size=8, warmup=100, log_every=50, ckpt_every=250))
    run_dir: str = "runs/tokenizer"
    out: str = "relickit/assets/tokenizer.safetensors"

    def __post_init__(self) -> None:
        if self.frames < 1 or (self.frames - 1) % self.vae.temporal_down:
            raise ValueError(f"frames={self.frames}: training clips need 1 + {self.vae.temporal_down}k frames.")

    @classmethod
    def quick(cls, steps: int, frames: int = 5, batch_size: int = 1, **overrides: Any) -> "TokenizerTrainConfig":
        """A short run for tutorials and checks: `steps` steps per stage on short clips, logging every step."""
        stage = dict(steps=steps, batch_size=batch_size, warmup=0, log_every=1, ckpt_every=0)
        return cls(**{"frames": frames, "stats_batches": 2, "vae_train": TrainConfig(lr=3e-4, **stage),
                      "tiny_train": TrainConfig(lr=1e-3, **stage), **overrides})

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
    """The repository's sample clips (data/sample/<split>) if present, else SyntheticClips: for tutorials, smoke."""
    root = SAMPLE / split
    if (root / "manifest.json").exists():
        return clip_dataset(root, frames, vae, split=split)
    return SyntheticClips(frames=frames, height=vae.height, width=vae.width)


def video_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Dataset frames (B, T, 3, H, W) -> the VAE's layout (B, 3, T, H, W)."""
    return batch["frames"].transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------------------------
def vae_loss(cfg: TokenizerTrainConfig) -> Callable:
    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        video = video_of(batch)
        recon, mean, logvar = model(video)
        l1, mse, kl = F.l1_loss(recon, video), F.mse_loss(recon, video), kl_divergence(mean, logvar)
        loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + cfg.kl_weight * kl
        return loss, {"l1": l1, "mse": mse, "kl": kl}

    return loss_fn


def distill_loss(cfg: TokenizerTrainConfig, teacher: Tokenizer) -> Callable:
    """The tiny decoder learns the Wan decoder's output from the same (normalised) latents."""

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        video = video_of(batch)
        with torch.no_grad():
            mean, _ = teacher._encode_frames(teacher.new_encode_cache(), video)
            target = teacher._decode_frames(teacher.new_decode_cache(), mean).clamp(-1, 1)
        pred = model(teacher.normalize(mean))
        to_teacher, to_truth = F.l1_loss(pred, target), F.l1_loss(pred, video)
        return to_teacher + cfg.truth_weight * to_truth, {"l1_teacher": to_teacher, "l1_truth": to_truth}

    return loss_fn


@torch.no_grad()
def latent_stats(tok: Tokenizer, batches: Callable[[int], Any], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the raw posterior means over n batches."""
    total = torch.zeros(3, tok.cfg.z_dim, dtype=torch.float64)  # count, sum, sum of squares
    for i in range(n):
        mean, _ = tok._encode_frames(tok.new_encode_cache(), video_of(batches(i)).to(tok.device))
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


def train_tokenizer(cfg: TokenizerTrainConfig, data: Dataset, *, tokenizer: Tokenizer | None = None,
                    resume: bool = False, callback: Callable | None = None) -> TokenizerRuns:
    """VAE -> latent stats -> tiny decoder; saves the tokenizer to cfg.out (skipped when cfg.out is empty)."""
    tok = tokenizer if tokenizer is not None else Tokenizer(cfg.vae)
    run = Path(cfg.run_dir)
    vae_cfg = dataclasses.replace(cfg.vae_train, out_dir=str(run / "vae"))
    tiny_cfg = dataclasses.replace(cfg.tiny_train, out_dir=str(run / "tiny"))

    tok.tiny.requires_grad_(False)  # stage 1 trains the VAE only
    vae_run = train(vae_cfg, tok, vae_loss(cfg), random_batches(data, vae_cfg.batch_size, vae_cfg.seed),
                    resume=resume, callback=callback)
    tok = vae_run.ema_model if vae_run.ema_model is not None else vae_run.model
    tok.requires_grad_(False).eval()

    stats_batches = random_batches(data, vae_cfg.batch_size, vae_cfg.seed + 1)
    tok.set_latent_stats(*latent_stats(tok, stats_batches, cfg.stats_batches))

    tok.tiny.requires_grad_(True).train()
    tiny_run = train(tiny_cfg, tok.tiny, distill_loss(cfg, tok),
                     random_batches(data, tiny_cfg.batch_size, tiny_cfg.seed), resume=resume, callback=callback)
    if tiny_run.ema_model is not None:
        tok.tiny.load_state_dict(tiny_run.ema_model.state_dict())
    tok.requires_grad_(False).eval()
    if cfg.out:
        tok.save(cfg.out)
    return TokenizerRuns(tokenizer=tok, vae=vae_run, tiny=tiny_run)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a relickit.dataset directory of the train split; smoke mode: data/sample/train")
    p.add_argument("--out", default=TokenizerTrainConfig.out, help="where to save the tokenizer checkpoint")
    p.add_argument("--run-dir", default=TokenizerTrainConfig.run_dir, help="checkpoints and logs of both stages")
    p.add_argument("--frames", type=int, help="frames per training clip (1 + 4k)")
    p.add_argument("--vae-steps", type=int)
    p.add_argument("--tiny-steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--resume", action="store_true", help="continue the runs in --run-dir")
    a = p.parse_args(argv)

    cfg = TokenizerTrainConfig.smoke() if smoke_mode() else TokenizerTrainConfig()
    stage = {k: v for k, v in {"batch_size": a.batch_size, "mixed_precision": a.mixed_precision}.items() if v}
    vae_train = dataclasses.replace(cfg.vae_train, **stage, **({"steps": a.vae_steps} if a.vae_steps else {}))
    tiny_train = dataclasses.replace(cfg.tiny_train, **stage, **({"steps": a.tiny_steps} if a.tiny_steps else {}))
    cfg = dataclasses.replace(cfg, out=a.out, run_dir=a.run_dir, vae_train=vae_train, tiny_train=tiny_train,
                              **({"frames": a.frames} if a.frames else {}))
    if a.data is None and not smoke_mode():
        p.error(f"--data is required (a ClipDataset directory, e.g. data/doom/train); {SMOKE_ENV}=1 uses the samples.")
    data = clip_dataset(a.data, cfg.frames, cfg.vae) if a.data else demo_clips(cfg.frames, cfg.vae)
    runs = train_tokenizer(cfg, data, resume=a.resume)
    last = runs.tiny.log[-1] if runs.tiny.log else {}
    print(f"saved {cfg.out}; vae loss {runs.vae.log[-1]['loss'] if runs.vae.log else float('nan'):.4f}, "
          f"tiny l1 to teacher {last.get('l1_teacher', float('nan')):.4f}")


if __name__ == "__main__":
    main()
