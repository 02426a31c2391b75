"""Room for a wider teacher: which 4-bit continuation format keeps the 384 x 8's held-out loss? Run 7's check rounded
every weight matrix of the 384 x 3 to 4 bits (32 values per fp16 scale, absmax) and cost 39% of the held-out loss.
Here the committed 384 x 8 (int8, as carried) against variants that round only some tensors, or round with a scale
chosen per block to minimise the squared error (clipping) instead of absmax; the held-out loss (`held_out_loss`, 16
noise levels) on the teacher evaluation's twelve held-out clips, the recipe's `--held-out` number.

    python docs/runs/2026-12-06-run20/int4_mixed.py OUT.json   # CPU box, 2 threads
"""
import json
import sys
import time

import torch

from relickit.evaluate.teacher import held_out_set
from relickit.model import WorldModel
from relickit.vae import Tokenizer

BLOCK, LEVELS = 32, 7  # 4 bits: -7..7 times the block's scale; one fp16 scale per 32 values (4.5 bits a value)
CLIPS = torch.linspace(0.5, 1.0, 11)  # the clipping ratios the MSE rounding tries per block


def round_4bit(w: torch.Tensor, mse: bool) -> torch.Tensor:
    rows = w.float().reshape(-1, BLOCK)
    amax = rows.abs().amax(1, keepdim=True)
    best, best_err = None, None
    for c in (CLIPS if mse else CLIPS[-1:]):
        scale = (amax * c / LEVELS).half().float()
        q = torch.where(scale > 0, rows / scale.clamp_min(1e-30), 0).round().clamp(-LEVELS, LEVELS) * scale
        err = (q - rows).pow(2).sum(1, keepdim=True)
        best = q if best is None else torch.where(err < best_err, q, best)
        best_err = err if best_err is None else torch.minimum(err, best_err)
    return best.reshape(w.shape)


def block_linears(name: str, p: torch.Tensor) -> bool:
    return name.startswith("blocks.") and p.dim() == 2


GROUPS = {  # which weight matrices a variant rounds to 4 bits (the rest stay int8)
    "all matrices": lambda n, p: p.dim() >= 2 and p.numel() % BLOCK == 0,
    "block linears": block_linears,
    "block attn1": lambda n, p: block_linears(n, p) and ".attn1." in n,
    "block attn2": lambda n, p: block_linears(n, p) and ".attn2." in n,
    "block ffn": lambda n, p: block_linears(n, p) and ".ffn." in n,
    "block action/pose": lambda n, p: block_linears(n, p) and ("action_proj" in n or "pose_proj" in n),
}
VARIANTS = [("all matrices", False), ("all matrices", True), ("block linears", False), ("block linears", True),
            ("block attn1", True), ("block attn2", True), ("block ffn", True), ("block action/pose", True)]


def main(out: str) -> None:
    torch.set_num_threads(2)
    path = "data/weights/world/teacher.safetensors"
    ref = WorldModel.load(path).eval()
    tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors")
    held = held_out_set("data/eval_tokenizer_f2", tok)
    t0 = time.time()
    rows = {"int8 (committed)": {"held_out_loss": held.loss(ref), "params_4bit": 0}}
    total = sum(p.numel() for p in ref.parameters())
    for group, mse in VARIANTS:
        model = WorldModel.load(path).eval()
        n4 = 0
        with torch.no_grad():
            for name, p in model.named_parameters():
                if GROUPS[group](name, p):
                    p.copy_(round_4bit(p, mse))
                    n4 += p.numel()
        name = f"{group}, {'mse clip' if mse else 'absmax'}"
        rows[name] = {"held_out_loss": held.loss(model), "params_4bit": n4}
        print(name, rows[name], f"{time.time() - t0:.0f} s", flush=True)
    base = rows["int8 (committed)"]["held_out_loss"]
    for r in rows.values():
        r["change"] = r["held_out_loss"] / base - 1
        # bytes: int8 + a 2-byte scale per 64 values; 4-bit + a 2-byte scale per 32 values; vectors fp16
        r["bytes_if_stored"] = int(r["params_4bit"] * (0.5 + 2 / BLOCK) + (total - r["params_4bit"]) * (1 + 2 / 64))
    json.dump({"teacher": path, "parameters": total, "rows": rows}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
