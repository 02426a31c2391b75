import pytest
import torch

from relickit.config import RELIC_SCHEDULE, MemoryConfig, preset
from relickit.memory import budget, causal_visibility, compressed_tokens, pool_matrix

from helpers import inputs, tiny_model


def test_pool_matrix_averages_cells():
    m = pool_matrix((6, 8), 4)
    assert m.shape == (4, 48)
    torch.testing.assert_close(m.sum(1), torch.ones(4, dtype=m.dtype))
    x = torch.arange(48, dtype=torch.float64)
    # top-left cell: rows 0-3, cols 0-3 of an 8-wide grid
    want = torch.tensor([r * 8 + c for r in range(4) for c in range(4)], dtype=torch.float64).mean()
    assert (m @ x)[0] == want


@pytest.mark.parametrize("frames", [1, 4, 19, 37, 81])
def test_budget_follows_the_schedule(frames):
    cfg = preset("wan-1.3b")
    mem = MemoryConfig(policy="compressed", window=3)
    b = budget(cfg, mem, frames)
    w = min(3, frames)
    assert b.window_tokens == w * 1560
    want = 0
    for i in range(frames - w):
        f = RELIC_SCHEDULE[i % 18]
        want += {1: 1560, 2: 15 * 26, 4: 8 * 13}[f]
    assert b.total_tokens == b.window_tokens + want
    assert b.full_tokens == frames * 1560


def test_paper_arithmetic_twenty_seconds():
    """20 s at 16 FPS is 80 latent frames: ~124.8K tokens full; RELIC's memory brings it near the 5-s budget."""
    cfg = preset("wan-14b")
    b = budget(cfg, MemoryConfig(policy="compressed", window=3), 80)
    assert b.full_tokens == 124_800
    assert 20_000 < b.total_tokens < 35_000


def test_cache_counts_match_budget_and_window_stays_fixed():
    model = tiny_model()
    mem = MemoryConfig(policy="compressed", window=3, capacity=64)
    frames = 1 + 2 * 12
    x, t, ctx, actions, poses = inputs(model, frames)
    cache = model.new_cache(mem)
    s, v = 0, 0
    with torch.no_grad():
        while s < frames:
            n = 1 if s == 0 else 2
            nv = 1 if s == 0 else 8
            model.step(x[:, :, s:s + n], t[:, s:s + n], ctx, actions[:, v:v + nv], poses[:, v:v + nv], cache, write=True)
            s, v = s + n, v + nv
            st = cache.stats()
            b = budget(model.cfg, mem, s)
            assert st["total_tokens"] == b.total_tokens == cache.valid
            assert st["window_tokens"] == min(3, s) * model.cfg.tokens_per_frame
    assert st["compressed_tokens"] == {f: n * compressed_tokens(model.cfg, f) for f, n in
                                       {1: 2, 2: 6, 4: 14}.items()}


def test_visibility_rules():
    mem = MemoryConfig(policy="compressed", window=2)
    vis = causal_visibility(7, 2, mem)  # blocks: [0] [1,2] [3,4] [5,6]
    assert vis.full[5].tolist() == [False, False, False, True, True, True, True]
    assert vis.comp[5].tolist() == [True, True, True, False, False, False, False]
    assert not (vis.full & vis.comp).any()
    none = causal_visibility(7, 2, MemoryConfig(policy="none"))
    assert none.full[6].tolist() == [False] * 5 + [True, True] and not none.comp.any()


def test_memory_config_errors():
    with pytest.raises(ValueError, match="unknown memory policy"):
        MemoryConfig(policy="lru")
    model = tiny_model()
    cache = model.new_cache(MemoryConfig(capacity=2))
    x, t, ctx, actions, poses = inputs(model, 3)
    with torch.no_grad():
        with pytest.raises(ValueError, match="capacity"):
            model.step(x, t, ctx, actions, poses, cache)
