"""Bad input, tried systematically: every rejection is a clear error naming the fix, the session stays usable and
unchanged after it, and nothing already written is lost."""
import json
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import traitlets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from relickit import dataset as ds
from relickit.checkpoint import atomic_write
from relickit.config import preset
from relickit.controls import ACTION_DIM
from relickit.joystick import Joystick
from relickit.keys import action_from_keys, canonical_key, parse_script
from relickit.model import WorldModel
from relickit.play import MAX_ACTION, Session, load_start, main
from relickit.tutorial import sample_data
from relickit.vae import Tokenizer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
W, RIGHT = action_from_keys({"W"}), action_from_keys({"W", "Right"})


@pytest.fixture(scope="module")
def pair():
    """Two sessions of the shipped model on the same start: one gets the bad calls, the other never does."""
    image, text = load_start()
    sessions = [Session.from_pretrained() for _ in range(2)]
    for s in sessions:
        s.reset(image, text)
        s.step(W)
    return sessions


def assert_same_world(bad: Session, clean: Session):
    """The session that saw rejected calls plays on exactly as the one that did not."""
    torch.testing.assert_close(bad.pose, clean.pose, rtol=0, atol=0)
    assert bad.memory_stats() == clean.memory_stats()
    assert np.array_equal(bad.step(RIGHT), clean.step(RIGHT))


# ---- Session.step ------------------------------------------------------------------------------------------
finite = st.floats(0, MAX_ACTION, width=32)
wrong_shape = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=30), elements=finite).filter(
    lambda a: a.shape != (ACTION_DIM,))
bad_value = st.sampled_from([np.nan, np.inf, -np.inf, -1e-3, -1.0, MAX_ACTION * 1.001, 1e6, 3.4e38])
bad_entry = st.tuples(hnp.arrays(np.float32, ACTION_DIM, elements=finite), st.integers(0, ACTION_DIM - 1), bad_value)
not_numbers = st.one_of(st.none(), st.text(max_size=5), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                        st.lists(st.text(min_size=1, max_size=2), min_size=13, max_size=13))


def test_step_refuses_bad_actions_and_plays_on(pair):
    bad, clean = pair

    @SETTINGS
    @given(st.one_of(wrong_shape, bad_entry.map(lambda t: np.where(np.arange(ACTION_DIM) == t[1], t[2], t[0]))))
    def refused(action):
        with pytest.raises(ValueError, match=r"action|NaN|negative|magnitude") as err:
            bad.step(action)
        assert "action_from_keys" in str(err.value) or "opposite action" in str(err.value) or "[0, 10]" in str(err.value)

    @SETTINGS
    @given(not_numbers)
    def not_an_action(action):
        with pytest.raises((TypeError, ValueError), match="action"):
            bad.step(action)

    refused()
    not_an_action()
    with pytest.raises(ValueError, match=r"magnitude 1e\+06 is above 10.*slider"):
        bad.step(W * 1e6)  # the example
    assert_same_world(bad, clean)


def test_step_before_reset_names_the_fix():
    with pytest.raises(RuntimeError, match="reset"):
        Session.from_pretrained().step(W)


# ---- Session.reset -----------------------------------------------------------------------------------------
near_misses = st.sampled_from([(96, 128), (96, 128, 4), (96, 128, 1), (128, 96, 3), (1, 96, 128, 3), (95, 128, 3),
                               (0, 128, 3)])
shapes = st.one_of(near_misses, hnp.array_shapes(min_dims=0, max_dims=4, max_side=8), st.just((96, 128, 3)))
dtypes = st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.uint16, np.bool_])  # floats in [0, 1] too
bad_images = st.one_of(
    st.builds(np.zeros, shapes, dtypes).filter(lambda a: not (a.dtype == np.uint8 and a.shape == (96, 128, 3))),
    st.sampled_from([None, "start.png", [[0, 0, 0]]]),
)
bad_captions = st.one_of(st.none(), st.integers(), st.binary(max_size=5), st.lists(st.text(max_size=3), max_size=2),
                         st.text(alphabet=" \t\n.,!?-*'\u00e9\u4e16", max_size=8))


