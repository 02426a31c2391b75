"""RELIC's memory: a KV cache with a rolling full-resolution window and a spatially compressed history.

Latent frame i, once it leaves the window, keeps ceil(gh/f) x ceil(gw/f) tokens with f = schedule[i % 18]:
its keys (after QK-norm and the pose term, before RoPE) and values are averaged over f x f cells of the token
grid, and the pooled keys are rotated to the cells' centres. Pooling K/V rather than the latents keeps one
network pass per frame: the compressed copy is made from the same K/V the window holds.

Policies: `none` (a chunk sees only itself), `window` (plus the last w frames), `compressed` (RELIC: window plus
every older frame compressed), `full` (every frame at full resolution). RELIC's compressed memory grows with play;
`MemoryConfig.horizon` bounds it to the last H compressed frames (a ring), so latency stays flat over long play.
An unbounded memory (`compressed` without a horizon, or `full`) holds at most `MemoryConfig.capacity` latent
frames: writing past it raises `MemoryFull`, naming the fixes. A bounded one is a ring and streams without end.
Keys and values can be stored as FP8 (E4M3, a scale per token and head) to halve the cache's memory.

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


@lru_cache(maxsize=None)
def device_pool_matrix(grid: tuple[int, int], factor: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """pool_matrix, kept on `device` (no host-to-device copy per call)."""
    return pool_matrix(grid, factor).to(device, dtype)


def compressed_tokens(cfg: ModelConfig, factor: int) -> int:
    gh, gw = cfg.token_grid
    return math.ceil(gh / factor) * math.ceil(gw / factor)


def frame_positions(cfg: ModelConfig, frame: int, factor: int, device=torch.device("cpu")) -> torch.Tensor:
    """Token positions (n, 3) of latent frame `frame` at per-side compression `factor` (1 = full)."""
    full = grid_positions(torch.full((1,), frame, device=device), cfg.token_grid)
    return full if factor == 1 else device_pool_matrix(cfg.token_grid, factor, full.device, full.dtype) @ full


def pool_frames(x: torch.Tensor, cfg: ModelConfig, factor: int) -> torch.Tensor:
    """Pool each frame's tokens x (..., tokens_per_frame, H, D) over factor x factor cells -> (..., n_out, H, D)."""
    m = device_pool_matrix(cfg.token_grid, factor, x.device, torch.float32)
    return torch.einsum("ot,...thd->...ohd", m, x.float()).to(x.dtype)


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

    def bytes(self, cfg: ModelConfig, mem: MemoryConfig, element_size: int = 2) -> int:
        """K and V, every layer, stored with `element_size` bytes per number (fp8: 1 plus a float32 scale per
        token and head)."""
        per_token = cfg.dim + 4 * cfg.heads if mem.kv_format == "fp8" else cfg.dim * element_size
        return 2 * cfg.layers * self.total_tokens * per_token


def budget(cfg: ModelConfig, mem: MemoryConfig, frames: int) -> Budget:
    w = min(window_frames(mem), frames)
    comp: dict[int, int] = {}
    if mem.policy == "compressed":
        left = frames - w
        for i in range(0 if mem.horizon is None else max(0, left - mem.horizon), left):
            f = mem.factor(i)
            comp[f] = comp.get(f, 0) + compressed_tokens(cfg, f)
    return Budget(frames, w * cfg.tokens_per_frame, dict(sorted(comp.items())), frames * cfg.tokens_per_frame)


# ---- the streaming cache ---------------------------------------------------------------------------------
FP8 = torch.float8_e4m3fn


