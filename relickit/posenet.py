"""A small camera-pose estimator, relickit's stand-in for ViPE: frame pair -> relative camera motion.

    net, result = train_posenet("data/doom_train")              # Doom engine frames with exact poses
    rotations, positions = recover_trajectory(net, frames)        # (T, 3, 3) world-to-camera, (T, 3)
    floor = estimator_floor(net, load_episodes("data/doom_eval"))  # its own RPE on real held-out frames

The network sees two consecutive frames and predicts the motion between them in the first camera's frame, the
same quantities Algorithm 1 labels (relickit.controls): the egocentric displacement R_t (P_{t+1} - P_t) in world
units / `translation_scale`, and the camera's turn E_t = (R_{t+1} R_t^T)^T as yaw (pan), pitch (tilt) and roll in
units of `rotation_unit_deg`. `recover_trajectory` chains the predictions exactly as `controls.integrate` chains
actions. It is trained only on TRAIN maps (`check_split`); its error on EVAL-map engine frames against the engine's
true poses is the floor of the action-accuracy metric: no generated video can score better through it.
Augmentations: every pair is also used reversed (t+1 -> t) and mirrored left-right (x, yaw and roll negate).

    python -m relickit.posenet --data data/doom_train --eval-data data/doom_eval --out relickit/assets/posenet.safetensors
    python -m relickit.posenet --render-dir data/posenet_v3 --episodes 240 --frames-per-episode 250 --seed 20261206 \
        --eval-data data/eval_tokenizer_f2 --warm-start runs/posenet2/posenet.safetensors --max-frames 60000 \
        --steps 6000 --lr 3e-4 --cooldown 0.3 --out runs/posenet3/posenet.safetensors   # the shipped one's last run

The shipped estimator (`relickit/assets/posenet.safetensors`, fp16) reads 0.39 deg/frame and 0.24 step lengths of
error on the twelve held-out maps' clips (zero-motion guess: 2.39 / 0.47); `docs/runs/campaign.md`, 2026-12-05.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .controls import euler_from_local, local_rotation
from .metrics import rpe
from .train import TrainConfig, TrainResult, random_batches, train

CHECKPOINT_KIND = "posenet"
MOTION_DIM = 6  # dx, dy, dz (camera frame: right, down, forward), yaw, pitch, roll
DEFAULT_PATH = Path(__file__).parent / "assets" / "posenet.safetensors"


@dataclass(frozen=True)
class PoseNetConfig:
    height: int = 96
    width: int = 128
    channels: tuple[int, ...] = (32, 64, 96, 128)  # encoder width (1/4 resolution), then one stride-2 conv each
    max_dx: int = 4  # cost-volume shifts at 1/4 resolution (a 5-degree pan moves Doom's view ~1.75 cells)
    max_dy: int = 2
    hidden: int = 256
    translation_scale: float = 20.0  # world units per output unit (Doom walks ~8, runs up to ~37 units per frame)
    rotation_unit_deg: float = 5.0  # degrees per output unit (a full-speed Doom pan is 5 degrees per frame)

    def __post_init__(self) -> None:
        down = 4 * 2 ** (len(self.channels) - 1)
        if self.height % down or self.width % down:
            raise ValueError(f"PoseNet input {self.height}x{self.width} must be divisible by 4 * 2**(len(channels) - 1) = {down}.")


@dataclass(frozen=True)
class PoseNetTrainConfig:
    net: PoseNetConfig = field(default_factory=PoseNetConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, lr=1e-3, batch_size=32, warmup=100,
                                                                   log_every=50, ckpt_every=500,
                                                                   out_dir="runs/posenet"))
    jump_units: float = 128.0  # pairs moving further than this (teleports) are left out
    max_frames: int = 20_000  # frames held in memory (uint8), taken from the first episodes


# ---- targets ---------------------------------------------------------------------------------------------------
def relative_motion(rotations, positions, cfg: PoseNetConfig = PoseNetConfig()) -> torch.Tensor:
    """Poses (T, 3, 3), (T, 3) -> the network's targets (T-1, 6) for each consecutive pair."""
    r = torch.as_tensor(np.asarray(rotations), dtype=torch.float64)
    p = torch.as_tensor(np.asarray(positions), dtype=torch.float64)
    d = (r[:-1] @ (p[1:] - p[:-1]).unsqueeze(-1)).squeeze(-1) / cfg.translation_scale
    e = (r[1:] @ r[:-1].transpose(-1, -2)).transpose(-1, -2)
    yaw, pitch, roll = euler_from_local(e)
    rot = torch.stack([yaw, pitch, roll], -1) / math.radians(cfg.rotation_unit_deg)
    return torch.cat([d, rot], -1).float()


