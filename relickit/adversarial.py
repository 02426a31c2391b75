"""Sharpness without a perceptual network: a patch discriminator, an image-gradient loss, and their weighting.

L1/MSE alone make a small decoder average over what it cannot tell apart, and an average is a blur. Two terms push
back, neither needing downloaded weights:
- `gradient_l1`: L1 between the horizontal and vertical pixel differences of reconstruction and truth, so edges
  count as much as flat areas;
- a PatchGAN (`PatchDiscriminator`, hinge loss, as in taming-transformers and LDM's autoencoders): a small conv net
  scores every ~30x30 patch of every frame as real or reconstructed, switched on once reconstruction has settled,
  with the adaptive weight |grad rec| / |grad adv| measured at the generator's last layer (clamped), and its term
  ramped in while the fresh discriminator learns: a discriminator that knows nothing yet has a tiny gradient, so
  the adaptive weight alone would amplify its noise (tokenizer run 2: 34x, the tiny decoder's L1 doubled). The clamp
  is tight for the same reason later on: whenever the discriminator falls back to chance its gradient vanishes again
  (tokenizer run 3: adaptive weights of 0.004-0.03 while it learned, spikes of 15 and 61 when it fell back, after
  which the L1 doubled and the tiny decoder's red channel shifted by 17 levels).
- `texture_sigma` > 0 makes it a texture discriminator: it sees each frame minus its gaussian blur, so it judges
  edges and fine texture only, and its gradient to the frames is high-pass too: it sums to exactly zero over every
  frame and channel (the blur's weights sum to one), so it cannot move a frame's brightness or colour, which the L1
  keeps. Whole-frame discriminators bought colour drift instead of sharpness (tokenizer runs 3 and 5).

`Adversarial` pairs a generator with its discriminator in one module, so the one training loop (relickit.train)
trains both with one optimizer and one backward pass: the discriminator's own loss sees the reconstruction detached,
and the generator's adversarial term sees the discriminator's weights detached (`functional_call`), so neither term
pushes the other network the wrong way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .metrics import gaussian_window

ADAPTIVE_EPS = 1e-4  # keeps the adaptive weight finite when the adversarial gradient vanishes


@dataclass(frozen=True)
class AdversarialConfig:
    """The patch discriminator and how much its verdict counts."""

    weight: float = 0.0  # scale of the adversarial term (after the adaptive weight); 0 = off
    start: int = 0  # optimizer step from which the discriminator trains and the term applies
    ramp: int = 0  # steps over which the generator's term grows linearly from 0 (the discriminator learns at once)
    adaptive: bool = True  # multiply by |grad rec| / |grad adv| at the generator's last layer
    max_adaptive: float = 0.1  # clamp of the adaptive weight: ~3-10x its steady value (see the module docstring)
    channels: int = 64  # first layer's width, doubled per layer
    layers: int = 3  # stride-2 layers: receptive field 34 pixels for 3
    texture_sigma: float = 0.0  # > 0: the discriminator sees frames minus their gaussian blur of this sigma (pixels)

    def __post_init__(self) -> None:
        if (self.weight < 0 or self.start < 0 or self.ramp < 0 or self.layers < 1 or self.channels < 1
                or self.texture_sigma < 0):
            raise ValueError("AdversarialConfig needs weight >= 0, start >= 0, ramp >= 0, layers >= 1, channels >= 1, "
                             f"texture_sigma >= 0: {self}")
        if self.max_adaptive <= 0:
            raise ValueError(f"AdversarialConfig.max_adaptive must be > 0 (got {self.max_adaptive}).")

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def scale(self, step: int) -> float:
        """The generator term's weight at `step` before the adaptive factor: 0 before start, then ramped."""
        if not self.enabled or step < self.start:
            return 0.0
        return self.weight * min(1.0, (step - self.start + 1) / self.ramp) if self.ramp else self.weight


def high_pass(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Frames (N, C, H, W) minus their separable gaussian blur (radius 3 sigma, reflected at the borders)."""
    radius = max(1, math.ceil(3 * sigma))
    g = gaussian_window(2 * radius + 1, sigma).to(frames)
    c = frames.shape[1]
    blur = F.conv2d(F.pad(frames, (radius, radius, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                    groups=c)
    blur = F.conv2d(F.pad(blur, (0, 0, radius, radius), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                    groups=c)
    return frames - blur


class PatchDiscriminator(nn.Module):
    """Frames (N, 3, H, W) in [-1, 1] -> a map of real/fake logits, one per overlapping patch (of the frames' high
    frequencies only, with cfg.texture_sigma)."""

    def __init__(self, cfg: AdversarialConfig) -> None:
        super().__init__()
        self.texture_sigma = cfg.texture_sigma
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = cfg.channels
        for i in range(1, cfg.layers + 1):
            out = cfg.channels * 2 ** min(i, 3)
            stride = 2 if i < cfg.layers else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1), nn.GroupNorm(min(32, out // 4), out), nn.LeakyReLU(0.2)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(high_pass(frames, self.texture_sigma) if self.texture_sigma else frames)


class Adversarial(nn.Module):
    """A generator and its discriminator, trained together; calling it calls the generator."""

    def __init__(self, generator: nn.Module, cfg: AdversarialConfig) -> None:
        super().__init__()
        self.generator = generator
        self.disc = PatchDiscriminator(cfg)
        self.cfg = cfg

    def forward(self, *args, **kwargs):
        return self.generator(*args, **kwargs)


def frames_of(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B * T, 3, H, W)."""
    return video.transpose(1, 2).flatten(0, 1)


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the pixel differences along the last two axes (height, width) of two image batches."""
    dy = (pred.diff(dim=-2) - target.diff(dim=-2)).abs().mean()
    dx = (pred.diff(dim=-1) - target.diff(dim=-1)).abs().mean()
    return dx + dy


def adversarial_terms(pair: Adversarial, fake: torch.Tensor, real: torch.Tensor, rec_loss: torch.Tensor,
                      last_layer: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss to add to `rec_loss` for one step: hinge discriminator loss + weighted generator term.

    fake, real: videos (B, 3, T, H, W); `last_layer`: the generator's final weight, where the adaptive weight is
    measured. Before cfg.start (or with weight 0) this is zero and the discriminator gets no gradient.
    """
    cfg = pair.cfg
    if not cfg.enabled or step < cfg.start:
        return rec_loss.new_zeros(()), {}
    fake, real = frames_of(fake), frames_of(real)
    d_loss = F.relu(1.0 - pair.disc(real)).mean() + F.relu(1.0 + pair.disc(fake.detach())).mean()
    frozen = {name: p.detach() for name, p in pair.disc.named_parameters()}
    g_loss = -functional_call(pair.disc, frozen, (fake,)).mean()
    weight = torch.tensor(cfg.scale(step), device=rec_loss.device)
    if cfg.adaptive and torch.is_grad_enabled():
        g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
        g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        weight = weight * (g_rec.norm() / (g_adv.norm() + ADAPTIVE_EPS)).clamp(0.0, cfg.max_adaptive).detach()
    return weight * g_loss + d_loss, {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "adv_weight": weight}
