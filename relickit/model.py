"""The world model: a Wan-2.1 DiT with RELIC's controls, run bidirectionally, block-causally, or streaming.

Module names follow diffusers' WanTransformer3DModel so its weights load directly (`load_wan_state_dict`).
RELIC adds, in every block, an action term added to the hidden state after self-attention and a pose term
added to Q and K (not V) before attention, both zero-initialised so a Wan checkpoint starts unchanged.

Two entry points:
  forward(...)  the full sequence under a frame-level `Visibility` (bidirectional, block-causal, hybrid);
  step(...)     one chunk against a `KVCache`; with write=True (a clean context pass) it stores the chunk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .attention import Backend, attention, resolve
from .config import ModelConfig, check_rope_range
from .controls import ACTION_DIM, POSE_DIM, ControlEncoder, group_chunk, group_frames
from .diffusion import velocity_preconditioning
from .memory import KVCache, Visibility, compressed_tokens, frame_positions, pool_frames
from .rope import Rope3D, apply_rope, grid_positions
from .text import TextEncoder


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos, sin] of timesteps t (any shape) -> (*t.shape, dim), as diffusers' Timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[..., None] * freqs
    return torch.cat([torch.cos(ang), torch.sin(ang)], -1)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 (Wan keeps its norms in fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class RMSNorm32(nn.RMSNorm):
    """RMSNorm computed in float32, like LayerNorm32. Under bf16 autocast the input arrives in bf16 and the weight
    stays fp32, a mix torch.rms_norm cannot fuse (it falls back to several kernels and warns)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        return F.rms_norm(x.float(), self.normalized_shape, w, self.eps).to(x.dtype)


class Mlp2(nn.Module):
    """linear_1 -> activation -> linear_2 (names as diffusers' TimestepEmbedding / PixArt text projection)."""

    def __init__(self, d_in: int, d: int, act: nn.Module):
        super().__init__()
        self.linear_1, self.act, self.linear_2 = nn.Linear(d_in, d), act, nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class ConditionEmbedder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.freq_dim = cfg.freq_dim
        self.time_embedder = Mlp2(cfg.freq_dim, cfg.dim, nn.SiLU())
        self.time_proj = nn.Linear(cfg.dim, 6 * cfg.dim)
        self.text_embedder = Mlp2(cfg.text_dim, cfg.dim, nn.GELU(approximate="tanh"))

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t (B, F) -> temb (B, F, dim), modulation (B, F, 6, dim)."""
        temb = self.time_embedder(timestep_features(t, self.freq_dim).to(self.time_proj.weight.dtype))
        return temb, self.time_proj(F.silu(temb)).unflatten(-1, (6, -1))


class GeluProj(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.ModuleList([GeluProj(dim, hidden), nn.Identity(), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dim
        self.heads = cfg.heads
        self.to_q, self.to_k, self.to_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.to_out = nn.ModuleList([nn.Linear(d, d)])
        self.norm_q = RMSNorm32(d, eps=cfg.eps)
        self.norm_k = RMSNorm32(d, eps=cfg.eps)

    def heads_of(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1))

    def cross(self, x: torch.Tensor, context: torch.Tensor, backend: Backend) -> torch.Tensor:
        q = self.heads_of(self.norm_q(self.to_q(x)))
        k = self.heads_of(self.norm_k(self.to_k(context)))
        v = self.heads_of(self.to_v(context))
        return self.to_out[0](attention(q, k, v, backend=backend).flatten(2))


# attend(layer, q, k_pre, k, v) -> attention output (B, L, H, D); supplied by forward() or step()
AttendFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Frames:
    """Per-latent-frame inputs of a pass, shared by all blocks."""

    tokens: int  # tokens per latent frame
    mod: torch.Tensor  # (B, F, 6, dim) timestep modulation
    context: torch.Tensor  # (B, Lt, dim) text
    cos: torch.Tensor  # (L, head_dim) RoPE
    sin: torch.Tensor
    action: torch.Tensor | None  # (B, F, dim)
    pose: torch.Tensor | None  # (B, F, dim)


def framewise(x: torch.Tensor, tokens: int) -> torch.Tensor:
    """(B, F*tokens, ...) -> (B, F, tokens, ...): a view in which per-frame terms (B, F, 1, ...) broadcast."""
    return x.unflatten(1, (-1, tokens))


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, tokens: int) -> torch.Tensor:
    """h * (1 + scale) + shift with per-frame shift/scale (B, F, 1, dim) -> (B, L, dim)."""
    return (framewise(h, tokens) * (1 + scale) + shift).flatten(1, 2)


def add_per_frame(x: torch.Tensor, y: torch.Tensor, tokens: int) -> torch.Tensor:
    """x (B, F*tokens, dim) + y (B, F, dim), y broadcast over each frame's tokens."""
    return (framewise(x, tokens) + y[:, :, None]).flatten(1, 2)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor, tokens: int) -> torch.Tensor:
    """x + y * gate in float32 with a per-frame gate (B, F, 1, dim), back in x's dtype."""
    return (framewise(x.float(), tokens) + framewise(y.float(), tokens) * gate).flatten(1, 2).type_as(x)


