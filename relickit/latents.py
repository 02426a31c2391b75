"""Clips encoded once by the tokenizer, kept as latents: what the teacher and the student train on.

Encoding a clip costs far more than a training step of the tiny world model, so each stage samples from a fixed
set of long clips encoded up front (balanced over actions, palindromes included, by `ClipDataset`). A stage
that trains on shorter clips takes prefixes; their actions and poses are recomputed from the prefix's own
poses by Algorithm 1, exactly as a clip of that length would have them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import checkpoint
from .controls import ControlsConfig, labels_from_poses, pose_vector, relative_to_first
from .train import batch_rows


@dataclass
class LatentClips:
    latents: torch.Tensor  # (N, C, F, h, w), normalised latents, stored as fp16
    poses: torch.Tensor  # (N, T, 12) per video frame, relative to each clip's first frame
    captions: list[str]
    controls: ControlsConfig = ControlsConfig()

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def starts_only(self) -> bool:
        """A set that keeps only each clip's first (image) latent: enough for rollouts and ODE sampling."""
        return self.latents.shape[2] == 1

    def starts(self) -> "LatentClips":
        """The same clips with only their image latent (small enough to carry between machines)."""
        return LatentClips(self.latents[:, :, :1].clone(), self.poses.half(), self.captions, self.controls)

    def targets(self, index: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and poses of the first `frames` video frames of clip `index`, as a clip of that length."""
        p = self.poses[index, :frames].double()
        rot, pos = p[:, :9].reshape(-1, 3, 3), p[:, 9:]
        actions, step = labels_from_poses(rot, pos, self.controls)
        r, q = relative_to_first(rot, pos, step.double())
        return actions, pose_vector(r, q).float()

    def batches(self, latent_frames: int, batch_size: int, seed: int, temporal_down: int = 4,
                device: torch.device | str | None = None) -> Callable[[int], dict[str, Any]]:
        """index -> a batch of clip prefixes of `latent_frames` at relickit.train.batch_rows."""
        frames = 1 + (latent_frames - 1) * temporal_down
        if frames > self.poses.shape[1] or not (self.starts_only or latent_frames <= self.latents.shape[2]):
            raise ValueError(f"clips hold {self.latents.shape[2]} latent frames; cannot train on {latent_frames}. Encode longer clips.")
        table = [self.targets(i, frames) for i in range(len(self))]  # labels once per stage, not per step
        # the stage's prefixes, moved to the device once: on an H200 a per-step host gather and copy of a 128-clip
        # batch (80 MB) took 96 ms beside the 384 x 3 teacher's 197 ms step (docs/runs/campaign.md, run 4)
        latents = self.latents[:, :, :latent_frames]  # (N, C, 1, h, w) if starts_only
        actions = torch.stack([a for a, _ in table])
        poses = torch.stack([p for _, p in table])
        if device is not None:
            latents, actions, poses = latents.to(device), actions.to(device), poses.to(device)

        def batch(index: int) -> dict[str, Any]:
            rows = torch.from_numpy(batch_rows(len(self), batch_size, seed, index))
            picked = rows.to(latents.device)
            return {"latents": latents[picked].float(), "actions": actions[picked], "poses": poses[picked],
                    "caption": [self.captions[int(r)] for r in rows]}

        return batch

    def save(self, path: str | Path) -> Path:
        return checkpoint.save(path, {"latents": self.latents, "poses": self.poses}, kind="latent_clips",
                               config=self.controls, extra={"captions": json.dumps(self.captions)})

    @classmethod
    def load(cls, path: str | Path) -> "LatentClips":
        tensors, controls, meta = checkpoint.load(path, "latent_clips", ControlsConfig)
        return cls(tensors["latents"], tensors["poses"], json.loads(meta["captions"]), controls)


@torch.no_grad()
def encode_clips(tokenizer, dataset, count: int, batch_size: int = 16, seed: int = 0, workers: int = 0,
                 progress: bool = True) -> LatentClips:
    """Encode `count` clips drawn from a ClipDataset with its action-balancing weights.

    `workers` processes read and decompress clips while the tokenizer encodes."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.multinomial(dataset.weights.float(), count, replacement=True, generator=gen).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, rows), batch_size=batch_size,
                                         num_workers=workers)
    device = tokenizer.device
    lat, poses, caps = [], [], []
    for batch in tqdm(loader, desc="encoding clips", disable=not progress):
        video = batch["frames"].to(device).transpose(1, 2)  # (B, 3, T, H, W)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):  # as the tokenizer trained
            lat.append(tokenizer.encode(video).half().cpu())
        poses.append(batch["poses"])
        caps.extend(batch["caption"])
    return LatentClips(torch.cat(lat), torch.cat(poses), caps, dataset.controls)
