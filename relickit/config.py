"""Typed configs, one per concept, and the model presets.

Every shape in relickit is derived from these dataclasses: tokens per latent frame, head size, chunk length,
cache capacity. Nothing else in the package hard-codes a shape.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # vae.py imports this module: the tokenizer's config is only read here, never built
    from .vae import VAEConfig

# RELIC's cyclic spatial-compression schedule: the factor for latent frame i is SCHEDULE[i % len(SCHEDULE)],
# read per side (2 -> 4x fewer tokens, 4 -> 16x fewer).
RELIC_SCHEDULE: tuple[int, ...] = (1, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4, 4, 4, 2, 4, 4, 2, 4)

MemoryPolicy = Literal["none", "window", "compressed", "full"]
MEMORY_POLICIES: tuple[str, ...] = ("none", "window", "compressed", "full")
KVFormat = Literal["native", "fp8"]
KV_FORMATS: tuple[str, ...] = ("native", "fp8")


@dataclass(frozen=True)
class ModelConfig:
    """A Wan-2.1-shaped DiT with RELIC's controls. Defaults are the `tiny` preset."""

    name: str = "tiny"
    # video and tokenizer geometry
    height: int = 96
    width: int = 128
    fps: int = 16
    latent_channels: int = 16
    spatial_down: int = 8  # VAE: pixels per latent, per side
    temporal_down: int = 4  # VAE: frames per latent frame (after the first)
    patch: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) latents per token
    # transformer
    dim: int = 192
    layers: int = 8
    heads: int = 3
    ffn_dim: int = 768
    freq_dim: int = 256  # sinusoidal timestep features
    eps: float = 1e-6
    # text conditioning (cross-attention)
    text_dim: int = 128
    text_len: int = 16
    text_vocab: int = 1024  # hash buckets of the built-in word encoder (relickit.text)
    # streaming: latent frames denoised together (one block of the block-causal mask)
    chunk: int = 3
    # RoPE: trained range in latent frames, and YaRN factor applied to the temporal axis beyond it
    rope_theta: float = 10000.0
    rope_frames: int = 13  # the teacher's first-stage horizon (1 + 3*4 latent frames, ~3 s)
    yarn_factor: float = 1.0
    # The velocity's skip (diffusion.velocity_preconditioning): v = c_skip x + c_out F(x), with sigma_data the
    # latents' RMS. A DiT narrower than its patch (f4c16: 256 values per token into 192 channels) cannot carry the
    # input noise through to its output, so without the skip every x0 it predicts keeps some of it (a mottle).
    # 0 = off: Wan's plain velocity, and every checkpoint from before 2026-12-02.
    sigma_data: float = 0.0
    # RELIC controls: 13-D relative actions (after self-attention), 12-D absolute pose (into Q and K)
    controls: bool = True
    action_dim: int = 13
    pose_dim: int = 12

    def __post_init__(self) -> None:
        pt, ph, pw = self.patch
        if self.height % (self.spatial_down * ph) or self.width % (self.spatial_down * pw):
            raise ValueError(
                f"{self.name}: frame size {self.height}x{self.width} must be a multiple of "
                f"spatial_down*patch = {self.spatial_down * ph}x{self.spatial_down * pw}; pick a height/width that is."
            )
        if self.dim % self.heads:
            raise ValueError(f"{self.name}: dim={self.dim} is not divisible by heads={self.heads}.")
        if pt != 1:
            raise ValueError("relickit streams latent frame by latent frame: the temporal patch must be 1.")

    # ---- derived shapes -------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.height // self.spatial_down, self.width // self.spatial_down

    @property
    def token_grid(self) -> tuple[int, int]:
        lh, lw = self.latent_size
        return lh // self.patch[1], lw // self.patch[2]

    @property
    def tokens_per_frame(self) -> int:
        gh, gw = self.token_grid
        return gh * gw

    def latent_frames(self, frames: int) -> int:
        """Latent frames for `frames` video frames (the causal VAE maps 1 + 4k frames to 1 + k latents)."""
        if frames < 1 or (frames - 1) % self.temporal_down:
            raise ValueError(
                f"{frames} frames cannot be tokenized: the causal VAE needs 1 + {self.temporal_down}*k frames."
            )
        return 1 + (frames - 1) // self.temporal_down

    def video_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_down

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        d["patch"] = tuple(d["patch"])
        return cls(**d)


