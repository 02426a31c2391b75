"""Packaging: environment.yml and pyproject.toml name the same packages, so the two install paths never drift, and
the wheel carries every file of the package. (.ci/run also installs the wheel alone and plays with it.)"""
import re
import subprocess
import sys
import zipfile

import pytest

tomllib = pytest.importorskip("tomllib")
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def names(reqs):
    return {re.split(r"[<>=!~\[ ]", r.strip(), maxsplit=1)[0].lower() for r in reqs}


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = names(project["dependencies"]) | names(project["optional-dependencies"]["notebooks"])
    text = (ROOT / "environment.yml").read_text()
    pip_section = text[text.index("- pip:"):]
    pip_lines = [ln.strip()[2:] for ln in pip_section.splitlines()[1:]
                 if ln.strip().startswith("- ") and not ln.strip().startswith("- -e")]
    got = names(pip_lines)
    assert got == want, f"only in environment.yml: {got - want}; only in pyproject: {want - got}"
    # the same version floors, too
    floors = {names([r]).pop(): r.replace(" ", "") for r in project["dependencies"]}
    for line in pip_lines:
        n = names([line]).pop()
        if n in floors:
            assert line.replace(" ", "") == floors[n]


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert "notebooks/00_quickstart.ipynb" in blocks[0]
    assert "pytest" in blocks[1]
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_the_wheel_carries_every_file_of_the_package(tmp_path):
    listed = subprocess.run(["git", "ls-files", "relickit"], cwd=ROOT, capture_output=True, text=True)
    files = listed.stdout.split() if listed.returncode == 0 else [
        str(p.relative_to(ROOT)) for p in (ROOT / "relickit").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert "relickit/assets/starts.npz" in files and "relickit/play.py" in files
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("relickit-*.whl")
    missing = sorted(set(files) - set(zipfile.ZipFile(wheel).namelist()))
    assert not missing, f"the wheel leaves out {missing}: add them to [tool.setuptools.package-data] in pyproject.toml"
