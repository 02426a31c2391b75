"""environment.yml and pyproject.toml name the same packages, so the two install paths never drift."""
import re
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
