"""Trivial baselines for the tokenizer's picture scores: the held-out truth blurred / downsampled, scored as recon."""
import numpy as np, torch, torch.nn.functional as F
from relickit.evaluate.tokenizer import held_out_clips, TokenizerEvalConfig, score
cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
truth = held_out_clips("data/eval_tokenizer_f2", cfg)[:, :33]  # (N, T, H, W, 3)
x = torch.from_numpy(truth).float().permute(0, 1, 4, 2, 3).flatten(0, 1) / 255  # (N*T, 3, H, W)
def back(y): return (y.clamp(0, 1) * 255).round().byte().unflatten(0, truth.shape[:2]).permute(0, 1, 3, 4, 2).numpy()
def down_up(f, mode):
    return F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode=mode, align_corners=False) if mode != "nearest" else F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode=mode)
def gauss(s):
    r = int(3 * s + 1); k = torch.exp(-torch.arange(-r, r + 1).float() ** 2 / (2 * s * s)); k /= k.sum()
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
cases = {f"area {f}x down, bilinear up": down_up(f, "bilinear") for f in (2, 4)}
cases.update({f"area {f}x down, bicubic up": down_up(f, "bicubic") for f in (2, 4)})
cases.update({f"gaussian blur sigma {s}": gauss(s) for s in (0.5, 0.75, 1.0, 1.5)})
for name, y in cases.items():
    s = score(back(y), truth)
    print(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['sharpness']:.3f} | {s['brightness']:.3f} |")
