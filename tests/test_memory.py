import pytest
import torch

from relickit.config import RELIC_SCHEDULE, MemoryConfig, preset
from relickit.diffusion import chunk_slices
from relickit.memory import (MemoryFull, budget, causal_visibility, compressed_tokens, fp8_pack, fp8_unpack,
                             hybrid_visibility, pool_matrix)

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
        with pytest.raises(MemoryFull, match=r"capacity 2.*reset\(\).*horizon=H.*capacity=\.\.\."):
            model.step(x, t, ctx, actions, poses, cache)


def stream(model, mem, x, t, ctx, actions, poses):
    """Stream the inputs chunk by chunk through a fresh cache; yields each chunk's output and the cache."""
    cache = model.new_cache(mem)
    with torch.no_grad():
        for ls, vs in chunk_slices(model.cfg, x.shape[2]):
            yield model.step(x[:, :, ls], t[:, ls], ctx, actions[:, vs], poses[:, vs], cache, write=True), cache


def stream_chunks(model, mem, frames):
    """Stream `frames` random latent frames; returns all outputs and the cache."""
    outs, caches = zip(*stream(model, mem, *inputs(model, frames)))
    return torch.cat(outs, 2), caches[-1]


def test_horizon_bounds_the_memory_and_matches_the_full_sequence():
    """A horizon keeps the last H compressed frames in a ring: the buffer never moves, the token count stops
    growing once the ring is full, and streaming still equals the full forward under the same visibility."""
    model = tiny_model(rope_frames=16)
    # capacity is below the 15 frames streamed: it bounds unbounded memories only, a ring streams on without end
    mem = MemoryConfig(policy="compressed", window=2, schedule=(1, 4, 2), horizon=3, capacity=8)
    frames = 1 + 2 * 7
    data = inputs(model, frames)
    outs, valid, buffers = [], [], set()
    for out, cache in stream(model, mem, *data):
        assert cache.valid == budget(model.cfg, mem, cache.frames).total_tokens
        outs.append(out)
        valid.append(cache.valid)
        buffers.add(cache.k[0].data_ptr())
    tpf = model.cfg.tokens_per_frame
    ring = sum(compressed_tokens(model.cfg, f) for f in (1, 4, 2))
    assert valid[-3:] == [2 * tpf + ring] * 3  # full ring: 3 compressed frames, one of each factor
    assert len(buffers) == 1 and cache.k[0].shape[1] == cache.bound
    vis = causal_visibility(frames, 2, mem)
    assert vis.comp[-1].tolist() == [False] * 8 + [True] * 3 + [False] * 4  # 8-10 compressed, 11-12 window, 13-14 own
    with torch.no_grad():
        full = model(*data, vis, mem)
    torch.testing.assert_close(torch.cat(outs, 2), full, atol=1e-5, rtol=1e-4)


def test_hybrid_visibility_respects_the_horizon():
    model = tiny_model()
    mem = MemoryConfig(policy="compressed", window=0, schedule=(1, 4, 2), horizon=3, capacity=64)
    frames = 1 + 2 * 4
    x, t, ctx, actions, poses = inputs(model, frames)
    t[:, :-2] = 0
    vis = hybrid_visibility(frames, 2, 1, mem)
    assert vis.comp[-1].tolist() == [False] * 4 + [True] * 3 + [False] * 2
    with torch.no_grad():
        hybrid = model(x, t, ctx, actions, poses, vis, mem)
    *_, (last, _) = stream(model, mem, x, t, ctx, actions, poses)
    torch.testing.assert_close(hybrid[:, :, -2:], last, atol=1e-5, rtol=1e-4)


def test_fp8_pack_is_accurate_to_e4m3():
    x = torch.randn(2, 50, 3, 16) * torch.logspace(-3, 3, 50)[None, :, None, None]
    values, scale = fp8_pack(x)
    assert values.dtype == torch.float8_e4m3fn and scale.shape == (2, 50, 3, 1)
    back = fp8_unpack(values, scale, torch.float32)
    amax = x.abs().amax(-1, keepdim=True)
    assert ((back - x).abs() <= amax / 16 + 1e-12).all()  # 3 mantissa bits: half an ulp at the top is 1/16
    assert ((back - x).abs() / amax).mean() < 0.02


def test_fp8_cache_halves_bytes_and_stays_close():
    model = tiny_model()
    native = MemoryConfig(policy="compressed", window=2, capacity=64)
    fp8 = MemoryConfig(policy="compressed", window=2, capacity=64, kv_format="fp8")
    torch.manual_seed(0)
    a, ca = stream_chunks(model, native, 1 + 2 * 5)
    torch.manual_seed(0)
    b, cb = stream_chunks(model, fp8, 1 + 2 * 5)
    assert cb.k[0].dtype == torch.float8_e4m3fn and cb.valid == ca.valid
    assert cb.stats()["bytes"] / ca.stats()["bytes"] == pytest.approx((64 + 4 * 2) / (64 * 4))  # vs fp32 storage
    torch.testing.assert_close(a[:, :, :1], b[:, :, :1])  # the first frame sees no cache
    err = (a - b).abs().max() / a.abs().max()
    assert 0 < err < 0.05


def test_horizon_errors_are_named():
    with pytest.raises(ValueError, match="multiple of the schedule"):
        MemoryConfig(horizon=20)
    with pytest.raises(ValueError, match="kv_format"):
        MemoryConfig(kv_format="int4")
