"""Does the int8 continuation format cost a trained teacher anything? Held-out flow-matching loss per noise level of
two trained teachers, as saved and after save_int8 (same clips, same noise)."""
import json
import torch
from relickit.checkpoint import save_int8
from relickit.evaluate.teacher import start_frame_reliance
from relickit.latents import LatentClips
from relickit.model import WorldModel
torch.set_num_threads(2)
ev = LatentClips.load("/tmp/skip/eval.safetensors")  # 16 held-out clips of 13 latent frames (cpu_skip/encode.py)
b = ev.batches(13, 16, 0)(0)
for name, path in (("128x4 skip, CPU 1200 steps", "/tmp/skip/model_1.0_1200.safetensors"),
                   ("192x8 run-1 teacher stage 2 (fp16)", "runs/wm1/teacher_stage2.safetensors")):
    row = {}
    for fmt, p in (("saved", path), ("int8", save_int8(path, "/tmp/q8/int8.safetensors"))):
        m = WorldModel.load(p).eval()
        torch.manual_seed(0)
        ctx = m.encode_text(list(b["caption"]))
        row[fmt] = start_frame_reliance(m, b["latents"], ctx, b["actions"], b["poses"], sigmas=(0.2, 0.5, 0.8, 1.0))
    print(json.dumps({"model": name, **row}))
