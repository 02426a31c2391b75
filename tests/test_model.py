import warnings

import pytest
import torch
from diffusers import WanTransformer3DModel

from relickit.config import TOKENS_PER_FRAME, MemoryConfig, model_for, parse_size, preset
from relickit.memory import bidirectional_visibility, causal_visibility, hybrid_visibility
from relickit.model import RMSNorm32, WorldModel, load_wan_state_dict
from relickit.vae import LAYOUTS

from helpers import inputs, tiny_model


def stream(model, x, t, ctx, actions, poses, mem):
    """Run the sequence chunk by chunk through the cache, writing every chunk."""
    cache = model.new_cache(mem, batch=x.shape[0])
    outs, s, v = [], 0, 0
    while s < x.shape[2]:
        n = 1 if s == 0 else model.cfg.chunk
        nv = 1 if s == 0 else n * model.cfg.temporal_down
        outs.append(model.step(x[:, :, s:s + n], t[:, s:s + n], ctx, actions[:, v:v + nv], poses[:, v:v + nv], cache, write=True))
        s, v = s + n, v + nv
    return torch.cat(outs, 2), cache


def test_parity_with_diffusers_wan():
    cfg = preset("tiny", layers=2, dim=96, heads=2, ffn_dim=192, text_dim=32, text_len=8, controls=False)
    ref = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=48, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=192, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6,
    ).eval()
    model = WorldModel(cfg, backend="sdpa").eval()
    missing = load_wan_state_dict(model, ref.state_dict())
    assert all(k.startswith("text_encoder.") for k in missing)
    x = torch.randn(2, 16, 3, 12, 16)
    t = torch.tensor([[0.0, 500.0, 900.0], [10.0, 20.0, 999.0]])
    ctx = torch.randn(2, 8, 32)
    with torch.no_grad():
        want = ref(x, t.repeat_interleave(cfg.tokens_per_frame, 1), ctx).sample
        got = model(x, t, ctx, None, None, bidirectional_visibility(3))
    assert want.abs().mean() > 0.1
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("policy,sigma_data", [("full", 0.0), ("window", 0.0), ("compressed", 0.0), ("none", 0.0),
                                               ("compressed", 0.9)])
def test_streaming_equals_full_sequence(policy, sigma_data):
    model = tiny_model(sigma_data=sigma_data)
    mem = MemoryConfig(policy=policy, window=3, capacity=64)
    frames = 1 + 2 * 5
    x, t, ctx, actions, poses = inputs(model, frames)
    with torch.no_grad():
        full = model(x, t, ctx, actions, poses, causal_visibility(frames, model.cfg.chunk, mem), mem)
        streamed, _ = stream(model, x, t, ctx, actions, poses, mem)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-4)


def test_model_for_gives_48_tokens_per_latent_frame_for_every_layout():
    assert TOKENS_PER_FRAME == 48
    for name, vae in LAYOUTS.items():
        cfg = model_for(vae, 256, 12)
        assert cfg.tokens_per_frame == 48 and cfg.token_grid == (6, 8), name
        assert (cfg.latent_channels, *cfg.latent_size) == (vae.z_dim, *vae.latent_size), name
        assert (cfg.dim, cfg.layers, cfg.heads, cfg.ffn_dim) == (256, 12, 4, 1024), name
    assert model_for(LAYOUTS["f4c16"], 64, 2).patch == (1, 4, 4)
    assert model_for(LAYOUTS["f8c16"], 192, 8) == preset("tiny")  # the first shipped model, field for field
    assert model_for(LAYOUTS["f8c16"], 192, 8, rope_frames=49).rope_frames == 49


def test_model_for_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match=r"multiple of the head size 64 \(e\.g\. 192\)"):
        model_for(LAYOUTS["f4c16"], 200, 8)
    with pytest.raises(ValueError, match=r"12x16 latent grid into 50 tokens .* one of \[192, 48, 12\]"):
        model_for(LAYOUTS["f8c16"], 192, 8, tokens=50)
    assert parse_size("256x12") == (256, 12)
    with pytest.raises(ValueError, match="write it like 256x12"):
        parse_size("256-12")