@dataclass(frozen=True)
class MemoryConfig:
    """RELIC's KV-cache memory: a rolling window of full-resolution latent frames plus compressed history."""

    policy: MemoryPolicy = "compressed"
    window: int = 3  # latent frames kept at full resolution (besides the chunk being denoised)
    schedule: tuple[int, ...] = RELIC_SCHEDULE
    # latent frames an unbounded memory (compressed without horizon, full) can hold: 10 minutes at 16 FPS (storage
    # grows as needed); a step past it raises memory.MemoryFull. Bounded memories are rings and never fill.
    capacity: int = 2401
    # compressed frames kept (a multiple of the schedule's length): None keeps all of them, as RELIC does, so the
    # memory grows with play; a horizon makes it a ring of the last `horizon` frames (bounded, static shapes)
    horizon: int | None = None
    kv_format: KVFormat = "native"  # "fp8": store keys and values as E4M3 with a scale per token and head

    def __post_init__(self) -> None:
        if self.policy not in MEMORY_POLICIES:
            raise ValueError(f"unknown memory policy {self.policy!r}; choose one of {MEMORY_POLICIES}.")
        if self.window < 0 or self.capacity < 1 or not self.schedule or min(self.schedule) < 1:
            raise ValueError(f"invalid memory config {self}: window >= 0, capacity >= 1, schedule factors >= 1.")
        if self.horizon is not None and (self.horizon < 1 or self.horizon % len(self.schedule)):
            n = len(self.schedule)
            raise ValueError(f"horizon={self.horizon} must be a positive multiple of the schedule's length {n} "
                             f"(e.g. {n * 5} latent frames = {n * 5 / 4:g} s at 16 FPS), or None to keep everything.")
        if self.kv_format not in KV_FORMATS:
            raise ValueError(f"unknown kv_format {self.kv_format!r}; choose one of {KV_FORMATS}.")

    def factor(self, frame: int) -> int:
        """Per-side downsampling factor of latent frame `frame` once it leaves the window."""
        return self.schedule[frame % len(self.schedule)]


def check_rope_range(cfg: ModelConfig, latent_frames: int, what: str) -> None:
    """Refuse a full-sequence pass over more latent frames than the RoPE range the config covers (rope_frames
    stretched by YaRN), naming the fix; call it before any work starts. Streaming (`WorldModel.step`) has no range."""
    limit = cfg.rope_frames * cfg.yarn_factor
    if latent_frames > limit + 1e-9:
        raise ValueError(
            f"{what}: {latent_frames} latent frames exceed the RoPE range of this config ({cfg.rope_frames} x YaRN "
            f"{cfg.yarn_factor:g} = {limit:g} frames). Stretch it with YaRN, dataclasses.replace(cfg, "
            f"yarn_factor={latent_frames / cfg.rope_frames:.4g}) (relickit.teacher.stage_config does this per stage; "
            f"fine-tune after), or use at most {int(limit + 1e-9)} latent frames."
        )


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "small": ModelConfig(
        name="small", height=240, width=320, dim=512, layers=12, heads=8, ffn_dim=2048, text_dim=256, text_len=32,
        text_vocab=4096,
    ),
    "wan-1.3b": ModelConfig(
        name="wan-1.3b", height=480, width=832, dim=1536, layers=30, heads=12, ffn_dim=8960,
        text_dim=4096, text_len=512, text_vocab=4096, rope_frames=21,
    ),
    "wan-14b": ModelConfig(
        name="wan-14b", height=480, width=832, dim=5120, layers=40, heads=40, ffn_dim=13824,
        text_dim=4096, text_len=512, text_vocab=4096, rope_frames=21,
    ),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset, optionally with fields replaced: `preset("tiny", layers=2)`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    return dataclasses.replace(PRESETS[name], **overrides)


