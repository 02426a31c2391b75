"""Widen a trained tokenizer's latent: more channels per latent pixel, starting from what it already reconstructs.

A layout with more latent channels (f4c16 -> f4c32, `relickit.vae.LAYOUTS`) need not start from scratch: the wider
tokenizer keeps every weight of the narrower one, its decoders read the new channels through weights that start at
zero, and its encoder writes them as mixes of the old channels plus features of their own. At the start it decodes
exactly what the narrower one decodes, and its first channels are the narrower one's latents; training then has somewhere to put what the old
latent lost (the edges, tokenizer campaign run 10b). The teacher's depth grows the same way (`relickit.teacher.grow`).

Where the channels sit, for z old and z' new latent channels:
  encoder.conv_out  -> 2z' rows: the posterior mean's z' then its log-variance's z' (old rows first in each half;
                       the new rows freshly initialised)
  quant_conv        -> 2z' x 2z' (1x1x1): the old block as it was; a new channel's mean a random unit mix of the old
                       means plus its own new feature, its log-variance an old channel's (the new channels start as
                       informative and as certain as the old, not as noise at the prior: with fresh rows alone they
                       had a 0.09 standard deviation under noise of 1 on the committed f4c16, and the KL holds a
                       channel at the prior)
  post_quant_conv   -> z' x z' (1x1x1): the old block, identity on the new channels
  decoder.conv_in, tiny.conv_in -> the new input channels' weights zero
  latent stats      -> the new channels' as the mixes of the old (`train_tokenizer` measures them after its VAE stage)
"""
from __future__ import annotations

import dataclasses

import torch

from .vae import Tokenizer


def _old_rows(z: int, wide: int) -> torch.Tensor:
    """Where a 2 * z posterior's rows (mean then log-variance) sit in a 2 * wide one."""
    return torch.cat([torch.arange(z), wide + torch.arange(z)])


def _rotations(n: int, z: int, generator: torch.Generator) -> torch.Tensor:
    """n rows of random orthogonal z x z matrices (a fresh one per z rows): each new channel a different unit-norm
    mix of the old ones."""
    blocks = [torch.linalg.qr(torch.randn(z, z, generator=generator, dtype=torch.float64))[0] for _ in range(-(-n // z))]
    return torch.cat(blocks)[:n]


@torch.no_grad()
def widen_latent(tok: Tokenizer, z_dim: int, seed: int = 0) -> Tokenizer:
    """A tokenizer like `tok` with `z_dim` latent channels (more than tok's) that decodes what `tok` decodes: its
    first channels are tok's latents; each new one starts as a random unit mix of the old ones (seed `seed`) plus a
    freshly initialised encoder feature, with the old channels' posterior noise (their log-variance rows copied),
    and both decoders read the new channels through zero weights until training gives them some. Needs tok's Wan
    decoder (a full checkpoint)."""
    z = tok.cfg.z_dim
    if z_dim <= z:
        raise ValueError(f"widen_latent adds channels: {z_dim} is not more than the tokenizer's {z}.")
    if not tok.has_wan_decoder:
        raise ValueError("widen_latent needs the Wan decoder: load the full tokenizer checkpoint, not a play export.")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the new rows' initialisation from `seed`, the caller's RNG untouched
        torch.manual_seed(seed)
        wide = Tokenizer(dataclasses.replace(tok.cfg, z_dim=z_dim)).to(tok.latents_std)
    mine = tok.state_dict()
    for name, p in wide.state_dict().items():  # every tensor the latent width does not touch, as it was
        if mine[name].shape == p.shape:
            p.copy_(mine[name])
    src, dst, added = tok.vae, wide.vae, z_dim - z
    old, mean_new, logvar_new = _old_rows(z, z_dim), torch.arange(z, z_dim), z_dim + torch.arange(z, z_dim)
    mix = _rotations(added, z, gen).to(tok.latents_std)  # (added, z)

    out = dst.encoder.conv_out  # its new rows keep the fresh model's initialisation: features of their own
    out.weight[old], out.bias[old] = src.encoder.conv_out.weight, src.encoder.conv_out.bias

    q, b = src.quant_conv.weight[:, :, 0, 0, 0], src.quant_conv.bias  # (2z, 2z): old pre-posterior -> (mean, logvar)
    weight, bias = torch.zeros_like(dst.quant_conv.weight[:, :, 0, 0, 0]), torch.zeros_like(dst.quant_conv.bias)
    weight[old.unsqueeze(1), old], bias[old] = q, b  # the old posterior, nothing of the new features in it
    weight[mean_new.unsqueeze(1), old], bias[mean_new] = mix @ q[:z], mix @ b[:z]  # new mean: a mix of the old means
    weight[mean_new, mean_new] = 1.0  # ... plus the new feature
    copied = z + torch.arange(added) % z  # new log-variance: an old channel's
    weight[logvar_new.unsqueeze(1), old], bias[logvar_new] = q[copied], b[copied]
    dst.quant_conv.weight.copy_(weight[:, :, None, None, None])
    dst.quant_conv.bias.copy_(bias)

    post = torch.eye(z_dim).to(dst.post_quant_conv.weight)  # the old block, identity on the new channels
    post[:z, :z] = src.post_quant_conv.weight[:, :, 0, 0, 0]
    dst.post_quant_conv.weight.copy_(post[:, :, None, None, None])
    dst.post_quant_conv.bias.zero_()
    dst.post_quant_conv.bias[:z] = src.post_quant_conv.bias

    for conv_in, narrow in ((dst.decoder.conv_in, src.decoder.conv_in), (wide.tiny.conv_in, tok.tiny.conv_in)):
        conv_in.weight.zero_()
        conv_in.weight[:, :z] = narrow.weight  # the new input channels read nothing yet
        conv_in.bias.copy_(narrow.bias)

    mean, std = tok.latents_mean, tok.latents_std  # the new channels' stats as mixes of the old (re-measured later)
    wide.set_latent_stats(torch.cat([mean, mix @ mean]), torch.cat([std, (mix.square() @ std.square()).sqrt()]))
    return wide.train(tok.training)
