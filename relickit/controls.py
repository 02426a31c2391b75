"""RELIC's controls: 13-D relative actions, absolute poses, and their encoders.

Camera convention (OpenCV, right-handed): x right, y down, z forward. A pose is (R, P): R rotates world
coordinates into camera coordinates and P is the camera centre in world coordinates.

Algorithm 1 of the paper turns a pose sequence into per-frame action magnitudes:
  egocentric displacement  dP_t = R_t (P_{t+1} - P_t), divided by the clip's mean non-zero step length;
  relative rotation        dR_t = R_{t+1} R_t^T, split into yaw (pan), pitch (tilt) and roll;
a static action is prepended for frame 0, so action t describes the motion from frame t-1 to frame t.
`accumulate` is the inverse: it turns actions back into absolute poses, which is what the model sees at play
time, so training (poses from labels) and play (poses from keys) follow the same path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

ACTIONS: tuple[str, ...] = (
    "forward", "backward", "right", "left", "up", "down",
    "tilt_up", "tilt_down", "pan_right", "pan_left", "roll_cw", "roll_ccw",
    "static",
)
ACTION_DIM = len(ACTIONS)
POSE_DIM = 12  # rotation (9) + position (3), relative to the first frame


@dataclass(frozen=True)
class ControlsConfig:
    """Units of the action magnitudes."""

    rotation_unit_deg: float = 5.0  # a rotation magnitude of 1.0 is this many degrees per frame
    still: float = 1e-3  # below this (normalised translation, or rotation in units) a frame counts as static


def rot_x(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def rot_y(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rot_z(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def local_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """The camera's own turn E = Ry(yaw) Rx(pitch) Rz(roll), in its own frame.

    yaw > 0 pans right, pitch > 0 tilts up, roll > 0 rolls clockwise (seen from behind the camera).
    """
    return rot_y(yaw) @ rot_x(pitch) @ rot_z(roll)


def euler_from_local(e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of `local_rotation`."""
    yaw = torch.atan2(e[..., 0, 2], e[..., 2, 2])
    pitch = torch.asin((-e[..., 1, 2]).clamp(-1.0, 1.0))
    roll = torch.atan2(e[..., 1, 0], e[..., 1, 1])
    return yaw, pitch, roll