class Block(nn.Module):
    """One Wan block with RELIC's controls, split around self-attention: attn_in makes the queries, keys and
    values, the caller attends (to the cache or under a mask), attn_out does the rest. The two halves are what
    `WorldModel.compile_blocks` compiles."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dim
        self.norm1 = LayerNorm32(d, cfg.eps, elementwise_affine=False)
        self.attn1 = Attention(cfg)
        self.attn2 = Attention(cfg)
        self.norm2 = LayerNorm32(d, cfg.eps, elementwise_affine=True)
        self.ffn = FeedForward(d, cfg.ffn_dim)
        self.norm3 = LayerNorm32(d, cfg.eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, d) / d**0.5)
        if cfg.controls:  # RELIC: zero-initialised so a pretrained backbone starts unchanged
            self.action_proj = nn.Linear(d, d)
            self.pose_proj = nn.Linear(d, d)
            for lin in (self.action_proj, self.pose_proj):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def modulation(self, fr: Frames) -> tuple[torch.Tensor, ...]:
        """shift, scale, gate, c_shift, c_scale, c_gate, each (B, F, 1, dim) in float32."""
        return (self.scale_shift_table + fr.mod.float())[:, :, None].unbind(3)

    def attn_in(self, x: torch.Tensor, fr: Frames) -> tuple[torch.Tensor, ...]:
        """Self-attention inputs q, k_pre, k, v (B, L, H, D): q and k after RoPE, k_pre before it (what the
        memory pools)."""
        shift, scale = self.modulation(fr)[:2]
        h = modulate(self.norm1(x.float()), shift, scale, fr.tokens).type_as(x)
        a = self.attn1
        q, k, v = a.to_q(h), a.to_k(h), a.to_v(h)
        if fr.pose is not None:  # pose into Q and K, not V
            p = self.pose_proj(fr.pose)
            q, k = add_per_frame(q, p, fr.tokens), add_per_frame(k, p, fr.tokens)
        q, k_pre, v = a.heads_of(a.norm_q(q)), a.heads_of(a.norm_k(k)), a.heads_of(v)
        return apply_rope(q, fr.cos, fr.sin), k_pre, apply_rope(k_pre, fr.cos, fr.sin), v

    def attn_out(self, x: torch.Tensor, o: torch.Tensor, fr: Frames, backend: Backend) -> torch.Tensor:
        """The block after self-attention, given its output o (B, L, H, D)."""
        t = fr.tokens
        gate, c_shift, c_scale, c_gate = self.modulation(fr)[2:]
        x = gated_residual(x, self.attn1.to_out[0](o.flatten(2)), gate, t)
        if fr.action is not None:  # action after self-attention
            x = add_per_frame(x, self.action_proj(fr.action), t)
        x = x + self.attn2.cross(self.norm2(x.float()).type_as(x), fr.context, backend)
        h = modulate(self.norm3(x.float()), c_shift, c_scale, t).type_as(x)
        return gated_residual(x, self.ffn(h), c_gate, t)

    def forward(self, x: torch.Tensor, fr: Frames, layer: int, attend: AttendFn, backend: Backend) -> torch.Tensor:
        return self.attn_out(x, attend(layer, *self.attn_in(x, fr)), fr, backend)


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: Backend = "auto"):
        super().__init__()
        self.cfg, self.backend = cfg, backend
        c, d = cfg.latent_channels, cfg.dim
        self.rope = Rope3D(cfg)
        self.patch_embedding = nn.Conv3d(c, d, kernel_size=cfg.patch, stride=cfg.patch)
        self.condition_embedder = ConditionEmbedder(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.layers)])
        self.norm_out = LayerNorm32(d, cfg.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(d, c * math.prod(cfg.patch))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, d) / d**0.5)
        self.text_encoder = TextEncoder(cfg)
        if cfg.controls:
            self.action_encoder = ControlEncoder(ACTION_DIM, d, cfg.temporal_down)
            self.pose_encoder = ControlEncoder(POSE_DIM, d, cfg.temporal_down)

    # ---- inputs -----------------------------------------------------------------------------------------
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder(texts)

    def _check(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> None:
        cfg = self.cfg
        want = (cfg.latent_channels, *cfg.latent_size)
        if x.ndim != 5 or (x.shape[1], x.shape[3], x.shape[4]) != want:
            raise ValueError(f"latents must be (B, {want[0]}, F, {want[1]}, {want[2]}) for preset {cfg.name!r}; got {tuple(x.shape)}.")
        if t.shape != x.shape[:1] + x.shape[2:3]:
            raise ValueError(f"timesteps must be (B, F) = {tuple(x.shape[:1] + x.shape[2:3])}, one per latent frame; got {tuple(t.shape)}.")
        if context.ndim != 3 or context.shape[-1] != cfg.text_dim:
            raise ValueError(f"text context must be (B, L, {cfg.text_dim}); got {tuple(context.shape)}. Use model.encode_text(captions).")

    def _controls(self, actions, poses, group) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.cfg.controls:
            return None, None
        if actions is None or poses is None:
            raise ValueError("this model is action- and pose-conditioned: pass actions (B, T, 13) and poses (B, T, 12).")
        for name, x, dim in (("actions", actions, ACTION_DIM), ("poses", poses, POSE_DIM)):
            if x.shape[-1] != dim:
                raise ValueError(f"{name} must have {dim} entries per frame; got shape {tuple(x.shape)}.")
        td = self.cfg.temporal_down
        return self.action_encoder(group(actions, td)), self.pose_encoder(group(poses, td))

    def _frames(self, x, t, context, actions, poses, positions, group):
        self._check(x, t, context)
        h = self.patch_embedding(x).flatten(2).transpose(1, 2)
        temb, mod = self.condition_embedder(t)
        action, pose = self._controls(actions, poses, group)
        if action is not None and action.shape[1] != x.shape[2]:
            raise ValueError(f"controls cover {action.shape[1]} latent frames but the latents have {x.shape[2]}; "
                             f"pass the {self.cfg.temporal_down} video frames of each latent frame (1 for the first).")
        cos, sin = self.rope.angles(positions)
        fr = Frames(self.cfg.tokens_per_frame, mod, self.condition_embedder.text_embedder(context), cos, sin, action, pose)
        return h, fr, temb

    def head(self, h: torch.Tensor, temb: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L, dim) -> velocity (B, C, F, h, w) for the input latents x at timesteps t (B, F)."""
        b, c, f, lh, lw = x.shape
        pt, ph, pw = self.cfg.patch
        shift, scale = (self.scale_shift_table + temb[:, :, None].float())[:, :, None].unbind(3)
        h = modulate(self.norm_out(h.float()), shift, scale, self.cfg.tokens_per_frame).type_as(h)
        h = self.proj_out(h).reshape(b, f, lh // ph, lw // pw, pt, ph, pw, c)
        v = h.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, f, lh, lw)
        if not self.cfg.sigma_data:
            return v
        skip, out = (k[:, None, :, None, None] for k in velocity_preconditioning(t.float() / 1000, self.cfg.sigma_data))
        return (skip * x.float() + out * v.float()).type_as(v)

    def run_blocks(self, h: torch.Tensor, fr: Frames, attend: AttendFn) -> torch.Tensor:
        backend = resolve(self.backend, h.device)
        for i, block in enumerate(self.blocks):
            h = block(h, fr, i, attend, backend)
        return h

    def compile_blocks(self, **options) -> "WorldModel":
        """torch.compile each block's two halves around self-attention (attention itself stays eager, so the
        growing cache never recompiles). `options` go to torch.compile, e.g. mode="max-autotune-no-cudagraphs"."""
        for block in self.blocks:
            block.attn_in = torch.compile(block.attn_in, dynamic=False, **options)
            block.attn_out = torch.compile(block.attn_out, dynamic=False, **options)
        return self

    @property
    def softmax_scale(self) -> float:
        return self.cfg.head_dim**-0.5 * self.rope.scale**2

    # ---- entry point 1: the full sequence ---------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, actions: torch.Tensor | None,
                poses: torch.Tensor | None, visibility: Visibility, mem_schedule=None) -> torch.Tensor:
        """Velocity for latents x (B, C, F, h, w) at timesteps t (B, F) in [0, 1000].

        actions (B, T, 13), poses (B, T, 12) per video frame (T = 1 + 4(F-1)); visibility from
        relickit.memory (bidirectional / causal / hybrid); `mem_schedule` (a MemoryConfig) gives compression
        factors when the visibility uses compressed keys.
        """
        f = x.shape[2]
        check_rope_range(self.cfg, f, "forward")
        if visibility.full.shape != (f, f):
            raise ValueError(f"visibility is for {visibility.full.shape[0]} frames, latents have {f}.")
        if not torch.isfinite(x).all():  # a host sync: training checks its inputs, the streaming step does not
            raise ValueError("latents contain NaN or inf.")
        pos = grid_positions(torch.arange(f, device=x.device), self.cfg.token_grid)
        h, fr, temb = self._frames(x, t, context, actions, poses, pos, group_frames)
        attend = self._full_attend(visibility, mem_schedule, x.device)
        return self.head(self.run_blocks(h, fr, attend), temb, x, t)

    def _full_attend(self, vis: Visibility, mem, device) -> AttendFn:
        cfg, tok = self.cfg, self.cfg.tokens_per_frame
        full_mask = vis.full.repeat_interleave(tok, 0).repeat_interleave(tok, 1)
        comp_frames = [int(k) for k in torch.nonzero(vis.comp.any(0)).flatten()]
        if not comp_frames:
            mask = None if bool(vis.full.all()) else full_mask.to(device)
            scale = self.softmax_scale
            return lambda layer, q, k_pre, k, v: attention(q, k, v, mask, self.backend, scale)
        if mem is None:
            raise ValueError("this visibility uses compressed keys: pass mem_schedule=MemoryConfig(...).")
        by_factor: dict[int, list[int]] = {}
        for k in comp_frames:
            by_factor.setdefault(mem.factor(k), []).append(k)
        cols, rots = [], []
        for fac, frames in by_factor.items():
            n = compressed_tokens(cfg, fac)
            cols.append(vis.comp[:, frames].repeat_interleave(n, 1))
            rots.append(self.rope.angles(torch.cat([frame_positions(cfg, k, fac, device) for k in frames])))
        mask = torch.cat([full_mask, torch.cat(cols, 1).repeat_interleave(tok, 0)], 1).to(device)
        cos = torch.cat([c for c, _ in rots])
        sin = torch.cat([s for _, s in rots])
        scale = self.softmax_scale

        def attend(layer, q, k_pre, k, v):
            kf, vf = framewise(k_pre, tok), framewise(v, tok)
            kc = [pool_frames(kf[:, frames], cfg, fac).flatten(1, 2) for fac, frames in by_factor.items()]
            vc = [pool_frames(vf[:, frames], cfg, fac).flatten(1, 2) for fac, frames in by_factor.items()]
            kc = apply_rope(torch.cat(kc, 1), cos, sin)
            return attention(q, torch.cat([k, kc], 1), torch.cat([v, torch.cat(vc, 1)], 1), mask, self.backend, scale)

        return attend

    # ---- entry point 2: one chunk against the cache ----------------------------------------------------
    def step(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, actions: torch.Tensor | None,
             poses: torch.Tensor | None, cache: KVCache, write: bool = False) -> torch.Tensor:
        """Velocity for the next chunk x (B, C, n, h, w) given everything in `cache`.

        The chunk's frames continue the cached sequence (positions cache.frames ...). Controls cover the
        chunk's video frames: 1 frame for the first chunk (the image), 4 per latent frame after it.
        With write=True the chunk's keys and values are stored (call it once per chunk, clean, at t=0).
        """
        h, fr, temb = self.step_inputs(x, t, context, actions, poses, cache)
        return self.head(self.run_blocks(h, fr, self.cache_attend(cache, write)), temb, x, t)

    def step_inputs(self, x, t, context, actions, poses, cache: KVCache) -> tuple[torch.Tensor, Frames, torch.Tensor]:
        """step's inputs: the chunk's tokens (B, L, dim), its per-frame inputs at the cache's next position, and
        the timestep embedding for the head."""
        n, start = x.shape[2], cache.frames
        cache.check_room(n)
        # positions from the cache's device-side frame counter, so a captured CUDA graph replays at any frame
        pos = grid_positions(cache.position + torch.arange(n, device=x.device), self.cfg.token_grid)
        return self._frames(x, t, context, actions, poses, pos, group_frames if start == 0 else group_chunk)

    def cache_attend(self, cache: KVCache, write: bool) -> AttendFn:
        """Self-attention of a chunk against the cache; with write=True it also stores the chunk."""
        scale = self.softmax_scale

        def attend(layer, q, k_pre, k, v):
            keys, values = cache.keys(layer, k, v)
            out = attention(q, keys, values, None, self.backend, scale)
            if write:
                cache.write(layer, k_pre, k, v)
            return out

        return attend

    # ---- weights ---------------------------------------------------------------------------------------
    def new_cache(self, mem, batch: int = 1) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, mem, batch, p.device, p.dtype)

    def save(self, path: str | Path) -> Path:
        return checkpoint.save(path, self.state_dict(), kind="world_model", config=self.cfg)

    @classmethod
    def load(cls, path: str | Path, expect: ModelConfig | None = None, backend: Backend = "auto") -> "WorldModel":
        tensors, cfg, _ = checkpoint.load(path, "world_model", ModelConfig, expect)
        model = cls(cfg, backend)
        checkpoint.load_into(model, tensors, path)
        return model


