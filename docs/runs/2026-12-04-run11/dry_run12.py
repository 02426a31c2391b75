"""Run 12's stages on the CPU at the real widths (the committed 384 x 5 teacher, a 3-block student), every count cut
to the minimum and the horizons to what data/sample's 65-frame episodes hold: a dry run before GPU time is spent.
`python docs/runs/2026-12-04-run11/dry_run12.py` (30 s on the 2-core CPU box)."""
import dataclasses, time
from relickit.recipe import DMDStage, recipe_from_cli, run
from relickit.teacher import Stage

r, a = recipe_from_cli("--out runs/dry12 --tokenizer data/weights/tokenizer/f4c16.safetensors --size 384x5 "
                       "--warm-start data/weights/world/teacher.safetensors --minutes teacher=0 teacher_long=0 "
                       "--student-layers 3 --device cpu".split())
tiny = dict(batch_size=2, log_every=1, ckpt_every=0, mixed_precision="no", warmup=0)
r = dataclasses.replace(
    r, clips=4, ode_batches=1, ode_batch=2, clip_latents=13, ode_latents=13,  # the sample's episodes hold 17
    dmd=(DMDStage(7, 1, 0), DMDStage(13, 1, 1)),
    distill=dataclasses.replace(r.distill, sampler=dataclasses.replace(r.distill.sampler, teacher_steps=2)),
    teacher=dataclasses.replace(r.teacher, stages=(Stage(7, 0), Stage(13, 0)),
                                train=dataclasses.replace(r.teacher.train, **tiny)),
    hybrid_train=dataclasses.replace(r.hybrid_train, steps=2, **tiny),
    dmd_train=dataclasses.replace(r.dmd_train, **tiny))
t = time.time()
run(r, "runs/dry12", ("latents", "teacher", "ode", "hybrid", "dmd", "export"), "cpu", data="data/sample/train")
print("done", round(time.time() - t), "s")
