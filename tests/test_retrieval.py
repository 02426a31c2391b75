"""The memory view's model side (relickit.retrieval) and its widget (relickit.retrieval_view), without a browser."""
import dataclasses
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from relickit.config import MemoryConfig
from relickit.evaluate import random_assets
from relickit.joystick import Joystick
from relickit.keys import action_from_keys
from relickit.memory import window_frames
from relickit.metrics import psnr
from relickit.play import Session, to_uint8
from relickit.probe import AttentionProbe, attention_summary, latent_video_frame
from relickit.retrieval import RetrievalConfig, RetrievalTracker, latent_video_frames, play_script, video_latent
from relickit.retrieval_view import RetrievalPanel, ViewConfig, scripted_view, view_state

H, W = 32, 64  # a 2x4 token grid: every step is fast, the memory's factors 1, 2 and 4 still differ


@pytest.fixture(scope="module")
def assets():
    return random_assets(height=H, width=W)


def session(assets, **memory) -> Session:
    model, tokenizer = assets
    return Session(model, tokenizer, memory=MemoryConfig(**memory))


def start_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


SPEED = 3.0  # 15 degrees per frame: a full turn in two steps


def pan_360(s: Session) -> torch.Tensor:
    """Pan right a full turn and a step more."""
    steps = math.ceil(360 / (s.controls.rotation_unit_deg * SPEED) / s.frames_per_step) + 1
    return torch.stack([action_from_keys({"Right"}, SPEED)] * steps)


