"""Does run 10b's f4c32 use its new channels? (CPU box, 2026-12-06; the f4c32 tokenizer was not kept or committed:
it is the run's collect, `f4c32.safetensors` beside its Wan decoder part.)

    python new_channels.py F4C32_TOKENIZER

Prints the decoders' input weights on the old and the new channels, and per held-out clip (33 frames) the PSNR of
both decoders with the new channels as encoded and set to zero (their normalised mean).
"""
import sys

import numpy as np
import torch

from relickit.vae import Tokenizer

torch.set_num_threads(2)
OLD = 16


def frames(path: str, n: int = 33) -> torch.Tensor:
    d = np.load(path)
    f = np.concatenate([d[k] for k in sorted(k for k in d if k.startswith("frames_"))])[:n]
    return torch.from_numpy(f).permute(0, 3, 1, 2).float() / 127.5 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(4 / ((a - b) ** 2).mean())).item()


tok = Tokenizer.load(sys.argv[1]).float().eval()
for name, w in [("Wan decoder conv_in", tok.vae.decoder.conv_in.weight), ("tiny conv_in", tok.tiny.conv_in.weight)]:
    print(f"{name}: mean |w| old {w[:, :OLD].abs().mean():.5f}, new {w[:, OLD:].abs().mean():.5f}")
for clip in ["ep00000_MAP21", "ep00004_MAP25", "ep00008_MAP29"]:
    x = frames(f"data/eval_tokenizer_f2/{clip}.npz")
    with torch.no_grad():
        z = tok.encode_frames(x)
        zero = z.clone()
        zero[:, OLD:] = 0
        print(clip, f"latent std old {z[:, :OLD].std():.3f} new {z[:, OLD:].std():.3f}")
        for name, dec in [("tiny", tok.decode_tiny), ("wan", tok.decode)]:
            y, y0 = (dec(v)[0].transpose(0, 1) for v in (z, zero))
            print(f"  {name}: PSNR {psnr(y, x):.3f}, new channels zeroed {psnr(y0, x):.3f}")
