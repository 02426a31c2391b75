"""edge_error of a flat picture, the 2x and 4x thumbnails, run 9 and the pilot's arms on the pilot's four held-out
clips (49 frames), written before edge_error was in relickit.metrics (the definition below is the same). CPU box,
2026-12-05 01:10 UTC: flat 1.00, 2x 0.81, 4x 0.98, run 9 0.97, control 0.98, texture 0.5 1.31 (1.36 as pilot.py
averages it, clip by clip), texture 2 1.62. Run from the repository root after pilot.py's arms exist in runs/pilot/."""
import numpy as np, torch
from relickit.evaluate.tokenizer import held_out_clips, TokenizerEvalConfig
from relickit.evaluate.scoring import tokenizer_ceiling, thumbnail
from relickit.vae import Tokenizer
torch.set_num_threads(2)
def edge_error(g, t):
    g, t = g.astype(np.float64), t.astype(np.float64)
    e = sum(np.abs(np.diff(g, axis=a) - np.diff(t, axis=a)).mean() for a in (-3, -2))
    n = sum(np.abs(np.diff(t, axis=a)).mean() for a in (-3, -2))
    return e / n
cfg = TokenizerEvalConfig(maps=tuple(f"MAP{i}" for i in range(21, 33)))
truth = held_out_clips("data/eval_tokenizer_f2", cfg)[[0, 3, 6, 9], :49]
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors", device="cpu").eval()
print("flat", edge_error(np.full_like(truth, 100), truth), "2x", edge_error(thumbnail(truth, 2), truth), "4x", edge_error(thumbnail(truth, 4), truth))
for name in ["run9", "runs/pilot/control_0", "runs/pilot/texture_0.5", "runs/pilot/texture_2"]:
    if name != "run9":
        tok.tiny.load_state_dict(torch.load(name + "/tiny.pt"))
    rec = np.stack([tokenizer_ceiling(tok, c, "tiny") for c in truth])
    print(name, edge_error(rec, truth))
