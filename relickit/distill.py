"""The causal student: hybrid-forcing initialisation and self-forcing DMD with replayed back-propagation.

Stage 1, hybrid forcing (ODE regression). The teacher's ODE trajectory gives, for each latent frame, its state at
the student's four sigmas and the clean end point. Of B blocks, the first B-K are clean context the student sees
compressed; the last K are noisy, each at its own step of the trajectory, attending to the noisy blocks before
them at full resolution and to the compressed context. The student learns to map each state to the end point.

Stage 2, self-forcing DMD. The student rolls out on its own outputs (`diffusion.rollout`, the loop play uses),
stopping each chunk at a random step that alone carries gradients. The DMD gradient of a sample x is
g = (x0_fake - x0_real) / mean|x - x0_real| at a re-noised x: real = the frozen teacher, fake = a critic trained by
flow matching on the student's samples. The surrogate 0.5 * ||x - sg(x - g)||^2 has gradient g w.r.t. x.

Replayed back-propagation (RELIC's memory trick): (a) roll out the whole sequence without gradients; (b) score it
once with teacher and critic and keep g per block; (c) replay the rollout block by block WITH gradients from the
cached context, back-propagate that block's part of the surrogate and free its graph; (d) one optimizer step.
Peak memory is one block's graph instead of the whole rollout's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import MemoryConfig, ModelConfig, check_rope_range
from .diffusion import (Chunk, SamplerConfig, add_noise, chunk_slices, commit, rollout, sample_train_sigma,
                        timesteps, x0_from_velocity)
from .memory import bidirectional_visibility, block_of, hybrid_visibility, is_bounded


@dataclass(frozen=True)
class DistillConfig:
    sampler: SamplerConfig = SamplerConfig()
    memory: MemoryConfig = MemoryConfig()
    noisy_blocks: int = 2  # K of hybrid forcing
    dmd_shift: float = 5.0  # DMD re-noising level: uniform, shifted, clamped to the range below
    dmd_sigma_min: float = 0.02
    dmd_sigma_max: float = 0.98
    guidance: float = 1.0  # classifier-free guidance of the real score
    critic_steps: int = 5  # critic updates per generator update


def check_rollout(scorer: ModelConfig, latent_frames: int, cfg: DistillConfig, what: str) -> None:
    """Fail before any work when a rollout of `latent_frames` cannot run: it must be the image plus whole chunks,
    fit the memory, and lie in the RoPE range of the model that scores it in one full-sequence pass."""
    chunk_slices(scorer, latent_frames)
    if not is_bounded(cfg.memory) and latent_frames > cfg.memory.capacity:
        raise ValueError(f"{what}: {latent_frames} latent frames exceed the memory's capacity {cfg.memory.capacity}; "
                         "raise DistillConfig.memory.capacity.")
    check_rope_range(scorer, latent_frames, what)


# ---- stage 1: hybrid forcing ------------------------------------------------------------------------------
@torch.no_grad()
def ode_trajectory(teacher, first, frames, context, actions, poses, sampler: SamplerConfig,
                   null_context=None, noise=None) -> torch.Tensor:
    """(B, S+1, C, F, h, w): the teacher's state at each student sigma, then its clean end point."""
    from .diffusion import sample_teacher

    x0, states = sample_teacher(teacher, first, frames, context, actions, poses, sampler, null_context, noise,
                                keep=sampler.sigmas)
    return torch.stack([states[s] for s in sampler.sigmas] + [x0], 1)


