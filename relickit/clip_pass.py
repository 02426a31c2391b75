"""The Wan VAE over a whole clip in one pass: the training path, equal to the streaming path.

Streaming (relickit.vae) feeds the VAE a video's first frame alone and then groups of 4 frames (the decoder: one
latent frame at a time), each causal convolution remembering its last inputs between calls. That per-frame loop is
what play needs, but training through it costs thousands of small kernels, copies and concatenations per step.

Every temporal operation of the Wan-2.1 VAE is causal, so the whole clip can go through each layer at once:
- a causal 3D convolution (kernel 3 in time) over the clip with 2 zero frames in front sees, at every frame, exactly
  the frames the streaming cache would hold: one `conv(x)` per layer;
- the encoder's temporal downsampling keeps the first frame as is (streaming skips its time convolution on the
  first chunk) and applies the stride-2 time convolution to the whole clip: windows (0, 1, 2), (2, 3, 4), ...;
- the decoder's temporal upsampling keeps the first latent frame as one frame ("Rep" in diffusers) and runs the
  time convolution over the remaining frames from a zero state, each output frame becoming two.
Attention and RMS norms act per frame and per position. tests/test_vae.py holds both passes equal.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample
from torch import nn


def _per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 2D module over every frame of (B, C, T, H, W)."""
    b, c, t, h, w = x.shape
    y = module(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.view(b, t, *y.shape[1:]).transpose(1, 2)


def resample(m: WanResample, x: torch.Tensor) -> torch.Tensor:
    """WanResample over a whole clip, as its streaming calls would compute it chunk by chunk."""
    if m.mode == "upsample3d" and x.shape[2] > 1:
        b, c, t, h, w = x.shape
        rest = m.time_conv(x[:, :, 1:])  # (B, 2C, T - 1, H, W): two output frames per input frame
        rest = rest.view(b, 2, c, t - 1, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * (t - 1), h, w)
        x = torch.cat([x[:, :, :1], rest], 2)
    x = _per_frame(m.resample, x)
    if m.mode == "downsample3d" and x.shape[2] > 1:
        x = torch.cat([x[:, :, :1], m.time_conv(x)], 2)
    return x


def _layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return resample(layer, x) if isinstance(layer, WanResample) else layer(x)


def encode_clip(vae: AutoencoderKLWan, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw posterior (mean, logvar) of a whole video (B, 3, 1 + 4k, H, W)."""
    enc = vae.encoder
    x = enc.conv_in(video)
    for layer in enc.down_blocks:
        x = _layer(layer, x)
    x = enc.mid_block(x)
    x = enc.conv_out(enc.nonlinearity(enc.norm_out(x)))
    mean, logvar = vae.quant_conv(x).chunk(2, dim=1)
    return mean, logvar


def decode_clip(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    """Raw latents (B, C, n, h, w) -> unclamped frames (B, 3, 1 + 4(n - 1), H, W) of a whole video."""
    dec = vae.decoder
    x = dec.mid_block(dec.conv_in(vae.post_quant_conv(z)))
    for block in dec.up_blocks:
        for resnet in block.resnets:
            x = resnet(x)
        if block.upsamplers is not None:
            x = resample(block.upsamplers[0], x)
    return dec.conv_out(dec.nonlinearity(dec.norm_out(x)))