def step_flops(cfg: ModelConfig, frames: int, cached_tokens: int, batch: int = 1) -> int:
    """Matmul and attention FLOPs (multiply-adds x 2) of one `WorldModel.step` over `frames` latent frames
    against `cached_tokens` cached keys: the compute floor of a pass. Element-wise work (norms, RoPE,
    modulation) and the write pass's pooling (<1%) are not counted."""
    d, n_text = cfg.dim, cfg.text_len
    q = frames * cfg.tokens_per_frame  # query tokens
    keys = q + cached_tokens
    per_block = (
        2 * q * d * d * 4  # self-attention q, k, v, out
        + 2 * q * d * d * 2 + 2 * n_text * d * d * 2  # cross-attention q, out on the chunk; k, v on the text
        + 2 * q * d * cfg.ffn_dim * 2  # feed-forward
        + 4 * q * keys * d + 4 * q * n_text * d  # QK^T and PV, self and cross
        + (2 * frames * d * d * 2 if cfg.controls else 0)  # action and pose projections
    )
    patch = cfg.latent_channels * math.prod(cfg.patch)
    outside = (
        2 * q * patch * d * 2  # patch embedding and proj_out
        + 2 * frames * (cfg.freq_dim * d + d * d + d * 6 * d)  # timestep embedding and modulation
        + 2 * n_text * (cfg.text_dim * d + d * d)  # text projection
        + (2 * frames * 2 * (cfg.temporal_down * (cfg.action_dim + cfg.pose_dim) // 2 * d + d * d) if cfg.controls else 0)
    )
    return batch * (cfg.layers * per_block + outside)


def load_wan_state_dict(model: WorldModel, state: dict[str, torch.Tensor]) -> list[str]:
    """Load a diffusers WanTransformer3DModel state dict. Returns the names RELIC adds that stay as built
    (controls, text encoder). Refuses shape mismatches and unknown names with a clear error."""
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"not a Wan-2.1 transformer of this layout: unknown weights {unknown[:5]}...")
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError(f"weights of another size (name, checkpoint, model): {bad[:3]}; build the model with the matching preset.")
    result = model.load_state_dict(state, strict=False)
    return list(result.missing_keys)
