"""Small shared builders for tests."""
import dataclasses
from pathlib import Path

import torch

from relickit.config import ModelConfig, preset
from relickit.model import WorldModel
from relickit.vae import LAYOUTS, Tokenizer


def tiny_model(cfg: ModelConfig | None = None, **overrides) -> WorldModel:
    """A 2-layer model (or one of `cfg`) with every weight random (the zero-initialised control terms too), in eval
    mode."""
    kw = dict(layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8, chunk=2)
    kw.update(overrides)
    model = WorldModel(cfg or preset("tiny", **kw), backend="sdpa").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(std=0.05)
    return model


def inputs(model: WorldModel, frames: int, batch: int = 1):
    cfg = model.cfg
    lh, lw = cfg.latent_size
    x = torch.randn(batch, cfg.latent_channels, frames, lh, lw)
    t = torch.rand(batch, frames) * 1000
    t[:, 0] = 0
    video = cfg.video_frames(frames)
    actions = torch.rand(batch, video, 13)
    poses = torch.randn(batch, video, 12)
    ctx = model.encode_text(["a brown brick hangar with green slime"] * batch)
    return x, t, ctx, actions, poses


def tiny_tokenizer(path: Path, layout: str = "f4c16", split: bool = True) -> Path:
    """A narrow tokenizer of a layout (relickit.vae.LAYOUTS) with random weights, saved to `path` (split: the Wan
    decoder in its own part file, as the trained f4c16 tokenizer is)."""
    vae = LAYOUTS[layout]
    narrow = dataclasses.replace(vae.tiny, channels=(8,) * len(vae.tiny.channels))
    Tokenizer(dataclasses.replace(vae, base_dim=8, tiny=narrow)).save(path, split=split)
    return path
