"""Clips encoded once by the tokenizer, kept as latents: what the teacher and the student train on.

Encoding a clip costs far more than a training step of the tiny world model, so each stage samples from a fixed
set of long clips encoded up front (balanced over actions, palindromes included, by `ClipDataset`). A stage
that trains on shorter clips takes windows of them: every window when each latent frame's video frame was also
encoded alone as an image (`images`, the window's clean first frame, as at play), else the prefix. A window's
actions and poses are recomputed from its own poses by Algorithm 1, exactly as a clip of that length would have them.
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
    # (N, C, F, h, w) or None: latent k of clip n encoded as an image, alone: the clean first frame of a window that
    # starts at latent frame k (video frame temporal_down * k), so a stage draws every window, not only the prefix
    images: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def starts_only(self) -> bool:
        """A set that keeps only each clip's first (image) latent: enough for rollouts and ODE sampling."""
        return self.latents.shape[2] == 1

    def starts(self) -> "LatentClips":
        """The same clips with only their image latent (small enough to carry between machines)."""
        return LatentClips(self.latents[:, :, :1].clone(), self.poses.half(), self.captions, self.controls)

    def window_starts(self, latent_frames: int) -> int:
        """How many windows of `latent_frames` each clip offers: all of them with `images`, else the prefix."""
        return 1 if self.images is None else self.latents.shape[2] - latent_frames + 1

    def targets(self, index: int, frames: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and poses of video frames [start, start + frames) of clip `index`, as a clip of that length."""
        actions, poses = self.window_targets(frames, start, self.poses[index: index + 1])
        return actions[0], poses[0]

    def window_targets(self, frames: int, start: int = 0, poses: torch.Tensor | None = None):
        """`targets` of every clip at once: (N, frames, 13), (N, frames, 12)."""
        p = (self.poses if poses is None else poses)[:, start: start + frames].double()
        rot, pos = p[..., :9].unflatten(-1, (3, 3)), p[..., 9:]
        actions, step = labels_from_poses(rot, pos, self.controls)
        r, q = relative_to_first(rot, pos, step.double())
        return actions, pose_vector(r, q).float()

    def batches(self, latent_frames: int, batch_size: int, seed: int, temporal_down: int = 4,
                device: torch.device | str | None = None) -> Callable[[int], dict[str, Any]]:
        """index -> a batch of `latent_frames` windows at relickit.train.batch_rows over (clip, window start): each
        clip's prefix only, or with `images` every window, its first frame the image latent of its first video
        frame (as at play) and the rest the clip's own latents."""
        frames = 1 + (latent_frames - 1) * temporal_down
        if frames > self.poses.shape[1] or not (self.starts_only or latent_frames <= self.latents.shape[2]):
            raise ValueError(f"clips hold {self.latents.shape[2]} latent frames; cannot train on {latent_frames}. Encode longer clips.")
        windows = self.window_starts(latent_frames)
        # labels once per stage, not per step: (N * windows, frames, .), window-major within a clip
        table = [self.window_targets(frames, k * temporal_down) for k in range(windows)]
        actions = torch.stack([a for a, _ in table], 1).flatten(0, 1)
        poses = torch.stack([p for _, p in table], 1).flatten(0, 1)
        # the stage's latents, moved to the device once: on an H200 a per-step host gather and copy of a 128-clip
        # batch (80 MB) took 96 ms beside the 384 x 3 teacher's 197 ms step (docs/runs/campaign.md, run 4)
        latents = self.latents if windows > 1 else self.latents[:, :, :latent_frames]  # (N, C, 1, h, w) if starts_only
        images = self.images[:, :, :windows] if windows > 1 else None
        if device is not None:
            latents, actions, poses = latents.to(device), actions.to(device), poses.to(device)
            images = images.to(device) if images is not None else None
        span = torch.arange(latents.shape[2] if windows == 1 else latent_frames, device=latents.device)

        def batch(index: int) -> dict[str, Any]:
            rows = torch.from_numpy(batch_rows(len(self) * windows, batch_size, seed, index))
            picked = rows.to(latents.device)
            clip, start = picked // windows, picked % windows
            x = latents[clip[:, None], :, start[:, None] + span]  # (B, latent_frames, C, h, w)
            if images is not None:
                x[:, 0] = images[clip, :, start]
            x = x.transpose(1, 2).to(torch.float32, memory_format=torch.contiguous_format)
            return {"latents": x, "actions": actions[picked], "poses": poses[picked],
                    "caption": [self.captions[int(r) // windows] for r in rows]}

        return batch

    def save(self, path: str | Path) -> Path:
        tensors = {"latents": self.latents, "poses": self.poses}
        if self.images is not None:
            tensors["images"] = self.images
        return checkpoint.save(path, tensors, kind="latent_clips", config=self.controls,
                               extra={"captions": json.dumps(self.captions)})

    @classmethod
    def load(cls, path: str | Path) -> "LatentClips":
        tensors, controls, meta = checkpoint.load(path, "latent_clips", ControlsConfig)
        return cls(tensors["latents"], tensors["poses"], json.loads(meta["captions"]), controls, tensors.get("images"))


@torch.no_grad()
def encode_clips(tokenizer, dataset, count: int, batch_size: int = 16, seed: int = 0, workers: int = 0,
                 images: bool = False, progress: bool = True) -> LatentClips:
    """Encode `count` clips drawn from a ClipDataset with its action-balancing weights.

    `images`: also encode video frame temporal_down * k of each clip alone, for every latent frame k (the first
    frames of every window, `LatentClips.images`; a quarter more encoding at temporal_down 4).
    `workers` processes read and decompress clips while the tokenizer encodes."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.multinomial(dataset.weights.float(), count, replacement=True, generator=gen).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, rows), batch_size=batch_size,
                                         num_workers=workers)
    device, td = tokenizer.device, tokenizer.cfg.temporal_down
    lat, firsts, poses, caps = [], [], [], []
    for batch in tqdm(loader, desc="encoding clips", disable=not progress):
        video = batch["frames"].to(device).transpose(1, 2)  # (B, 3, T, H, W)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):  # as the tokenizer trained
            lat.append(tokenizer.encode(video).half().cpu())
            if images:
                stills = video[:, :, ::td].transpose(1, 2)  # (B, F, 3, H, W): one video of one frame each
                z = tokenizer.encode(stills.flatten(0, 1).unsqueeze(2))  # (B * F, C, 1, h, w)
                firsts.append(z.squeeze(2).unflatten(0, stills.shape[:2]).transpose(1, 2).half().cpu())
        poses.append(batch["poses"])
        caps.extend(batch["caption"])
    return LatentClips(torch.cat(lat), torch.cat(poses), caps, dataset.controls,
                       torch.cat(firsts) if images else None)
