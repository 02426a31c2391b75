"""Regenerate the committed sample dataset in data/sample/ (train and eval splits).

    /work/venv/bin/python scripts/make_sample_data.py            # writes data/sample/{train,eval}
    /work/venv/bin/python scripts/make_sample_data.py --force    # delete and rebuild

Frames are stored losslessly (~16 KB per 96x128 frame), so the sample is kept short to stay a few MB.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from relickit.dataset import generate

ROOT = Path(__file__).resolve().parents[1] / "data" / "sample"
TRAIN_MAPS = ("MAP01", "MAP02", "MAP05", "MAP08", "MAP13", "MAP18")  # varied looks: tech, brick, cave, city, fortress
EVAL_MAPS = ("MAP21", "E1M1")  # held out: one of each WAD
FRAMES = 65  # 1 + 4*16: three 17-frame clips, or one 65-frame clip, per episode
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="delete data/sample first")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.force and ROOT.exists():
        shutil.rmtree(ROOT)
    generate(ROOT / "train", TRAIN_MAPS, len(TRAIN_MAPS), FRAMES, SEED, workers=args.workers, split="train")
    generate(ROOT / "eval", EVAL_MAPS, len(EVAL_MAPS), FRAMES, SEED, workers=args.workers, split="eval")
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    print(f"{ROOT}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
