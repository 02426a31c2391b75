import pytest
import torch

from relickit.controls import ACTION_DIM, ACTIONS
from relickit.keys import (
    DEFAULT_BINDINGS,
    KNOWN_KEYS,
    KeyMap,
    action_from_keys,
    action_names,
    canonical_key,
    parse_script,
)


def vec(speed: float = 1.0, static: bool = False, **on: bool) -> torch.Tensor:
    out = torch.zeros(ACTION_DIM)
    for name in on:
        out[ACTIONS.index(name)] = speed
    if static:
        out[ACTIONS.index("static")] = 1.0
    return out


@pytest.mark.parametrize(
    "key, action",
    [("W", "forward"), ("S", "backward"), ("A", "left"), ("D", "right"), ("Left", "pan_left"), ("Right", "pan_right"),
     ("Up", "tilt_up"), ("Down", "tilt_down"), ("R", "up"), ("F", "down"), ("Space", "up"), ("C", "down"),
     ("Q", "roll_ccw"), ("E", "roll_cw")],
)
def test_default_bindings(key, action):
    assert torch.equal(action_from_keys({key}), vec(**{action: True}))


def test_nothing_pressed_is_static():
    assert torch.equal(action_from_keys(set(), speed=2.0), vec(static=True))
    assert action_names(action_from_keys(set())) == ("static",)


def test_combo_times_speed():
    got = action_from_keys({"W", "Right", "e"}, speed=0.5)
    assert torch.equal(got, vec(0.5, forward=True, pan_right=True, roll_cw=True))
    assert action_names(got) == ("forward", "pan_right", "roll_cw")


def test_opposites_cancel():
    assert torch.equal(action_from_keys({"W", "S"}), vec(static=True))
    assert torch.equal(action_from_keys({"W", "S", "Left"}), vec(pan_left=True))
    assert torch.equal(action_from_keys({"R", "C"}), vec(static=True))  # up via R, down via C
    assert torch.equal(action_from_keys({"R", "Space"}), vec(up=True))  # two keys for one action


def test_key_names_are_case_insensitive_and_accept_arrow_prefix():
    assert canonical_key("w") == "W"
    assert canonical_key("arrowleft") == "Left"
    assert canonical_key(" SPACE ") == "Space"
    assert torch.equal(action_from_keys({"ArrowRight"}), vec(pan_right=True))


def test_unknown_key_lists_known_keys():
    with pytest.raises(ValueError, match="unknown key 'Foo'.*known keys: A, B"):
        action_from_keys({"Foo"})


def test_unbound_key_lists_bound_keys():
    with pytest.raises(ValueError, match="'X' is not bound.*bound keys: W, S"):
        action_from_keys({"X"})


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed"):
        action_from_keys({"W"}, speed=0.0)


def test_custom_keymap_validation():
    km = KeyMap({"i": "forward", "k": "backward", "ArrowUp": "tilt_up"})
    assert km.keys == ("I", "K", "Up")
    assert torch.equal(km.action({"I"}), vec(forward=True))
    with pytest.raises(ValueError, match="known keys"):
        KeyMap({"Ctrl": "forward"})
    with pytest.raises(ValueError, match="not a motion"):
        KeyMap({"W": "jump"})
    with pytest.raises(ValueError, match="bound twice"):
        KeyMap({"w": "forward", "W": "backward"})
    with pytest.raises(ValueError, match="not a motion"):
        KeyMap({"W": "static"})


def test_keymap_is_frozen_and_covers_known_keys():
    km = KeyMap()
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        km.bindings = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        km.bindings["W"] = "backward"  # type: ignore[index]
    assert set(DEFAULT_BINDINGS) <= set(KNOWN_KEYS)


def test_parse_script():
    acts = parse_script("W*24, W+Right*12, none*8")
    assert acts.shape == (44, ACTION_DIM)
    assert torch.equal(acts[0], vec(forward=True))
    assert torch.equal(acts[23], vec(forward=True))
    assert torch.equal(acts[24], vec(forward=True, pan_right=True))
    assert torch.equal(acts[36], vec(static=True))
    assert torch.equal(acts[-1], vec(static=True))


def test_parse_script_speed_default_count_and_spacing():
    acts = parse_script("  w + left * 2 ,NONE, S", speed=0.25)
    assert acts.shape == (4, ACTION_DIM)
    assert torch.equal(acts[1], vec(0.25, forward=True, pan_left=True))
    assert torch.equal(acts[2], vec(static=True))
    assert torch.equal(acts[3], vec(0.25, backward=True))


@pytest.mark.parametrize(
    "script, message",
    [("", "empty segment"), ("W*3,,S*2", "empty segment"), ("W*", "positive integer"), ("W*x", "positive integer"),
     ("W*0", "at least 1"), ("W*-2", "positive integer"), ("W**2", "cannot read"), ("W+*2", "empty key name"),
     ("Jump*3", "unknown key 'Jump'"), ("X*3", "not bound")],
)
def test_parse_script_errors(script, message):
    with pytest.raises(ValueError, match=message):
        parse_script(script)
