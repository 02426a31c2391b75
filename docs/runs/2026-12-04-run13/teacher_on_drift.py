"""Teacher and student on the first 12 s of the quality gates' drift runs (MAP21 and E1M1, the gates' seeds).

Every student so far dims to 0.55-0.65 of the truth's brightness in seconds 3-7 of these two runs (gate 1), while
on 12-s exploration clips of the twelve held-out maps neither teacher nor student dims
(held_out/teacher_student_12s.json). Is the dimming on these scripts the teacher's too? The teacher samples the
whole 12 s in one pass (49 latent frames; its RoPE range stretched by YaRN, as the DMD stage that scores 12-s
rollouts has it) from the engine's first frame, with the actions and camera poses the play session feeds the
student for the same script; the student plays the script in a session, as the gates do. Brightness, sharpness and
PSNR per second against the engine's truth, beside the frozen start frame:

    python docs/runs/2026-12-04-run13/teacher_on_drift.py TEACHER STUDENT TOKENIZER OUT.json [LATENT_FRAMES]

LATENT_FRAMES (default 49) shortens the clip: 13 is the teacher's own range (no YaRN), 25 a stretch of 1.9.
"""
import json
import math
import sys

import numpy as np
import torch

from relickit.controls import ACTION_DIM, accumulate, pose_vector
from relickit.dataset import caption
from relickit.diffusion import SamplerConfig, sample_teacher
from relickit.doom import DoomConfig, DoomEnv
from relickit.evaluate.engine import check_eval_maps, find_start
from relickit.evaluate.gates import GateConfig
from relickit.evaluate.scoring import compare, references
from relickit.evaluate.scripts import EngineActions, Script, drift_script
from relickit.evaluate.sessions import run_script, session_factory, session_geometry
from relickit.evaluate.suites import DEFAULT_MAPS
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.teacher import stretch_horizon
from relickit.vae import Tokenizer

LATENT_FRAMES = 49  # 12 s: the teacher's longest stage (the default)


def script_controls(script, frames_per_step: int, controls) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, T, 13) actions and (1, T, 12) poses of the whole clip, frame 0 static, as Session.reset/step feed them."""
    static = torch.zeros(1, ACTION_DIM)
    static[0, -1] = 1.0
    actions = torch.cat([static, script.frame_actions(frames_per_step)])[None]
    return actions, pose_vector(*accumulate(actions, controls))


def main(teacher_path, student_path, tokenizer_path, out, latent_frames=LATENT_FRAMES):
    latent_frames = int(latent_frames)
    torch.manual_seed(0)
    teacher = stretch_horizon(WorldModel.load(teacher_path).float().eval(), latent_frames)
    student, tok = WorldModel.load(student_path).float().eval(), Tokenizer.load(tokenizer_path)
    factory = session_factory(student, tok)
    probe = factory(GateConfig.policy, 0)
    h, w, fps_step, fps, controls = session_geometry(probe)
    engine, gates = EngineActions(), GateConfig()
    rows = []
    for mi, (wad, m) in enumerate(check_eval_maps(DEFAULT_MAPS)):
        doom = DoomConfig(wad=wad, map=m, height=h, width=w)
        run_seed = 1000 * mi  # the gates' drift run of this map (suite_drift, seed 0, its first duration)
        script = drift_script(max(1, math.ceil(gates.seconds * fps / fps_step)), run_seed, fps_step)
        with DoomEnv(doom) as env:
            start = find_start(doom, engine.script(script, fps_step, doom, controls), run_seed, 30, env)
        steps = (latent_frames - 1) // student.cfg.chunk
        short = Script(script.name, script.steps[:steps])
        truth = start.truth.frames[:1 + steps * fps_step]
        text = caption(m)
        session = factory(gates.policy, run_seed)
        played = run_script(session, truth[0], text, short).frames
        actions, poses = script_controls(short, fps_step, controls)
        video = torch.from_numpy(truth[:1]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        first = tok.encode(video)
        with torch.no_grad():
            z, _ = sample_teacher(teacher, first, latent_frames, teacher.encode_text([text]), actions, poses,
                                  SamplerConfig())
        drawn = to_uint8(tok.decode_tiny(z)[0].float())
        refs = references(session, truth)
        scores = compare({"teacher": drawn, "student": played, **refs}, truth, fps=fps)
        rows.append({"map": m, "seed": run_seed, "latent_frames": latent_frames,
                     "teacher_yarn_factor": teacher.cfg.yarn_factor, "script": short.to_json(),
                     **{k: {"brightness": v["brightness"], "psnr": v["psnr"], "sharpness": v["sharpness"],
                            "per_second": {s: v["per_second"][s] for s in ("brightness", "sharpness", "psnr")}}
                        for k, v in scores.items()}})
        for k in ("teacher", "student", "frozen_start"):
            print(m, k, "brightness per second", np.round(scores[k]["per_second"]["brightness"], 2).tolist(),
                  "mean", round(scores[k]["brightness"], 3))
    with open(out, "w") as f:
        json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
    main(*sys.argv[1:])
