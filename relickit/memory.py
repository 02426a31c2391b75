"""RELIC's memory: a KV cache with a rolling full-resolution window and a spatially compressed history.

Latent frame i, once it leaves the window, keeps ceil(gh/f) x ceil(gw/f) tokens with f = schedule[i % 18]:
its keys (after QK-norm and the pose term, before RoPE) and values are averaged over f x f cells of the token
grid, and the pooled keys are rotated to the cells' centres. Pooling K/V rather than the latents keeps one
network pass per frame: the compressed copy is made from the same K/V the window holds.

Policies: `none` (a chunk sees only itself), `window` (plus the last w frames), `compressed` (RELIC: window plus
every older frame compressed), `full` (every frame at full resolution).

The same rules exist twice, as a streaming cache (`KVCache`) and as frame-level visibility matrices for the
full-sequence forward (`causal_visibility`, `hybrid_visibility`); tests hold the two equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .config import MemoryConfig, ModelConfig
from .rope import Rope3D, apply_rope, grid_positions


# ---- pooling ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def pool_matrix(grid: tuple[int, int], factor: int) -> torch.Tensor:
    """(n_out, gh*gw) averaging matrix over factor x factor cells of the token grid (edge cells clipped)."""
    gh, gw = grid
    oh, ow = math.ceil(gh / factor), math.ceil(gw / factor)
    m = torch.zeros(oh * ow, gh * gw, dtype=torch.float64)
    for i in range(gh):
        for j in range(gw):
            m[(i // factor) * ow + j // factor, i * gw + j] = 1.0
    return m / m.sum(1, keepdim=True)


def compressed_tokens(cfg: ModelConfig, factor: int) -> int:
    gh, gw = cfg.token_grid
    return math.ceil(gh / factor) * math.ceil(gw / factor)


def frame_positions(cfg: ModelConfig, frame: int, factor: int) -> torch.Tensor:
    """Token positions (n, 3) of latent frame `frame` at per-side compression `factor` (1 = full)."""
    full = grid_positions(torch.tensor([frame]), cfg.token_grid)
    return full if factor == 1 else pool_matrix(cfg.token_grid, factor) @ full


def pool_frames(x: torch.Tensor, cfg: ModelConfig, factor: int) -> torch.Tensor:
    """Pool one frame's tokens x (B, tokens_per_frame, H, D) over factor x factor cells -> (B, n_out, H, D)."""
    m = pool_matrix(cfg.token_grid, factor).to(x.device, torch.float32)
    return torch.einsum("ot,bthd->bohd", m, x.float()).to(x.dtype)


# ---- token budget ----------------------------------------------------------------------------------------
def window_frames(mem: MemoryConfig) -> int:
    return {"none": 0, "window": mem.window, "compressed": mem.window, "full": mem.capacity}[mem.policy]


@dataclass(frozen=True)
class Budget:
    """What the cache holds after some latent frames: tokens per part and per compression factor."""

    frames: int
    window_tokens: int
    compressed_tokens: dict[int, int]  # factor -> tokens
    full_tokens: int  # what policy `full` would hold

    @property
    def total_tokens(self) -> int:
        return self.window_tokens + sum(self.compressed_tokens.values())

    def bytes(self, cfg: ModelConfig, element_size: int) -> int:
        """K and V, every layer."""
        return 2 * cfg.layers * self.total_tokens * cfg.dim * element_size


def budget(cfg: ModelConfig, mem: MemoryConfig, frames: int) -> Budget:
    w = min(window_frames(mem), frames)
    comp: dict[int, int] = {}
    if mem.policy == "compressed":
        for i in range(frames - w):
            f = mem.factor(i)
            comp[f] = comp.get(f, 0) + compressed_tokens(cfg, f)
    return Budget(frames, w * cfg.tokens_per_frame, dict(sorted(comp.items())), frames * cfg.tokens_per_frame)


