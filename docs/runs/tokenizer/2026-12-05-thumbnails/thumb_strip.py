"""Truth, 2x thumbnail, the campaign tokenizer's play decoder, 4x thumbnail: two held-out clips, every 12th frame.
(docs/tokenizer.md, 2026-12-05; run from the repository root after the held-out clips exist in data/eval_tokenizer_f2.)"""
import numpy as np
from PIL import Image
from relickit.evaluate.tokenizer import held_out_clips, TokenizerEvalConfig, strip
from relickit.evaluate.scoring import thumbnail, tokenizer_ceiling
from relickit.vae import Tokenizer
cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
clips = held_out_clips("data/eval_tokenizer_f2", cfg)
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors", device="cpu")
rows = []
for i in (3, 8):
    c = clips[i, 8:81]
    rows += [c, thumbnail(c, 2), tokenizer_ceiling(tok, c, "tiny"), thumbnail(c, 4)]
strip(rows, "/tmp/thumbs.png", 12)
Image.open("/tmp/thumbs.png").convert("RGB").save("/tmp/thumbs.jpg", quality=88)
