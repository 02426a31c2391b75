"""TrainConfig.compile on the CPU box: a tiny teacher trained 4 steps eager and with inductor; same losses, the
graphs dynamo made and its graph breaks. `python docs/runs/2026-12-02-compile/cpu_check.py` from the repository root
(2026-12-02 10:17 UTC, torch 2.13.0+cpu, 2 threads): output.txt."""
import dataclasses, time, torch, tempfile, sys
sys.path.insert(0, "tests")
from test_teacher import CFG, clips
from relickit.teacher import Stage, TeacherConfig, stage_config, teacher_loss
from relickit.model import WorldModel
from relickit.train import TrainConfig, train
import torch._dynamo
torch.set_num_threads(2)
data = clips(latent_frames=4)
for backend in ("", "inductor"):
    torch.manual_seed(0)
    m = WorldModel(stage_config(CFG, Stage(4, 1), Stage(4, 1)))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        r = train(TrainConfig(steps=4, batch_size=2, log_every=1, ema_decay=0.5, compile=backend, out_dir=d), m, teacher_loss(TeacherConfig()), data.batches(4, 2, seed=0))
    print(backend or "eager", [round(x["loss"], 5) for x in r.log], f"{time.perf_counter() - t:.1f}s")
print(torch._dynamo.utils.counters["stats"], dict(torch._dynamo.utils.counters["graph_break"]))
