"""Flow matching, the samplers, and THE denoising loop that training and play share.

Conventions (Wan's rectified flow): x_sigma = (1 - sigma) x0 + sigma * noise, the model predicts the velocity
v = noise - x0, and sees the timestep 1000 * sigma per latent frame. The clean first-image latent always sits at
sigma 0.

The few-step student denoises a chunk at the warped sigmas [1, .75, .5, .25] (shift 5 -> [1, .9375, .833, .625]):
predict x0, re-noise it to the next sigma with fresh noise, repeat; then one clean "context pass" at sigma 0
writes the chunk's keys into the cache. `denoise_chunk` + `commit` are that loop; play, self-forcing rollouts,
replayed back-propagation and evaluation all call them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .memory import KVCache, bidirectional_visibility

Sigmas = tuple[float, ...]


def shift_sigma(sigma, shift: float):
    """Wan's timestep shift: spends more steps at high noise for shift > 1."""
    return shift * sigma / (1 + (shift - 1) * sigma)


@dataclass(frozen=True)
class SamplerConfig:
    """The student's few-step schedule (defaults from Self-Forcing / LongLive) and the teacher's Euler grid."""

    base_sigmas: Sigmas = (1.0, 0.75, 0.5, 0.25)
    shift: float = 5.0
    teacher_steps: int = 32  # Euler steps of the teacher sampler (split evenly between student sigmas)
    guidance: float = 1.0  # classifier-free guidance on text for the teacher (1 = off)

    @property
    def sigmas(self) -> Sigmas:
        return tuple(float(shift_sigma(torch.tensor(s, dtype=torch.float64), self.shift)) for s in self.base_sigmas)

    def teacher_grid(self) -> torch.Tensor:
        """A decreasing sigma grid from 1 to 0 that passes exactly through every student sigma."""
        knots = list(self.sigmas) + [0.0]
        per = max(1, self.teacher_steps // (len(knots) - 1))
        grid = [torch.linspace(a, b, per + 1, dtype=torch.float64)[:-1] for a, b in zip(knots[:-1], knots[1:])]
        return torch.cat(grid + [torch.zeros(1, dtype=torch.float64)])


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sigma (B, F) per latent frame."""
    s = sigma[:, None, :, None, None].to(x0.dtype)
    return (1 - s) * x0 + s * noise


def x0_from_velocity(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return x - sigma[:, None, :, None, None].to(x.dtype) * v


def timesteps(sigma: torch.Tensor) -> torch.Tensor:
    return sigma * 1000.0


def velocity_preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM's preconditioning (Karras et al. 2022) in rectified-flow form: the model's velocity is
    c_skip * x_sigma + c_out * F(x_sigma). For clean latents of RMS sigma_data, independent of the noise, c_skip
    is the least-squares linear predictor of v = noise - x0 from x_sigma, and c_out the RMS of what it leaves,
    so the network F predicts a unit-scale residual: at sigma 1, v is mostly the input noise (c_skip = 1); at
    sigma 0 it is mostly -x0 plus unknowable noise (c_skip = -1)."""
    s2 = sigma_data**2
    cov = sigma - (1 - sigma) * s2  # Cov(v, x_sigma)
    var = (1 - sigma) ** 2 * s2 + sigma**2  # Var(x_sigma)
    return cov / var, (1 + s2 - cov**2 / var).clamp(min=0).sqrt()


def sample_train_sigma(shape, shift: float, generator=None, device=None) -> torch.Tensor:
    """Training noise levels: uniform, then shifted like the sampler."""
    return shift_sigma(torch.rand(shape, generator=generator, device=device), shift)


def flow_matching_loss(model, x0, context, actions, poses, visibility, mem=None, sigma=None, noise=None,
                       clean_first: bool = True) -> torch.Tensor:
    """MSE between predicted and true velocity. sigma (B, F); frame 0 is kept clean and out of the loss."""
    noise = torch.randn_like(x0) if noise is None else noise
    if clean_first:
        sigma = sigma.clone()
        sigma[:, 0] = 0.0
    v = model(add_noise(x0, noise, sigma), timesteps(sigma), context, actions, poses, visibility, mem)
    err = (v.float() - (noise - x0).float()) ** 2
    start = 1 if clean_first else 0
    return err[:, :, start:].mean()


# ---- the teacher's sampler (bidirectional, many Euler steps on the flow) -----------------------------------
@torch.no_grad()
def sample_teacher(model, first: torch.Tensor, frames: int, context: torch.Tensor, actions, poses,
                   sampler: SamplerConfig = SamplerConfig(), null_context: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, keep: Sigmas = (), start_sigma: float = 1.0
                   ) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Generate `frames` latent frames after the clean image latent `first` (B, C, 1, h, w).

    Returns the clean latents (B, C, frames, h, w) and the states at the sigmas in `keep` (the ODE trajectory
    the student regresses). With guidance > 1, `null_context` is the unconditional text. `noise` is the state the
    sampler starts from at `start_sigma`: pure noise at 1 (drawn when not given); below 1 (SDEdit), a clip noised to
    that level (`add_noise`), from which the grid's steps below it run.
    """
    if not 0 < start_sigma <= 1:
        raise ValueError(f"start_sigma must be in (0, 1] (got {start_sigma}).")
    if noise is None and start_sigma < 1:
        raise ValueError("start_sigma below 1 starts from a noised clip: pass it as noise (add_noise(x0, n, sigma)).")
    b, c, _, lh, lw = first.shape
    x = torch.randn(b, c, frames, lh, lw, device=first.device, dtype=first.dtype) if noise is None else noise.clone()
    x[:, :, :1] = first
    vis = bidirectional_visibility(frames)
    grid = sampler.teacher_grid()
    if start_sigma < 1:
        grid = torch.cat([grid.new_tensor([start_sigma]), grid[grid < start_sigma]])
    states = {}
    for s, s_next in zip(grid[:-1], grid[1:]):
        sigma = torch.full((b, frames), float(s), device=x.device)
        sigma[:, 0] = 0.0
        for k in keep:
            if abs(float(s) - k) < 1e-9:
                states[k] = x.clone()
        v = model(x, timesteps(sigma), context, actions, poses, vis)
        if sampler.guidance != 1.0:
            if null_context is None:
                raise ValueError("classifier-free guidance needs null_context (e.g. model.encode_text(['']))")
            v_null = model(x, timesteps(sigma), null_context, actions, poses, vis)
            v = v_null + sampler.guidance * (v - v_null)
        x = x + float(s_next - s) * v
        x[:, :, :1] = first
    return x, states


# ---- the one denoising loop: a chunk against the cache ----------------------------------------------------
@dataclass
class Chunk:
    """Conditioning of one chunk: per-video-frame controls for its frames and the text context."""

    context: torch.Tensor
    actions: torch.Tensor | None
    poses: torch.Tensor | None

    @classmethod
    def of(cls, context, actions, poses, frames: slice) -> "Chunk":
        """The conditioning of the video frames `frames` of a whole sequence's controls (None stays None)."""
        return cls(context, None if actions is None else actions[:, frames], None if poses is None else poses[:, frames])


def denoise_chunk(model, cache: KVCache, noise: torch.Tensor, cond: Chunk, sigmas: Sigmas,
                  renoise: Callable[[int], torch.Tensor] | None = None, exit_step: int | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Few-step denoising of one chunk from pure noise.

    renoise(i) gives the fresh noise used to go to sigmas[i] (i >= 1); by default torch.randn_like.
    With exit_step = k the loop stops after step k and that step runs with gradients (self-forcing's
    truncation); the others never build a graph. Returns (x0 prediction, the input of the last step run, k).
    """
    b, n = noise.shape[0], noise.shape[2]
    last = len(sigmas) - 1 if exit_step is None else exit_step
    x = noise
    for i in range(last + 1):
        sigma = torch.full((b, n), sigmas[i], device=noise.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and i == last and exit_step is not None):
            v = model.step(x, timesteps(sigma), cond.context, cond.actions, cond.poses, cache)
            x0 = x0_from_velocity(x, v, sigma)
        if i == last:
            return x0, x, last
        eps = renoise(i + 1) if renoise is not None else torch.randn_like(x)
        nxt = torch.full((b, n), sigmas[i + 1], device=noise.device)
        x = add_noise(x0.detach(), eps, nxt)
    raise AssertionError("unreachable")


@torch.no_grad()
def commit(model, cache: KVCache, x0: torch.Tensor, cond: Chunk) -> None:
    """The context pass: run the clean chunk at sigma 0 and write its keys and values into the cache."""
    sigma = torch.zeros(x0.shape[0], x0.shape[2], device=x0.device)
    model.step(x0.detach(), timesteps(sigma), cond.context, cond.actions, cond.poses, cache, write=True)


def chunk_slices(cfg, latent_frames: int) -> list[tuple[slice, slice]]:
    """(latent slice, video-frame slice) of each chunk: the image frame alone, then `cfg.chunk` latents each."""
    if latent_frames < 1 or (latent_frames - 1) % cfg.chunk:
        raise ValueError(f"{latent_frames} latent frames do not split into the image + chunks of {cfg.chunk}.")
    out = [(slice(0, 1), slice(0, 1))]
    for s in range(1, latent_frames, cfg.chunk):
        v = 1 + (s - 1) * cfg.temporal_down
        out.append((slice(s, s + cfg.chunk), slice(v, v + cfg.chunk * cfg.temporal_down)))
    return out


@dataclass
class Rollout:
    latents: torch.Tensor  # (B, C, F, h, w) clean latents, image first
    inputs: list[torch.Tensor] = field(default_factory=list)  # per chunk: input of the exit step
    exits: list[int] = field(default_factory=list)


def rollout(model, cache: KVCache, first: torch.Tensor, context: torch.Tensor, actions, poses, latent_frames: int,
            sigmas: Sigmas, noise: Callable[[int, int], torch.Tensor], exit_steps: list[int] | None = None) -> Rollout:
    """Autoregressive generation: commit the image latent, then denoise + commit chunk after chunk.

    noise(chunk, step) returns the noise for that chunk's step (step 0: the starting noise). exit_steps picks,
    per chunk, the step at which denoising stops (self-forcing); None runs every step.
    """
    cfg = model.cfg
    parts = chunk_slices(cfg, latent_frames)
    commit(model, cache, first, Chunk.of(context, actions, poses, parts[0][1]))
    out = Rollout(latents=first)
    chunks = [first]
    for j, (ls, vs) in enumerate(parts[1:], start=1):
        cond = Chunk.of(context, actions, poses, vs)
        k = None if exit_steps is None else exit_steps[j - 1]
        x0, x_in, k = denoise_chunk(model, cache, noise(j, 0), cond, sigmas, lambda i: noise(j, i), k)
        out.inputs.append(x_in)
        out.exits.append(k)
        commit(model, cache, x0, cond)
        chunks.append(x0)
    out.latents = torch.cat(chunks, 2)
    return out
