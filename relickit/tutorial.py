"""What the tutorial notebooks share: smoke mode, the sample data, and the default weights.

Notebooks run at two sizes: a tutorial size that trains for a few minutes on a laptop CPU, and the smoke size
(RELICKIT_SMOKE=1) that CI uses to execute every notebook top to bottom in seconds; CI runs both.

Runs a notebook writes (datasets, checkpoints, logs) go to `runs_dir(name)`: $RELICKIT_RUNS/<name> when set, else
runs/tutorial/<name> in a clone of the repository (git ignores runs/), else <temp dir>/relickit-runs/<name>.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from .config import LATENT_SIGMA, ModelConfig, layout_fields, preset

SMOKE_ENV = "RELICKIT_SMOKE"
RUNS_ENV = "RELICKIT_RUNS"
REPO = Path(__file__).resolve().parents[1]
# The sample dataset the tutorials and tests read, one short episode per map: generated on first use (bit for bit the
# same everywhere, ~6 s on two cores) instead of carried in the repository, whose size every GPU run pays for.
SAMPLE_MAPS = {"train": ("MAP01", "MAP02", "MAP05", "MAP08", "MAP13", "MAP18"),  # tech, brick, cave, city, fortress
               "eval": ("MAP21", "E1M1")}  # held out: one map of each WAD
SAMPLE_FRAMES = 65  # 1 + 4 x 16: three 17-frame clips, or one 65-frame clip, per episode
SAMPLE_SEED = 0
ASSETS = Path(__file__).resolve().parent / "assets"
# docs/runs/campaign.md's kept teacher, and (a link to) the tokenizer whose latents it was trained on
CAMPAIGN_TEACHER = REPO / "data" / "weights" / "world" / "teacher.safetensors"
CAMPAIGN_TOKENIZER = CAMPAIGN_TEACHER.with_name("tokenizer.safetensors")


def smoke() -> bool:
    return os.environ.get(SMOKE_ENV, "0") not in ("", "0")


def pick(tutorial, smoke_value):
    """The tutorial-size value, or the smoke-size one under RELICKIT_SMOKE=1."""
    return smoke_value if smoke() else tutorial


def runs_dir(name: str) -> Path:
    """Where a notebook writes its run `name` (smoke runs get `<name>_smoke`), never inside the notebooks folder."""
    if os.environ.get(RUNS_ENV):
        root = Path(os.environ[RUNS_ENV])
    elif (REPO / "pyproject.toml").exists():  # a clone: runs/ is git-ignored
        root = REPO / "runs" / "tutorial"
    else:  # an installed relickit: nothing to write next to
        root = Path(tempfile.gettempdir()) / "relickit-runs"
    return root / (f"{name}_smoke" if smoke() else name)


def sample_root() -> Path:
    """Where the sample dataset lives: data/sample in a clone (git ignores it), else the temp dir."""
    if (REPO / "pyproject.toml").exists():
        return REPO / "data" / "sample"
    return Path(tempfile.gettempdir()) / "relickit-sample"


def sample_data(split: str = "train") -> Path:
    """The sample dataset's `split` ("train": six training maps, "eval": two held-out ones), one episode of
    SAMPLE_FRAMES frames per map at 96x128, generated on first use (resumable; a lock keeps two processes from writing
    it at once)."""
    import fcntl

    from .dataset import generate

    if split not in SAMPLE_MAPS:
        raise ValueError(f"the sample dataset has the splits {sorted(SAMPLE_MAPS)}, not {split!r}.")
    path, maps = sample_root() / split, SAMPLE_MAPS[split]
    if not _sample_complete(path, len(maps)):
        path.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{split}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not _sample_complete(path, len(maps)):
                generate(path, maps, len(maps), SAMPLE_FRAMES, SAMPLE_SEED, workers=min(2, os.cpu_count() or 1),
                         split=split)
    return path


def _sample_complete(path: Path, episodes: int) -> bool:
    from .dataset import load_manifest

    try:
        return len(load_manifest(path)["episodes"]) == episodes
    except (FileNotFoundError, ValueError, KeyError):
        return False


def notebook_model(vae=None) -> ModelConfig:
    """A model small enough to train in minutes on a CPU (2 layers under smoke), for the latents of `vae` (a
    tokenizer's VAEConfig, e.g. `default_tokenizer()[0].cfg`; default: the tiny preset's f8c16 layout)."""
    small = dict(text_len=8, rope_frames=7, sigma_data=LATENT_SIGMA)  # narrower than its patch: the skip helps
    cfg = pick(preset("tiny", layers=4, dim=128, heads=2, ffn_dim=512, text_dim=64, **small),
               preset("tiny", layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, **small))
    return cfg if vae is None else dataclasses.replace(cfg, **layout_fields(vae))


def default_tokenizer():
    """The shipped tokenizer if present, else a small random one. Returns (tokenizer, trained)."""
    from .vae import Tokenizer, VAEConfig

    path = ASSETS / "tokenizer.safetensors"
    if path.exists():
        return Tokenizer.load(path).eval(), True
    torch.manual_seed(0)
    return Tokenizer(VAEConfig(base_dim=8, dim_mult=(1, 2, 2, 2))).eval(), False


def default_student():
    """The shipped student if present, else a random smoke-size one. Returns (model, trained)."""
    from .model import WorldModel

    path = ASSETS / "student.safetensors"
    if path.exists():
        return WorldModel.load(path).float().eval(), True
    torch.manual_seed(0)
    return WorldModel(preset("tiny", layers=2, dim=64, heads=2, ffn_dim=128, text_dim=32, text_len=8)).eval(), False


def campaign_teacher():
    """The training campaign's latest kept teacher (int8, in a clone's data/weights/world/) and the tokenizer whose
    latents it was trained on (beside it, which may not be the shipped one while a new tokenizer's teacher trains
    ahead of its student). Returns (teacher, tokenizer), or None where they are not (an installed relickit)."""
    from .model import WorldModel
    from .vae import Tokenizer

    if not (CAMPAIGN_TEACHER.exists() and CAMPAIGN_TOKENIZER.exists()):
        return None
    return WorldModel.load(CAMPAIGN_TEACHER).float().eval(), Tokenizer.load(CAMPAIGN_TOKENIZER).eval()


def default_session(**kwargs):
    """A play session over the default student and tokenizer. Returns (session, trained)."""
    from .play import Session

    model, trained_model = default_student()
    tokenizer, trained_tok = default_tokenizer()
    return Session(model, tokenizer, **kwargs), trained_model and trained_tok
