"""Keyboard controls: key names -> RELIC's 13-D action, and action scripts for headless runs.

At play time the pressed keys form a multi-hot vector over the 12 motions times a speed coefficient; the
13th entry, ``static``, is 1 when no motion is active. Opposite motions cancel: holding W and S moves neither
way. The same mapping turns a text script such as ``"W*24, W+Right*12, none*8"`` into a (T, 13) action tensor,
so a rollout rendered headless uses exactly the actions a player would have sent.

Key names are the physical keys of a US layout (the widget reads ``KeyboardEvent.code``, so WASD stays under
the left hand on AZERTY too): letters ``A``..``Z``, digits ``0``..``9``, ``Space``, ``Shift``, and the arrows
``Left``, ``Right``, ``Up``, ``Down``. Names are matched case-insensitively; ``ArrowLeft`` etc. are accepted.
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from .controls import ACTION_DIM, ACTIONS

STATIC = "static"
MOTIONS: tuple[str, ...] = tuple(a for a in ACTIONS if a != STATIC)
# each motion and the one that cancels it
OPPOSITE: Mapping[str, str] = MappingProxyType({
    "forward": "backward", "backward": "forward",
    "right": "left", "left": "right",
    "up": "down", "down": "up",
    "tilt_up": "tilt_down", "tilt_down": "tilt_up",
    "pan_right": "pan_left", "pan_left": "pan_right",
    "roll_cw": "roll_ccw", "roll_ccw": "roll_cw",
})
ARROWS: tuple[str, ...] = ("Left", "Right", "Up", "Down")
KNOWN_KEYS: tuple[str, ...] = (
    tuple(string.ascii_uppercase) + tuple(string.digits) + ("Space", "Shift") + ARROWS
)
NO_KEYS = "none"  # the script token for "nothing pressed"

DEFAULT_BINDINGS: Mapping[str, str] = MappingProxyType({
    "W": "forward", "S": "backward", "A": "left", "D": "right",
    "R": "up", "F": "down", "Space": "up", "C": "down",
    "Up": "tilt_up", "Down": "tilt_down", "Left": "pan_left", "Right": "pan_right",
    "Q": "roll_ccw", "E": "roll_cw",
})

_CANONICAL = {k.lower(): k for k in KNOWN_KEYS} | {f"arrow{a.lower()}": a for a in ARROWS}


def canonical_key(name: str) -> str:
    """'w' -> 'W', 'arrowleft' -> 'Left'; ValueError listing the known keys for anything else."""
    key = _CANONICAL.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown key {name!r}; known keys: {', '.join(KNOWN_KEYS)}.")
    return key


@dataclass(frozen=True)
class KeyMap:
    """Which key drives which action. Several keys may drive the same action (R and Space both go up)."""

    bindings: Mapping[str, str] = field(default_factory=lambda: DEFAULT_BINDINGS)

    def __post_init__(self) -> None:
        clean: dict[str, str] = {}
        for key, action in self.bindings.items():
            if action not in MOTIONS:
                raise ValueError(
                    f"key {key!r} is bound to {action!r}, which is not a motion; "
                    f"bind keys to one of: {', '.join(MOTIONS)}."
                )
            name = canonical_key(key)
            if name in clean:
                raise ValueError(f"key {name!r} is bound twice ({clean[name]!r} and {action!r}); keep one binding.")
            clean[name] = action
        object.__setattr__(self, "bindings", MappingProxyType(clean))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.bindings)

    def resolve(self, pressed: Iterable[str]) -> frozenset[str]:
        """Pressed key names -> the set of active motions, opposite motions cancelled."""
        active = set()
        for name in pressed:
            key = canonical_key(name)
            if key not in self.bindings:
                raise ValueError(f"key {key!r} is not bound in this keymap; bound keys: {', '.join(self.keys)}.")
            active.add(self.bindings[key])
        return frozenset(a for a in active if OPPOSITE[a] not in active)

    def action(self, pressed: Iterable[str], speed: float = 1.0) -> torch.Tensor:
        """Pressed keys -> (13,) action: active motions set to `speed`, `static` = 1 when none is active."""
        if not speed > 0:
            raise ValueError(f"speed must be a positive magnitude, got {speed}; release all keys to stand still.")
        active = self.resolve(pressed)
        out = torch.zeros(ACTION_DIM)
        for motion in active:
            out[ACTIONS.index(motion)] = speed
        if not active:
            out[ACTIONS.index(STATIC)] = 1.0
        return out


def action_from_keys(pressed: Iterable[str], speed: float = 1.0, keymap: KeyMap | None = None) -> torch.Tensor:
    """Pressed key names -> (13,) action (multi-hot times `speed`; `static` when nothing moves)."""
    return (keymap or KeyMap()).action(pressed, speed)


def action_names(action: torch.Tensor) -> tuple[str, ...]:
    """The names of the non-zero entries of a (13,) action, in ACTIONS order."""
    if action.shape != (ACTION_DIM,):
        raise ValueError(f"expected one action of shape ({ACTION_DIM},), got {tuple(action.shape)}.")
    return tuple(name for name, value in zip(ACTIONS, action.tolist(), strict=True) if value != 0)


_SEGMENT = re.compile(r"^(?P<combo>[^*]+?)\s*(?:\*\s*(?P<count>[^*]*))?$")


def parse_script(script: str, speed: float = 1.0, keymap: KeyMap | None = None) -> torch.Tensor:
    """An action script -> (T, 13) actions, one row per frame.

    Grammar: comma-separated segments ``COMBO*COUNT``; COMBO is key names joined by ``+`` or ``none`` (nothing
    pressed); ``*COUNT`` (a positive integer, frames) may be left out for one frame. Example:
    ``"W*24, W+Right*12, none*8"`` walks forward 24 frames, forward while panning right 12, then stands still 8.
    """
    keymap = keymap or KeyMap()
    segments = [s.strip() for s in script.split(",")]
    if not script.strip() or any(not s for s in segments):
        raise ValueError(f"empty segment in action script {script!r}; write segments like 'W*24, W+Right*12, none*8'.")
    rows = []
    for segment in segments:
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                f"cannot read segment {segment!r} of the action script; write it as KEY+KEY*COUNT, e.g. 'W+Right*12'."
            )
        count_text = match["count"]
        if count_text is not None and not count_text.strip().isdigit():
            raise ValueError(
                f"segment {segment!r}: the count after '*' must be a positive integer of frames, got {count_text!r}."
            )
        count = int(count_text) if count_text is not None else 1
        if count < 1:
            raise ValueError(f"segment {segment!r}: the count must be at least 1 frame.")
        combo = match["combo"].strip()
        if combo.lower() == NO_KEYS:
            keys: list[str] = []
        else:
            keys = [k.strip() for k in combo.split("+")]
            if any(not k for k in keys):
                raise ValueError(
                    f"segment {segment!r}: empty key name in combo {combo!r}; join keys with '+', e.g. 'W+Right'."
                )
        rows.append(keymap.action(keys, speed).expand(count, ACTION_DIM))
    return torch.cat(rows, 0)
