# Encode 128 training clips and 16 held-out clips of 13 latent frames with the shipped f4c16 tokenizer.
import torch
from relickit.dataset import ClipDataset
from relickit.latents import encode_clips
from relickit.tutorial import sample_data
from relickit.vae import Tokenizer
torch.set_num_threads(2)
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors").float()
for split, n in (("train", 128), ("eval", 16)):
    ds = ClipDataset(sample_data(split), frames=49, split=split, stride=4, palindrome=0.0, seed=0)
    clips = encode_clips(tok, ds, n, batch_size=8, seed=1)
    clips.save(f"/tmp/skip/{split}.safetensors")
    x = clips.latents.float()
    print(split, len(ds), tuple(x.shape), "rms", x.pow(2).mean().sqrt().item(), "std", x.std().item())