def test_a_model_for_the_f4c16_grid_runs_and_streams():
    model = tiny_model(model_for(LAYOUTS["f4c16"], 64, 2, text_dim=32, text_len=8, chunk=2))
    mem = MemoryConfig(policy="compressed", window=3, capacity=64)
    frames = 1 + 2 * 5
    x, t, ctx, actions, poses = inputs(model, frames)
    assert x.shape[3:] == (24, 32)  # the f4c16 latent grid
    with torch.no_grad():
        full = model(x, t, ctx, actions, poses, causal_visibility(frames, model.cfg.chunk, mem), mem)
        streamed, cache = stream(model, x, t, ctx, actions, poses, mem)
    assert full.shape == x.shape and full.abs().mean() > 0.1
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-4)
    stats = cache.stats()
    assert stats["total_tokens"] < stats["full_tokens"]  # the oldest frames are kept compressed


def test_memory_policies_change_the_output():
    model = tiny_model()
    frames = 1 + 2 * 5
    x, t, ctx, actions, poses = inputs(model, frames)
    outs = {}
    with torch.no_grad():
        for policy in ("full", "window", "compressed"):
            mem = MemoryConfig(policy=policy, window=3, capacity=64)
            outs[policy] = model(x, t, ctx, actions, poses, causal_visibility(frames, model.cfg.chunk, mem), mem)
    last = slice(-2, None)  # the last chunk is the one whose history differs
    assert (outs["full"][:, :, last] - outs["window"][:, :, last]).abs().max() > 1e-3
    assert (outs["compressed"][:, :, last] - outs["window"][:, :, last]).abs().max() > 1e-3
    # the first chunks see the same history under every policy
    torch.testing.assert_close(outs["full"][:, :, :5], outs["window"][:, :, :5])


def test_block_causal_does_not_look_ahead():
    model = tiny_model()
    mem = MemoryConfig(policy="full")
    frames = 7
    x, t, ctx, actions, poses = inputs(model, frames)
    vis = causal_visibility(frames, model.cfg.chunk, mem)
    with torch.no_grad():
        a = model(x, t, ctx, actions, poses, vis, mem)
        x2 = x.clone()
        x2[:, :, -2:] += 1.0  # change the last block only
        b = model(x2, t, ctx, actions, poses, vis, mem)
    torch.testing.assert_close(a[:, :, :-2], b[:, :, :-2])
    assert (a[:, :, -2:] - b[:, :, -2:]).abs().max() > 1e-3


def test_hybrid_forward_equals_streaming_of_its_last_block():
    """One noisy block after a compressed context = streaming with window 0 (all history compressed)."""
    model = tiny_model()
    mem = MemoryConfig(policy="compressed", window=0, capacity=64)
    frames = 1 + 2 * 4
    x, t, ctx, actions, poses = inputs(model, frames)
    t[:, :-2] = 0  # clean context
    with torch.no_grad():
        hybrid = model(x, t, ctx, actions, poses, hybrid_visibility(frames, model.cfg.chunk, 1, mem), mem)
        streamed, _ = stream(model, x, t, ctx, actions, poses, mem)
    torch.testing.assert_close(hybrid[:, :, -2:], streamed[:, :, -2:], atol=1e-5, rtol=1e-4)


def test_pose_reaches_keys_but_not_values():
    model = tiny_model()
    mem = MemoryConfig(policy="full")
    frames = 5
    x, t, ctx, actions, poses = inputs(model, frames)
    vis = causal_visibility(frames, model.cfg.chunk, mem)
    captured = []
    attn = model.blocks[0].attn1
    hooks = [attn.to_v.register_forward_hook(lambda m, i, o: captured.append(o.detach().clone()))]
    with torch.no_grad():
        a = model(x, t, ctx, actions, poses, vis, mem)
        poses2 = poses.clone()
        poses2[:, :5] += 1.0  # move the camera of the first (cached) latent frames
        b = model(x, t, ctx, actions, poses2, vis, mem)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(captured[0], captured[1])  # values of the first block untouched by the pose
    assert (a[:, :, -2:] - b[:, :, -2:]).abs().max() > 1e-4  # later frames attend differently to them


