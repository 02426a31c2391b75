"""Small shared builders for tests."""
import torch

from relickit.config import preset
from relickit.model import WorldModel


def tiny_model(**overrides) -> WorldModel:
    """A 2-layer model with every weight random (the zero-initialised control terms too), in eval mode."""
    kw = dict(layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8, chunk=2)
    kw.update(overrides)
    model = WorldModel(preset("tiny", **kw), backend="sdpa").eval()
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
