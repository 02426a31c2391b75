"""Every tutorial notebook runs top to bottom, as a student would run it: in smoke mode (RELICKIT_SMOKE=1, seconds)
and in tutorial mode (the sizes a student gets, minutes), writing only where tutorial.runs_dir says."""
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from relickit import tutorial

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MODES = {"smoke": "1", "tutorial": "0"}


def test_the_tutorial_series_is_complete():
    names = [p.name for p in NOTEBOOKS]
    assert names[0] == "00_quickstart.ipynb" and len(names) >= 6, names


@pytest.mark.notebooks
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, mode, tmp_path, monkeypatch):
    monkeypatch.setenv("RELICKIT_SMOKE", MODES[mode])
    monkeypatch.setenv("RELICKIT_RUNS", str(tmp_path / "runs"))
    work = tmp_path / "work"  # the notebook's folder and working directory, as in JupyterLab
    work.mkdir()
    monkeypatch.chdir(work)
    copy = work / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert {p.name for p in work.iterdir()} == {path.name}, "runs belong in tutorial.runs_dir, the engine in a temp dir"


def test_tutorial_runs_go_where_git_ignores_them(monkeypatch, tmp_path):
    monkeypatch.delenv("RELICKIT_RUNS", raising=False)
    run = tutorial.runs_dir("02_tokenizer")
    assert run.parent == ROOT / "runs" / "tutorial"
    if (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", str(run / "vae" / "log.jsonl")], cwd=ROOT)
        assert ignored.returncode == 0, f"{run} is not git-ignored"
    monkeypatch.setenv("RELICKIT_RUNS", str(tmp_path))
    monkeypatch.setenv("RELICKIT_SMOKE", "1")
    assert tutorial.runs_dir("01_data") == tmp_path / "01_data_smoke"
    monkeypatch.setenv("RELICKIT_SMOKE", "0")
    assert tutorial.runs_dir("01_data") == tmp_path / "01_data"


def test_the_campaign_teacher_comes_with_the_tokenizer_it_reads(monkeypatch, tmp_path):
    """Notebook 03 draws the campaign's kept teacher where a clone has it, in fp32, with the tokenizer of its
    latents (today the shipped one, linked); elsewhere None, and the notebook says so."""
    found = tutorial.campaign_teacher()
    assert found is not None  # this checkout holds data/weights/world/
    teacher, tokenizer = found
    assert teacher.cfg.latent_size == tokenizer.cfg.latent_size
    assert teacher.cfg.latent_channels == tokenizer.cfg.z_dim
    assert all(p.dtype == torch.float32 for p in teacher.parameters())
    monkeypatch.setattr(tutorial, "CAMPAIGN_TOKENIZER", tmp_path / "missing.safetensors")
    assert tutorial.campaign_teacher() is None