def hybrid_forcing_loss(student, trajectory: torch.Tensor, context, actions, poses, cfg: DistillConfig,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """MSE of the student's x0 on the K noisy blocks, each at a random step of the teacher's trajectory."""
    b, steps1, c, f, lh, lw = trajectory.shape
    sigmas = torch.tensor(cfg.sampler.sigmas)
    blk = block_of(f, student.cfg.chunk)
    first_noisy = int(blk[-1]) - cfg.noisy_blocks + 1
    noisy = blk >= first_noisy
    step = torch.randint(0, len(sigmas), (b, int(blk[-1]) + 1), generator=generator)[:, blk]  # (B, F) per block
    step = torch.where(noisy[None], step, torch.full_like(step, steps1 - 1))  # context: clean end point
    x = trajectory[torch.arange(b)[:, None], step, :, torch.arange(f)[None]].float()  # (B, F, C, h, w)
    x = x.permute(0, 2, 1, 3, 4)
    sigma = torch.cat([sigmas, torch.zeros(1)])[step].to(x.device)
    vis = hybrid_visibility(f, student.cfg.chunk, cfg.noisy_blocks, cfg.memory)
    v = student(x, timesteps(sigma), context, actions, poses, vis, cfg.memory)
    x0 = x0_from_velocity(x, v, sigma)
    target = trajectory[:, -1]
    return ((x0.float() - target.float()) ** 2)[:, :, noisy].mean()


# ---- stage 2: DMD ------------------------------------------------------------------------------------------
def dmd_surrogate(x: torch.Tensor, g: torch.Tensor, denominator: int) -> torch.Tensor:
    """0.5 * ||x - sg(x - g)||^2 / denominator: its gradient w.r.t. x is g / denominator."""
    return 0.5 * ((x.double() - (x.double() - g.double()).detach()) ** 2).sum() / denominator


def dmd_sigma(batch: int, cfg: DistillConfig, generator=None, device=None) -> torch.Tensor:
    s = sample_train_sigma((batch,), cfg.dmd_shift, generator, device)
    return s.clamp(cfg.dmd_sigma_min, cfg.dmd_sigma_max)


@torch.no_grad()
def dmd_gradient(x: torch.Tensor, teacher, critic, captions: list[str], actions, poses, sigma: torch.Tensor,
                 noise: torch.Tensor, cfg: DistillConfig) -> torch.Tensor:
    """g = (x0_fake - x0_real) / mean|x - x0_real| per sample; frame 0 (the image) gets no gradient.

    Teacher and critic read the captions with their own text encoders."""
    b, _, f = x.shape[:3]
    s = sigma[:, None].expand(b, f).clone()
    s[:, 0] = 0.0
    xt = add_noise(x, noise, s)
    vis = bidirectional_visibility(f)

    def x0_of(model, texts):
        return x0_from_velocity(xt, model(xt, timesteps(s), model.encode_text(texts), actions, poses, vis), s)

    real = x0_of(teacher, captions)
    if cfg.guidance != 1.0:
        real_null = x0_of(teacher, [""] * b)
        real = real_null + cfg.guidance * (real - real_null)
    fake = x0_of(critic, captions)
    norm = (x - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-8)
    g = (fake - real) / norm
    g[:, :, 0] = 0.0
    return g


def critic_loss(critic, x: torch.Tensor, captions: list[str], actions, poses, cfg: DistillConfig, generator=None):
    """Flow matching of the critic on the student's (detached) samples."""
    from .diffusion import flow_matching_loss

    b, f = x.shape[0], x.shape[2]
    sigma = sample_train_sigma((b, 1), cfg.sampler.shift, generator, x.device).expand(b, f)
    return flow_matching_loss(critic, x.detach(), critic.encode_text(captions), actions, poses,
                              bidirectional_visibility(f), sigma=sigma)


@dataclass
class GeneratorStep:
    loss: torch.Tensor  # the surrogate's value (already back-propagated)
    latents: torch.Tensor  # the rollout (detached), for the critic


def generator_step(student, teacher, critic, first, captions: list[str], actions, poses, latent_frames: int,
                   cfg: DistillConfig, exit_steps: list[int], noise, dmd_noise: torch.Tensor, sigma: torch.Tensor,
                   replay: bool = True) -> GeneratorStep:
    """One DMD generator update's backward pass (the caller steps the optimizer).

    noise(chunk, step) supplies the rollout noise; the same noise, exit steps, dmd noise and sigma make the
    replayed and the naive paths compute the same gradient.
    """
    for name, model in (("teacher", teacher), ("critic", critic)):
        check_rollout(model.cfg, latent_frames, cfg, f"generator_step: the {name} scores the whole rollout")
    sig = cfg.sampler.sigmas
    parts = chunk_slices(student.cfg, latent_frames)
    context = student.encode_text(captions)
    denom = first.shape[0] * first.shape[1] * (latent_frames - 1) * first.shape[3] * first.shape[4]
    if not replay:  # naive: the whole rollout keeps its graph
        ro = rollout(student, student.new_cache(cfg.memory, first.shape[0]), first, context, actions, poses,
                     latent_frames, sig, noise, exit_steps)
        g = dmd_gradient(ro.latents.detach(), teacher, critic, captions, actions, poses, sigma, dmd_noise, cfg)
        loss = dmd_surrogate(ro.latents[:, :, 1:], g[:, :, 1:], denom)
        loss.backward()
        return GeneratorStep(loss.detach(), ro.latents.detach())
    # (a) the rollout without gradients
    with torch.no_grad():
        ro = rollout(student, student.new_cache(cfg.memory, first.shape[0]), first, context, actions, poses,
                     latent_frames, sig, noise, exit_steps)
    # (b) one pass of teacher and critic over the whole sequence
    g = dmd_gradient(ro.latents, teacher, critic, captions, actions, poses, sigma, dmd_noise, cfg)
    # (c) replay block by block from the cached context, back-propagating each block's share. The text
    # context is shared by every block: replay through a leaf copy and back-propagate its gradient once.
    text = context
    context = context.detach().requires_grad_(text.requires_grad)
    cache = student.new_cache(cfg.memory, first.shape[0])

    commit(student, cache, first, Chunk.of(context, actions, poses, parts[0][1]))
    total = torch.zeros((), dtype=torch.float64, device=first.device)
    for j, (ls, vs) in enumerate(parts[1:]):
        cond = Chunk.of(context, actions, poses, vs)
        x_in, k = ro.inputs[j], ro.exits[j]
        sigma_k = torch.full((x_in.shape[0], x_in.shape[2]), sig[k], device=x_in.device)
        v = student.step(x_in, timesteps(sigma_k), cond.context, cond.actions, cond.poses, cache)
        x0 = x0_from_velocity(x_in, v, sigma_k)
        loss = dmd_surrogate(x0, g[:, :, ls], denom)
        loss.backward()  # frees this block's graph
        total += loss.detach()
        commit(student, cache, x0, cond)
    if text.requires_grad and context.grad is not None:
        text.backward(context.grad)
    return GeneratorStep(total, ro.latents)


# ---- drivers: the two student stages on the shared training loop ------------------------------------------
def make_ode_set(teacher, batches, count: int, cfg: DistillConfig, path, progress: bool = True):
    """Sample `count` batches of teacher ODE trajectories from dataset clips and save them (fp16 safetensors).

    Each clip gives the image latent, controls and caption; the teacher generates the rest from noise."""
    from tqdm.auto import tqdm

    from . import checkpoint

    trajs, acts, poses, caps = [], [], [], []
    for i in tqdm(range(count), desc="ODE trajectories", disable=not progress):
        batch = batches(i)
        lat = batch["latents"]  # the image latent is all that is used: the teacher generates the rest
        ctx = teacher.encode_text(list(batch["caption"]))
        frames = teacher.cfg.latent_frames(batch["actions"].shape[1])
        trajs.append(ode_trajectory(teacher, lat[:, :, :1], frames, ctx, batch["actions"], batch["poses"],
                                    cfg.sampler).half().cpu())
        acts.append(batch["actions"].cpu())
        poses.append(batch["poses"].cpu())
        caps.extend(batch["caption"])
    import json

    return checkpoint.save(path, {"trajectories": torch.cat(trajs), "actions": torch.cat(acts), "poses": torch.cat(poses)},
                           kind="ode_trajectories", config=cfg.sampler, extra={"captions": json.dumps(caps)})


class ODESet(torch.utils.data.Dataset):
    """Teacher trajectories saved by `make_ode_set`, served in fp16 as stored: `hybrid_forcing_loss` reads the two
    states per frame it uses in fp32, so a batch is half the bytes to collate and copy to the device."""

    def __init__(self, path):
        import json

        from . import checkpoint

        tensors, _, meta = checkpoint.load(path, "ode_trajectories")
        self.trajectories, self.actions, self.poses = tensors["trajectories"], tensors["actions"], tensors["poses"]
        self.captions = json.loads(meta["captions"])

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, i: int) -> dict:
        return {"trajectory": self.trajectories[i], "actions": self.actions[i], "poses": self.poses[i],
                "caption": self.captions[i]}

    def batches(self, batch_size: int, seed: int, device: torch.device | str | None = None):
        """index -> the batch relickit.train.random_batches(self, batch_size, seed) draws (`batch_rows`), gathered
        where the set was moved once: no per-step collate and host-to-device copy of the trajectories (on an H200
        that copy took 0.86 s of a 0.88 s hybrid step, 64 x 13 latent frames)."""
        from .train import batch_rows

        stored = {"trajectory": self.trajectories.to(device), "actions": self.actions.to(device),
                  "poses": self.poses.to(device)}

        def batch(index: int) -> dict:
            rows = batch_rows(len(self), batch_size, seed, index)
            picked = torch.from_numpy(rows).to(device)
            return {k: v[picked] for k, v in stored.items()} | {"caption": [self.captions[int(r)] for r in rows]}

        return batch


