"""The offline text encoder: hashed words, a learned embedding and one transformer layer.

Captions in relickit describe static scene content in a few words, so a small encoder trained with the world
model is enough and needs no download. Words are hashed (crc32) into `text_vocab` buckets; bucket 0 is padding,
and padded positions come out as zeros (as Wan zero-pads its umT5 features). Anything that maps a list of
strings to (B, text_len, text_dim) can replace it, e.g. umT5 for a Wan checkpoint.
"""
from __future__ import annotations

import re
import zlib

import torch
from torch import nn

from .config import ModelConfig

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words the encoder reads: runs of lower-case letters and digits (anything else separates them)."""
    return _WORD.findall(text.lower())


def tokenize(texts: list[str], vocab: int, length: int) -> torch.Tensor:
    if isinstance(texts, str):
        raise TypeError("pass a list of captions, e.g. ['a brown brick hangar'], not a bare string.")
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    for i, text in enumerate(texts):
        for j, w in enumerate(words(text)[:length]):
            ids[i, j] = 1 + zlib.crc32(w.encode()) % (vocab - 1)
    return ids


class TextEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocab, self.length = cfg.text_vocab, cfg.text_len
        self.embed = nn.Embedding(cfg.text_vocab, cfg.text_dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(cfg.text_len, cfg.text_dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(cfg.text_dim, nhead=max(1, cfg.text_dim // 64),
                                                dim_feedforward=2 * cfg.text_dim, batch_first=True, norm_first=True)

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = tokenize(texts, self.vocab, self.length).to(self.pos.device)
        pad = ids == 0
        x = self.embed(ids) + self.pos
        x = self.layer(x, src_key_padding_mask=pad) if not pad.all() else x
        return x.masked_fill(pad[..., None], 0.0)
