"""Does the teacher read its controls? Run 8's and run 9's teachers on the teacher evaluation's twelve held-out clips:
the flow-matching loss per noise level with each clip's own actions and poses, the next clip's, and none
(`relickit.evaluate.teacher.control_reliance`, which the evaluation's report now holds as `teacher_control_reliance`
at its own noise draws).

    git show ab41e62:data/weights/world/teacher.safetensors > /tmp/run8_teacher.safetensors
    python docs/runs/2026-12-04-run9/control_reliance.py /tmp/run8_teacher.safetensors data/weights/world/teacher.safetensors
    # CPU box, 2 threads, 1 min -> control_reliance.txt
"""
import json
import sys

import torch

from relickit.evaluate.teacher import control_reliance, evaluation_clips
from relickit.model import WorldModel
from relickit.vae import Tokenizer

torch.set_num_threads(2)
tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors")
clips = None
for path in sys.argv[1:]:
    model = WorldModel.load(path).float().eval()
    if clips is None:
        clips = [c for _, c in evaluation_clips("data/eval_tokenizer_f2", model.cfg.video_frames(13), 12)]
        with torch.no_grad():
            lat = torch.cat([tok.encode(c["frames"][None].transpose(1, 2)) for c in clips]).float()
        actions, poses = torch.stack([c["actions"] for c in clips]), torch.stack([c["poses"] for c in clips])
    context = model.encode_text([c["caption"] for c in clips])
    print(path, json.dumps(control_reliance(model, lat, context, actions, poses, (0.5, 0.8, 0.95, 1.0))), flush=True)
