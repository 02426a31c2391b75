"""The video tokenizer: Wan-2.1's causal 3D VAE in a small configuration, plus a tiny streaming decoder.

    video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k   --encode-->   latents (B, 16, 1 + k, H/8, W/8), normalised
    latents                                       --decode-->   video (full Wan decoder, ~4 FPS on a 2-core CPU)
    latents                                       --decode_tiny-> video (TAEHV-style decoder, real-time on CPU)

The VAE is diffusers' `AutoencoderKLWan`. Its causal 3D convolutions remember the last frames they saw (diffusers'
`_feat_map`), but its public encode()/decode() clear that memory on every call. Here the memory lives in an explicit
`CausalCache` that the caller keeps between chunks, so decoding 1 + 3 + 3 latent frames chunk by chunk gives the
same frames as decoding the 7 at once (see tests/test_vae.py). The tiny decoder does the same with a `TinyState`.

Latents are normalised per channel, (z - mean) / std, with statistics measured on data after training and stored
in the checkpoint, so the world model sees unit-scale latents.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
from torch import nn

from . import checkpoint
from .clip_pass import decode_clip, encode_clip
from .config import ModelConfig

CHECKPOINT_KIND = "tokenizer"
WAN_DECODER = ("vae.decoder.", "vae.post_quant_conv.")  # what a play export leaves out
VALUE_TOLERANCE = 1e-3  # how far outside [-1, 1] input pixels may stray (rounding) before we call it a bug


# ---------------------------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TinyDecoderConfig:
    """The light decoder: one stage per resolution, lowest resolution first (like the VAE's decoder)."""

    channels: tuple[int, ...] = (64, 48, 32, 16)  # width of each stage
    blocks: int = 1  # memory blocks per stage (the last, full-resolution stage has none: it only maps to RGB)
    time_up: tuple[bool, ...] = (True, True, False)  # 2x temporal upsampling between stage i and i + 1


@dataclass(frozen=True)
class VAEConfig:
    """A small AutoencoderKLWan. Spatial factor = 2 ** (len(dim_mult) - 1), temporal = 2 ** sum(temporal_downsample)."""

    height: int = 96
    width: int = 128
    base_dim: int = 32
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 1
    z_dim: int = 16
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    tiny: TinyDecoderConfig = field(default_factory=TinyDecoderConfig)

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(
                f"temporal_downsample has {len(self.temporal_downsample)} entries but dim_mult has {len(self.dim_mult)}"
                f"; give one entry per downsampling stage ({len(self.dim_mult) - 1})."
            )
        if self.height % self.spatial_down or self.width % self.spatial_down:
            raise ValueError(
                f"frame size {self.height}x{self.width} is not a multiple of the VAE's spatial factor "
                f"{self.spatial_down}; resize the frames or change dim_mult."
            )
        t = self.tiny
        if len(t.channels) != len(self.dim_mult) or len(t.time_up) != len(t.channels) - 1:
            raise ValueError(
                f"tiny decoder: needs {len(self.dim_mult)} stage widths and {len(self.dim_mult) - 1} time_up flags "
                f"to match the VAE, got channels={t.channels}, time_up={t.time_up}."
            )
        if 2 ** sum(t.time_up) != self.temporal_down:
            raise ValueError(
                f"tiny decoder upsamples time by {2 ** sum(t.time_up)}, the VAE by {self.temporal_down}; "
                "set tiny.time_up to have as many True entries as temporal_downsample."
            )

    @property
    def spatial_down(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_down(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.height // self.spatial_down, self.width // self.spatial_down

    @classmethod
    def for_model(cls, model_cfg: ModelConfig, **overrides: Any) -> "VAEConfig":
        """The tokenizer that matches a world-model preset (frame size, latent channels), checked."""
        cfg = cls(height=model_cfg.height, width=model_cfg.width, z_dim=model_cfg.latent_channels, **overrides)
        if (cfg.spatial_down, cfg.temporal_down) != (model_cfg.spatial_down, model_cfg.temporal_down):
            raise ValueError(
                f"VAE factors {cfg.spatial_down}x spatial / {cfg.temporal_down}x temporal do not match the model's "
                f"{model_cfg.spatial_down} / {model_cfg.temporal_down}; change dim_mult / temporal_downsample."
            )
        return cfg


# The latent layouts compared in docs/tokenizer.md, all for 96x128 frames and 4x in time. The name says the spatial
# factor per side and the channels: f8c16 is Wan-2.1's layout (12x16 latents, DiT patch 2 -> 48 tokens per latent
# frame); f8c48 keeps that grid with 3x the channels; f4c16 has 24x32 latents (DiT patch 4 -> the same 48 tokens);
# f4c32 doubles f4c16's channels (the shipped tokenizer's latents lose the edges its decoders cannot restore:
# docs/runs/tokenizer/README.md, "The next tokenizer run").
_F4 = dict(dim_mult=(1, 2, 4), temporal_downsample=(True, True),
           tiny=TinyDecoderConfig(channels=(64, 32, 16), time_up=(True, True)))
LAYOUTS: dict[str, VAEConfig] = {
    "f8c16": VAEConfig(),
    "f8c48": VAEConfig(z_dim=48),
    "f4c16": VAEConfig(**_F4),
    "f4c32": VAEConfig(z_dim=32, **_F4),
}


# ---------------------------------------------------------------------------------------------------------------
# streaming state
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class CausalCache:
    """Memory of the Wan encoder or decoder between chunks: diffusers' `_feat_map` plus a frame counter.

    `feats[i]` holds the last (up to 2) input frames of the i-th causal convolution, in the order the network
    calls them (diffusers' `_conv_idx`). Start each new video with a fresh cache.
    """

    feats: list[Any]
    frames: int = 0  # frames (encoder) or latent frames (decoder) consumed so far


@dataclass
class TinyState:
    """Memory of the tiny decoder: each memory block's last input frame, and the latent frames consumed."""

    past: list[torch.Tensor | None]
    frames: int = 0


# ---------------------------------------------------------------------------------------------------------------
# tiny decoder (TAEHV-style)
# ---------------------------------------------------------------------------------------------------------------
def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class MemBlock(nn.Module):
    """Residual block over one frame that also sees the previous frame's input: its only memory of the past."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv3x3(2 * dim, dim), nn.ReLU(), conv3x3(dim, dim), nn.ReLU(), conv3x3(dim, dim))

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) each
        return F.relu(self.conv(torch.cat([x, past], 1)) + x)


class TGrow(nn.Module):
    """Temporal upsampling: a 1x1 conv makes `stride` frames' worth of channels, which become consecutive frames."""

    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(dim, dim * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W) -> (B, T * stride, C, H, W)
        b, t, c, h, w = x.shape
        y = self.conv(x.flatten(0, 1))
        return y.view(b, t, self.stride, c, h, w).flatten(1, 2)


def per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame of (B, T, C, H, W)."""
    y = module(x.flatten(0, 1))
    return y.view(*x.shape[:2], *y.shape[1:])


class TinyDecoder(nn.Module):
    """Latents -> frames with 2D convolutions per latent frame, temporal upsampling and a one-frame memory.

    Each latent frame becomes `temporal_down` frames; the first latent frame of a video becomes 1 (the others are
    dropped, as in TAEHV), matching the causal VAE's 1 + 4k frames. Input: NORMALISED latents (B, C, T, h, w).
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        t = cfg.tiny
        self.temporal_down = cfg.temporal_down
        self.conv_in = conv3x3(cfg.z_dim, t.channels[0])
        self.stages = nn.ModuleList(
            nn.ModuleList(MemBlock(dim) for _ in range(t.blocks)) for dim in t.channels[:-1]
        )
        self.grows = nn.ModuleList(TGrow(dim, 2 if up else 1) for dim, up in zip(t.channels[:-1], t.time_up))
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, cout), nn.ReLU())
            for cin, cout in zip(t.channels[:-1], t.channels[1:])
        )
        self.conv_out = conv3x3(t.channels[-1], 3)

    @property
    def num_memories(self) -> int:
        return sum(len(stage) for stage in self.stages)

    def new_state(self) -> TinyState:
        return TinyState(past=[None] * self.num_memories)

    def forward(self, latents: torch.Tensor, state: TinyState | None = None) -> torch.Tensor:
        """Decode a chunk of latent frames, unclamped (training); with `state`, continue where it left off."""
        state = state if state is not None else self.new_state()
        x = F.relu(per_frame(self.conv_in, latents.transpose(1, 2)))  # (B, T, C, h, w)
        memory = 0
        for blocks, grow, up in zip(self.stages, self.grows, self.ups):
            for block in blocks:
                prev = state.past[memory]
                prev = torch.zeros_like(x[:, :1]) if prev is None else prev
                past = torch.cat([prev, x[:, :-1]], 1)  # each frame sees the frame before it
                state.past[memory] = x[:, -1:].detach()
                x = block(x.flatten(0, 1), past.flatten(0, 1)).view_as(x)
                memory += 1
            x = per_frame(up, grow(x))
        x = per_frame(self.conv_out, x).transpose(1, 2)  # (B, 3, T', H, W)
        if state.frames == 0:
            x = x[:, :, self.temporal_down - 1:]  # the first latent frame stands for one frame, not temporal_down
        state.frames += latents.shape[2]
        return x

    @torch.no_grad()
    def decode_stream(self, state: TinyState, latents_chunk: torch.Tensor) -> torch.Tensor:
        """Decode the next chunk of a video (any number of latent frames), clamped to [-1, 1]."""
        return self(latents_chunk, state).clamp(-1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# the tokenizer
# ---------------------------------------------------------------------------------------------------------------
def wan_decoder_part(path: str | os.PathLike) -> Path:
    """Where a split checkpoint keeps its Wan decoder: tokenizer.safetensors -> tokenizer.wan_decoder.safetensors."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".wan_decoder.safetensors")


def read_config(path: str | os.PathLike) -> VAEConfig:
    """The VAEConfig a tokenizer checkpoint was built with (its latent layout), without loading the weights."""
    return checkpoint.load_config(path, CHECKPOINT_KIND, VAEConfig)


def _count_causal_convs(module: nn.Module) -> int:
    return sum(isinstance(m, WanCausalConv3d) for m in module.modules())


class Tokenizer(nn.Module):
    """Wan-2.1 causal VAE (small) + per-channel latent normalisation + tiny decoder, with streaming."""

    def __init__(self, cfg: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = AutoencoderKLWan(
            base_dim=cfg.base_dim,
            z_dim=cfg.z_dim,
            dim_mult=list(cfg.dim_mult),
            num_res_blocks=cfg.num_res_blocks,
            temperal_downsample=list(cfg.temporal_downsample),
            latents_mean=[0.0] * cfg.z_dim,  # unused: normalisation uses the buffers below
            latents_std=[1.0] * cfg.z_dim,
            scale_factor_spatial=cfg.spatial_down,
            scale_factor_temporal=cfg.temporal_down,
        )
        self.tiny = TinyDecoder(cfg)
        self.register_buffer("latents_mean", torch.zeros(cfg.z_dim))
        self.register_buffer("latents_std", torch.ones(cfg.z_dim))
        self.has_wan_decoder = True
        self._enc_convs = _count_causal_convs(self.vae.encoder)
        self._dec_convs = _count_causal_convs(self.vae.decoder)

    @property
    def dtype(self) -> torch.dtype:
        return self.latents_std.dtype

    @property
    def device(self) -> torch.device:
        return self.latents_std.device

    # ---- normalisation ------------------------------------------------------------------------------------------
    def _stat(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1, 1)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self._stat(self.latents_mean)) / self._stat(self.latents_std)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._stat(self.latents_std) + self._stat(self.latents_mean)

    @torch.no_grad()
    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != (self.cfg.z_dim,) or std.shape != (self.cfg.z_dim,) or not bool((std > 0).all()):
            raise ValueError(f"latent stats must be two ({self.cfg.z_dim},) tensors with std > 0.")
        self.latents_mean.copy_(mean)
        self.latents_std.copy_(std)

    # ---- the Wan VAE, chunk by chunk (no checks, differentiable) -------------------------------------------------
    def new_encode_cache(self) -> CausalCache:
        return CausalCache(feats=[None] * self._enc_convs)

    def new_decode_cache(self) -> CausalCache:
        return CausalCache(feats=[None] * self._dec_convs)

    def _encode_frames(self, cache: CausalCache, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw posterior (mean, logvar) of the next frames: 1 + 4k frames to start a video, 4k to continue it."""
        step = self.cfg.temporal_down
        first = 1 if cache.frames == 0 else 0  # a video's first frame is encoded on its own
        groups = [(0, 1)] * first + [(s, s + step) for s in range(first, x.shape[2], step)]
        outs = [self.vae.encoder(x[:, :, s:e], feat_cache=cache.feats, feat_idx=[0]) for s, e in groups]
        cache.frames += x.shape[2]
        mean, logvar = self.vae.quant_conv(torch.cat(outs, 2)).chunk(2, dim=1)
        return mean, logvar

    def _decode_frames(self, cache: CausalCache, z: torch.Tensor) -> torch.Tensor:
        """Raw latents -> frames, unclamped; one latent frame at a time, as diffusers' _decode does."""
        x = self.vae.post_quant_conv(z)
        outs = []
        for i in range(z.shape[2]):
            first = cache.frames == 0
            outs.append(self.vae.decoder(x[:, :, i:i + 1], feat_cache=cache.feats, feat_idx=[0], first_chunk=first))
            cache.frames += 1
        return torch.cat(outs, 2)

    def forward(self, video: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass over whole clips (relickit.clip_pass, equal to streaming): video -> (reconstruction
        unclamped, posterior mean, logvar), all raw (not normalised)."""
        mean, logvar = encode_clip(self.vae, video)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        return decode_clip(self.vae, z), mean, logvar

    # ---- public inference API -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_stream(self, cache: CausalCache, video: torch.Tensor) -> torch.Tensor:
        """Encode the next frames of a video: 1 + 4k frames first, then 4k per call. Returns normalised latents."""
        self._check_video(video, first=cache.frames == 0)
        mean, _ = self._encode_frames(cache, video)
        return self.normalize(mean)

    @torch.no_grad()
    def decode_stream(self, cache: CausalCache, latents: torch.Tensor) -> torch.Tensor:
        """Decode the next latent frames with the full Wan decoder: 1 + 4(n - 1) frames first, then 4n."""
        if not self.has_wan_decoder:
            raise RuntimeError("this tokenizer was exported for play without the Wan decoder; decode with "
                               "decode_tiny / decode_tiny_stream, or load the full tokenizer checkpoint.")
        self._check_latents(latents)
        return self._decode_frames(cache, self.denormalize(latents)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def decode_tiny_stream(self, state: TinyState, latents: torch.Tensor) -> torch.Tensor:
        """Same as decode_stream with the tiny decoder."""
        self._check_latents(latents)
        return self.tiny.decode_stream(state, latents)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1 + 4k, H, W) in [-1, 1] -> normalised posterior-mean latents (B, z_dim, 1 + k, *cfg.latent_size).
        On a GPU the whole video goes through in one pass (relickit.clip_pass, equal to streaming it; 1.5-2x faster for
        the training step on an H200), on a CPU through the streaming loop (faster there: 2.3 vs 3.0 s for 2 x 33
        frames, f4c16, two threads, docs/tokenizer.md)."""
        if not video.is_cuda:
            return self.encode_stream(self.new_encode_cache(), video)
        self._check_video(video, first=True)
        mean, _ = encode_clip(self.vae, video)
        return self.normalize(mean)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames as a clip stores them, (1 + 4k, 3, H, W) in [-1, 1] (the datasets' `clip["frames"]`), -> their
        latents (1, z_dim, 1 + k, *cfg.latent_size), in the tokenizer's dtype."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"encode_frames takes one clip's frames (T, 3, H, W), got {tuple(frames.shape)}; "
                             "for a batch of videos (B, 3, T, H, W) call encode")
        return self.encode(frames[None].transpose(1, 2).to(self.dtype))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, z_dim, n, h, w) -> video (B, 3, 1 + 4(n - 1), H, W) in [-1, 1], Wan decoder."""
        return self.decode_stream(self.new_decode_cache(), latents)

    def decode_tiny(self, latents: torch.Tensor) -> torch.Tensor:
        """Like decode, with the tiny decoder."""
        return self.decode_tiny_stream(self.tiny.new_state(), latents)

    # ---- input checks -------------------------------------------------------------------------------------------
    def _check_tensor(self, x: Any, what: str, shape_hint: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{what} must be a torch.Tensor {shape_hint}, got {type(x).__name__}.")
        if x.ndim != 5:
            raise ValueError(f"{what} must be 5-D {shape_hint}, got shape {tuple(x.shape)}; add the missing axes.")
        if x.dtype != self.dtype:
            hint = " (uint8 frames: x.float() / 127.5 - 1)" if x.dtype == torch.uint8 else ""
            raise ValueError(
                f"{what} has dtype {x.dtype} but the tokenizer runs in {self.dtype}; convert with "
                f"x.to(tokenizer.dtype){hint}."
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} contains NaN or Inf values; check what produced it.")

    def _check_video(self, video: Any, first: bool) -> None:
        cfg = self.cfg
        hint = f"(B, 3, T, {cfg.height}, {cfg.width})"
        self._check_tensor(video, "video", hint)
        _, c, t, h, w = video.shape
        if c != 3:
            raise ValueError(f"video must be {hint} with 3 RGB channels on axis 1, got shape {tuple(video.shape)}; "
                             "frames from the dataset are (T, 3, H, W): use frames.permute(1, 0, 2, 3).")
        if (h, w) != (cfg.height, cfg.width):
            raise ValueError(f"video frames are {h}x{w} but this tokenizer was built for {cfg.height}x{cfg.width}; "
                             "resize the frames or build a Tokenizer(VAEConfig(height=..., width=...)).")
        step = cfg.temporal_down
        if first and (t - 1) % step:
            raise ValueError(f"a video must start with 1 + {step}k frames (1, 5, 9, ...), got {t}; "
                             f"drop {(t - 1) % step} frames or pad.")
        if not first and (t == 0 or t % step):
            raise ValueError(f"a continuing chunk must have a multiple of {step} frames, got {t}.")
        lo, hi = float(video.min()), float(video.max())
        if lo < -1 - VALUE_TOLERANCE or hi > 1 + VALUE_TOLERANCE:
            raise ValueError(f"video values span [{lo:.3g}, {hi:.3g}] but must be in [-1, 1]; "
                             "map [0, 255] pixels with x / 127.5 - 1.")

    def _check_latents(self, latents: Any) -> None:
        lh, lw = self.cfg.latent_size
        hint = f"(B, {self.cfg.z_dim}, n, {lh}, {lw})"
        self._check_tensor(latents, "latents", hint)
        if latents.shape[1] != self.cfg.z_dim or tuple(latents.shape[3:]) != (lh, lw) or latents.shape[2] == 0:
            raise ValueError(f"latents must be {hint}, got {tuple(latents.shape)}; they should come from "
                             "Tokenizer.encode or a world model built for this tokenizer.")

    # ---- checkpoints --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, wan_decoder: bool = True, split: bool = False,
             half: bool = False) -> None:
        """Save weights and config. wan_decoder=False leaves out the full decoder (play needs only the encoder
        and the tiny decoder): about half the size. split=True writes the Wan decoder beside the play part, as
        `<name>.wan_decoder.safetensors` (each file stays small; `load` joins them). half=True stores fp16."""
        state = {k: v.half() if half and v.is_floating_point() else v for k, v in self.state_dict().items()}
        play = {k: v for k, v in state.items() if not k.startswith(WAN_DECODER)}
        if split and wan_decoder:
            decoder = {k: v for k, v in state.items() if k.startswith(WAN_DECODER)}
            checkpoint.save(wan_decoder_part(path), decoder, kind=CHECKPOINT_KIND + "_wan_decoder", config=self.cfg)
        checkpoint.save(path, state if wan_decoder and not split else play, kind=CHECKPOINT_KIND, config=self.cfg,
                        extra={"wan_decoder": "split" if split and wan_decoder else "1" if wan_decoder else "0"})

    @classmethod
    def load(cls, path: str | os.PathLike, expect: VAEConfig | None = None,
             device: str | torch.device = "cpu") -> "Tokenizer":
        """Build a tokenizer from its checkpoint; with `expect`, refuse one trained with another config. A checkpoint
        without its Wan decoder (split, or a play export) is joined with the Wan decoder part beside `path` (as named,
        not resolved: a link to the shipped play export beside a trained part is a whole tokenizer) when that part
        is there and was saved with the same config."""
        tensors, cfg, meta = checkpoint.load(path, CHECKPOINT_KIND, VAEConfig, expect=expect)
        tok = cls(cfg)
        part, whole = wan_decoder_part(path), meta.get("wan_decoder", "1") == "1"
        joined = not whole and part.exists()
        if joined:
            tensors.update(checkpoint.load(part, CHECKPOINT_KIND + "_wan_decoder", VAEConfig, expect=cfg)[0])
        tok.has_wan_decoder = whole or joined
        tensors = {k: v.to(tok.dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        missing = tok.load_state_dict(tensors, strict=tok.has_wan_decoder).missing_keys
        if any(not k.startswith(WAN_DECODER) for k in missing):
            raise ValueError(f"{path} lacks weights {missing[:3]}...; it is incomplete, re-save or re-export it.")
        return tok.to(device).eval()

    def num_params(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"encoder": count(self.vae.encoder) + count(self.vae.quant_conv),
                "decoder": count(self.vae.decoder) + count(self.vae.post_quant_conv),
                "tiny_decoder": count(self.tiny)}


# ---------------------------------------------------------------------------------------------------------------
# streaming objects: a tokenizer plus its cache, for code that just wants "the next frames"
# ---------------------------------------------------------------------------------------------------------------
class StreamingEncoder:
    """enc = StreamingEncoder(tok); enc(first_1_plus_4k_frames); enc(next_4k_frames); ...; enc.reset()"""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.reset()

    def reset(self) -> None:
        self.cache = self.tokenizer.new_encode_cache()

    def __call__(self, video_chunk: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.encode_stream(self.cache, video_chunk)


class StreamingDecoder:
    """dec = StreamingDecoder(tok, tiny=True); frames = dec(latent_chunk); ...; dec.reset() for a new video."""

    def __init__(self, tokenizer: Tokenizer, tiny: bool = False) -> None:
        self.tokenizer = tokenizer
        self.tiny = tiny
        self.reset()

    def reset(self) -> None:
        self.state = self.tokenizer.tiny.new_state() if self.tiny else self.tokenizer.new_decode_cache()

    def __call__(self, latents_chunk: torch.Tensor) -> torch.Tensor:
        if self.tiny:
            return self.tokenizer.decode_tiny_stream(self.state, latents_chunk)
        return self.tokenizer.decode_stream(self.state, latents_chunk)


# ---------------------------------------------------------------------------------------------------------------
# losses and metrics
# ---------------------------------------------------------------------------------------------------------------
def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) || N(0, 1)), averaged over all elements."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


def psnr(a: torch.Tensor, b: torch.Tensor, value_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB between two videos in [-1, 1]."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(value_range**2 / mse)


def benchmark_decoders(tok: Tokenizer, chunk: int = 3, repeats: int = 3) -> dict[str, list[float]]:
    """Milliseconds per chunk of `chunk` latent frames (-> chunk * temporal_down frames) for both decoders
    (the tiny one alone for a play export without the Wan decoder).

    Streamed as the world model uses them: the video's first latent frame warms up, then `repeats` chunks of the
    same video are timed (the first of them may include one-off allocations). Weights do not change the timing.
    """
    h, w = tok.cfg.latent_size
    z = torch.randn(1, tok.cfg.z_dim, 1 + chunk * repeats, h, w, device=tok.device, dtype=tok.dtype)
    sync = torch.cuda.synchronize if tok.device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {}
    for name, tiny in (("wan", False), ("tiny", True)):
        if not (tiny or tok.has_wan_decoder):
            continue
        dec = StreamingDecoder(tok, tiny=tiny)
        dec(z[:, :, :1])
        times[name] = []
        for part in z[:, :, 1:].split(chunk, dim=2):
            sync()
            start = time.perf_counter()
            dec(part)
            sync()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def comparison_frames(videos: list[torch.Tensor], every: int = 1) -> torch.Tensor:
    """Rows of frames for a side-by-side figure: the first clip of each (B, 3, T, H, W) video, every `every`-th
    frame, stacked as (len(videos) * T', 3, H, W) for relickit.viz.frame_grid(..., cols=T')."""
    return torch.cat([v[0, :, ::every].transpose(0, 1).float().cpu() for v in videos])