# model_for: how a size and a tokenizer layout become a model. The shipped model's 12x16 latents in 2x2 patches give a
# 6x8 token grid per latent frame; every layout keeps that sequence length, so attention cost depends on size only.
TOKENS_PER_FRAME = 48
LATENT_SIGMA = 1.0  # the velocity skip's sigma_data: relickit.vae normalises latents per channel to unit std
HEAD_DIM = 64  # channels per attention head (Wan's 128 is too wide for the small sizes)
FFN_MULT = 4  # feed-forward width per model channel


def patch_for(latent_size: tuple[int, int], tokens: int = TOKENS_PER_FRAME) -> tuple[int, int, int]:
    """The square DiT patch (1, p, p) that cuts a latent grid into `tokens` tokens per latent frame."""
    lh, lw = latent_size
    for p in range(1, min(lh, lw) + 1):
        if lh % p == 0 and lw % p == 0 and (lh // p) * (lw // p) == tokens:
            return 1, p, p
    possible = [(lh // p) * (lw // p) for p in range(1, min(lh, lw) + 1) if lh % p == 0 and lw % p == 0]
    raise ValueError(f"no square patch cuts a {lh}x{lw} latent grid into {tokens} tokens per latent frame; pass "
                     f"tokens= one of {possible}, or use a tokenizer whose latent grid holds {tokens} square patches.")


def layout_fields(vae: VAEConfig, tokens: int = TOKENS_PER_FRAME) -> dict[str, Any]:
    """The ModelConfig fields a tokenizer decides: frame size, latent channels and factors, and the patch that gives
    `tokens` tokens per latent frame."""
    return dict(height=vae.height, width=vae.width, latent_channels=vae.z_dim, spatial_down=vae.spatial_down,
                temporal_down=vae.temporal_down, patch=patch_for(vae.latent_size, tokens))


def layout_diff(model: ModelConfig, vae: VAEConfig) -> dict[str, tuple[Any, Any]]:
    """Where a tokenizer does not make the latents a model reads: {what: (model's, tokenizer's)}; empty if it does."""
    pairs = {"frame height": (model.height, vae.height), "frame width": (model.width, vae.width),
             "latent channels": (model.latent_channels, vae.z_dim),
             "spatial factor": (model.spatial_down, vae.spatial_down),
             "temporal factor": (model.temporal_down, vae.temporal_down)}
    return {k: v for k, v in pairs.items() if v[0] != v[1]}


def size_fields(dim: int, layers: int) -> dict[str, Any]:
    """The ModelConfig fields a size decides: dim, layers, heads = dim // 64, ffn_dim = 4 * dim."""
    if dim < HEAD_DIM or dim % HEAD_DIM or layers < 1:
        raise ValueError(f"size {dim}x{layers}: dim must be a positive multiple of the head size {HEAD_DIM} "
                         f"(e.g. {max(HEAD_DIM, dim - dim % HEAD_DIM)}) and layers >= 1.")
    return dict(dim=dim, layers=layers, heads=dim // HEAD_DIM, ffn_dim=FFN_MULT * dim)


def model_for(vae: VAEConfig, dim: int, layers: int, tokens: int = TOKENS_PER_FRAME, **overrides: Any) -> ModelConfig:
    """The world model for a tokenizer layout (relickit.vae.LAYOUTS or a checkpoint's VAEConfig) at a size.

    Geometry comes from the tokenizer (`layout_fields`), width and depth from the size (`size_fields`), every other
    field from the `tiny` preset (its name too), then `overrides`. model_for(LAYOUTS["f4c16"], 384, 3) is the shipped
    model (since 2026-12-04; 192 x 8 from 2026-12-02); model_for(LAYOUTS["f8c16"], 192, 8) is preset("tiny"), the
    first one.
    """
    return preset("tiny", **(layout_fields(vae, tokens) | size_fields(dim, layers) | overrides))


def parse_size(text: str) -> tuple[int, int]:
    """`DIMxLAYERS` (e.g. "256x12") -> (dim, layers), as the scripts' --size options take it."""
    dim, sep, layers = text.lower().partition("x")
    if not (sep and dim.isdigit() and layers.isdigit()):
        raise ValueError(f"size {text!r} is not DIMxLAYERS; write it like 256x12 (model width x transformer blocks).")
    return int(dim), int(layers)


def config_json(cfg: Any) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)