def hybrid_loss_fn(cfg: DistillConfig):
    from .teacher import unwrap

    def loss_fn(model, batch, step):
        context = unwrap(model).encode_text(list(batch["caption"]))
        return hybrid_forcing_loss(model, batch["trajectory"], context, batch["actions"], batch["poses"], cfg), {}

    return loss_fn


class DMDPair(torch.nn.Module):
    """The two trained networks of DMD, optimised together: the student and the critic (fake score)."""

    def __init__(self, student, critic):
        super().__init__()
        self.student, self.critic = student, critic


def dmd_loss_fn(teacher, cfg: DistillConfig, latent_frames: int, replay: bool = True):
    """loss_fn for `train` over a DMDPair: a critic update every step, a generator update every
    `critic_steps` steps (its backward runs inside, block by block when `replay`)."""
    from .teacher import unwrap

    check_rollout(teacher.cfg, latent_frames, cfg, "dmd_loss_fn: the teacher scores each rollout")
    teacher.requires_grad_(False).eval()

    def loss_fn(pair, batch, step):
        pair = unwrap(pair)
        student, critic = pair.student, pair.critic
        first = batch["latents"][:, :, :1]
        b, dev = first.shape[0], first.device
        caps = list(batch["caption"])
        n_chunks = (latent_frames - 1) // student.cfg.chunk
        chunk_shape = (b, first.shape[1], student.cfg.chunk, *first.shape[3:])
        table = torch.randn(n_chunks + 1, len(cfg.sampler.sigmas), *chunk_shape, device=dev)
        logs = {}
        if step % cfg.critic_steps == 0:
            exits = torch.randint(0, len(cfg.sampler.sigmas), (n_chunks,)).tolist()
            shape = (b, first.shape[1], latent_frames, *first.shape[3:])
            gen = generator_step(student, teacher, critic, first, caps, batch["actions"], batch["poses"],
                                 latent_frames, cfg, exits, lambda j, i: table[j, i],
                                 torch.randn(shape, device=dev), dmd_sigma(b, cfg, device=dev), replay)
            logs["dmd"] = gen.loss
            latents = gen.latents
        else:
            with torch.no_grad():
                latents = rollout(student, student.new_cache(cfg.memory, b), first, student.encode_text(caps),
                                  batch["actions"], batch["poses"], latent_frames, cfg.sampler.sigmas,
                                  lambda j, i: table[j, i]).latents
        return critic_loss(critic, latents, caps, batch["actions"], batch["poses"], cfg), logs

    return loss_fn


