# Teacher from scratch on CPU, with or without the velocity skip: python train.py SIGMA_DATA STEPS
import json, sys, dataclasses, torch
from relickit.config import model_for
from relickit.vae import LAYOUTS
from relickit.latents import LatentClips
from relickit.model import WorldModel
from relickit.teacher import TeacherConfig, teacher_loss
from relickit.train import TrainConfig, train
from relickit.evaluate.teacher import start_frame_reliance
torch.set_num_threads(1); torch.manual_seed(0)
sd, steps = float(sys.argv[1]), int(sys.argv[2])
cfg = model_for(LAYOUTS["f4c16"], 128, 4, sigma_data=sd)
model = WorldModel(cfg)
clips = LatentClips.load("/tmp/skip/train.safetensors")
tc = TrainConfig(steps=steps, lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01, warmup=50, ema_decay=0.99, batch_size=8,
                 log_every=25, ckpt_every=0, out_dir=f"/tmp/skip/run_{sd}_{steps}")
res = train(tc, model, teacher_loss(TeacherConfig()), clips.batches(13, 8, 0))
m = (res.ema_model or res.model).eval()
m.save(f"/tmp/skip/model_{sd}_{steps}.safetensors")
ev = LatentClips.load("/tmp/skip/eval.safetensors")
b = ev.batches(13, 16, 0)(0)
ctx = m.encode_text(list(b["caption"]))
print(json.dumps({"sigma_data": sd, "heldout": start_frame_reliance(m, b["latents"], ctx, b["actions"], b["poses"],
                                                                     sigmas=(0.2, 0.5, 0.8, 1.0))}))
