"""Run 13's stages on the CPU at the real widths (the committed 384 x 5 teacher's stage files, the shipped 384 x 3
student continued by DMD with `--dmd-from`, the three-stage rollout curriculum), every count cut to the minimum and
the horizons to what data/sample's 65-frame episodes hold: a dry run before GPU time is spent.
`python docs/runs/2026-12-04-run12/dry_run13.py` (about a minute on the 2-core CPU box)."""
import dataclasses, time
from relickit.recipe import DMDStage, recipe_from_cli, run
from relickit.teacher import Stage

r, a = recipe_from_cli("--out runs/dry13 --tokenizer data/weights/tokenizer/f4c16.safetensors "
                       "--warm-start data/weights/world/teacher.safetensors --minutes teacher=0 teacher_long=0 "
                       "--dmd-from relickit/assets/student.safetensors --device cpu".split())
assert (r.model.dim, r.model.layers, r.student_model().layers, len(r.dmd)) == (384, 5, 3, 3)  # the defaults
tiny = dict(batch_size=2, log_every=1, ckpt_every=0, mixed_precision="no", warmup=0)
r = dataclasses.replace(
    r, clips=4, clip_latents=13, ode_latents=7,  # the sample's episodes hold 17 latent frames
    dmd=(DMDStage(4, 1, 0), DMDStage(7, 1, 1), DMDStage(13, 1, 2)),
    teacher=dataclasses.replace(r.teacher, stages=(Stage(4, 0), Stage(7, 0), Stage(13, 0)),
                                train=dataclasses.replace(r.teacher.train, **tiny)),
    dmd_train=dataclasses.replace(r.dmd_train, **tiny))
t = time.time()
run(r, "runs/dry13", ("latents", "teacher", "dmd", "export"), "cpu", data="data/sample/train")
print("done", round(time.time() - t), "s")