def dmd_mix_loss_fn(teachers: dict, cfg: DistillConfig, replay: bool = True):
    """dmd_loss_fn over batches of several rollout lengths (`teachers`: latent frames -> the teacher that scores
    rollouts of that length): each batch is rolled out as long as its clips and scored by its length's teacher, one
    critic for all (the recipe's mixed DMD stage, RecipeConfig.dmd_mix)."""
    fns = {frames: dmd_loss_fn(teacher, cfg, frames, replay) for frames, teacher in teachers.items()}

    def loss_fn(pair, batch, step):
        frames = batch["latents"].shape[2]
        if frames not in fns:
            raise ValueError(f"a batch of {frames} latent frames; this DMD loss scores rollouts of {sorted(fns)}.")
        return fns[frames](pair, batch, step)

    return loss_fn


class GraphMemory:
    """Bytes of activations autograd holds for backward, current and peak, on any device.

        with GraphMemory() as mem:
            generator_step(..., replay=True)
        mem.peak
    """

    def __init__(self):
        self.current = self.peak = 0

    def _pack(self, t: torch.Tensor):
        meter, size = self, t.numel() * t.element_size()

        class Held:
            def __init__(self):
                self.t = t
                meter.current += size
                meter.peak = max(meter.peak, meter.current)

            def __del__(self):
                meter.current -= size

        return Held()

    def __enter__(self) -> "GraphMemory":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda held: held.t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
