"""Several GPUs: head-parallel self-attention with sequence-parallel layers around it, as RELIC runs its 14B model.

    parallel = HeadParallel(model)                     # after torch.distributed.init_process_group (NCCL)
    cache = parallel.new_cache(MemoryConfig())         # this rank's heads of the KV cache
    x0, _, _ = denoise_chunk(parallel, cache, noise, cond, sigmas)
    commit(parallel, cache, x0, cond)

Every rank holds the whole model and 1/P of each frame's tokens (the same slice of every latent frame, so per-frame
terms still broadcast). Linear layers, norms, cross-attention and the feed-forward run on those tokens (sequence
parallel). Before self-attention one all-to-all trades tokens for heads: each rank then holds all of the chunk's
tokens for H/P heads and attends to its own H/P heads of the KV cache (the cache, the biggest tensor in long play,
is sharded by heads). A second all-to-all trades back. The head gathers the tokens at the end of the pass.
Works with any torch.distributed backend that has all_to_all (NCCL on GPUs; gloo on CPU for the tests).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist

from .config import MemoryConfig, ModelConfig
from .memory import KVCache
from .model import WorldModel, framewise


def shard_config(cfg: ModelConfig, world: int) -> ModelConfig:
    """The config of one rank's share of the attention heads (and of the KV cache)."""
    if cfg.heads % world or cfg.tokens_per_frame % world:
        raise ValueError(f"{world} ranks must divide the {cfg.heads} heads and the {cfg.tokens_per_frame} tokens per "
                         f"frame of preset {cfg.name!r}; use a number of GPUs that divides both.")
    return dataclasses.replace(cfg, heads=cfg.heads // world, dim=cfg.dim // world)


class HeadParallel:
    """Stands in for a WorldModel in `denoise_chunk` / `commit` on every rank of a process group."""

    def __init__(self, model: WorldModel, group: dist.ProcessGroup | None = None):
        self.model, self.cfg, self.group = model, model.cfg, group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.shard_cfg = shard_config(model.cfg, self.world)
        self.local = model.cfg.tokens_per_frame // self.world  # tokens of each frame on this rank

    def new_cache(self, mem: MemoryConfig, batch: int = 1) -> KVCache:
        """This rank's share of the KV cache: H/P heads of every cached token."""
        p = next(self.model.parameters())
        return KVCache(self.shard_cfg, mem, batch, p.device, p.dtype)

    # -- the exchanges
    def _all_to_all(self, x: torch.Tensor) -> torch.Tensor:
        """x (P, ...) -> (P, ...): block i goes to rank i, block j of the result came from rank j."""
        x = x.contiguous()
        out = torch.empty_like(x)
        dist.all_to_all_single(out, x, group=self.group)
        return out

    def tokens_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F*T/P, H, D) this rank's tokens, all heads -> (B, F*T, H/P, D) all tokens in order, this rank's heads."""
        p = self.world
        x = framewise(x, self.local).unflatten(3, (p, x.shape[2] // p)).permute(3, 0, 1, 2, 4, 5)  # (P, B, F, T/P, H/P, D)
        x = self._all_to_all(x)  # block j: rank j's tokens of my heads
        return x.permute(1, 2, 0, 3, 4, 5).flatten(2, 3).flatten(1, 2)  # (B, F, P*T/P, H/P, D) -> (B, F*T, H/P, D)

    def heads_to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of tokens_to_heads."""
        p = self.world
        x = framewise(x, self.cfg.tokens_per_frame).unflatten(2, (p, self.local)).permute(2, 0, 1, 3, 4, 5)
        x = self._all_to_all(x)  # (P, B, F, T/P, H/P, D), block j: my tokens of rank j's heads
        return x.permute(1, 2, 3, 0, 4, 5).flatten(3, 4).flatten(1, 2)  # (B, F*T/P, H, D)

    def _shard(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F*T, ...) -> this rank's tokens of every frame (B, F*T/P, ...)."""
        lo = self.rank * self.local
        return framewise(x, self.cfg.tokens_per_frame)[:, :, lo: lo + self.local].flatten(1, 2)

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F*T/P, dim) from every rank -> (B, F*T, dim) in frame order."""
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        parts = [framewise(p, self.local) for p in parts]
        return torch.cat(parts, 2).flatten(1, 2)

    # -- the step
    def step(self, x, t, context, actions, poses, cache: KVCache, write: bool = False) -> torch.Tensor:
        """WorldModel.step, computed across the group; every rank returns the whole velocity."""
        model = self.model
        h, fr, temb = model.step_inputs(x, t, context, actions, poses, cache)
        fr = dataclasses.replace(fr, tokens=self.local, cos=self._shard(fr.cos[None])[0], sin=self._shard(fr.sin[None])[0])
        inner = model.cache_attend(cache, write)

        def attend(layer, q, k_pre, k, v):
            full = [self.tokens_to_heads(a) for a in (q, k_pre, k, v)]
            return self.heads_to_tokens(inner(layer, *full))

        h = model.run_blocks(self._shard(h), fr, attend)
        return model.head(self._gather(h), temb, x, t)