def fp8_pack(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., D) -> E4M3 values and a float32 scale per vector (..., 1): x ~= values * scale."""
    scale = x.float().abs().amax(-1, keepdim=True).clamp_min(1e-12) / torch.finfo(FP8).max
    return (x.float() / scale).to(FP8), scale


def fp8_unpack(values: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return values.to(dtype) * scale.to(dtype)


class CompressedLayout:
    """Where each compressed frame sits in the compressed part of the cache.

    Frames leave the window in order 0, 1, 2, ... and frame c keeps compressed_tokens(factor(c)) tokens, so one
    cycle of the schedule always takes the same number of tokens. Frame c sits at a fixed offset: cycles follow
    each other, and with a horizon H (a multiple of the cycle) frame c reuses the slot of frame c - H, which has
    the same factor and size: the memory becomes a ring of the last H compressed frames.
    """

    def __init__(self, cfg: ModelConfig, mem: MemoryConfig):
        self.mem = mem
        self.sizes = [compressed_tokens(cfg, f) for f in mem.schedule]
        self.prefix = [sum(self.sizes[:i]) for i in range(len(self.sizes) + 1)]

    def offset(self, frame: int) -> int:
        c = frame if self.mem.horizon is None else frame % self.mem.horizon
        n = len(self.sizes)
        return (c // n) * self.prefix[n] + self.prefix[c % n]

    def size(self, frame: int) -> int:
        return self.sizes[frame % len(self.sizes)]

    def kept(self, compressed: int) -> range:
        """The frames held after `compressed` frames have left the window."""
        h = self.mem.horizon
        return range(0 if h is None else max(0, compressed - h), compressed)

    def used(self, compressed: int) -> int:
        """Tokens held after `compressed` frames have left the window."""
        h = self.mem.horizon
        return self.offset(compressed) if h is None or compressed < h else self.offset(h - 1) + self.size(h - 1)

    def storage_order(self, compressed: int) -> list[int]:
        """The held frames in the order they sit in the cache."""
        return sorted(self.kept(compressed), key=self.offset)


def is_bounded(mem: MemoryConfig) -> bool:
    """Whether a memory is a ring of fixed size (none, window, or compressed with a horizon): it never fills."""
    return mem.policy in ("none", "window") or (mem.policy == "compressed" and mem.horizon is not None)


class MemoryFull(RuntimeError):
    """An unbounded memory reached MemoryConfig.capacity; the cache is unchanged and still readable."""


class KVCache:
    """Per-layer key/value buffers laid out as [chunk slot | window ring | compressed history].

    The chunk being denoised is written right-aligned into the chunk slot, so the keys a step attends to are
    always one contiguous slice: no mask, no gather, no host sync. Bookkeeping is plain Python integers.
    A bounded memory (policies none/window, or compressed with a horizon) allocates its whole buffer up front
    and never moves: once full, every step attends to the same slice (static shapes, CUDA-graph friendly).
    With MemoryConfig.kv_format="fp8" the cache stores E4M3 values with a float32 scale per token and head.
    """

    def __init__(self, cfg: ModelConfig, mem: MemoryConfig, batch: int, device=None, dtype=torch.float32):
        self.cfg, self.mem, self.batch, self.dtype = cfg, mem, batch, dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.rope = Rope3D(cfg)
        self.tokens = cfg.tokens_per_frame
        self.window = window_frames(mem)
        self.slot = cfg.chunk * self.tokens
        self.layout = CompressedLayout(cfg, mem) if mem.policy == "compressed" else None
        self.frames = 0  # latent frames written so far
        self.position = torch.zeros((), dtype=torch.long, device=self.device)  # the same, on the device
        self.in_window = 0
        self.fp8 = mem.kv_format == "fp8"
        self._alloc = 0
        shape = (batch, 0, cfg.heads, cfg.head_dim)
        store = FP8 if self.fp8 else dtype
        self.k = [torch.zeros(shape, device=self.device, dtype=store) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, device=self.device, dtype=store) for _ in range(cfg.layers)]
        self.k_scale = [torch.zeros(*shape[:3], 1, device=self.device) for _ in range(cfg.layers)] if self.fp8 else None
        self.v_scale = [torch.zeros(*shape[:3], 1, device=self.device) for _ in range(cfg.layers)] if self.fp8 else None
        self.pending_k: list[torch.Tensor | None] = [None] * cfg.layers  # compressed copies of window frames
        self.pending_v: list[torch.Tensor | None] = [None] * cfg.layers
        self._angles: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # RoPE of compressed frames being written
        self._grow(self.bound if self.bounded else self.slot + min(self.window, 2 * cfg.chunk + 1) * self.tokens)

    # -- layout
    @property
    def bounded(self) -> bool:
        return is_bounded(self.mem)

    @property
    def bound(self) -> int:
        """Buffer size of a bounded memory: chunk slot, window, and the compressed ring."""
        ring = self.layout.used(self.mem.horizon) if self.layout is not None else 0
        return self.slot + self.window * self.tokens + ring

    @property
    def window_start(self) -> int:
        return self.slot

    @property
    def comp_start(self) -> int:
        return self.slot + self.window * self.tokens if self.window < self.mem.capacity else self._alloc

    @property
    def compressed(self) -> int:
        """Latent frames that have left the window (kept compressed, or dropped)."""
        return self.frames - self.in_window

    @property
    def valid(self) -> int:
        """Cached tokens (window + compressed)."""
        comp = self.layout.used(self.compressed) if self.layout is not None else 0
        return self.in_window * self.tokens + comp

    def _grow(self, size: int) -> None:
        if size <= self._alloc:
            return
        if self.bounded and self._alloc:
            raise AssertionError("a bounded KV cache never grows")
        size = max(size, 2 * self._alloc)
        stores = [self.k, self.v] + ([self.k_scale, self.v_scale] if self.fp8 else [])
        for store in stores:
            for i, buf in enumerate(store):
                new = torch.zeros(self.batch, size, *buf.shape[2:], device=self.device, dtype=buf.dtype)
                new[:, : buf.shape[1]] = buf
                store[i] = new
        self._alloc = size

    def _put(self, layer: int, at: int, k: torch.Tensor, v: torch.Tensor) -> None:
        n = k.shape[1]
        if self.fp8:
            (self.k[layer][:, at: at + n], self.k_scale[layer][:, at: at + n]) = fp8_pack(k)
            (self.v[layer][:, at: at + n], self.v_scale[layer][:, at: at + n]) = fp8_pack(v)
        else:
            self.k[layer][:, at: at + n] = k
            self.v[layer][:, at: at + n] = v

    def check_room(self, frames: int) -> None:
        """Refuse a chunk of `frames` latent frames that an unbounded memory has no room for (a ring always has)."""
        if self.bounded or self.frames + frames <= self.mem.capacity:
            return
        cfg = self.cfg
        minutes = cfg.video_frames(self.mem.capacity) / cfg.fps / 60
        raise MemoryFull(
            f"the KV cache is full: {self.frames} latent frames ({minutes:.1f} min at {cfg.fps} FPS) of an unbounded "
            f"{self.mem.policy!r} memory, capacity {self.mem.capacity}. Call reset() to start again, bound the memory "
            "with MemoryConfig(horizon=H) (a ring of the last H compressed frames that plays without end, as play's "
            "default relickit.play.PLAY_MEMORY does), or raise MemoryConfig(capacity=...) (steps keep slowing down)."
        )

    # -- reading
    def cached(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached keys (after RoPE) and values of `layer` (B, valid, H, D): window ring, then compressed."""
        lo, hi = self.slot, self.slot + self.valid
        if self.fp8:
            return (fp8_unpack(self.k[layer][:, lo:hi], self.k_scale[layer][:, lo:hi], self.dtype),
                    fp8_unpack(self.v[layer][:, lo:hi], self.v_scale[layer][:, lo:hi], self.dtype))
        return self.k[layer][:, lo:hi], self.v[layer][:, lo:hi]

    def keys(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values a chunk attends to: its own (k, v: B, n, H, D) and everything cached."""
        n = k.shape[1]
        if self.fp8 or (torch.is_grad_enabled() and (k.requires_grad or v.requires_grad)):
            # fp8 storage, or a training replay that must keep the graph out of the shared buffer
            ck, cv = self.cached(layer)
            return torch.cat([k, ck.to(k.dtype)], 1), torch.cat([v, cv.to(v.dtype)], 1)
        lo, hi = self.slot - n, self.slot + self.valid
        self.k[layer][:, lo: self.slot] = k
        self.v[layer][:, lo: self.slot] = v
        return self.k[layer][:, lo:hi], self.v[layer][:, lo:hi]

    # -- writing (context pass)
    def write(self, layer: int, k_pre: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store a clean chunk's keys (k_pre: before RoPE, k: after) and values, frame by frame."""
        t, n = self.tokens, k.shape[1] // self.tokens
        k_pre, k, v = (x.detach().to(self.dtype) for x in (k_pre, k, v))
        in_window = self.in_window
        for i in range(n):
            frame = self.frames + i
            sl = slice(i * t, (i + 1) * t)
            if self.window == 0:
                if self.layout is not None:
                    self._store_compressed(layer, frame, *self._compressed_kv(frame, k_pre[:, sl], v[:, sl]))
                continue
            slot = frame % self.window if self.window < self.mem.capacity else frame
            if in_window == self.window:  # evict the oldest frame, which sits in this slot
                if self.layout is not None:
                    self._store_compressed(layer, frame - self.window, self.pending_k[layer][:, slot],
                                           self.pending_v[layer][:, slot])
            else:
                in_window += 1
            if self.window == self.mem.capacity:
                self._grow(self.slot + (slot + 1) * t)
            self._put(layer, self.window_start + slot * t, k[:, sl], v[:, sl])
            if self.layout is not None:
                self._stash(layer, slot, frame, k_pre[:, sl], v[:, sl])
        if layer == self.cfg.layers - 1:
            self.frames += n
            self.position.fill_(self.frames)  # a kernel argument, not a copy: no host sync
            self.in_window = in_window
            self._angles.clear()

    def _compressed_kv(self, frame: int, k_pre: torch.Tensor, v: torch.Tensor):
        """Pool one frame's pre-RoPE keys and values, and rotate the pooled keys to the cells' centres."""
        f = self.mem.factor(frame)
        if frame not in self._angles:
            self._angles[frame] = self.rope.angles(frame_positions(self.cfg, frame, f, self.device))
        cos, sin = self._angles[frame]
        return apply_rope(pool_frames(k_pre, self.cfg, f), cos, sin), pool_frames(v, self.cfg, f)

    def _stash(self, layer: int, slot: int, frame: int, k_pre: torch.Tensor, v: torch.Tensor) -> None:
        if self.pending_k[layer] is None:
            shape = (self.batch, self.window, self.tokens, self.cfg.heads, self.cfg.head_dim)
            self.pending_k[layer] = torch.zeros(shape, device=self.device, dtype=self.dtype)
            self.pending_v[layer] = torch.zeros(shape, device=self.device, dtype=self.dtype)
        kc, vc = self._compressed_kv(frame, k_pre, v)
        self.pending_k[layer][:, slot, : kc.shape[1]] = kc
        self.pending_v[layer][:, slot, : vc.shape[1]] = vc

    def _store_compressed(self, layer: int, frame: int, kc: torch.Tensor, vc: torch.Tensor) -> None:
        n, a = self.layout.size(frame), self.comp_start + self.layout.offset(frame)
        self._grow(a + n)
        self._put(layer, a, kc[:, :n], vc[:, :n])

    # -- inspection
    def stats(self) -> dict:
        b = budget(self.cfg, self.mem, self.frames)
        return {
            "frames": self.frames,
            "window_tokens": b.window_tokens,
            "compressed_tokens": b.compressed_tokens,
            "total_tokens": b.total_tokens,
            "full_tokens": b.full_tokens,
            "bytes": b.bytes(self.cfg, self.mem, torch.empty((), dtype=self.dtype).element_size()),
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
    if mem.horizon is not None:  # only the last `horizon` frames that left the window
        comp &= k >= start - window_frames(mem) - mem.horizon
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
    kept = ctx if mem.horizon is None else ctx & (torch.arange(frames) >= int(ctx.sum()) - mem.horizon)
    comp = torch.where(q_noisy, kept[None, :].expand(frames, frames), base.comp)
    if mem.policy == "full":
        full, comp = full | comp, torch.zeros_like(comp)
    return Visibility(full, comp)