# ---- the streaming cache ---------------------------------------------------------------------------------
class KVCache:
    """Per-layer key/value buffers laid out as [chunk slot | window ring | compressed history].

    The chunk being denoised is written right-aligned into the chunk slot, so the keys a step attends to are
    always one contiguous slice: no mask, no gather, no host sync. Bookkeeping is plain Python integers.
    """

    def __init__(self, cfg: ModelConfig, mem: MemoryConfig, batch: int, device=None, dtype=torch.float32):
        self.cfg, self.mem, self.batch, self.device, self.dtype = cfg, mem, batch, device, dtype
        self.rope = Rope3D(cfg)
        self.tokens = cfg.tokens_per_frame
        self.window = window_frames(mem)
        self.slot = cfg.chunk * self.tokens
        self.frames = 0  # latent frames written so far
        self.in_window = 0
        self.comp_used = 0
        self._alloc = 0
        shape = (batch, 0, cfg.heads, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.pending_k: list[torch.Tensor | None] = [None] * cfg.layers  # compressed copies of window frames
        self.pending_v: list[torch.Tensor | None] = [None] * cfg.layers
        self._grow(self.slot + min(self.window, 2 * cfg.chunk + 1) * self.tokens)

    # -- layout
    @property
    def window_start(self) -> int:
        return self.slot

    @property
    def comp_start(self) -> int:
        return self.slot + self.window * self.tokens if self.window < self.mem.capacity else self._alloc

    @property
    def valid(self) -> int:
        """Cached tokens (window + compressed)."""
        return self.in_window * self.tokens + self.comp_used

    def _grow(self, size: int) -> None:
        if size <= self._alloc:
            return
        size = max(size, 2 * self._alloc)
        for store in (self.k, self.v):
            for i, buf in enumerate(store):
                new = torch.zeros(self.batch, size, *buf.shape[2:], device=self.device, dtype=self.dtype)
                new[:, : buf.shape[1]] = buf
                store[i] = new
        self._alloc = size

    # -- reading
    def keys(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values a chunk attends to: its own (k, v: B, n, H, D) and everything cached."""
        n = k.shape[1]
        lo, hi = self.slot - n, self.slot + self.valid
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
            # training replays keep the graph out of the shared buffer
            return (torch.cat([k, self.k[layer][:, self.slot:hi]], 1), torch.cat([v, self.v[layer][:, self.slot:hi]], 1))
        self.k[layer][:, lo: self.slot] = k
        self.v[layer][:, lo: self.slot] = v
        return self.k[layer][:, lo:hi], self.v[layer][:, lo:hi]

    # -- writing (context pass)
    def write(self, layer: int, k_pre: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store a clean chunk's keys (k_pre: before RoPE, k: after) and values, frame by frame."""
        t, n = self.tokens, k.shape[1] // self.tokens
        k_pre, k, v = (x.detach().to(self.dtype) for x in (k_pre, k, v))
        in_window, comp_used = self.in_window, self.comp_used
        for i in range(n):
            frame = self.frames + i
            sl = slice(i * t, (i + 1) * t)
            if self.window == 0:
                comp_used = self._compress(layer, frame, k_pre[:, sl], v[:, sl], comp_used)
                continue
            slot = frame % self.window if self.window < self.mem.capacity else frame
            if in_window == self.window:  # evict the oldest frame, which sits in this slot
                old = frame - self.window
                if self.mem.policy == "compressed":
                    comp_used = self._store_compressed(layer, old, self.pending_k[layer][:, slot],
                                                       self.pending_v[layer][:, slot], comp_used)
            else:
                in_window += 1
            if self.window == self.mem.capacity:
                self._grow(self.slot + (slot + 1) * t)
            a = self.window_start + slot * t
            self.k[layer][:, a: a + t] = k[:, sl]
            self.v[layer][:, a: a + t] = v[:, sl]
            if self.mem.policy == "compressed":
                self._stash(layer, slot, frame, k_pre[:, sl], v[:, sl])
        if layer == self.cfg.layers - 1:
            self._advance(n, in_window, comp_used)

    def _compressed_kv(self, frame: int, k_pre: torch.Tensor, v: torch.Tensor):
        f = self.mem.factor(frame)
        pos = frame_positions(self.cfg, frame, f)
        cos, sin = self.rope.angles(pos)
        kc = apply_rope(pool_frames(k_pre, self.cfg, f), cos.to(k_pre.device), sin.to(k_pre.device))
        return kc, pool_frames(v, self.cfg, f)

    def _stash(self, layer: int, slot: int, frame: int, k_pre: torch.Tensor, v: torch.Tensor) -> None:
        if self.pending_k[layer] is None:
            shape = (self.batch, self.window, self.tokens, self.cfg.heads, self.cfg.head_dim)
            self.pending_k[layer] = torch.zeros(shape, device=self.device, dtype=self.dtype)
            self.pending_v[layer] = torch.zeros(shape, device=self.device, dtype=self.dtype)
        kc, vc = self._compressed_kv(frame, k_pre, v)
        self.pending_k[layer][:, slot, : kc.shape[1]] = kc
        self.pending_v[layer][:, slot, : vc.shape[1]] = vc

    def _compress(self, layer: int, frame: int, k_pre: torch.Tensor, v: torch.Tensor, used: int) -> int:
        if self.mem.policy != "compressed":
            return used
        kc, vc = self._compressed_kv(frame, k_pre, v)
        return self._store_compressed(layer, frame, kc, vc, used)

    def _store_compressed(self, layer: int, frame: int, kc: torch.Tensor, vc: torch.Tensor, used: int) -> int:
        n = compressed_tokens(self.cfg, self.mem.factor(frame))
        a = self.comp_start + used
        self._grow(a + n)
        self.k[layer][:, a: a + n] = kc[:, :n]
        self.v[layer][:, a: a + n] = vc[:, :n]
        return used + n

    def _advance(self, n: int, in_window: int, comp_used: int) -> None:
        self.frames += n
        self.in_window, self.comp_used = in_window, comp_used

    # -- inspection
    def stats(self) -> dict:
        b = budget(self.cfg, self.mem, self.frames)
        return {
            "frames": self.frames,
            "window_tokens": b.window_tokens,
            "compressed_tokens": b.compressed_tokens,
            "total_tokens": b.total_tokens,
            "full_tokens": b.full_tokens,
            "bytes": b.bytes(self.cfg, torch.empty((), dtype=self.dtype).element_size()),
        }


# ---- the same rules as attention masks for the full-sequence forward ------------------------------------
def block_of(frames: int, chunk: int) -> torch.Tensor:
    """Block index of each latent frame: frame 0 (the image) is block 0, then `chunk` frames per block."""
    f = torch.arange(frames)
    return torch.where(f == 0, 0, 1 + (f - 1) // chunk)


def block_start(block: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.where(block == 0, 0, 1 + (block - 1) * chunk)


@dataclass(frozen=True)
class Visibility:
    """Frame-level attention rules: full[q, k] (full-resolution keys of frame k visible to frame q) and
    comp[q, k] (compressed keys of frame k visible to frame q)."""

    full: torch.Tensor
    comp: torch.Tensor


def bidirectional_visibility(frames: int) -> Visibility:
    return Visibility(torch.ones(frames, frames, dtype=torch.bool), torch.zeros(frames, frames, dtype=torch.bool))


def causal_visibility(frames: int, chunk: int, mem: MemoryConfig) -> Visibility:
    """What a chunk streamed with `KVCache` under `mem` sees: its own block, the window, compressed history."""
    blk = block_of(frames, chunk)
    start = block_start(blk, chunk)[:, None]  # first frame of each query's block
    k = torch.arange(frames)[None, :]
    same = blk[:, None] == blk[None, :]
    before = k < start
    in_window = before & (k >= start - window_frames(mem))
    full = same | in_window
    comp = before & ~in_window if mem.policy == "compressed" else torch.zeros_like(full)
    return Visibility(full, comp)


def hybrid_visibility(frames: int, chunk: int, noisy_blocks: int, mem: MemoryConfig) -> Visibility:
    """Hybrid forcing: the last `noisy_blocks` blocks are noisy and uncompressed, the blocks before are clean
    context. A noisy block sees the noisy blocks up to itself at full resolution and all the context compressed;
    context frames follow the streaming rules among themselves."""
    blk = block_of(frames, chunk)
    first_noisy = int(blk[-1]) - noisy_blocks + 1
    if first_noisy < 1:
        raise ValueError(f"{frames} latent frames hold {int(blk[-1]) + 1} blocks: too few for {noisy_blocks} noisy blocks and a context.")
    if mem.policy not in ("compressed", "full"):
        raise ValueError(f"hybrid forcing trains the compressed (or full) memory, not policy {mem.policy!r}.")
    ctx = blk < first_noisy
    base = causal_visibility(frames, chunk, mem)
    q_noisy = ~ctx[:, None]
    full = torch.where(q_noisy, ~ctx[None, :] & (blk[None, :] <= blk[:, None]), base.full)
    comp = torch.where(q_noisy, ctx[None, :].expand(frames, frames), base.comp)
    if mem.policy == "full":
        full, comp = full | comp, torch.zeros_like(comp)
    return Visibility(full, comp)
