"""Run 8's teacher grown deeper (`relickit.teacher.load_weights`, which grows a shallower checkpoint): the largest
difference of its velocity from the 384 x 3 teacher's on a random 4-latent-frame input, its parameters, and its size
in the int8 continuation format (`save_int8`), for 4 and 5 blocks.

    python docs/runs/2026-12-03-run8/grow_check.py   # CPU box, 1 min
"""
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import torch

from relickit.checkpoint import save_int8
from relickit.memory import bidirectional_visibility
from relickit.model import WorldModel
from relickit.teacher import load_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from helpers import inputs  # noqa: E402

TEACHER = "data/weights/world/teacher.safetensors"
torch.manual_seed(0)
shallow = WorldModel.load(TEACHER).eval()
x, t, ctx, actions, poses = inputs(shallow, 4)
mask = bidirectional_visibility(4)
with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
    want = shallow(x, t, ctx, actions, poses, mask)
    for layers in (4, 5):
        deep = WorldModel(dataclasses.replace(shallow.cfg, layers=layers)).eval()
        load_weights(deep, TEACHER)
        diff = (deep(x, t, ctx, actions, poses, mask) - want).abs().max().item()
        int8 = save_int8(deep.save(Path(tmp) / "deep.safetensors"), Path(tmp) / "deep.int8.safetensors")
        print(f"384 x {layers}: largest difference {diff}, {sum(p.numel() for p in deep.parameters()) / 1e6:.2f}M "
              f"parameters, int8 {os.path.getsize(int8) / 1e6:.2f} MB")
