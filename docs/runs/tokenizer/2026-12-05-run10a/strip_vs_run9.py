"""Truth, run 9's play decoder and run 10a's, on the second and third clips of the tokenizer evaluation's strips.

    python docs/runs/tokenizer/2026-12-05-run10a/strip_vs_run9.py RUN9_STRIP RUN10A_STRIP OUT.jpg

RUN9_STRIP has three rows a clip (truth, tiny, Wan decoder: docs/runs/tokenizer/2026-12-04-f4c16-run9/strip.jpg), RUN10A_STRIP
two (truth, tiny: a play part without its Wan decoder), both of the same four held-out clips.
"""
import sys

from PIL import Image

run9, run10a = (Image.open(p).convert("RGB") for p in sys.argv[1:3])
h9, h10 = run9.height / 12, run10a.height / 8
rows = []
for clip in (1, 2):
    rows += [run9.crop((0, round(i * h9), run9.width, round((i + 1) * h9))) for i in (3 * clip, 3 * clip + 1)]
    rows.append(run10a.crop((0, round((2 * clip + 1) * h10), run10a.width, round((2 * clip + 2) * h10))))
height = round(h9)
out = Image.new("RGB", (run9.width, height * len(rows)))
for i, row in enumerate(rows):
    out.paste(row.resize((run9.width, height)), (0, i * height))
out.save(sys.argv[3], quality=85)
