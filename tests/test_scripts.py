"""The speed benchmark runs and reports what the cache really holds (CPU, tiny preset, a few chunks)."""
import dataclasses
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from relickit.config import MemoryConfig, model_for, preset
from relickit.memory import budget
from relickit.model import WorldModel, step_flops
from relickit.vae import LAYOUTS, Tokenizer, kl_divergence

from helpers import tiny_tokenizer

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


def test_bench_stream_measures_a_size_for_a_layout(tmp_path):
    bench = [sys.executable, "scripts/bench_stream.py", "--device", "cpu", "--threads", "1", "--minutes", "0.05",
             "--variants", "window", "--layout", "f4c16", "--size", "64x2"]
    out = subprocess.run(bench, cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout
    [row] = [json.loads(line) for line in out.splitlines() if line.startswith('{"mode"')]
    cfg = model_for(LAYOUTS["f4c16"], 64, 2)
    assert (row["size"], row["latent"], row["patch"], row["decoder"]) == ("64x2", "16x24x32", 4, "tiny")
    assert row["params_m"] == sum(p.numel() for p in WorldModel(cfg).parameters()) / 1e6
    keys = MemoryConfig().window * cfg.tokens_per_frame  # a full window from the second chunk on (what mean counts)
    assert row["gflop_per_chunk_mean"] == pytest.approx(5 * step_flops(cfg, cfg.chunk, keys) / 1e9)  # 4 steps + 1
    assert row["chunk_ms_mean"] == pytest.approx(row["denoise_ms_mean"] + row["decode_ms_mean"])
    assert row["decode_ms_mean"] > 0 and row["fps"] > 0
    f8 = tiny_tokenizer(tmp_path / "f8c16.safetensors", layout="f8c16")  # its tiny decoder reads 12x16 latents
    refused = subprocess.run(bench + ["--decoder", str(f8)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "pass --layout for that tokenizer" in refused.stderr


def test_bench_train_step_times_each_stage_for_a_size_and_layout():
    out = subprocess.run([sys.executable, "scripts/bench_train_step.py", "--sizes", "64x2", "--latent-frames", "7",
                          "--batch", "2", "3", "--steps", "1", "--layout", "f4c16"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout
    params = sum(p.numel() for p in WorldModel(model_for(LAYOUTS["f4c16"], 64, 2)).parameters()) / 1e6
    lines = out.splitlines()
    stages = [["teacher", "eager"], ["hybrid", "eager"], ["dmd", "eager"]]
    assert [line.split()[:2] for line in lines] == stages * 2  # each batch size in turn
    for line, batch in zip(lines, [2] * 3 + [3] * 3):
        assert line.split(maxsplit=2)[2].startswith(f"f4c16    64x2 ({params:5.1f}M)  batch {batch} x  7 latent frames:")
        assert float(line.split(" ms/step")[0].split()[-1]) > 0
    assert "generator step" in lines[2] and "critic step" in lines[2]


def test_soak_reports_a_flat_ring_and_the_joystick_playing():
    """The soak script (scripts/soak_play.py), a few seconds of each mode: what it reports, not how fast."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from soak_play import main
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    cfg, mem = preset("tiny"), MemoryConfig(horizon=18)
    header, *rows, summary = main(["--fast", "--minutes", "0.2", "--every", "3", "--horizon", "18"])
    assert header["memory"] == {"policy": "compressed", "horizon": 18, "window": 3} and summary["summary"]
    frames = [1 + 3 * round(r["play_s"] * cfg.fps / 12) for r in rows]
    assert [r["kv_tokens"] for r in rows] == [budget(cfg, mem, f).total_tokens for f in frames]
    assert rows[-1]["kv_tokens"] == rows[-2]["kv_tokens"]  # the ring is full: it stays that size
    header, *rows, summary = main(["--minutes", "0.1", "--every", "3"])  # the joystick, in real time
    assert header["mode"] == "joystick" and len(rows) == 2 and summary["minutes"] == 0.1
    assert sum(r["steps"] for r in rows) > 0 and all(r["frames_dropped"] >= 0 for r in rows)


def _wad(lumps: list[tuple[bytes, bytes]]) -> bytes:
    body, directory, pos = b"", b"", 12
    for name, data in lumps:
        directory += struct.pack("<ii8s", pos, len(data), name)
        body += data
        pos += len(data)
    return struct.pack("<4sii", b"IWAD", len(lumps), pos) + body + directory


def _lumps(wad: bytes) -> list[tuple[bytes, bytes]]:
    _, count, offset = struct.unpack_from("<4sii", wad)
    out = []
    for i in range(count):
        pos, size, name = struct.unpack_from("<ii8s", wad, offset + 16 * i)
        out.append((name.rstrip(b"\0"), wad[pos:pos + size]))
    return out


def _pack_gpu_wheels():
    """scripts/pack_gpu_wheels.py as a module."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import pack_gpu_wheels
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return pack_gpu_wheels


def test_pack_gpu_wheels_silences_a_wad_and_keeps_every_other_lump_byte_for_byte():
    silence_wad = _pack_gpu_wheels().silence_wad

    kept = [(b"MAP01", b""), (b"THINGS", bytes(range(10))), (b"PLAYPAL", b"\x01\x02\x03"), (b"DSPISTOL", b"")]
    dropped = [(b"DSPISTOL", b"snd!"), (b"DPPISTOL", b"pc"), (b"D_RUNNIN", b"music..")]
    wad = _wad(kept[:2] + dropped[:1] + kept[2:3] + dropped[1:] + kept[3:])
    assert _lumps(silence_wad(wad)) == kept  # the empty DS marker stays; lumps with sound or music go
    assert silence_wad(silence_wad(wad)) == silence_wad(wad)


def test_pack_gpu_wheels_drops_what_no_gpu_job_imports_and_keeps_the_rest_as_it_is(tmp_path):
    """diffusers without its pipelines: the Wan autoencoder relickit uses lives in diffusers/models/."""
    import zipfile

    files = {"diffusers/__init__.py": b"lazy", "diffusers/models/autoencoders/autoencoder_kl_wan.py": b"wan",
             "diffusers/pipelines/wan/pipeline_wan.py": b"pipe", "diffusers/modular_pipelines/x.py": b"modular",
             "diffusers-0.42.1.dist-info/METADATA": b"meta"}
    wheel = tmp_path / "diffusers-0.42.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    got = {name: data for name, data, _ in _pack_gpu_wheels().members(wheel, tmp_path)}
    assert got == {k: v for k, v in files.items() if "pipelines/" not in k}


def test_pack_gpu_wheels_icu_stubs_export_what_the_loader_resolves(tmp_path):
    """ViZDoom's boost_regex links ICU (BIND_NOW): each stub must export every symbol listed for it, under the
    library's own name, or the GPU machine cannot import vizdoom."""
    import ctypes
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("gcc builds the stubs (the CPU box that packs the archive has it)")
    pack = _pack_gpu_wheels()
    for lib, stub in pack.ICU_STUBS.items():
        soname = f"{lib}-0123abcd.so.60.3"
        path = tmp_path / "lib" / soname
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pack.icu_stub(soname, tmp_path))
        loaded = ctypes.CDLL(str(path))
        for name in stub["data"] + stub["functions"]:
            assert ctypes.cast(loaded[name], ctypes.c_void_p).value, name


def _device_run(*args, out: Path, **env: str):
    """scripts/device_run.sh as a device call runs it: from the repository's root, writing to $OUT; `env` sets more
    of its environment (RUN, DATA)."""
    import os

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(out), **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / "device_run.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_device_run_waits_for_side_by_side_teachers_and_collects_them_in_int8(tmp_path):
    """The GPU campaign's phases: `wait` on a machine without the runs (a fresh one: the last went back) fails at
    once instead of sleeping the budget away; with the runs it returns when every recipe has ended; and
    `collect-teachers` brings back each run's newest teacher in the int8 continuation format, loadable as it was: the
    last stage, or where a stage was running, its newest checkpoint (a machine can go back before a stage ends)."""
    from relickit.model import WorldModel
    from relickit.teacher import STAGE_MODEL
    from relickit.train import TrainConfig, train

    runs = [tmp_path / "ta", tmp_path / "tb"]
    out = tmp_path / "out"
    fresh = _device_run("wait", "300", *map(str, runs), out=out)
    assert fresh.returncode != 0 and "fresh one" in fresh.stdout
    model = WorldModel(preset("tiny", layers=1, dim=64, heads=1, ffn_dim=128, text_dim=32, text_len=8))
    for run in runs:
        (run / "teacher").mkdir(parents=True)
        WorldModel(model.cfg).save(run / "teacher" / "stage0.safetensors")  # other weights: stage 1 trained
        model.save(run / "teacher" / "stage1.safetensors")
        (run / "teacher" / "stage1").mkdir()
        (run / "teacher" / "stage1" / "log.jsonl").write_text('{"step": 1}\n')
        (run / "teacher" / "stage1" / "held_out.jsonl").write_text('{"step": 1, "held_out_loss": 0.2}\n')
        run.with_suffix(".log").write_text("training\nDONE\n")
    mid = runs[1] / "teacher" / "stage1"  # tb's machine went back while stage 1 ran, after its first checkpoint
    (runs[1] / "teacher" / "stage1.safetensors").unlink()
    (mid / STAGE_MODEL).write_text(json.dumps(dataclasses.asdict(model.cfg)))
    train(TrainConfig(steps=1, batch_size=1, ema_decay=0.5, out_dir=str(mid)), model,
          lambda m, batch, step: (sum(p.sum() for p in m.parameters()) * 0.0, {}), lambda step: None)
    done = _device_run("wait", "300", *map(str, runs), out=out)
    assert done.returncode == 0, done.stdout + done.stderr
    got = _device_run("collect-teachers", *map(str, runs), out=out)
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"{runs[0]}: {runs[0]}/teacher/stage1.safetensors" in got.stdout
    assert f"{runs[1]}: {mid}/checkpoints/step_00000001/ema.safetensors" in got.stdout
    for run in runs:
        back = WorldModel.load(out / f"{run.name}.int8.safetensors")
        assert back.cfg == model.cfg
    import tarfile

    names = tarfile.open(out / "teacher_logs.tgz").getnames()
    assert sum(n.endswith("log.jsonl") for n in names) == 2 and sum(n.endswith(".log") for n in names) == 2
    assert sum(n.endswith("held_out.jsonl") for n in names) == 2  # the recipe's --held-out measurements


def test_device_run_launch_waits_for_the_runs_earlier_recipe_before_it_starts_the_next(tmp_path):
    """Run 7's lost call: the latents stage writes its last file before its recipe exits, so the teacher's launch
    emptied a log that recipe still wrote to, its DONE landed in the new log and ended the next `wait` at once. The
    launch now waits for the earlier recipe of the same RUN, and the new log holds only the new recipe's lines."""
    import time

    run = tmp_path / "run"
    log = run.with_suffix(".log")
    # a stand-in for the data recipe: its command line names the RUN as device_run.sh launches it, and it writes on
    # into the log it opened as the launch opens it (at its own offset), DONE last, a while after its last file
    # appeared (longer than the launch takes to reach its log: importing the packages it checks takes seconds)
    earlier = subprocess.Popen(["bash", "-c", f'exec > "{log}"; echo latents done; sleep 12; echo DONE',
                                f"relickit.recipe --out {run} --data {tmp_path / 'data'}"])
    time.sleep(0.5)
    launched = _device_run("launch", "no-such-stage", out=tmp_path / "out", RUN=str(run), DATA=str(tmp_path / "data"))
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert earlier.wait(timeout=10) == 0
    new = log.read_text()
    assert "\0" not in new and "DONE" not in new and new.rstrip().endswith("FAILED")  # the new recipe's own end
    assert "latents done\nDONE" in run.with_name("run.earlier.log").read_text()


def test_bench_tokenizer_step_times_a_wider_vae_in_each_memory_format():
    bench = [sys.executable, "scripts/bench_tokenizer_step.py", "--device", "cpu", "--jobs", "f4c16-4x1", "--batch",
             "1", "--frames", "5", "--steps", "1", "--warmup", "0", "--variants", "whole,channels_last"]
    out = subprocess.run(bench, cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout
    head, *rows = out.splitlines()
    tok = Tokenizer(dataclasses.replace(LAYOUTS["f4c16"], base_dim=4, num_res_blocks=1)).train()
    tok.tiny.requires_grad_(False)
    assert head.startswith(f"f4c16-4x1: VAE {sum(p.numel() for p in tok.vae.parameters()) / 1e6:.1f}M parameters")
    video = torch.zeros(1, 3, 5, 96, 128)
    # a real step's arithmetic, which the meta count stands for (attention through the math kernel: torch's FLOP
    # counter has no formula for the fused CPU kernel)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        recon, mean, logvar = tok(video)
        ((recon - video).abs().mean() + kl_divergence(mean, logvar)).backward()
    assert float(head.split(",")[1].split()[0]) == pytest.approx(counter.get_total_flops() / 5 / 1e9, abs=0.05)
    assert [r.split()[:3] for r in rows] == [["whole", "batch", "1"], ["channels_last", "batch", "1"]]
    refused = subprocess.run(bench[:4] + ["--jobs", "f4c16-64"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "LAYOUT-WxB, e.g. f4c16-64x2" in refused.stderr