def test_action_changes_only_its_frames_and_later():
    model = tiny_model()
    mem = MemoryConfig(policy="full")
    frames = 5
    x, t, ctx, actions, poses = inputs(model, frames)
    vis = causal_visibility(frames, model.cfg.chunk, mem)
    with torch.no_grad():
        a = model(x, t, ctx, actions, poses, vis, mem)
        act2 = actions.clone()
        act2[:, -8:] = 0.0  # the last block's video frames
        b = model(x, t, ctx, act2, poses, vis, mem)
    torch.testing.assert_close(a[:, :, :-2], b[:, :, :-2])
    assert (a[:, :, -2:] - b[:, :, -2:]).abs().max() > 1e-4


def test_yarn_rescales_only_the_temporal_axis():
    from relickit.rope import Rope3D

    base = Rope3D(preset("tiny"))
    long = Rope3D(preset("tiny", yarn_factor=4.0))
    torch.testing.assert_close(base.inv_h, long.inv_h)
    ratio = long.inv_t / base.inv_t
    assert (ratio <= 1 + 1e-12).all() and (ratio >= 1 / 4.0 - 1e-12).all()
    assert (ratio[:-1] >= ratio[1:]).all()  # fast frequencies are kept more than slow ones
    assert ratio[-1] == pytest.approx(1 / 4.0)  # the slowest is fully interpolated
    assert long.scale > 1.0 == base.scale


def test_bad_input_is_named():
    model = tiny_model()
    x, t, ctx, actions, poses = inputs(model, 3)
    vis = bidirectional_visibility(3)
    with pytest.raises(ValueError, match="latents must be"):
        model(x[:, :, :, :8], t, ctx, actions, poses, vis)
    with pytest.raises(ValueError, match="13 entries"):
        model(x, t, ctx, actions[..., :12], poses, vis)
    with pytest.raises(ValueError, match="RoPE range"):
        model(torch.zeros(1, 16, 40, 12, 16), torch.zeros(1, 40), ctx, None, None, bidirectional_visibility(40))
    with pytest.raises(ValueError, match="NaN"):
        model(x * float("nan"), t, ctx, actions, poses, vis)
    with pytest.raises(ValueError, match="actions"):
        model(x, t, ctx, None, None, vis)


def test_checkpoint_roundtrip_and_refusal(tmp_path):
    model = tiny_model()
    path = model.save(tmp_path / "m.safetensors")
    again = WorldModel.load(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="another config"):
        WorldModel.load(path, expect=preset("tiny"))
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable"):
        WorldModel.load(tmp_path / "bad.safetensors")


def test_int8_continuation_checkpoint_loads_within_its_rounding(tmp_path):
    """save_int8 (the campaign's continuation format): every weight within half a quantization step of the fp32 one,
    a quarter of the fp32 file or less, the same config, and the same predictions to the rounding's size."""
    from relickit.checkpoint import INT8_BLOCK, save_int8

    model = tiny_model()
    path = model.save(tmp_path / "m.safetensors")
    small = save_int8(path, tmp_path / "m.int8.safetensors")
    assert small.stat().st_size < path.stat().st_size / 3.5
    again = WorldModel.load(small)
    assert again.cfg == model.cfg
    quantized = 0
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        if a.dim() >= 2 and a.numel() % INT8_BLOCK == 0:
            step = a.reshape(-1, INT8_BLOCK).abs().amax(1, keepdim=True) / 127
            assert ((a - b).reshape(-1, INT8_BLOCK).abs() <= step / 2 * 1.01 + 1e-8).all(), k
            quantized += a.numel()
        else:
            torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=k)
    assert quantized > 0.9 * sum(v.numel() for v in model.state_dict().values())
    x, t, _, actions, poses = inputs(model, 7)
    with torch.no_grad():
        want, got = (m.eval()(x, t, m.encode_text(["a grey corridor"]), actions, poses, bidirectional_visibility(7))
                     for m in (model, again))
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    with pytest.raises(ValueError, match="already quantized"):
        save_int8(small, tmp_path / "twice.safetensors")


