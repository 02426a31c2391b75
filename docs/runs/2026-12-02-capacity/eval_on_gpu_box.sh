# How the four teachers of the width ablation were evaluated on the H200 box's CPUs (2026-12-02 07:13 UTC): the
# teacher evaluation of relickit.evaluate.teacher without its plotly figure (the box has no plotly), 6 held-out
# clips, against the shipped student. Today the same is `bash scripts/device_run.sh eval-teacher DIR ...`.
source scripts/device_site.sh >/dev/null 2>&1
for s in 192x8 256x8 384x4 384x12; do (timeout 120 python3 -c "
import sys,json,torch; import relickit.evaluate.teacher as t
t.pictures_over_time_figure=lambda *a,**k: None
from relickit.model import WorldModel; from relickit.vae import Tokenizer; from relickit.play import DEFAULT_MODEL
from PIL import Image
s=sys.argv[1]; o=sys.argv[2]; torch.set_num_threads(4)
r=t.teacher_vs_student(WorldModel.load(DEFAULT_MODEL), Tokenizer.load('/tmp/run/tokenizer.safetensors'), WorldModel.load(f'/tmp/abl_{s}/teacher/stage0.safetensors'), None, t.TeacherEvalConfig(clips=6))
Image.fromarray(r.strip).save(f'{o}/strip_{s}.png'); json.dump({'summary': r.report['summary'], 'rel': r.report['teacher_start_frame_reliance']}, open(f'{o}/sum_{s}.json','w'), default=str)
" $s $OUT > /tmp/e2_$s.log 2>&1 || tail -3 /tmp/e2_$s.log) & done; wait
