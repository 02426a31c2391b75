"""CUDA graphs of the streaming step: replay a whole denoising pass with one launch once the memory is full.

    graphed = GraphedStep(model)                       # wraps model.step; use it where the model goes
    x0, _, _ = denoise_chunk(graphed, cache, noise, cond, sigmas)
    commit(graphed, cache, x0, cond)                   # context passes always run eagerly

A bounded memory (MemoryConfig.horizon, or the window policy) attends, once full, to the same slice of the same
buffer at every step, and the step reads its frame position from the cache's device-side counter: nothing a
denoising pass does depends on host values any more, so one captured graph serves every later pass. Before the
memory is full, for context passes, on CPU, and for unbounded memories the wrapped model runs as usual.
Compiled blocks (`WorldModel.compile_blocks`) can be captured too.
"""
from __future__ import annotations

import torch

from .config import MemoryConfig
from .memory import KVCache
from .model import WorldModel


class GraphedStep:
    """Stands in for a WorldModel in `denoise_chunk` / `commit`: `.step` replays a CUDA graph when it can."""

    def __init__(self, model: WorldModel, warmup: int = 2):
        self.model, self.cfg, self.warmup = model, model.cfg, warmup
        self.cache: KVCache | None = None
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self.replays = 0

    def new_cache(self, mem: MemoryConfig, batch: int = 1) -> KVCache:
        return self.model.new_cache(mem, batch)

    @staticmethod
    def steady(cache: KVCache) -> bool:
        """True when every later denoising pass attends to the same slice: a bounded memory that is full."""
        return (cache.device.type == "cuda" and cache.bounded and cache.frames > 0
                and cache.slot + cache.valid == cache.bound)

    def step(self, x, t, context, actions, poses, cache: KVCache, write: bool = False) -> torch.Tensor:
        if write or torch.is_grad_enabled() or not self.steady(cache):
            return self.model.step(x, t, context, actions, poses, cache, write)
        if cache is not self.cache:  # graphs point into one cache's buffers
            self.cache, self.graphs = cache, {}
        inputs = (x, t, context, actions, poses)
        key = tuple(None if a is None else (a.shape, a.dtype) for a in inputs)
        if key not in self.graphs:
            self.graphs[key] = self._capture(inputs, cache)
        graph, static, out = self.graphs[key]
        for dst, src in zip(static, inputs):
            if dst is not None:
                dst.copy_(src)
        graph.replay()
        self.replays += 1
        return out.clone()

    def _capture(self, inputs, cache: KVCache):
        static = tuple(None if a is None else a.clone() for a in inputs)
        run = lambda: self.model.step(*static, cache)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up (compiles, cuBLAS workspaces) outside the capture
            for _ in range(self.warmup):
                run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = run()
        return graph, static, out