def test_step_flops_counts_what_torch_counts():
    """The compute floor of the speed benchmark: step_flops equals torch's own FLOP count of a cached step."""
    from torch.utils.flop_counter import FlopCounterMode

    from relickit.model import step_flops

    model = tiny_model()
    model.backend = "math"  # plain matmuls, which the counter sees on every device
    x, t, ctx, actions, poses = inputs(model, 7)
    cache = model.new_cache(MemoryConfig(policy="compressed", window=1, capacity=64))
    with torch.no_grad():
        model.step(x[:, :, :1], t[:, :1], ctx, actions[:, :1], poses[:, :1], cache, write=True)
        model.step(x[:, :, 1:3], t[:, 1:3], ctx, actions[:, 1:9], poses[:, 1:9], cache, write=True)
        with FlopCounterMode(display=False) as counter:
            model.step(x[:, :, 3:5], t[:, 3:5], ctx, actions[:, 9:17], poses[:, 9:17], cache)
    assert cache.valid > model.cfg.tokens_per_frame  # window + compressed keys are counted
    assert step_flops(model.cfg, 2, cache.valid) == counter.get_total_flops()


def test_compiled_blocks_stream_like_eager():
    """compile_blocks compiles the two halves of every block (one graph per chunk shape, shared by all blocks)
    and streams the same numbers as eager."""
    import torch._dynamo

    model = tiny_model()
    mem = MemoryConfig(policy="compressed", window=2, capacity=64)
    frames = 1 + 2 * 3
    x, t, ctx, actions, poses = inputs(model, frames)
    with torch.no_grad():
        eager, _ = stream(model, x, t, ctx, actions, poses, mem)
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        compiled, _ = stream(model.compile_blocks(), x, t, ctx, actions, poses, mem)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 4  # 2 halves x (image frame, chunk)


def test_qk_norm_is_rmsnorm_computed_in_float32():
    """RMSNorm32 equals nn.RMSNorm in fp32 and, given bf16 input (autocast), runs fused in fp32 without warning."""
    torch.manual_seed(0)
    ours, ref = RMSNorm32(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ours(x), ref(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it cannot fuse a bf16 input with an fp32 weight
        y = ours(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref(x.bfloat16().float()), atol=2e-2, rtol=2e-2)


def test_the_velocity_skip_carries_the_input_through_a_narrow_model():
    """With sigma_data set, a model whose network outputs nothing still returns c_skip * x: at sigma 1 the noise it
    was given (what a DiT narrower than its patch cannot copy through itself), at sigma 0 minus the clean input."""
    from relickit.diffusion import velocity_preconditioning

    model = tiny_model(sigma_data=0.9)
    torch.nn.init.zeros_(model.proj_out.weight)
    torch.nn.init.zeros_(model.proj_out.bias)
    x, t, ctx, actions, poses = inputs(model, 3)
    t = torch.tensor([[0.0, 1000.0, 400.0]]).expand(x.shape[0], 3)
    with torch.no_grad():
        v = model(x, t, ctx, actions, poses, bidirectional_visibility(3))
    torch.testing.assert_close(v[:, :, 0], -x[:, :, 0])
    torch.testing.assert_close(v[:, :, 1], x[:, :, 1])
    skip, _ = velocity_preconditioning(torch.tensor(0.4), 0.9)
    torch.testing.assert_close(v[:, :, 2], skip * x[:, :, 2])
    assert tiny_model().cfg.sigma_data == 0.0  # off by default: Wan's velocity and the checkpoints before it
