"""The tokenizer: streaming equals whole-clip coding, checkpoints, input checks, the training pipeline."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from relickit.clip_pass import encode_clip
from relickit.config import preset
from relickit.train import TrainConfig
from relickit.train_tokenizer import SyntheticClips, TokenizerTrainConfig, train_tokenizer
from relickit.vae import (StreamingDecoder, StreamingEncoder, TinyDecoderConfig, Tokenizer, VAEConfig)
from relickit.widen import widen_latent

SMALL = VAEConfig(height=16, width=24, base_dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                  tiny=TinyDecoderConfig(channels=(8, 8, 8, 8)))
TOL = dict(rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    torch.manual_seed(0)
    t = Tokenizer(SMALL).eval()
    t.set_latent_stats(torch.linspace(-0.5, 0.5, SMALL.z_dim), torch.linspace(0.5, 2.0, SMALL.z_dim))
    return t


def video(frames: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(frames)
    return torch.rand(batch, 3, frames, SMALL.height, SMALL.width, generator=g) * 2 - 1


def latents(n: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    h, w = SMALL.latent_size
    return torch.randn(batch, SMALL.z_dim, n, h, w, generator=g)


def test_encode_shapes_and_matches_diffusers(tok):
    v = video(9)
    z = tok.encode(v)
    assert z.shape == (2, SMALL.z_dim, 3, *SMALL.latent_size)
    with torch.no_grad():
        ref = tok.normalize(tok.vae.encode(v).latent_dist.mode())
    torch.testing.assert_close(z, ref, **TOL)


def test_encode_frames_takes_a_clips_frames_as_stored(tok):
    v = video(9)
    torch.testing.assert_close(tok.encode_frames(v[1].transpose(0, 1)), tok.encode(v[1:]), **TOL)
    with pytest.raises(ValueError, match="call encode"):
        tok.encode_frames(v)


def test_streaming_encode_equals_whole(tok):
    v = video(25)
    whole = tok.encode(v)
    enc = StreamingEncoder(tok)
    chunks = torch.cat([enc(v[:, :, :1 + 12]), enc(v[:, :, 13:25])], 2)
    torch.testing.assert_close(chunks, whole, **TOL)
    enc.reset()
    torch.testing.assert_close(enc(v[:, :, :5]), whole[:, :, :2], **TOL)


def test_whole_clip_training_pass_equals_streaming():
    """relickit.clip_pass (one conv per layer over the whole clip) computes what the per-frame streaming loop does,
    for every temporal layout the configs allow; float64, so the comparison is exact up to summation order."""
    from relickit.clip_pass import decode_clip, encode_clip

    layouts = [((1, 2, 2, 2), (False, True, True)), ((1, 2, 2, 2), (True, True, False)),
               ((1, 2, 2), (True, True)), ((1, 2, 2), (True, False))]
    for mult, down in layouts:
        torch.manual_seed(1)
        tiny = TinyDecoderConfig(channels=(8,) * len(mult), time_up=down)
        cfg = dataclasses.replace(SMALL, dim_mult=mult, temporal_downsample=down, num_res_blocks=2, tiny=tiny)
        t = Tokenizer(cfg).double().eval()
        v = video(1 + 2 * cfg.temporal_down).double()
        with torch.no_grad():
            mean, logvar = encode_clip(t.vae, v)
            ref_mean, ref_logvar = t._encode_frames(t.new_encode_cache(), v)
            torch.testing.assert_close(mean, ref_mean, rtol=0, atol=1e-10)
            torch.testing.assert_close(logvar, ref_logvar, rtol=0, atol=1e-10)
            frames = decode_clip(t.vae, mean)
            assert frames.shape == v.shape
            torch.testing.assert_close(frames, t._decode_frames(t.new_decode_cache(), mean), rtol=0, atol=1e-10)
            one = v[:, :, :1]  # a single frame: no temporal layer runs
            torch.testing.assert_close(encode_clip(t.vae, one)[0], t._encode_frames(t.new_encode_cache(), one)[0],
                                       rtol=0, atol=1e-10)


def test_whole_clip_pass_has_the_streaming_gradient(tok):
    """Training through the whole-clip pass back-propagates what the streaming loop would."""
    from relickit.clip_pass import decode_clip, encode_clip

    t = Tokenizer(SMALL).double()
    v = video(9).double()

    def grads(encode, decode):
        t.zero_grad()
        mean, _ = encode(v)
        decode(mean).square().mean().backward()
        return [p.grad.clone() for p in t.vae.parameters() if p.grad is not None]

    whole = grads(lambda x: encode_clip(t.vae, x), lambda z: decode_clip(t.vae, z))
    stream = grads(lambda x: t._encode_frames(t.new_encode_cache(), x),
                   lambda z: t._decode_frames(t.new_decode_cache(), z))
    assert len(whole) == len(stream) > 10
    for a, b in zip(whole, stream):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_streaming_decode_equals_whole(tok):
    z = latents(7)
    whole = tok.decode(z)
    assert whole.shape == (2, 3, 25, SMALL.height, SMALL.width)
    with torch.no_grad():
        ref = tok.vae.decode(tok.denormalize(z)).sample  # diffusers' own one-shot decode
    torch.testing.assert_close(whole, ref, **TOL)
    dec = StreamingDecoder(tok)
    chunks = [dec(z[:, :, :1]), dec(z[:, :, 1:4]), dec(z[:, :, 4:7])]
    assert [c.shape[2] for c in chunks] == [1, 12, 12]
    torch.testing.assert_close(torch.cat(chunks, 2), whole, **TOL)


def test_tiny_streaming_decode_equals_whole(tok):
    z = latents(7)
    whole = tok.decode_tiny(z)
    assert whole.shape == (2, 3, 25, SMALL.height, SMALL.width)
    state = tok.tiny.new_state()
    chunks = [tok.decode_tiny_stream(state, z[:, :, s:e]) for s, e in [(0, 1), (1, 4), (4, 7)]]
    assert [c.shape[2] for c in chunks] == [1, 12, 12]
    torch.testing.assert_close(torch.cat(chunks, 2), whole, **TOL)
    dec = StreamingDecoder(tok, tiny=True)
    torch.testing.assert_close(torch.cat([dec(z[:, :, :4]), dec(z[:, :, 4:])], 2), whole, **TOL)


def test_save_load_roundtrip_and_refusal(tok, tmp_path):
    path = tmp_path / "tok.safetensors"
    tok.save(path)
    back = Tokenizer.load(path, expect=SMALL)
    assert back.cfg == SMALL
    for k, v in tok.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    z = latents(2)
    torch.testing.assert_close(back.decode_tiny(z), tok.decode_tiny(z), rtol=0, atol=0)
    other = dataclasses.replace(SMALL, base_dim=16)
    with pytest.raises(ValueError, match="base_dim"):
        Tokenizer.load(path, expect=other)


@pytest.mark.parametrize("make, match", [
    (lambda: video(9)[:, :, :, :8], "16x24"),
    (lambda: video(8), "1 \\+ 4k"),
    (lambda: video(9).double(), "dtype"),
    (lambda: ((video(9) + 1) * 127.5).to(torch.uint8), "uint8"),
    (lambda: video(9).index_fill(2, torch.tensor([3]), float("nan")), "NaN"),
    (lambda: (video(9) + 1) * 127.5, "\\[-1, 1\\]"),
    (lambda: video(9).transpose(1, 2), "3 RGB channels"),
    (lambda: video(9)[0], "5-D"),
])
def test_bad_video_is_refused(tok, make, match):
    with pytest.raises(ValueError, match=match):
        tok.encode(make())


def test_split_half_checkpoint_joins_its_wan_decoder(tok, tmp_path):
    from relickit.vae import wan_decoder_part

    path = tmp_path / "tok.safetensors"
    tok.save(path, split=True, half=True)
    assert wan_decoder_part(path).exists()
    back = Tokenizer.load(path, expect=SMALL)
    assert back.has_wan_decoder and back.dtype == torch.float32
    for k, v in tok.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v.half().float(), msg=k)
    wan_decoder_part(path).unlink()  # without its part file it is a play export
    play = Tokenizer.load(path)
    assert not play.has_wan_decoder
    torch.testing.assert_close(play.decode_tiny(latents(4)), back.decode_tiny(latents(4)))


def test_a_link_to_a_play_export_joins_the_wan_decoder_beside_the_link(tok, tmp_path):
    """The campaign's state (data/weights/tokenizer): a link to the shipped play export, named like a split
    checkpoint, with the trained Wan decoder part beside the link, loads as the whole tokenizer."""
    from relickit.vae import wan_decoder_part

    whole = tmp_path / "whole" / "tok.safetensors"
    whole.parent.mkdir()
    tok.save(whole, split=True, half=True)
    play = tmp_path / "assets" / "tokenizer.safetensors"
    play.parent.mkdir()
    Tokenizer.load(whole).save(play, wan_decoder=False, half=True)
    assert not Tokenizer.load(play).has_wan_decoder
    state = tmp_path / "state"
    state.mkdir()
    (state / "tok.safetensors").symlink_to(Path("..") / "assets" / "tokenizer.safetensors")
    wan_decoder_part(whole).rename(wan_decoder_part(state / "tok.safetensors"))
    joined = Tokenizer.load(state / "tok.safetensors", expect=SMALL)
    assert joined.has_wan_decoder
    for k, v in tok.state_dict().items():
        torch.testing.assert_close(joined.state_dict()[k], v.half().float(), msg=k)
    other = dataclasses.replace(SMALL, base_dim=SMALL.base_dim * 2)
    Tokenizer(other).save(tmp_path / "other.safetensors", split=True)
    wan_decoder_part(tmp_path / "other.safetensors").replace(wan_decoder_part(state / "tok.safetensors"))
    with pytest.raises(ValueError, match="another config"):
        Tokenizer.load(state / "tok.safetensors")


def test_bad_latents_and_chunks_are_refused(tok):
    with pytest.raises(ValueError, match="latents must be"):
        tok.decode(latents(2)[:, :8])
    with pytest.raises(ValueError, match="NaN"):
        tok.decode_tiny(latents(2) * float("nan"))
    enc = StreamingEncoder(tok)
    enc(video(5))
    with pytest.raises(ValueError, match="multiple of 4"):
        enc(video(5))


def test_config_checks():
    with pytest.raises(ValueError, match="multiple"):
        VAEConfig(height=100)
    with pytest.raises(ValueError, match="time_up"):
        VAEConfig(tiny=TinyDecoderConfig(time_up=(True, False, False)))
    cfg = VAEConfig.for_model(preset("tiny"))
    assert (cfg.height, cfg.width, cfg.z_dim, cfg.spatial_down, cfg.temporal_down) == (96, 128, 16, 8, 4)


def test_training_pipeline_runs_and_learns_stats(tmp_path):
    torch.manual_seed(0)
    quick = TrainConfig(steps=2, batch_size=1, log_every=1, lr=1e-3)
    cfg = TokenizerTrainConfig(vae=SMALL, frames=5, stats_batches=2, vae_train=quick, tiny_train=quick,
                               run_dir=str(tmp_path / "run"), out=str(tmp_path / "tok.safetensors"))
    data = SyntheticClips(size=4, frames=5, height=SMALL.height, width=SMALL.width)
    runs = train_tokenizer(cfg, data)
    assert [r["step"] for r in runs.vae.log] == [1, 2] and {"l1", "mse", "kl"} <= set(runs.vae.log[0])
    assert "l1_teacher" in runs.tiny.log[0]
    tok = Tokenizer.load(cfg.out, expect=SMALL)
    assert not torch.equal(tok.latents_std, torch.ones(SMALL.z_dim))  # statistics were measured and saved
    z = tok.encode(data[0]["frames"].transpose(0, 1)[None])
    assert z.shape == (1, SMALL.z_dim, 2, *SMALL.latent_size)
    # resume=True on finished runs is a no-op that returns the same tokenizer
    again = train_tokenizer(dataclasses.replace(cfg, out=""), data, resume=True)
    for k, v in again.tokenizer.state_dict().items():
        assert torch.equal(v, tok.state_dict()[k]), k


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The shapes here are tiny: one thread beats two, and keeps the file fast on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_campaign_tokenizer_in_int8_loads_whole_and_decodes_as_the_fp16_one(tok, tmp_path):
    """The campaign's state keeps both parts of the tokenizer in blockwise int8 (save_int8 each part): they join
    into the whole tokenizer, and its latents and pictures stay within what int8 rounding moves."""
    from relickit.checkpoint import save_int8
    from relickit.vae import wan_decoder_part

    whole = tmp_path / "fp16" / "tok.safetensors"
    whole.parent.mkdir()
    tok.save(whole, split=True, half=True)
    state = tmp_path / "int8" / "tok.safetensors"
    state.parent.mkdir()
    save_int8(whole, state)
    save_int8(wan_decoder_part(whole), wan_decoder_part(state))
    before, after = Tokenizer.load(whole).eval(), Tokenizer.load(state, expect=SMALL).eval()
    assert after.has_wan_decoder and state.stat().st_size < 0.6 * whole.stat().st_size
    with torch.no_grad():
        x = video(5)
        a, b = before.encode(x), after.encode(x)
        assert (a - b).pow(2).mean().sqrt() < 0.05 * a.pow(2).mean().sqrt()
        z = latents(4)
        for decode in (Tokenizer.decode_tiny, Tokenizer.decode):
            d0, d1 = decode(before, z), decode(after, z)
            assert (d0 - d1).abs().mean() < 0.05 * d0.abs().mean()


def test_widened_latent_decodes_what_the_narrow_one_does_and_trains_its_new_channels(tok):
    """widen_latent (f4c16 -> f4c32's kind of change): the first channels are the narrow tokenizer's latents, the new
    ones zero with the old ones' noise (not noise at the prior), the decoders read them through random weights, so
    the widened tokenizer decodes what the narrow one does and a reconstruction loss reaches the encoder's new rows
    at the first step (run 10b's start, zero on the decoders' side, gave them no gradient: a saddle)."""
    wide = widen_latent(tok, SMALL.z_dim + 8).eval()
    assert wide.cfg == dataclasses.replace(SMALL, z_dim=SMALL.z_dim + 8)
    v = video(9)
    z = wide.encode(v)
    torch.testing.assert_close(z[:, :SMALL.z_dim], tok.encode(v), **TOL)
    assert (z[:, SMALL.z_dim:] == 0).all()
    _, logvar = encode_clip(wide.vae, v)  # raw posterior: the new channels with the old ones' noise
    torch.testing.assert_close(logvar[:, SMALL.z_dim:], logvar[:, torch.arange(8) % SMALL.z_dim], **TOL)
    torch.testing.assert_close(wide.decode(z), tok.decode(z[:, :SMALL.z_dim]), **TOL)
    torch.testing.assert_close(wide.decode_tiny(z), tok.decode_tiny(z[:, :SMALL.z_dim]), **TOL)
    noise = torch.randn_like(z)  # the decoders do read the new channels, as strongly as the old ones
    for conv in (wide.vae.decoder.conv_in, wide.tiny.conv_in):
        w = conv.weight
        assert 0.5 < w[:, SMALL.z_dim:].std() / w[:, :SMALL.z_dim].std() < 2
    assert not torch.allclose(wide.decode(noise), tok.decode(noise[:, :SMALL.z_dim]), **TOL)

    wide.train().requires_grad_(True)
    recon, _, _ = wide(v, sample=False)
    (recon - v).abs().mean().backward()
    new_mean_rows = wide.vae.quant_conv.weight.grad[SMALL.z_dim:SMALL.z_dim + 8]
    assert new_mean_rows.abs().sum() > 0  # the encoder learns the new channels from the first step
    with pytest.raises(ValueError, match="adds channels"):
        widen_latent(tok, SMALL.z_dim)
