"""The speed benchmark runs and reports what the cache really holds (CPU, tiny preset, a few chunks)."""
import json
import math
import subprocess
import sys
from pathlib import Path

from relickit.config import MemoryConfig, preset
from relickit.memory import budget

ROOT = Path(__file__).resolve().parents[1]


def test_bench_stream_reports_each_variant():
    out = subprocess.run([sys.executable, "scripts/bench_stream.py", "--preset", "tiny", "--device", "cpu",
                          "--minutes", "0.05", "--variants", "compressed+h18+fp8,full", "--decoder", "random"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"mode"')]
    assert [(r["policy"], r["horizon"], r["kv_format"]) for r in rows] == [("compressed", 18, "fp8"), ("full", None, "native")]
    cfg = preset("tiny")
    frames = 1 + round(3 * cfg.fps / 12) * cfg.chunk  # 3 s of play: the image, then 4 chunks of 3 latent frames
    for r in rows:
        mem = MemoryConfig(policy=r["policy"], horizon=r["horizon"], kv_format=r["kv_format"])
        b = budget(cfg, mem, frames)
        assert r["kv_tokens"] == b.total_tokens and r["kv_bytes_per_gpu"] == b.bytes(cfg, mem, 4)
        assert r["fps"] > 0 and math.isfinite(r["floor_ratio"]) and r["floor_ratio"] > 0
    assert rows[0]["kv_tokens"] < rows[1]["kv_tokens"]