def chain(motions: torch.Tensor, cfg: PoseNetConfig = PoseNetConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative motions (T-1, 6) in network units -> poses (T, 3, 3), (T, 3) from the identity at the origin."""
    m = torch.as_tensor(motions, dtype=torch.float64)
    d = m[:, :3] * cfg.translation_scale
    unit = math.radians(cfg.rotation_unit_deg)
    e = local_rotation(m[:, 3] * unit, m[:, 4] * unit, m[:, 5] * unit)
    r, p = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    rs, ps = [r], [p]
    for t in range(len(m)):
        p = p + r.T @ d[t]
        r = e[t].T @ r
        rs.append(r)
        ps.append(p)
    return torch.stack(rs), torch.stack(ps)


# ---- the network -----------------------------------------------------------------------------------------------
def correlation(a: torch.Tensor, b: torch.Tensor, max_dx: int, max_dy: int) -> torch.Tensor:
    """Cost volume: channel-mean product of a (B, C, h, w) with b shifted by every (dy, dx) in range -> (B, n, h, w).

    Each channel is standardised over the image first (instance norm), so the volume responds to texture and edges,
    not to the overall colour."""
    a, b = F.instance_norm(a), F.instance_norm(b)
    bp = F.pad(b, (max_dx, max_dx, max_dy, max_dy))
    h, w = a.shape[-2:]
    return torch.stack([(a * bp[..., dy:dy + h, dx:dx + w]).mean(1)
                        for dy in range(2 * max_dy + 1) for dx in range(2 * max_dx + 1)], 1)


class PoseNet(nn.Module):
    """Frame pair -> 6-D relative motion.

    Both frames go through a shared conv encoder (at 1/4 resolution after a 2x input pooling); cost volumes
    (correlation over small shifts, as FlowNet's) of the learned features and of the pixels themselves expose the
    image motion; a conv trunk and an MLP turn cost volumes + first-frame features into the motion.
    """

    def __init__(self, cfg: PoseNetConfig = PoseNetConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.encoder = nn.Sequential(nn.Conv2d(3, c[0], 3, stride=2, padding=1), nn.SiLU(),
                                     nn.Conv2d(c[0], c[0], 3, padding=1), nn.SiLU())
        n_corr = (2 * cfg.max_dx + 1) * (2 * cfg.max_dy + 1)
        layers: list[nn.Module] = []
        c_in = 2 * n_corr + c[0]
        for ch in c[1:]:
            layers += [nn.Conv2d(c_in, ch, 3, stride=2, padding=1), nn.GroupNorm(8 if ch % 8 == 0 else 1, ch), nn.SiLU()]
            c_in = ch
        self.trunk = nn.Sequential(*layers)
        down = 4 * 2 ** (len(c) - 1)
        flat = c_in * (cfg.height // down) * (cfg.width // down)
        # the head also reads the cost volume pooled over the image: a direct view of the global shift (pan, tilt)
        self.head = nn.Sequential(nn.Linear(flat + 2 * n_corr, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, MOTION_DIM))
        self.skip = nn.Linear(2 * n_corr, MOTION_DIM)  # linear read-out of the pooled cost volume: learns pans fast

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """pairs (B, 2, H, W, 3) uint8 -> motions (B, 6) in network units."""
        if pairs.ndim != 5 or pairs.shape[1] != 2 or pairs.shape[-1] != 3:
            raise ValueError(f"PoseNet takes frame pairs (B, 2, H, W, 3), got {tuple(pairs.shape)}.")
        if tuple(pairs.shape[2:4]) != (self.cfg.height, self.cfg.width):
            raise ValueError(f"PoseNet was built for {self.cfg.height}x{self.cfg.width} frames, got {tuple(pairs.shape[2:4])}.")
        b = pairs.shape[0]
        x = pairs.float().permute(0, 1, 4, 2, 3).flatten(0, 1) / 127.5 - 1.0  # (2B, 3, H, W)
        x2 = F.avg_pool2d(x, 2)
        f = self.encoder(x2).unflatten(0, (b, 2))
        raw = F.avg_pool2d(x2, 2).unflatten(0, (b, 2))  # the pixels themselves at 1/4 resolution
        corr = torch.cat([correlation(f[:, 0], f[:, 1], self.cfg.max_dx, self.cfg.max_dy),
                          correlation(raw[:, 0], raw[:, 1], self.cfg.max_dx, self.cfg.max_dy)], 1)
        trunk = self.trunk(torch.cat([corr, f[:, 0]], 1)).flatten(1)
        pooled = corr.mean((2, 3))
        return self.head(torch.cat([trunk, pooled], 1)) + self.skip(pooled)

    def save(self, path: str | os.PathLike, extra: dict[str, str] | None = None) -> Path:
        return checkpoint.save(path, self.state_dict(), kind=CHECKPOINT_KIND, config=self.cfg, extra=extra)

    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_PATH) -> "PoseNet":
        tensors, cfg, _ = checkpoint.load(path, CHECKPOINT_KIND, PoseNetConfig)
        net = cls(cfg)
        checkpoint.load_into(net, tensors, path)
        return net.eval()


@torch.no_grad()
def predict_motion(net: PoseNet, frames, batch: int = 64) -> torch.Tensor:
    """Video (T, H, W, 3) uint8 -> relative motions (T-1, 6) in network units (frames of another size are
    resampled to the estimator's resolution first)."""
    v = torch.as_tensor(np.asarray(frames))
    if v.dtype != torch.uint8 or v.ndim != 4:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {v.dtype} {tuple(v.shape)}.")
    size = (net.cfg.height, net.cfg.width)
    if tuple(v.shape[1:3]) != size:  # other presets' frames: resample to the estimator's resolution
        x = F.interpolate(v.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        v = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1)
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    n = len(v) - 1
    out = [net(torch.stack([v[s:min(s + batch, n)], v[s + 1:min(s + batch, n) + 1]], 1).to(dev)).cpu()
           for s in range(0, n, batch)]
    net.train(was)
    return torch.cat(out).double() if out else torch.zeros(0, MOTION_DIM, dtype=torch.float64)


def recover_trajectory(net: PoseNet, frames) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera path of a video (T, H, W, 3) uint8: rotations (T, 3, 3) world-to-camera and positions (T, 3)
    in world units, relative to the first frame, by chaining the predicted relative motions."""
    return chain(predict_motion(net, frames), net.cfg)


# ---- data ------------------------------------------------------------------------------------------------------
class PairDataset(torch.utils.data.Dataset):
    """Consecutive frame pairs of engine episodes with their exact relative motion.

    `episodes` are relickit.dataset.Episode objects (or anything with .frames(), .rotations, .positions, .map,
    .wad). Index i covers pair i // 4 with augmentation i % 4: (forward | reversed) x (as is | mirrored).
    Item: {"pair": (2, H, W, 3) uint8, "target": (6,)}.
    """

    def __init__(self, episodes: Sequence[Any], cfg: PoseNetConfig = PoseNetConfig(), jump_units: float = 128.0,
                 max_frames: int | None = None, split: str | None = "train"):
        from .doom import check_split

        frames, fwd, bwd, index = [], [], [], []
        offset = 0
        for ep in episodes:
            if split is not None:
                check_split(ep.wad, ep.map, split)
            n = len(ep)
            if max_frames is not None and offset + n > max_frames:
                n = max_frames - offset
            if n < 2:
                break
            f = ep.frames(0, n)
            if f.shape[1:3] != (cfg.height, cfg.width):
                raise ValueError(f"episode frames are {f.shape[1]}x{f.shape[2]}, the PoseNet config wants {cfg.height}x{cfg.width}.")
            r, p = np.asarray(ep.rotations[:n]), np.asarray(ep.positions[:n])
            ok = np.linalg.norm(np.diff(p, axis=0), axis=1) <= jump_units
            frames.append(torch.from_numpy(np.ascontiguousarray(f)))
            fwd.append(relative_motion(r, p, cfg))
            bwd.append(relative_motion(r[::-1].copy(), p[::-1].copy(), cfg).flip(0))  # bwd[t]: t+1 -> t
            index.append(torch.from_numpy(np.flatnonzero(ok)) + offset)
            offset += n
        if not frames:
            raise ValueError("no frame pairs: pass episodes with at least 2 frames.")
        self.frames = torch.cat(frames)
        # one row per frame (a padding row closes each episode) so the pair starting at frame t reads row t
        self.fwd = torch.cat([torch.cat([m, torch.zeros(1, MOTION_DIM)]) for m in fwd])
        self.bwd = torch.cat([torch.cat([m, torch.zeros(1, MOTION_DIM)]) for m in bwd])
        self.pairs = torch.cat(index)  # first frame of each usable pair (global index)

    def __len__(self) -> int:
        return 4 * len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t = int(self.pairs[i // 4])
        reverse, mirror = bool(i % 2), bool((i // 2) % 2)
        a, b = self.frames[t], self.frames[t + 1]
        pair, target = (torch.stack([b, a]), self.bwd[t].clone()) if reverse else (torch.stack([a, b]), self.fwd[t].clone())
        if mirror:
            pair = pair.flip(2)
            target[[0, 3, 5]] *= -1  # x, yaw, roll
        return {"pair": pair, "target": target}


def _episodes(data) -> list[Any]:
    if isinstance(data, (str, os.PathLike)):
        from .dataset import load_episodes

        return load_episodes(data)
    return list(data)


def train_posenet(data, cfg: PoseNetTrainConfig = PoseNetTrainConfig(), net: PoseNet | None = None,
                  resume: bool = False, out: str | os.PathLike | None = None) -> tuple[PoseNet, TrainResult]:
    """Train on TRAIN-map engine episodes (a relickit.dataset directory or a list of Episodes) with
    relickit.train.train; optionally save the weights to `out`. Returns the trained net (eval mode) and the run."""
    episodes = _episodes(data)
    net = net or PoseNet(cfg.net)
    ds = PairDataset(episodes, net.cfg, cfg.jump_units, cfg.max_frames, split="train")

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        pred = model(batch["pair"])
        err = (pred - batch["target"]) ** 2
        return err.mean(), {"trans_mse": err[:, :3].mean(), "rot_mse": err[:, 3:].mean()}

    result = train(cfg.train, net, loss_fn, random_batches(ds, cfg.train.batch_size, cfg.train.seed), resume=resume)
    net = result.model.eval()
    if out is not None:
        last = result.log[-1] if result.log else {}
        net.save(out, extra={"train_steps": str(result.step), "train_pairs": str(len(ds.pairs)),
                             "final_loss": str(last.get("loss", "nan"))})
    return net, result


# ---- the floor ------------------------------------------------------------------------------------------------
def estimator_floor(net: PoseNet, episodes: Sequence[Any], clip: int = 97, stride: int | None = None,
                    split: str | None = "eval", jump_units: float = 128.0) -> dict[str, Any]:
    """The estimator's own RPE on real engine clips (default: EVAL maps) against the engine's true poses, after
    Sim(3) alignment, averaged over clips of `clip` frames; with the zero-motion baseline ("chance") beside it.

    Translation errors are in world units AND in units of each clip's mean step length (comparable with the
    action suite, whose reference is in step units)."""
    from .doom import check_split

    stride = stride or clip
    rows = []
    for ep in _episodes(episodes):
        if split is not None:
            check_split(ep.wad, ep.map, split)
        for s in range(0, len(ep) - clip + 1, stride):
            r, p = np.asarray(ep.rotations[s:s + clip]), np.asarray(ep.positions[s:s + clip])
            steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
            if (steps > jump_units).any():
                continue
            step = steps[steps > 1e-9].mean() if (steps > 1e-9).any() else 1.0
            er, ep_ = recover_trajectory(net, ep.frames(s, s + clip))
            e = rpe(er, ep_, r, p)
            z = rpe(np.broadcast_to(np.eye(3), r.shape), np.zeros_like(p), r, p)
            rows.append({"trans": e["trans"], "rot": e["rot"], "trans_step": e["trans"] / step,
                         "zero_trans": z["trans"], "zero_rot": z["rot"], "zero_trans_step": z["trans"] / step})
    if not rows:
        raise ValueError(f"no clip of {clip} frames in the given episodes; pass longer episodes or a shorter clip.")
    keys = rows[0].keys()
    return {"clips": len(rows), "clip_frames": clip, **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


# ---- CLI -------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train relickit's pose estimator on Doom engine frames.")
    ap.add_argument("--data", help="train-split relickit dataset dir; rendered into --render-dir when missing")
    ap.add_argument("--eval-data", help="eval-split dataset dir for the floor; rendered when missing")
    ap.add_argument("--render-dir", default="data/posenet", help="where missing datasets are rendered")
    ap.add_argument("--episodes", type=int, default=40, help="episodes to render per missing dataset")
    ap.add_argument("--frames-per-episode", type=int, default=200, help="frames of each rendered episode")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rendered episodes")
    ap.add_argument("--max-frames", type=int, default=PoseNetTrainConfig.max_frames, help="frames held in memory")
    ap.add_argument("--warm-start", help="an estimator to continue (same config), e.g. the shipped one")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--cooldown", type=float, default=0.0, help="last fraction of the steps: lr decays to 0")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--run-dir", default="runs/posenet")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", default=str(DEFAULT_PATH))
    args = ap.parse_args(argv)
    from .dataset import generate
    from .doom import EVAL_MAPS, TRAIN_MAPS

    if args.threads:
        torch.set_num_threads(args.threads)
    render = dict(frames_per_episode=args.frames_per_episode, seed=args.seed)
    data = args.data or str(generate(Path(args.render_dir) / "train", [m for _, m in TRAIN_MAPS], args.episodes,
                                     split="train", **render))
    cfg = PoseNetTrainConfig(max_frames=args.max_frames, train=TrainConfig(
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, warmup=100, cooldown=args.cooldown, log_every=50,
        ckpt_every=500, out_dir=args.run_dir))
    net = PoseNet.load(args.warm_start).train() if args.warm_start else None
    net, result = train_posenet(data, cfg, net=net, resume=args.resume, out=args.out)
    eval_data = args.eval_data or str(generate(Path(args.render_dir) / "eval", [m for _, m in EVAL_MAPS],
                                               max(4, args.episodes // 4), split="eval", **render))
    floor = estimator_floor(net, eval_data)
    print(json.dumps({"saved": args.out, "steps": result.step, "final": result.log[-1] if result.log else None,
                      "floor_eval_maps": floor}, indent=1))


if __name__ == "__main__":
    main()