def test_snapshot_accounts_for_every_cached_frame(assets):
    s = session(assets)
    view = play_script(RetrievalTracker(s, RetrievalConfig(top_k=3)), start_image(), "a room", pan_360(s))
    cfg, mem = s.model.cfg, s.memory
    for snap in view.snapshots:
        assert snap.verified and snap.max_abs_error < 1e-4
        assert [f.frame for f in snap.frames] == list(range(snap.cached_frames))
        assert math.isclose(snap.current_mass + sum(f.mass for f in snap.frames), 1.0, rel_tol=1e-5)
        window = snap.cached_frames - min(window_frames(mem), snap.cached_frames)
        for f in snap.frames:
            assert (f.part, f.factor) == (("window", 1) if f.frame >= window else ("compressed", mem.factor(f.frame)))
            centre = latent_video_frame(snap.cached_frames + (cfg.chunk - 1) // 2, cfg.temporal_down)
            assert f.age_s == pytest.approx((centre - latent_video_frame(f.frame, cfg.temporal_down)) / s.fps)
        older = [f for f in snap.frames if f.frame < snap.cached_frames - mem.window]
        assert list(snap.top) == sorted(older, key=lambda f: -f.mass)[:3]
    last = view.snapshots[-1]
    assert last.stats == s.memory_stats()
    # angles come from the commanded pan: latent frame f is centred on video frame c
    centre = latent_video_frame(last.cached_frames + 1, cfg.temporal_down)
    for f in last.frames:
        turned = (centre - latent_video_frame(f.frame, cfg.temporal_down)) * s.controls.rotation_unit_deg * SPEED % 360
        assert f.angle_deg == pytest.approx(min(turned, 360 - turned), abs=0.05)  # float32 poses, arccos near 0
        assert f.distance == pytest.approx(0.0, abs=1e-9)


def test_each_latent_frame_of_a_chunk_gets_its_own_row_and_their_mean_is_the_chunk(assets):
    s = session(assets)
    k = 3
    view = play_script(RetrievalTracker(s, RetrievalConfig(top_k=k)), start_image(), "a room", pan_360(s))
    cfg, mem = s.model.cfg, s.memory
    for snap in view.snapshots:
        rows = snap.query_frames
        assert [r.latent for r in rows] == list(range(snap.cached_frames, snap.cached_frames + cfg.chunk))
        # the rows' video frames tile the chunk's, 4 per latent frame
        assert [r.video_frames for r in rows] == [latent_video_frames(r.latent, cfg.temporal_down) for r in rows]
        assert rows[0].video_frames[0] == snap.video_frames[0] and rows[-1].video_frames[1] == snap.video_frames[1]
        assert all(a.video_frames[1] == b.video_frames[0] for a, b in zip(rows, rows[1:]))
        assert all(r.video_frames[1] - r.video_frames[0] == cfg.temporal_down for r in rows)
        mass = np.array([[f.mass for f in r.frames] for r in rows])  # (query frames, cached frames)
        np.testing.assert_allclose(mass.mean(0), [f.mass for f in snap.frames], rtol=1e-6, atol=1e-9)
        assert np.mean([r.current_mass for r in rows]) == pytest.approx(snap.current_mass, rel=1e-6)
        assert not np.allclose(mass, mass[:1], rtol=1e-3), "the latent frames attend alike: not split by frame"
        for r in rows:
            assert math.isclose(r.current_mass + sum(f.mass for f in r.frames), 1.0, rel_tol=1e-5)
            assert [(f.frame, f.part, f.factor, f.tokens) for f in r.frames] == \
                [(f.frame, f.part, f.factor, f.tokens) for f in snap.frames]
            seen = latent_video_frame(r.latent, cfg.temporal_down)
            for f in r.frames:
                assert f.age_s == pytest.approx((seen - latent_video_frame(f.frame, cfg.temporal_down)) / s.fps)
            older = [f for f in r.frames if f.frame < snap.cached_frames - mem.window]
            assert list(r.top) == sorted(older, key=lambda f: -f.mass)[:k]  # the k largest of the row's older ones
            assert len(r.top) == min(k, len(older))


def test_the_probe_splits_the_queries_by_latent_frame(assets, monkeypatch):
    """Zero the queries of the chunk's middle latent frame: that frame's row alone becomes uniform attention."""
    s = session(assets)
    layer, chunk, tokens = 1, s.model.cfg.chunk, s.model.cfg.tokens_per_frame
    block = s.model.blocks[layer]
    attn_in = block.attn_in

    def blind_middle_frame(x, fr):
        q, *rest = attn_in(x, fr)
        if q.shape[1] == chunk * fr.tokens:  # a chunk (the reset's single frame is left alone)
            q = q.clone()
            q.unflatten(1, (chunk, fr.tokens))[:, chunk // 2] = 0  # its logits are all 0
        return (q, *rest)

    monkeypatch.setattr(block, "attn_in", blind_middle_frame)
    probe = AttentionProbe(s, layer=layer, verify=True, only_pass=len(s.sampler.sigmas) - 1)
    with probe:
        s.reset(start_image(), "a room")
        for a in pan_360(s)[:3]:
            s.step(a)
    for rec in probe.records:
        assert rec.max_abs_error < 1e-4  # the block itself ran with those queries: the split matches its output
        assert rec.frame_weights.shape == (chunk, s.model.cfg.heads, len(rec.layout))
        np.testing.assert_allclose(rec.frame_weights.mean(0), rec.weights, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(rec.frame_weights[chunk // 2], 1 / len(rec.layout), rtol=1e-5)
        for i in set(range(chunk)) - {chunk // 2}:
            assert rec.frame_weights[i].std() > 1e-3 / len(rec.layout)
        summary = attention_summary(rec, query_frame=chunk // 2)
        assert summary["query_latent"] == rec.cached_frames + chunk // 2  # lags are measured from that frame
        rows = summary["frames"]
        assert [r["mass"] for r in rows] == pytest.approx([r["tokens"] / len(rec.layout) for r in rows], rel=1e-5)
        assert len(rec.layout) == tokens * chunk + sum(r["tokens"] for r in rows)
    with pytest.raises(ValueError, match="query_frame must be in 0..2"):
        attention_summary(probe.records[-1], query_frame=chunk)
    with pytest.raises(ValueError, match="no per-frame weights"):
        attention_summary(dataclasses.replace(probe.records[-1], frame_weights=None), query_frame=0)


def test_only_the_last_denoising_pass_is_recomputed_and_it_matches_the_full_probe(assets):
    s = session(assets)
    image, actions = start_image(), pan_360(s)
    full = AttentionProbe(s, layer=1, verify=True)
    last = AttentionProbe(s, layer=1, verify=True, only_pass=len(s.sampler.sigmas) - 1)
    with full, last:
        s.reset(image, "a room")
        for a in actions:
            s.step(a)
    assert len(last.records) == len(actions) and len(full.records) == 1 + len(actions) * (len(s.sampler.sigmas) + 1)
    for mine, theirs in zip(last.records, full.final_records()):
        assert mine.cached_frames == theirs.cached_frames and mine.max_abs_error < 1e-4
        np.testing.assert_array_equal(mine.weights, theirs.weights)
    # the vectorised summary equals a per-frame sum over the key layout
    rec = last.records[-1]
    mass = rec.weights.mean(0)
    rows = attention_summary(rec)["frames"]
    for row in rows:
        sel = (rec.layout.part > 0) & (rec.layout.frame == row["frame"])
        assert row["mass"] == pytest.approx(float(mass[sel].sum())) and row["tokens"] == int(sel.sum())


def test_thumbnails_decode_the_kept_latents_without_running_the_model(assets, monkeypatch):
    s = session(assets)
    tracker = RetrievalTracker(s)
    latents = []
    with tracker:
        tracker.reset(s.reset(start_image(), "a room"))
        latents.append(s.last_latents)
        for a in pan_360(s)[:2]:
            tracker.step(s.step(a))
            latents.append(s.last_latents)
            rotations, positions = s.last_poses
            assert rotations.shape == (s.frames_per_step, 3, 3) and positions.shape == (s.frames_per_step, 3)
        monkeypatch.setattr(s.model, "step", lambda *a, **k: pytest.fail("a thumbnail must not run the model"))
        kept = torch.cat(latents, 2)[0].to(torch.float16)
        for f in (0, 2, kept.shape[1] - 1):
            want = to_uint8(s.tokenizer.decode_tiny(kept[None, :, f: f + 1].float())[0])[-1]
            np.testing.assert_array_equal(tracker.thumbnail(f), want)
        assert tracker.thumbnail(kept.shape[1]) is None  # not generated yet
    assert not tracker.attached and tracker.thumbnail(0) is None  # closing forgets everything


def test_a_bookmark_compares_only_after_the_camera_went_away_and_came_back(assets):
    s = session(assets)
    tracker = RetrievalTracker(s)
    still = play_script(tracker, start_image(), "a room", torch.stack([action_from_keys(set())] * 3))
    assert all(snap.comparison is None for snap in still.snapshots), "standing still is not a return"
    view = play_script(tracker, start_image(), "a room", pan_360(s))
    away = [snap.bookmark.away for snap in view.snapshots]
    back = [snap.comparison for snap in view.snapshots]
    assert away[0] and back[0] is None  # 180 degrees in the first step: away at once
    first = next(i for i, c in enumerate(back) if c is not None)
    assert all(c is None for c in back[:first]) and first == len(back) - 2
    c = back[first]
    v = c.video_frame
    assert v == 360 // (s.controls.rotation_unit_deg * SPEED) and c.angle_deg == pytest.approx(0.0, abs=0.05)
    np.testing.assert_array_equal(c.live, view.frames[v])
    assert c.psnr == pytest.approx(psnr(view.frames[0][None], view.frames[v][None]))
    with pytest.raises(ValueError, match="no pose is kept"):
        tracker.bookmark(len(view.frames))


def test_attached_mid_play_the_tracker_knows_only_what_it_saw(assets):
    s = session(assets)
    s.reset(start_image(), "a room")
    for a in pan_360(s):
        s.step(a)
    tracker = RetrievalTracker(s).attach()  # adopts the newest chunk's latents and poses
    snap = tracker.step(s.step(pan_360(s)[0]))
    known = {f.frame for f in snap.frames if not math.isnan(f.angle_deg)}
    adopted = range(snap.cached_frames - s.model.cfg.chunk, snap.cached_frames)
    assert known == set(adopted)
    assert tracker.thumbnail(0) is None and tracker.thumbnail(adopted[0]) is not None
    assert tracker.bookmark(tracker.video_frames - 1).video_frame == tracker.video_frames - 1
    tracker.close()


def test_configs_and_sessions_are_checked(assets):
    from browser_fixture import FakeSession

    with pytest.raises(TypeError, match="relickit.play.Session"):
        RetrievalTracker(FakeSession())
    with pytest.raises(ValueError, match="blocks 0..1"):
        RetrievalTracker(session(assets), RetrievalConfig(layer=5))
    with pytest.raises(ValueError, match="near_deg < away_deg"):
        RetrievalConfig(near_deg=50.0)
    with pytest.raises(ValueError, match=">= 2 Hz"):
        ViewConfig(refresh_s=1.0)
    tracker = RetrievalTracker(session(assets))
    with pytest.raises(RuntimeError, match="not attached"):
        tracker.step(np.zeros((1, H, W, 3), np.uint8))
    assert video_latent(0, 4) == 0 and video_latent(1, 4) == 1 and video_latent(4, 4) == 1 and video_latent(5, 4) == 2


def test_view_follows_the_display_and_budgets_its_decodes(assets, monkeypatch):
    s = session(assets)
    buffered = [0]
    panel = RetrievalPanel(s, RetrievalConfig(top_k=4), ViewConfig(decodes_per_refresh=1), lambda: buffered[0])
    panel.tracker.attach()
    panel.observe_reset(s.reset(start_image(), "a room"))
    panel.bookmark()
    assert panel.message.value == "bookmarked video frame 0"
    for a in pan_360(s):
        panel.observe_step(s.step(a))
    # the newest two chunks are still in the (pretend) buffer: the page gets the first of them, one chunk ahead of
    # the screen (it holds it until it plays), and the newest once that one has started playing
    buffered[0] = 2 * s.frames_per_step
    panel.refresh()
    assert panel.view.state["chunk"] == panel.tracker.chunks - 1
    buffered[0] = s.frames_per_step
    panel.refresh()
    assert panel.view.state["chunk"] == panel.tracker.chunks
    buffered[0] = 0
    decodes = [0]
    decode = s.tokenizer.decode_tiny
    monkeypatch.setattr(s.tokenizer, "decode_tiny", lambda z: decodes.__setitem__(0, decodes[0] + 1) or decode(z))
    for _ in range(6):  # at most one new thumbnail per redraw
        decodes[0] = 0
        panel.refresh()
        assert decodes[0] <= 1
    state = panel.view.state
    assert state["chunk"] == panel.tracker.chunks
    assert all(state["thumbs"].get(str(t["frame"])) for row in state["rows"] for t in row["top"])
    sent = panel.refreshes
    panel.refresh()
    assert panel.refreshes == sent, "nothing changed: no redraw"
    json.dumps(state, allow_nan=False)  # what the page receives is plain JSON
    assert state["bookmark"]["psnr"] == pytest.approx(panel.tracker.comparison.psnr)
    panel.detach()
    assert panel.view.state == {} and not panel.on
    assert sum(len(b._forward_pre_hooks) for b in s.model.blocks) == 0


def test_the_page_gets_every_latent_frame_once_per_chunk_and_paces_them_itself(assets):
    s = session(assets)
    buffered = [0]
    panel = RetrievalPanel(s, RetrievalConfig(top_k=2), ViewConfig(decodes_per_refresh=64), lambda: buffered[0],
                           fps=20.0)
    panel.tracker.attach()
    panel.observe_reset(s.reset(start_image(), "a room"))
    for a in pan_360(s):
        panel.observe_step(s.step(a))
    snap = panel.snapshots[-1]
    buffered[0] = s.frames_per_step - 1  # the newest chunk's first video frame is on screen
    panel.refresh()
    state, sent = panel.view.state, panel.refreshes
    assert state["chunk"] == snap.chunk and state["video"] == list(snap.video_frames)
    assert state["shown"] == snap.video_frames[0] and state["fps"] == 20.0
    assert [(r["latent"], tuple(r["video"])) for r in state["rows"]] == \
        [(r.latent, r.video_frames) for r in snap.query_frames]
    for row, qf in zip(state["rows"], snap.query_frames):
        assert row["mass"] == pytest.approx([f.mass for f in qf.frames], abs=1e-6)
        assert [t["frame"] for t in row["top"]] == [f.frame for f in qf.top]
        ages = np.array(state["age"]) + row["age_shift"]
        assert ages == pytest.approx([f.age_s for f in qf.frames], abs=0.01)
    wanted = {str(f.frame) for qf in snap.query_frames for f in qf.top}
    assert set(state["thumbs"]) == wanted and all(state["thumbs"].values())
    assert "src" not in json.dumps(state["top"]), "thumbnails travel once, in state['thumbs']"
    for later in range(1, s.frames_per_step):  # the chunk plays on: its next latent frames are the page's job
        buffered[0] = s.frames_per_step - 1 - later
        panel.refresh()
    assert panel.refreshes == sent, "one message per chunk: the page steps through its latent frames"
    panel.detach()

    view = play_script(panel.tracker, start_image(), "a room", pan_360(s)[:2])
    box = scripted_view(view, panel)
    slider = box.children[0]
    assert slider.max == sum(len(snap.query_frames) for snap in view.snapshots)
    slider.value = 2  # the first chunk's second latent frame: video frames 5-8 on screen, the page stays there
    state = panel.view.state
    assert (state["chunk"], state["shown"], state["fps"]) == (1, 8, 0.0)
    assert state["rows"][1]["video"] == [5, 9]


def test_view_state_names_a_policy_without_memory(assets):
    s = session(assets, policy="window")
    panel = RetrievalPanel(s)
    tracker = panel.tracker
    view = play_script(tracker, start_image(), "a room", pan_360(s))
    state, waiting = view_state(view.snapshots[-1], tracker, panel._thumbs, 4, tracker.video_frames - 1)
    assert state["top"] == [] and "keeps nothing beyond the window" in state["no_top"] and waiting == 0
    assert all(p == "window" for p in state["part"])


# ----- in the joystick

def memory_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "relickit-memory-view"]


def hooks(s: Session) -> int:
    return sum(len(b._forward_pre_hooks) + len(b.attn1.to_out[0]._forward_pre_hooks) for b in s.model.blocks)


def wait_until(predicate, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.02)
    return predicate()


def test_joystick_memory_view_is_off_by_default_and_hooks_only_while_on(assets):
    s = session(assets)
    joy = Joystick(s, start_image(), "a room")
    try:
        joy.keypad.pressed = ["Right"]
        joy.speed.value = SPEED
        joy.start()
        assert wait_until(lambda: joy.steps >= 2)
        assert joy.memory is None and hooks(s) == 0 and memory_threads() == []  # off: nothing built, hooked or run
        joy.memory_toggle.value = True  # while playing: the producer hooks the model between two steps
        assert wait_until(lambda: joy.memory.view.state.get("chunk", 0) >= 2)
        assert hooks(s) == 2 and memory_threads() == ["relickit-memory-view"]
        state = joy.memory.view.state
        assert state["verified"] and state["frame"] == list(range(len(state["frame"])))
        joy.memory.bookmark()
        assert joy.memory.message.value.startswith("bookmarked video frame")
        assert wait_until(lambda: (joy.memory.view.state.get("bookmark") or {}).get("live_src") is not None)
        joy.memory_toggle.value = False
        assert wait_until(lambda: hooks(s) == 0 and memory_threads() == [])
        assert joy.memory.view.state == {} and joy._memory_box.children == ()
        joy.stop()
        joy.memory_toggle.value = True  # stopped: switched at once, from the session's newest chunk
        assert joy.memory.on and hooks(s) == 2
        joy.reset()
        assert joy.memory.tracker.video_frames == 1
    finally:
        joy.close()
    assert hooks(s) == 0 and memory_threads() == []


def test_joystick_memory_view_needs_a_model_session():
    from browser_fixture import FakeSession

    fake = FakeSession()
    joy = Joystick(fake, np.zeros((fake.height, fake.width, 3), np.uint8), "a fake world")
    try:
        joy.memory_toggle.value = True
        assert not joy.memory_toggle.value and joy.memory is None
        assert "memory view unavailable" in joy.status_label.value and "relickit.play.Session" in joy.status_label.value
    finally:
        joy.close()


def test_bench_memory_view_reports_the_views_cost():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "scripts/bench_memory_view.py", "--seconds", "1.5"], cwd=root,
                         capture_output=True, text=True, check=True, timeout=600).stdout
    off, on = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
    assert not off["view"] and "hooks_cpu_s_median" not in off and off["steps"] == on["steps"] == 2
    assert on["view"] and on["hooks_cpu_s_median"] > 0 and on["redraws"] == on["steps"] and on["max_abs_error"] < 1e-4
    assert off["kv_tokens_end"] == on["kv_tokens_end"]
    assert "of the step with the view off" in out.splitlines()[-1]


def test_pictures_are_not_reused_across_resets(assets):
    s = session(assets)
    panel = RetrievalPanel(s)
    pictures = []
    for seed in (0, 1):
        image = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
        view = play_script(panel.tracker, image, "a room", pan_360(s)[:2])
        panel.show(view.snapshots[-1])
        state = panel.view.state
        pictures.append((state["bookmark"]["src"], state["thumbs"]["0"]))
    assert pictures[0][0] != pictures[1][0] and pictures[0][1] != pictures[1][1]
