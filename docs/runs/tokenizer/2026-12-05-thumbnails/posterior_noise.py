"""The encoder's posterior on three held-out clips (33 frames): per channel, the spread of its mean against its own noise,
and the bits per value that leaves (0.5 log2(1 + SNR)). docs/tokenizer.md, 2026-12-05."""
import numpy as np, torch
from relickit.evaluate.tokenizer import held_out_clips, TokenizerEvalConfig
from relickit.vae import Tokenizer, encode_clip
torch.set_num_threads(1)
cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
clips = held_out_clips("data/eval_tokenizer_f2", cfg)[[0, 5, 10], :33]
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors", device="cpu").eval()
with torch.no_grad():
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    mean, logvar = encode_clip(tok.vae, x)
sig = mean.transpose(0, 1).flatten(1).std(1)
noise = logvar.exp().sqrt().transpose(0, 1).flatten(1).mean(1)
print("signal std per channel", sig.numpy().round(3))
print("posterior std per channel", noise.numpy().round(4))
snr = (sig / noise) ** 2
print("bits per value 0.5 log2(1+snr)", (0.5 * torch.log2(1 + snr)).numpy().round(2))
print("first latent frame vs rest, posterior std", logvar[:, :, 0].exp().sqrt().mean().item(), logvar[:, :, 1:].exp().sqrt().mean().item())
