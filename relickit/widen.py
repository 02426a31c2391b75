"""Widen a trained tokenizer's latent: more channels per latent pixel, starting from what it already reconstructs.

A layout with more latent channels (f4c16 -> f4c32, `relickit.vae.LAYOUTS`) need not start from scratch: the wider
tokenizer keeps every weight of the narrower one, its decoders read the new channels through weights that start at
zero, and its encoder writes them through freshly initialised ones. At the start it decodes exactly what the narrower
one decodes, and its first channels are the narrower one's latents; training then has somewhere to put what the old
latent lost (the edges, tokenizer campaign run 10b). The teacher's depth grows the same way (`relickit.teacher.grow`).

Where the channels sit, for z old and z' new latent channels:
  encoder.conv_out  -> 2z' rows: the posterior mean's z' then its log-variance's z' (old rows first in each half)
  quant_conv        -> 2z' x 2z' (1x1x1): the old block as it was, identity on the new channels, nothing across
  post_quant_conv   -> z' x z' (1x1x1): the same
  decoder.conv_in, tiny.conv_in -> the new input channels' weights zero
  latent stats      -> mean 0 and std 1 for the new channels (`train_tokenizer` measures them after its VAE stage)
"""
from __future__ import annotations

import dataclasses

import torch

from .vae import Tokenizer


def _old_rows(z: int, wide: int) -> torch.Tensor:
    """Where a 2 * z posterior's rows (mean then log-variance) sit in a 2 * wide one."""
    return torch.cat([torch.arange(z), wide + torch.arange(z)])


@torch.no_grad()
def widen_latent(tok: Tokenizer, z_dim: int, seed: int = 0) -> Tokenizer:
    """A tokenizer like `tok` with `z_dim` latent channels (more than tok's) that decodes what `tok` decodes: its
    first channels are tok's latents, the new ones come from freshly initialised encoder rows (seed `seed`) and are
    ignored by both decoders until training gives them weight. Needs tok's Wan decoder (a full checkpoint)."""
    z = tok.cfg.z_dim
    if z_dim <= z:
        raise ValueError(f"widen_latent adds channels: {z_dim} is not more than the tokenizer's {z}.")
    if not tok.has_wan_decoder:
        raise ValueError("widen_latent needs the Wan decoder: load the full tokenizer checkpoint, not a play export.")
    torch.manual_seed(seed)
    wide = Tokenizer(dataclasses.replace(tok.cfg, z_dim=z_dim)).to(tok.latents_std)
    mine = tok.state_dict()
    for name, p in wide.state_dict().items():  # every tensor the latent width does not touch, as it was
        if mine[name].shape == p.shape:
            p.copy_(mine[name])
    old = _old_rows(z, z_dim)
    src, dst = tok.vae, wide.vae

    out = dst.encoder.conv_out  # the new rows keep the fresh model's initialisation: the new channels carry something
    out.weight[old], out.bias[old] = src.encoder.conv_out.weight, src.encoder.conv_out.bias

    for narrow, widened, rows in ((src.quant_conv, dst.quant_conv, old), (src.post_quant_conv, dst.post_quant_conv,
                                                                         torch.arange(z))):
        n = widened.weight.shape[0]
        weight = torch.zeros_like(widened.weight)
        weight[:, :, 0, 0, 0] = torch.eye(n, dtype=weight.dtype)  # identity on the new channels
        weight[rows.unsqueeze(1), rows] = narrow.weight  # the old block, nothing across
        bias = torch.zeros_like(widened.bias)
        bias[rows] = narrow.bias
        widened.weight.copy_(weight)
        widened.bias.copy_(bias)

    for conv_in, narrow in ((dst.decoder.conv_in, src.decoder.conv_in), (wide.tiny.conv_in, tok.tiny.conv_in)):
        conv_in.weight.zero_()
        conv_in.weight[:, :z] = narrow.weight  # the new input channels read nothing yet
        conv_in.bias.copy_(narrow.bias)

    wide.set_latent_stats(torch.cat([tok.latents_mean, tok.latents_mean.new_zeros(z_dim - z)]),
                          torch.cat([tok.latents_std, tok.latents_std.new_ones(z_dim - z)]))
    return wide.train(tok.training)
