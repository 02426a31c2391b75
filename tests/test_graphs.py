"""The GPU runtime: CUDA graphs of the streaming step, and no host syncs in the denoising loop (CUDA only)."""
import pytest
import torch

from relickit.config import MemoryConfig
from relickit.diffusion import Chunk, SamplerConfig, commit, denoise_chunk
from relickit.graphs import GraphedStep

from helpers import inputs, tiny_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
MEM = MemoryConfig(policy="compressed", window=2, schedule=(1, 4, 2), horizon=3, capacity=64)


def data(model):
    torch.manual_seed(0)
    x, _, ctx, actions, poses = inputs(model, 1 + model.cfg.chunk)
    return tuple(a.cuda() for a in (x, ctx, actions, poses))


def play(runner, model, chunks: int, mem: MemoryConfig = MEM, seed: int = 1):
    """Stream `chunks` chunks with fixed inputs and noise through `runner` (a model or a GraphedStep)."""
    x, ctx, actions, poses = data(model)
    with torch.no_grad():
        return stream(runner, model, x, ctx, actions, poses, chunks, mem, seed)


def stream(runner, model, x, ctx, actions, poses, chunks, mem, seed):
    cache = model.new_cache(mem)
    commit(runner, cache, x[:, :, :1], Chunk(ctx, actions[:, :1], poses[:, :1]))
    cond = Chunk(ctx, actions[:, 1:], poses[:, 1:])
    g = torch.Generator("cuda").manual_seed(seed)
    out = []
    for _ in range(chunks):
        noise = torch.randn(x[:, :, 1:].shape, device="cuda", generator=g)
        x0, _, _ = denoise_chunk(runner, cache, noise, cond, SamplerConfig().sigmas,
                                 lambda i: torch.randn(noise.shape, device="cuda", generator=g))
        commit(runner, cache, x0, cond)
        out.append(x0)
    return torch.cat(out, 2)


@cuda
def test_graphed_steps_equal_eager_steps():
    model = tiny_model().cuda()
    eager = play(model, model, 8)
    graphed = GraphedStep(model)
    replayed = play(graphed, model, 8)
    assert graphed.replays > 0 and len(graphed.graphs) == 1  # one graph serves every pass once the ring is full
    torch.testing.assert_close(replayed, eager, atol=1e-5, rtol=1e-4)


@cuda
@pytest.mark.parametrize("mem", [MEM, MemoryConfig(policy="compressed", capacity=64, kv_format="fp8")])
def test_streaming_loop_never_syncs_with_the_host(mem):
    model = tiny_model().cuda()
    play(model, model, 2, mem)  # warm up: first uses copy constants to the device once
    x, ctx, actions, poses = data(model)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            stream(model, model, x, ctx, actions, poses, 3, mem, 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
