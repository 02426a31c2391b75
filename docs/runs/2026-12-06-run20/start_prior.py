"""Does the teacher's mush come from the noise it starts at? Its sampler from the true clip noised to 0.75 lands 1.7 dB
under the tokenizer ceiling, from pure noise 6.6 dB (campaign.md, "Which stage limits"): the layout it must invent above
sigma 0.75 it draws as a mean. Here it starts instead from the START FRAME copied into every frame and noised to
sigma s (SDEdit from what the player saw last, the one thing a rollout knows), against its start from pure noise, on
the teacher evaluation's twelve held-out 3-s clips (its noise generator, not its draws: the student's are not drawn
here), the same noise for every start. Scores through the play decoder
(the evaluation's `compare`), paired per clip against the pure-noise start; `frozen_db` is the PSNR of the rollout
against the frozen start frame: near the frozen start's own scores and high there, the start copied and nothing moved.

    python docs/runs/2026-12-06-run20/start_prior.py OUT.json   # CPU box, 2 threads
"""
import json
import sys

import numpy as np
import torch

from relickit.diffusion import SamplerConfig, add_noise, sample_teacher
from relickit.evaluate.scoring import compare, references
from relickit.evaluate.teacher import TeacherEvalConfig, evaluation_clips
from relickit.metrics import psnr_frames
from relickit.model import WorldModel
from relickit.play import to_uint8
from relickit.vae import Tokenizer

STARTS = (1.0, 0.95, 0.9, 0.8)  # 1: pure noise, as the evaluation samples
SCORES = ("psnr", "ssim", "sharpness", "brightness")


def main(out: str) -> None:
    torch.set_num_threads(2)
    cfg = TeacherEvalConfig(clips=12)  # one per held-out map, as the CLI's --held-out
    teacher = WorldModel.load("data/weights/world/teacher.safetensors").float().eval()
    tok = Tokenizer.load("data/weights/tokenizer/f4c16.safetensors").eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for i, clip in evaluation_clips("data/eval_tokenizer_f2", teacher.cfg.video_frames(cfg.latent_frames), cfg.clips,
                                    cfg.stride, cfg.split):
        truth = to_uint8(clip["frames"].transpose(0, 1))
        lat = tok.encode_frames(clip["frames"]).float()
        first, acts, poses = lat[:, :, :1], clip["actions"][None], clip["poses"][None]
        context = teacher.encode_text([clip["caption"]])
        noise = torch.randn(lat.shape, generator=gen)
        refs = references(type("S", (), {"tokenizer": tok, "decoder": "tiny"})(), truth)
        row = {"clip": i, "map": clip["map"]}
        for s in STARTS:
            start = None if s == 1.0 else add_noise(first.expand_as(lat), noise, torch.full((1, cfg.latent_frames), s))
            with torch.no_grad():
                z, _ = sample_teacher(teacher, first, cfg.latent_frames, context, acts, poses, SamplerConfig(),
                                      noise=noise if start is None else start, start_sigma=s)
                video = to_uint8(tok.decode_tiny(z)[0].float())
            model = compare({"model": video, **refs}, truth)["model"]
            row[str(s)] = {k: model[k] for k in SCORES}
            row[str(s)]["frozen_db"] = float(np.mean(psnr_frames(video[1:], refs["frozen_start"][1:])))
        frozen = compare({"model": refs["frozen_start"], **refs}, truth)["model"]
        row["frozen_start"] = {k: frozen[k] for k in SCORES}
        rows.append(row)
        print(i, clip["map"], {s: round(row[str(s)]["psnr"], 2) for s in STARTS}, flush=True)
    summary = {}
    for s in [str(s) for s in STARTS] + ["frozen_start"]:
        summary[s] = {k: float(np.mean([r[s][k] for r in rows])) for k in rows[0][s]}
        if s != "1.0":
            for k in SCORES:
                d = np.array([r[s][k] - r["1.0"][k] for r in rows])
                summary[s][f"{k}_vs_noise"] = [float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))]
    json.dump({"summary": summary, "rows": rows}, open(out, "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
