"""Horizontal and vertical power spectra of the truth, run 9 and the pilot's texture-0.5 decoder on four held-out clips (25 frames,
grey): where the texture arm puts its high frequencies. docs/runs/tokenizer/README.md, the CPU pilot."""
import numpy as np, torch
from relickit.evaluate.tokenizer import held_out_clips, TokenizerEvalConfig
from relickit.evaluate.scoring import tokenizer_ceiling
from relickit.vae import Tokenizer
torch.set_num_threads(2)
cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
truth = held_out_clips("data/eval_tokenizer_f2", cfg)[[0, 3, 6, 9], :25]
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors", device="cpu").eval()
def spectrum(v):  # mean power over frames/channels of the horizontal and vertical 1-D spectra
    x = v.astype(np.float64).mean(-1)  # grey (N, T, H, W)
    x = x - x.mean((-2, -1), keepdims=True)
    ph = (np.abs(np.fft.rfft(x, axis=-1)) ** 2).mean((0, 1, 2))  # over W: freqs k/128
    pv = (np.abs(np.fft.rfft(x, axis=-2)) ** 2).mean((0, 1, 3))  # over H: freqs k/96
    return ph, pv
recs = {"truth": truth}
recs["run9"] = np.stack([tokenizer_ceiling(tok, c, "tiny") for c in truth])
tok.tiny.load_state_dict(torch.load("runs/pilot/texture_0.5/tiny.pt"))
recs["tex"] = np.stack([tokenizer_ceiling(tok, c, "tiny") for c in truth])
sp = {k: spectrum(v) for k, v in recs.items()}
ratio_h = sp["tex"][0] / sp["truth"][0]
ratio_v = sp["tex"][1] / sp["truth"][1]
print("horizontal: top ratios tex/truth at period (px):", sorted([(round(r, 2), round(128 / k, 2)) for k, r in enumerate(ratio_h) if k > 0], reverse=True)[:6])
print("vertical:   top ratios tex/truth at period (px):", sorted([(round(r, 2), round(96 / k, 2)) for k, r in enumerate(ratio_v) if k > 0], reverse=True)[:6])
for k in (16, 32, 48, 64):
    print(f"period {128/k:.1f}px horiz: truth {sp['truth'][0][k]:.3g} run9 {sp['run9'][0][k]:.3g} tex {sp['tex'][0][k]:.3g}")
