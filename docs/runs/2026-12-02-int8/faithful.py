"""Is the int8 continuation format faithful enough to ship? The shipped student in fp16 vs its save_int8 copy:
the same starts, seeds and action script, frames compared (PSNR), beside the same model with another seed.

    git show bbda982:relickit/assets/student.safetensors > /tmp/student.fp16.safetensors   # the fp16 student
    python docs/runs/2026-12-02-int8/faithful.py /tmp/student.fp16.safetensors
"""
import sys

import torch
from relickit.checkpoint import save_int8
from relickit.model import WorldModel
from relickit.play import Session, load_start, render
from relickit.vae import Tokenizer
from relickit.metrics import psnr
torch.set_num_threads(1)
save_int8(sys.argv[1], "/tmp/student.int8.safetensors")
tok = Tokenizer.load("relickit/assets/tokenizer.safetensors")
fp16, int8 = WorldModel.load(sys.argv[1]), WorldModel.load("/tmp/student.int8.safetensors")
actions = torch.zeros(36, 13); actions[:, 0] = 1.0  # forward, 3 s
for i in range(3):
    image, text = load_start(index=i)
    a = render(Session(fp16, tok, seed=0), image, text, actions)
    b = render(Session(int8, tok, seed=0), image, text, actions)
    c = render(Session(fp16, tok, seed=1), image, text, actions)
    print(i, "int8 vs fp16 %.2f dB" % psnr(b[1:], a[1:]), "| seed 1 vs seed 0 %.2f dB" % psnr(c[1:], a[1:]),
          "| first chunk int8 vs fp16 %.2f dB" % psnr(b[1:13], a[1:13]))
