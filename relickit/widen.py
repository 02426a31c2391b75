"""Widen a trained tokenizer's latent: more channels per latent pixel, starting from what it already reconstructs.

A layout with more latent channels (f4c16 -> f4c32, `relickit.vae.LAYOUTS`) need not start from scratch: the wider
tokenizer keeps every weight of the narrower one, its encoder writes zero into the new channels and its decoders read
them through random weights. At the start it decodes exactly what the narrower one decodes, and its first channels
are the narrower one's latents; training then has somewhere to put what the old latent lost (the edges). The
teacher's depth grows the same way (`relickit.teacher.grow`).

Which side starts at zero matters (tokenizer campaign run 10b, docs/runs/tokenizer/README.md). The first version
started the decoders' weights on the new channels at zero and the channels as mixes of the old ones: a saddle. Zero
decoder weights give the encoder's new rows no gradient, and the decoders' new weights only the correlation of the
error with channels they already read; after 1,000 steps on an H100 the Wan decoder's new weights had a mean |w| of
0.0007 (0.027 on the old channels) and zeroing the new channels cost it 0.02 dB. Zero on the encoder's side instead
(as LoRA starts its second matrix at zero) gives the new posterior rows a gradient from the first step.

Where the channels sit, for z old and z' new latent channels:
  encoder.conv_out  -> 2z' rows: the posterior mean's z' then its log-variance's z' (old rows first in each half;
                       the new rows freshly initialised: features for the new channels to read)
  quant_conv        -> 2z' x 2z' (1x1x1): the old block as it was; a new channel's mean zero (its row and bias:
                       trained from the first step), its log-variance an old channel's (as certain as the old ones,
                       not noise at the prior, which the KL would hold it at)
  post_quant_conv   -> z' x z' (1x1x1): the old block, identity on the new channels
  decoder.conv_in, tiny.conv_in -> the new input channels' weights random, at the old ones' scale
  latent stats      -> the new channels' mean 0, standard deviation the old ones' mean (placeholders: the new
                       channels are zero until trained; `train_tokenizer` measures them after its VAE stage)
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
    first channels are tok's latents, the new ones zero (posterior means; their noise the old channels'), read by
    both decoders through random weights (seed `seed`), so that training moves the encoder's new rows from the first
    step. Needs tok's Wan decoder (a full checkpoint)."""
    z = tok.cfg.z_dim
    if z_dim <= z:
        raise ValueError(f"widen_latent adds channels: {z_dim} is not more than the tokenizer's {z}.")
    if not tok.has_wan_decoder:
        raise ValueError("widen_latent needs the Wan decoder: load the full tokenizer checkpoint, not a play export.")
    with torch.random.fork_rng(devices=[]):  # the new rows' initialisation from `seed`, the caller's RNG untouched
        torch.manual_seed(seed)
        wide = Tokenizer(dataclasses.replace(tok.cfg, z_dim=z_dim)).to(tok.latents_std)
    mine = tok.state_dict()
    for name, p in wide.state_dict().items():  # every tensor the latent width does not touch, as it was
        if mine[name].shape == p.shape:
            p.copy_(mine[name])
    src, dst, added = tok.vae, wide.vae, z_dim - z
    old, logvar_new = _old_rows(z, z_dim), z_dim + torch.arange(z, z_dim)

    out = dst.encoder.conv_out  # its new rows keep the fresh model's initialisation: features of their own
    out.weight[old], out.bias[old] = src.encoder.conv_out.weight, src.encoder.conv_out.bias

    q, b = src.quant_conv.weight[:, :, 0, 0, 0], src.quant_conv.bias  # (2z, 2z): old pre-posterior -> (mean, logvar)
    weight, bias = torch.zeros_like(dst.quant_conv.weight[:, :, 0, 0, 0]), torch.zeros_like(dst.quant_conv.bias)
    weight[old.unsqueeze(1), old], bias[old] = q, b  # the old posterior, nothing of the new features in it
    copied = z + torch.arange(added) % z  # new means zero; new log-variance an old channel's
    weight[logvar_new.unsqueeze(1), old], bias[logvar_new] = q[copied], b[copied]
    dst.quant_conv.weight.copy_(weight[:, :, None, None, None])
    dst.quant_conv.bias.copy_(bias)

    post = torch.eye(z_dim).to(dst.post_quant_conv.weight)  # the old block, identity on the new channels
    post[:z, :z] = src.post_quant_conv.weight[:, :, 0, 0, 0]
    dst.post_quant_conv.weight.copy_(post[:, :, None, None, None])
    dst.post_quant_conv.bias.zero_()
    dst.post_quant_conv.bias[:z] = src.post_quant_conv.bias

    for conv_in, narrow in ((dst.decoder.conv_in, src.decoder.conv_in), (wide.tiny.conv_in, tok.tiny.conv_in)):
        fresh = conv_in.weight[:, z:]  # the fresh model's draw, scaled to the old weights' spread
        conv_in.weight[:, z:] = fresh * (narrow.weight.std() / fresh.std())
        conv_in.weight[:, :z] = narrow.weight
        conv_in.bias.copy_(narrow.bias)

    mean, std = tok.latents_mean, tok.latents_std
    wide.set_latent_stats(torch.cat([mean, mean.new_zeros(added)]), torch.cat([std, std.mean().expand(added)]))
    return wide.train(tok.training)