def labels_from_poses(
    rotations: torch.Tensor, positions: torch.Tensor, cfg: ControlsConfig = ControlsConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1. rotations (..., T, 3, 3) world-to-camera, positions (..., T, 3) -> actions (..., T, 13), step
    length (...).

    The step length is each clip's mean non-zero egocentric displacement; translations are divided by it. Leading
    dimensions are clips labelled independently, as one call per clip would.
    """
    if (rotations.shape[-2:] != (3, 3) or positions.shape[-1] != 3
            or rotations.shape[:-2] != positions.shape[:-1] or rotations.dim() < 3):
        raise ValueError(f"expected rotations (..., T, 3, 3) and positions (..., T, 3), got {tuple(rotations.shape)} "
                         f"and {tuple(positions.shape)}")
    r = rotations.double()
    p = positions.double()
    dp = (r[..., :-1, :, :] @ (p[..., 1:, :] - p[..., :-1, :]).unsqueeze(-1)).squeeze(-1)  # camera t's frame
    length = dp.norm(dim=-1)
    moving = (length > 1e-9).to(p.dtype)
    count = moving.sum(-1)
    step = torch.where(count > 0, (length * moving).sum(-1) / count.clamp(min=1), torch.ones_like(count))
    dp = dp / step[..., None, None]
    # camera turn E_t with R_{t+1} = E_t^T R_t, i.e. E_t = (R_{t+1} R_t^T)^T
    e = (r[..., 1:, :, :] @ r[..., :-1, :, :].transpose(-1, -2)).transpose(-1, -2)
    yaw, pitch, roll = euler_from_local(e)
    unit = math.radians(cfg.rotation_unit_deg)
    rot = torch.stack([pitch, yaw, roll], -1) / unit  # tilt, pan, roll
    # x right, y down, z forward: forward=+z, backward=-z, right=+x, left=-x, up=-y, down=+y
    x, y, z = dp.unbind(-1)
    trans = torch.stack([z, -z, x, -x, -y, y], -1).clamp(min=0)
    tilt, pan, roll = rot.unbind(-1)
    turns = torch.stack([tilt, -tilt, pan, -pan, roll, -roll], -1).clamp(min=0)
    moves = torch.cat([trans, turns], -1)
    moves = torch.where(moves > cfg.still, moves, torch.zeros_like(moves))
    static = (moves.sum(-1, keepdim=True) == 0).to(moves.dtype)
    acts = torch.cat([moves, static], -1)
    first = torch.zeros(*acts.shape[:-2], 1, ACTION_DIM, dtype=acts.dtype)
    first[..., -1] = 1.0
    return torch.cat([first, acts], -2).float(), step.float()


def integrate(rotation: torch.Tensor, position: torch.Tensor, actions: torch.Tensor,
              cfg: ControlsConfig = ControlsConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply actions (..., T, 13) one after another from the pose (rotation (..., 3, 3), position (..., 3)).

    Returns the T poses reached, (..., T, 3, 3) and (..., T, 3). Action t moves the camera in its own frame.
    """
    check_actions(actions)
    a = actions.double()
    dp = torch.stack([a[..., 2] - a[..., 3], a[..., 5] - a[..., 4], a[..., 0] - a[..., 1]], -1)
    unit = math.radians(cfg.rotation_unit_deg)
    e = local_rotation((a[..., 8] - a[..., 9]) * unit, (a[..., 6] - a[..., 7]) * unit, (a[..., 10] - a[..., 11]) * unit)
    r, p = rotation.double(), position.double()
    rs, ps = [], []
    for t in range(a.shape[-2]):
        p = p + (r.transpose(-1, -2) @ dp[..., t, :].unsqueeze(-1)).squeeze(-1)  # camera frame -> world
        r = e[..., t, :, :].transpose(-1, -2) @ r
        rs.append(r)
        ps.append(p)
    return torch.stack(rs, -3).float(), torch.stack(ps, -2).float()


def accumulate(actions: torch.Tensor, cfg: ControlsConfig = ControlsConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions (..., T, 13) -> absolute poses relative to frame 0: rotations (..., T, 3, 3), positions (..., T, 3).

    Positions are in units of the step length, so labels of a recorded clip accumulate back to its poses.
    Action 0 is ignored (frame 0 is the origin).
    """
    batch = actions.shape[:-2]
    r0 = torch.eye(3).expand(*batch, 3, 3)
    p0 = torch.zeros(*batch, 3)
    r, p = integrate(r0, p0, actions[..., 1:, :], cfg)
    return torch.cat([r0.unsqueeze(-3), r], -3), torch.cat([p0.unsqueeze(-2), p], -2)


def relative_to_first(rotations: torch.Tensor, positions: torch.Tensor, step: torch.Tensor | float = 1.0):
    """Re-express poses (..., T, 3, 3), (..., T, 3) in each clip's first camera's frame, positions divided by `step`
    (a number, or one per clip: (...))."""
    r0 = rotations[..., :1, :, :]
    rot = rotations @ r0.transpose(-1, -2)
    pos = (r0 @ (positions - positions[..., :1, :]).unsqueeze(-1)).squeeze(-1)
    return rot, pos / torch.as_tensor(step, dtype=pos.dtype)[..., None, None]


def pose_vector(rotations: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(..., T, 3, 3), (..., T, 3) -> (..., T, 12): the absolute pose the model reads."""
    return torch.cat([rotations.flatten(-2), positions], -1)


def check_actions(actions: torch.Tensor, max_magnitude: float | None = None) -> None:
    """Refuse actions that are not (..., 13) finite non-negative magnitudes (at most `max_magnitude`, if given)."""
    fix = "make actions with relickit.keys.action_from_keys({'W'}) or parse_script('W*12')"
    if actions.shape[-1] != ACTION_DIM:
        raise ValueError(f"actions must have {ACTION_DIM} entries per frame ({', '.join(ACTIONS)}); got shape "
                         f"{tuple(actions.shape)}; {fix}.")
    if not torch.isfinite(actions).all():
        raise ValueError(f"actions contain NaN or inf; {fix}.")
    if (actions < 0).any():
        raise ValueError("action entries are non-negative magnitudes; use the opposite action instead of a negative value.")
    if max_magnitude is not None and (actions > max_magnitude).any():
        raise ValueError(
            f"action magnitude {actions.max().item():g} is above {max_magnitude:g}: 1.0 is one mean step (or "
            f"{ControlsConfig.rotation_unit_deg:g} degrees of turn) per frame and the model was trained on magnitudes "
            f"up to about 4; pass values in [0, {max_magnitude:g}] (the joystick's speed slider goes to 3)."
        )


def group_frames(x: torch.Tensor, temporal_down: int) -> torch.Tensor:
    """Temporal patchify: per-frame controls (B, 1 + td*k, D) -> per-latent-frame (B, 1 + k, td*D).

    The causal VAE maps frame 0 alone to latent 0 and every `td` frames after it to one latent, so frame 0 is
    repeated `td` times to fill its group. A chunk that does not start at frame 0 has T = td*k frames and is
    grouped as it is (use `first=False`).
    """
    b, t, d = x.shape
    if (t - 1) % temporal_down:
        raise ValueError(f"controls cover {t} frames; expected 1 + {temporal_down}*k frames to match the VAE.")
    x = torch.cat([x[:, :1].expand(b, temporal_down - 1, d), x], 1)
    return x.reshape(b, (t - 1) // temporal_down + 1, temporal_down * d)


def group_chunk(x: torch.Tensor, temporal_down: int) -> torch.Tensor:
    """Per-frame controls of a later chunk (B, td*k, D) -> (B, k, td*D)."""
    b, t, d = x.shape
    if t % temporal_down:
        raise ValueError(f"a chunk's controls cover {t} frames; expected a multiple of {temporal_down}.")
    return x.reshape(b, t // temporal_down, temporal_down * d)


class ControlEncoder(nn.Module):
    """RELIC's control encoder: an MLP over temporally patchified controls, one vector per latent frame."""

    def __init__(self, in_dim: int, dim: int, temporal_down: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim * temporal_down, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, grouped: torch.Tensor) -> torch.Tensor:
        """(B, F, td*in_dim) from `group_frames`/`group_chunk` -> (B, F, dim)."""
        return self.mlp(grouped)
