"""Head-parallel streaming across processes (gloo on CPU) equals the single-process step."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from relickit.config import MemoryConfig
from relickit.diffusion import chunk_slices
from relickit.parallel import HeadParallel, shard_config

from helpers import inputs, tiny_model

MEM = MemoryConfig(policy="compressed", window=1, schedule=(1, 4, 2), horizon=3, capacity=64)
FRAMES = 1 + 2 * 5


def stream(runner, model, cache):
    torch.manual_seed(0)
    x, t, ctx, actions, poses = inputs(model, FRAMES)
    with torch.no_grad():
        return torch.cat([runner.step(x[:, :, ls], t[:, ls], ctx, actions[:, vs], poses[:, vs], cache, write=True)
                          for ls, vs in chunk_slices(model.cfg, FRAMES)], 2)


def build():
    torch.manual_seed(0)
    return tiny_model(heads=4, dim=64)


def rank_main(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = build()
        parallel = HeadParallel(model)
        cache = parallel.new_cache(MEM)
        result = stream(parallel, model, cache)
        assert cache.k[0].shape[2] == model.cfg.heads // world  # the cache holds this rank's heads only
        torch.save({"out": result, "valid": cache.valid}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [2, 4])
def test_head_parallel_stream_equals_single_process(tmp_path, world):
    mp.spawn(rank_main, args=(world, free_port(), str(tmp_path / "r")), nprocs=world)
    model = build()
    cache = model.new_cache(MEM)
    want = stream(model, model, cache)
    for rank in range(world):
        got = torch.load(tmp_path / f"r.{rank}")
        assert got["valid"] == cache.valid
        torch.testing.assert_close(got["out"], want, atol=1e-5, rtol=1e-4)


def test_uneven_split_is_refused():
    cfg = build().cfg  # 4 heads, 48 tokens per frame
    assert shard_config(cfg, 4).heads == 1 and shard_config(cfg, 4).head_dim == cfg.head_dim
    with pytest.raises(ValueError, match="3 ranks must divide the 4 heads"):
        shard_config(cfg, 3)
