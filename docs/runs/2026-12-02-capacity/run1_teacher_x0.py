# The run-1 teacher's one-step x0 predictions on a held-out MAP21 clip (rows of run1_teacher_x0.jpg: x0 at sigma 1.0
# with and without poses, 0.8 with/without, 0.5 with/without, the 32-step Euler sample, the truth) and their MSE.
# 2-core CPU box, torch 2.13.0+cpu, 2026-12-02; runs/wm1/ held run 1's teacher_stage2 and tokenizer (not committed).
import torch, numpy as np
from PIL import Image
from relickit.model import WorldModel
from relickit.vae import Tokenizer
from relickit.dataset import ClipDataset
from relickit.tutorial import sample_data
from relickit.diffusion import timesteps, SamplerConfig, sample_teacher
from relickit.memory import bidirectional_visibility
from relickit.play import to_uint8
torch.set_num_threads(2); torch.manual_seed(0)
T = WorldModel.load("runs/wm1/teacher_stage2.safetensors").float().eval()
tok = Tokenizer.load("runs/wm1/tokenizer.safetensors").float()
data = ClipDataset(sample_data("eval"), frames=T.cfg.video_frames(13), split="eval", stride=4)
clip = data[0]
lat = tok.encode(clip["frames"][None].transpose(1, 2).float())
print("latent std", lat.std().item(), "mean", lat.mean().item())
acts, poses = clip["actions"][None], clip["poses"][None]
print("pose pos max", poses[..., 9:].abs().max().item())
ctx = T.encode_text([clip["caption"]])
F = 13; vis = bidirectional_visibility(F)
rows = {}
with torch.no_grad():
    for s in (1.0, 0.8, 0.5):
        noise = torch.randn_like(lat)
        sig = torch.full((1, F), s); sig[:, 0] = 0
        x = (1 - sig[:, None, :, None, None]) * lat + sig[:, None, :, None, None] * noise
        x[:, :, :1] = lat[:, :, :1]
        for name, p in (("pose", poses), ("nopose", torch.zeros_like(poses))):
            v = T(x, timesteps(sig), ctx, acts, p, vis)
            x0 = x - sig[:, None, :, None, None] * v
            mse = ((x0 - lat)[:, :, 1:] ** 2).mean().item()
            print(f"sigma {s} {name}: x0 mse {mse:.3f}")
            rows[f"x0@{s} {name}"] = x0
    x, _ = sample_teacher(T, lat[:, :, :1], F, ctx, acts, poses, SamplerConfig(teacher_steps=32))
    rows["euler32"] = x
    rows["truth"] = lat
imgs = []
for name, z in rows.items():
    v = to_uint8(tok.decode_tiny(z)[0].float())  # (T, H, W, 3)?
    v = np.asarray(v)
    sel = [0, 4, 8, 16, 24, 32, 48]
    imgs.append(np.concatenate([v[i] for i in sel], 1)); print(name)
Image.fromarray(np.concatenate(imgs, 0)).save("/tmp/diag.png")
