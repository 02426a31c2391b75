"""The shipped model through play's entry points: the CLI, and a bounded memory over a longer session."""
import numpy as np
from PIL import Image

from relickit.config import MemoryConfig
from relickit.play import Session, load_start, main


def test_cli_writes_the_played_frames(tmp_path):
    out = tmp_path / "walk.gif"
    main(["--script", "W*12, Left*12", "--out", str(out), "--horizon", "18"])
    with Image.open(out) as gif:
        assert gif.n_frames == 1 + 2 * 12 and gif.size == (128, 96)


def test_horizon_keeps_the_memory_flat_in_play():
    session = Session.from_pretrained(memory=MemoryConfig(horizon=18))
    image, text = load_start()
    session.reset(image, text)
    tokens = []
    for _ in range(9):  # 1 + 27 latent frames: the window (3) and the ring (18 frames) fill up
        frames = session.step(np.eye(13, dtype=np.float32)[0])
        tokens.append(session.memory_stats()["total_tokens"])
    assert frames.shape == (12, 96, 128, 3)
    assert tokens[-1] == tokens[-2] == tokens[-3] > tokens[0]
    unbounded = Session.from_pretrained()
    unbounded.reset(image, text)
    for _ in range(9):
        unbounded.step(np.eye(13, dtype=np.float32)[0])
    assert unbounded.memory_stats()["total_tokens"] > tokens[-1]
