# Truth, then per model: x0 predicted at sigma 1 (one step from pure noise) and a 32-step Euler sample, held-out clip.
import numpy as np, torch
from PIL import Image
from relickit.diffusion import SamplerConfig, sample_teacher, timesteps
from relickit.latents import LatentClips
from relickit.memory import bidirectional_visibility
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer
torch.set_num_threads(2); torch.manual_seed(0)
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors").float()
ev = LatentClips.load("/tmp/skip/eval.safetensors")
b = ev.batches(13, 16, 0)(0)
rows, sel = [], [0, 4, 8, 16, 24, 32, 48]
def show(z): v = np.asarray(to_uint8(tok.decode_tiny(z)[0].float())); return np.concatenate([v[i] for i in sel], 1)
for clip in (3, 9):
    lat, acts, poses = b["latents"][clip:clip + 1], b["actions"][clip:clip + 1], b["poses"][clip:clip + 1]
    rows.append(show(lat))
    for sd in ("0.0_1200", "1.0_1200"):
        m = WorldModel.load(f"/tmp/skip/model_{sd}.safetensors").eval()
        ctx = m.encode_text([b["caption"][clip]])
        with torch.no_grad():
            sig = torch.ones(1, 13); sig[:, 0] = 0
            x = torch.randn_like(lat); x[:, :, :1] = lat[:, :, :1]
            x0 = x - sig[:, None, :, None, None] * m(x, timesteps(sig), ctx, acts, poses, bidirectional_visibility(13))
            x0[:, :, :1] = lat[:, :, :1]
            euler, _ = sample_teacher(m, lat[:, :, :1], 13, ctx, acts, poses, SamplerConfig(teacher_steps=32))
        rows += [show(x0), show(euler)]
Image.fromarray(np.concatenate(rows, 0)).save("/tmp/skip/pictures_1200.png")
