"""The 2-min MAP21 routes of run 16's and run 17's keep rule: colour cast (as gate 1 computes it), brightness and
sharpness of each route, and their means. Seed 1 comes from a gates drift.json (E's: docs/eval/gates/, or
`git show 2986c5e:docs/eval/gates/drift.json` once another student ships), seeds 5 and 9 from single-route
drift reports (`python -m relickit.evaluate --suite drift --maps MAP21 --durations 120 --seed S --model M`).

    python docs/runs/2026-12-05-run17/routes.py E docs/eval/gates/drift.json \
        docs/runs/2026-12-05-run17/held_out/e_drift_map21_s5.json docs/runs/2026-12-05-run17/held_out/e_drift_map21_s9.json
"""
import sys

import numpy as np

from relickit.evaluate.gates import cast_beyond_tokenizer
from relickit.evaluate.report import read_json

LONG_S = 100  # a row at least this long is a 2-min run


def route(path: str, seed: int) -> tuple[float, float, float]:
    rows = read_json(path)["rows"]  # a .json name reads the gzipped report docs/runs keeps
    p = next(r for r in rows if r["map"] == "MAP21" and r["seed"] == seed and r["seconds"] >= LONG_S)["pictures"]
    return round(cast_beyond_tokenizer(p), 1), round(p["model"]["brightness"], 2), round(p["model"]["sharpness"], 3)


if __name__ == "__main__":
    args = sys.argv[1:]
    for i in range(0, len(args), 4):
        name, gates_drift, seed5, seed9 = args[i:i + 4]
        routes = [route(gates_drift, 1), route(seed5, 5), route(seed9, 9)]
        means = np.mean(routes, axis=0).round(3).tolist()
        print(f"{name}: (cast, brightness, sharpness) seeds 1, 5, 9: {routes}; mean {means}")