def test_reset_refuses_bad_starts_and_keeps_the_world(pair):
    bad, clean = pair
    image, text = load_start()

    @SETTINGS
    @given(bad_images)
    def bad_image(img):
        with pytest.raises((TypeError, ValueError), match=r"start image.*(uint8|96x128|numpy array)") as err:
            bad.reset(img, text)
        assert any(fix in str(err.value) for fix in ("astype", "resize", "np.asarray"))

    @SETTINGS
    @given(bad_captions)
    def bad_caption(caption):
        with pytest.raises((TypeError, ValueError), match="caption.*describe the place"):
            bad.reset(image, caption)

    bad_image()
    bad_caption()
    assert_same_world(bad, clean)


def test_reset_takes_any_uint8_layout():
    """A flipped view (negative strides) or a read-only array is a valid image: no error, no warning."""
    session = Session.from_pretrained()
    image, text = load_start()
    flipped = image[:, ::-1]
    ro = image.copy()
    ro.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert session.reset(flipped, text).shape == (96, 128, 3)
        first = session.reset(ro, text)
    assert np.array_equal(first, session.reset(image.copy(), text))


# ---- start images, checkpoints, model/tokenizer pairs -------------------------------------------------------
def test_start_image_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no start image at .*nowhere\.png.*bundled start frame"):
        load_start(tmp_path / "nowhere.png", "a room")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_start(tmp_path / "notes.png", "a room")
    with pytest.raises(ValueError, match="caption"):
        load_start(tmp_path / "notes.png", "   ")
    with pytest.raises(FileNotFoundError, match="no start image"):
        main(["--script", "W*12", "--out", str(tmp_path / "w.gif"), "--image", str(tmp_path / "nope.jpg"),
              "--text", "a room"])
    with pytest.raises(IndexError, match="pick index 0"):
        load_start(index=-1)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The path of a small world-model checkpoint (tests copy its bytes and damage the copy)."""
    model = WorldModel(preset("tiny", layers=1, dim=32, heads=2, ffn_dim=32, text_dim=16, text_len=4))
    return model.save(tmp_path_factory.mktemp("ckpt") / "m.safetensors")


@SETTINGS
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_checkpoint_names_the_fix(saved_model, tmp_path, cut):
    data = saved_model.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: int(cut * len(data))])
    with pytest.raises(ValueError, match="re-save or re-download"):
        WorldModel.load(path)


@SETTINGS
@given(data=st.data(), xor=st.integers(1, 255))
def test_damaged_checkpoint_header_names_the_fix_or_loads(saved_model, tmp_path, data, xor):
    """A damaged byte in the header (tensor names, shapes, offsets, the config) is refused naming the fix, or, where
    it lands somewhere harmless (white space, a digit of a number), loads a model built from its config. Damage in
    the tensor data is caught only where it makes a NaN or an inf: safetensors keeps no checksum."""
    damaged = bytearray(saved_model.read_bytes())
    header = 8 + struct.unpack("<Q", damaged[:8])[0]
    at = data.draw(st.integers(0, header - 1))
    damaged[at] ^= xor
    path = tmp_path / "flip.safetensors"
    path.write_bytes(bytes(damaged))
    try:
        model = WorldModel.load(path)
    except ValueError as err:
        assert "re-save or re-download" in str(err) or "pass the right file" in str(err), str(err)
    else:
        assert isinstance(model, WorldModel)


def test_non_finite_weights_are_refused(saved_model, tmp_path):
    path = tmp_path / "m.safetensors"
    model = WorldModel.load(saved_model)
    with torch.no_grad():
        model.blocks[0].ffn.net[2].weight[0, 0] = float("inf")
    model.save(path)
    with pytest.raises(ValueError, match=r"NaN or inf in \['blocks\.0\.ffn.*re-download"):
        WorldModel.load(path)


def test_checkpoint_of_another_preset_is_named(tmp_path):
    small = WorldModel(preset("small", layers=1, dim=32, heads=2, ffn_dim=32, text_dim=16, text_len=4))
    path = small.save(tmp_path / "small.safetensors")
    with pytest.raises(ValueError, match=r"another config.*'height': \(240, 96\)"):
        WorldModel.load(path, expect=preset("tiny"))
    with pytest.raises(ValueError, match=r"\(small\) and the tokenizer do not fit.*height': \(240, 96\).*trained with"):
        Session.from_pretrained(model_path=path)
    with pytest.raises(ValueError, match="'world_model' checkpoint, not a 'tokenizer'"):
        Tokenizer.load(path)


# ---- keys: the joystick and scripts --------------------------------------------------------------------------
@SETTINGS
@given(st.text(max_size=30))
def test_any_key_script_parses_or_names_the_problem(script):
    try:
        actions = parse_script(script)
    except ValueError as err:
        assert "'" in str(err)  # quotes the offending part
    else:
        assert actions.ndim == 2 and actions.shape[1] == ACTION_DIM and len(actions) >= 1
        assert torch.isfinite(actions).all() and (actions >= 0).all()


keys = st.one_of(st.sampled_from(["W", "w", "arrowleft", "Right", "Space", "X", "Ctrl", "Escape", "", "F1"]),
                 st.text(max_size=6))


@pytest.fixture(scope="module")
def joy():
    from browser_fixture import FakeSession

    j = Joystick(FakeSession(step_s=0.01), np.zeros((96, 128, 3), np.uint8), "a room")
    yield j
    j.close()


@SETTINGS
@given(st.lists(keys, max_size=4))
def test_joystick_takes_bound_keys_and_refuses_others_unchanged(joy, pressed):
    before = list(joy.keypad.pressed)
    try:
        wanted = sorted({canonical_key(k) for k in pressed})
        ok = all(k in joy.keymap.bindings for k in wanted)
    except ValueError:
        ok = False
    if ok:
        joy.keypad.pressed = pressed
        assert joy.keypad.pressed == wanted
    else:
        with pytest.raises((traitlets.TraitError, ValueError), match=r"key.*(known keys|bound keys)"):
            joy.keypad.pressed = pressed
        assert joy.keypad.pressed == before


def test_joystick_plays_on_after_rejected_keys(joy):
    from test_joystick import wait_until

    with pytest.raises(ValueError, match="unknown key 'Ctrl'"):
        joy.keypad.pressed = ["W", "Ctrl"]
    joy.keypad.pressed = ["W"]
    joy.start()
    assert wait_until(lambda: joy.steps >= 2 and torch.equal(joy.last_action, W))
    joy.stop()
    assert joy.error is None


# ---- a dataset folder with a half-written episode ------------------------------------------------------------
def test_half_written_episode_is_named_and_regenerated(tmp_path):
    out = ds.generate(tmp_path / "d", ["MAP01", "MAP02"], 3, 12, seed=5, progress=False)
    names = ["ep00000_MAP01.npz", "ep00001_MAP02.npz", "ep00002_MAP01.npz"]
    mtimes = {n: (out / n).stat().st_mtime_ns for n in names}
    episode = ds.load_episode(out / names[1])
    frames, actions = episode.frames(), episode.actions
    data = (out / names[1]).read_bytes()
    (out / names[1]).write_bytes(data[: len(data) // 3])  # a copy cut short
    (out / f".{names[2]}.123.tmp").write_bytes(b"PK\x03\x04 half")  # a writer that died
    with pytest.raises(ds.CorruptEpisodeError, match=r"ep00001_MAP02\.npz.*Delete it and re-run"):
        ds.ClipDataset(out, 5)
    ds.generate(out, ["MAP01", "MAP02"], 3, 12, seed=5, progress=False)
    assert sorted(p.name for p in out.iterdir()) == names + ["manifest.json"]
    assert [(out / n).stat().st_mtime_ns == mtimes[n] for n in names] == [True, False, True]  # others untouched
    again = ds.load_episode(out / names[1])
    assert np.array_equal(again.frames(), frames) and np.array_equal(again.actions, actions)  # regenerated exactly
    assert len(ds.ClipDataset(out, 5)) > 0


def test_half_written_manifest_is_named(tmp_path):
    root = tmp_path / "c"
    shutil.copytree(sample_data("train"), root)
    text = (root / "manifest.json").read_text()
    (root / "manifest.json").write_text(text[: len(text) // 2])
    episodes = sorted(p.read_bytes() for p in root.glob("*.npz"))
    with pytest.raises(ValueError, match="not valid JSON.*delete it and re-run.*kept"):
        ds.ClipDataset(root, 5)
    with pytest.raises(ValueError, match="not valid JSON.*delete it and re-run.*kept"):
        ds.generate(root, ["MAP01"], 1, 12, progress=False)
    assert sorted(p.read_bytes() for p in root.glob("*.npz")) == episodes  # nothing written is lost
    json.loads(text)  # the original was fine: only the copy was cut


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"old")

    def dies(tmp):
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]
