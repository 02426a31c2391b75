"""Tokenizer training: the adversarial terms push each network the right way, the frame bank, continuing a run."""
from __future__ import annotations

import copy
import dataclasses
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from relickit.adversarial import Adversarial, AdversarialConfig, adversarial_terms, gradient_l1, high_pass
from relickit.dataset import load_episodes
from relickit.train import TrainConfig
from relickit.train_tokenizer import (FrameBank, SyntheticClips, TokenizerTrainConfig, to_memory_format,
                                      train_tokenizer, vae_loss)
from relickit.tutorial import sample_data
from relickit.vae import LAYOUTS, TinyDecoderConfig, Tokenizer, VAEConfig

SMALL = VAEConfig(height=16, width=24, base_dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                  tiny=TinyDecoderConfig(channels=(8, 8, 8, 8)))
ADV = AdversarialConfig(weight=0.5, start=3, channels=8, layers=2)


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_out = nn.Conv3d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(x)


def clip(seed: int, shape=(2, 3, 5, 32, 32)) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def grads(module: nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


def test_gradient_l1_knows_edges():
    x = clip(0)
    assert gradient_l1(x, x) == 0
    assert gradient_l1(x + 0.3, x) == pytest.approx(0.0, abs=1e-6)  # a brightness offset has the same edges
    flat = torch.zeros_like(x)
    assert gradient_l1(flat, x) > 0.5


def test_adversarial_terms_push_each_network_its_own_way():
    torch.manual_seed(0)
    pair = Adversarial(Generator(), ADV)
    real, inp = clip(1), clip(2)

    def run(step: int) -> tuple[torch.Tensor, dict]:
        pair.zero_grad()
        fake = pair(inp)
        rec = (fake - real).abs().mean()
        adv, logs = adversarial_terms(pair, fake, real, rec, pair.generator.conv_out.weight, step)
        (rec + adv).backward()
        return adv, logs

    adv, logs = run(step=2)  # before `start`: nothing, and the discriminator learns nothing
    assert adv == 0 and logs == {} and all(g.abs().sum() == 0 for g in grads(pair.disc))

    adv, logs = run(step=3)
    disc_grads, gen_grads = grads(pair.disc), grads(pair.generator)
    # the discriminator's gradient is that of its own hinge loss alone: the generator's term does not reach it
    pair.zero_grad()
    fake = pair(inp).detach()
    frames = lambda v: v.transpose(1, 2).flatten(0, 1)  # noqa: E731
    d_loss = torch.relu(1 - pair.disc(frames(real))).mean() + torch.relu(1 + pair.disc(frames(fake))).mean()
    d_loss.backward()
    for a, b in zip(disc_grads, grads(pair.disc)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(logs["d_loss"], d_loss.detach())
    # the generator's gradient is rec + w * g_loss, with the adaptive w = |grad rec| / |grad g| at the last layer,
    # clamped to max_adaptive
    pair.zero_grad()
    fake = pair(inp)
    rec = (fake - real).abs().mean()
    g_loss = -pair.disc(frames(fake)).mean()
    w_last = pair.generator.conv_out.weight
    g_rec, g_adv = (torch.autograd.grad(x, w_last, retain_graph=True)[0] for x in (rec, g_loss))
    weight = ADV.weight * (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(max=ADV.max_adaptive)
    torch.testing.assert_close(logs["adv_weight"], weight.detach())
    (rec + weight.detach() * g_loss).backward()
    for a, b in zip(gen_grads, grads(pair.generator)):
        torch.testing.assert_close(a, b)
    assert gen_grads[0].abs().sum() > 0


def test_adversarial_term_ramps_in_while_the_discriminator_learns_at_once():
    cfg = AdversarialConfig(weight=0.5, start=10, ramp=4, adaptive=False, channels=8, layers=2)
    assert [cfg.scale(s) for s in (9, 10, 11, 13, 100)] == [0.0, 0.125, 0.25, 0.5, 0.5]
    assert AdversarialConfig(weight=0.5, start=10).scale(10) == 0.5  # no ramp: full weight at once
    torch.manual_seed(0)
    pair = Adversarial(Generator(), cfg)
    real, fake = clip(1), pair(clip(2))
    rec = (fake - real).abs().mean()
    adv, logs = adversarial_terms(pair, fake, real, rec, pair.generator.conv_out.weight, step=10)
    torch.testing.assert_close(adv, 0.125 * logs["g_loss"] + logs["d_loss"])
    adv.backward()
    assert all(g.abs().sum() > 0 for g in grads(pair.disc))  # the discriminator learns from the first step
    with pytest.raises(ValueError, match="ramp >= 0"):
        AdversarialConfig(ramp=-1)


def test_texture_discriminator_cannot_move_brightness_or_colour():
    """With texture_sigma the generator's adversarial gradient sums to zero over every frame and channel (the
    discriminator sees frames minus their blur): it can add edges, never shift a frame's mean colour, which a
    whole-frame discriminator does. The high-pass keeps a frame's edges and removes a flat or slowly varying one."""
    torch.manual_seed(0)
    flat = torch.full((1, 3, 16, 16), 0.3)
    ramp = torch.linspace(-1, 1, 16).expand(1, 3, 16, 16)
    assert high_pass(flat, 1.0).abs().max() < 1e-6 and high_pass(ramp, 1.0)[..., 4:-4, 4:-4].abs().max() < 1e-5
    edges = clip(3)[:, :, 0]
    assert high_pass(edges, 1.0).abs().mean() > 0.5 * edges.abs().mean()
    per_frame_sums = {}
    for sigma in (0.0, 1.0):
        pair = Adversarial(Generator(), dataclasses.replace(ADV, texture_sigma=sigma))
        fake = clip(2).requires_grad_()
        g_loss = -pair.disc(fake.transpose(1, 2).flatten(0, 1)).mean()
        (grad,) = torch.autograd.grad(g_loss, fake)
        per_frame_sums[sigma] = grad.sum((-2, -1)).abs().max() / grad.abs().sum((-2, -1)).max()
    assert per_frame_sums[1.0] < 1e-5 < 1e-2 < per_frame_sums[0.0]
    with pytest.raises(ValueError, match="texture_sigma >= 0"):
        AdversarialConfig(texture_sigma=-1)


def test_frame_bank_windows_batches_and_mirror():
    vae = VAEConfig()
    bank = FrameBank(sample_data("train"), frames=17, vae=vae, hflip=True)
    episodes = [e for e in load_episodes(sample_data("train")) if len(e) >= 17]
    assert bank.pixels.shape == (sum(len(e) for e in episodes), 96, 128, 3) and bank.pixels.dtype == torch.uint8
    # every window lies inside one episode: the number of windows is sum(len - 16) minus those over teleports
    assert 0 < len(bank) <= sum(len(e) - 16 for e in episodes)
    bounds = np.cumsum([0] + [len(e) for e in episodes])
    starts = bank.starts.numpy()
    assert all(np.searchsorted(bounds, s, "right") == np.searchsorted(bounds, s + 16, "right") for s in starts)
    # item 0 is the first episode's first 17 frames
    first = torch.from_numpy(episodes[0].frames(0, 17)).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(bank[0]["frames"], first)
    # batches: a pure function of (seed, index); about half mirrored
    batches = bank.batches(8, seed=3)
    a, b = batches(5)["frames"], batches(5)["frames"]
    assert a.shape == (8, 17, 3, 96, 128) and torch.equal(a, b) and not torch.equal(a, batches(6)["frames"])
    plain = FrameBank(sample_data("train"), frames=17, vae=vae, hflip=False).batches(8, seed=3)(5)["frames"]
    mirrored = [not torch.equal(x, y) for x, y in zip(a, plain)]
    assert any(mirrored)
    for x, y, m in zip(a, plain, mirrored):
        torch.testing.assert_close(x, y.flip(-1) if m else y)


def test_frame_bank_mixes_clip_lengths_at_a_constant_frame_count():
    bank = FrameBank(sample_data("train"), frames=33, vae=VAEConfig())
    batches = bank.batches(4, seed=0, lengths=(9, 33))
    shapes = {tuple(batches(i)["frames"].shape[:2]) for i in range(12)}
    assert shapes == {(4, 9), (1, 33)}  # 4 x 9 = 36 frames, 1 x 33 = 33 frames: about the same work per step
    with pytest.raises(ValueError, match="exceed"):
        bank.batches(4, seed=0, lengths=(9, 65))


def test_layouts_build_and_match_their_shapes():
    for name, cfg in LAYOUTS.items():
        z = Tokenizer(cfg).encode(torch.zeros(1, 3, 5, 96, 128))
        assert z.shape == (1, cfg.z_dim, 2, *cfg.latent_size), name
    assert LAYOUTS["f4c16"].latent_size == (24, 32) and LAYOUTS["f8c48"].z_dim == 48
    assert LAYOUTS["f4c32"] == dataclasses.replace(LAYOUTS["f4c16"], z_dim=32)  # f4c16 with twice the channels


def test_adversarial_training_continues_from_a_checkpoint(tmp_path):
    """Both stages train with their discriminators on, and `init` continues from a saved tokenizer."""
    torch.manual_seed(0)
    quick = TrainConfig(steps=2, batch_size=1, log_every=1, lr=1e-3)
    adv = AdversarialConfig(weight=0.5, start=1, channels=8, layers=2)
    cfg = TokenizerTrainConfig(vae=SMALL, frames=5, stats_batches=2, vae_train=quick, tiny_train=quick,
                               vae_adv=adv, tiny_adv=adv, run_dir=str(tmp_path / "a"),
                               out=str(tmp_path / "a.safetensors"))
    data = SyntheticClips(size=4, frames=5, height=SMALL.height, width=SMALL.width)
    first = train_tokenizer(cfg, data)
    assert "d_loss" not in first.vae.log[0] and {"d_loss", "g_loss", "adv_weight"} <= set(first.vae.log[1])
    assert {"l1_truth", "l1_teacher", "grad", "d_loss"} <= set(first.tiny.log[1])
    zero = dataclasses.replace(quick, steps=0)
    again = train_tokenizer(dataclasses.replace(cfg, run_dir=str(tmp_path / "b"), out="", vae_train=zero,
                                                tiny_train=zero), data, init=cfg.out)
    saved = Tokenizer.load(cfg.out)
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(again.tokenizer.state_dict()[k], v, msg=k)
    export = tmp_path / "play.safetensors"
    saved.save(export, wan_decoder=False)
    with pytest.raises(ValueError, match="without the Wan decoder"):
        train_tokenizer(dataclasses.replace(cfg, run_dir=str(tmp_path / "c"), out=""), data, init=export)


def test_channels_last_training_computes_what_contiguous_training_does(tmp_path):
    """In channels-last memory the VAE's loss and every gradient (discriminator's included, before and after the
    adversarial terms start) are those of contiguous memory, and a channels-last run saves weights that load."""
    torch.manual_seed(0)
    cfg = TokenizerTrainConfig(vae=SMALL, frames=5, vae_adv=ADV)
    pair = Adversarial(Tokenizer(SMALL), ADV)
    twin = to_memory_format(copy.deepcopy(pair), True)
    conv = twin.generator.vae.decoder.conv_out.weight
    assert conv.dim() == 5 and conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    batch = {"frames": clip(1, (2, 5, 3, SMALL.height, SMALL.width))}
    for step in (0, ADV.start + 1):
        out = []
        for model, channels_last in ((pair, False), (twin, True)):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(step)  # the posterior sample's noise
            loss, _ = vae_loss(dataclasses.replace(cfg, channels_last=channels_last))(model, batch, step)
            loss.backward()
            out.append((loss.detach(), grads(model)))
        torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-5, atol=1e-6)
        for g_last, g in zip(out[1][1], out[0][1]):
            torch.testing.assert_close(g_last, g, rtol=1e-4, atol=1e-6)

    quick = TrainConfig(steps=2, batch_size=1, log_every=1, lr=1e-3)
    data = SyntheticClips(size=4, frames=5, height=SMALL.height, width=SMALL.width)

    def run(channels_last: bool):
        torch.manual_seed(0)  # the same initial weights
        return train_tokenizer(dataclasses.replace(
            cfg, stats_batches=2, vae_train=quick, tiny_train=quick, channels_last=channels_last,
            run_dir=str(tmp_path / f"run{channels_last}"), out=str(tmp_path / f"tok{channels_last}.safetensors")), data)

    runs = [run(False), run(True)]
    assert runs[1].vae.log[0]["loss"] == pytest.approx(runs[0].vae.log[0]["loss"], rel=1e-5)
    saved = Tokenizer.load(tmp_path / "tokTrue.safetensors")
    assert all(p.is_contiguous() for p in runs[1].tokenizer.parameters())  # handed back as contiguous
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(v, runs[1].tokenizer.state_dict()[k], rtol=0, atol=0, msg=k)


def test_decoder_only_keeps_the_latents_a_world_model_reads(tmp_path):
    """Fine-tuning the decoders moves the Wan and tiny decoders but not the encoder or the latent stats: the
    normalised latents of any clip are bit-identical before and after."""
    torch.manual_seed(0)
    quick = TrainConfig(steps=2, batch_size=1, log_every=1, lr=1e-3)
    adv = AdversarialConfig(weight=0.5, start=1, channels=8, layers=2)
    data = SyntheticClips(size=4, frames=5, height=SMALL.height, width=SMALL.width)
    start = Tokenizer(SMALL)
    start.set_latent_stats(torch.randn(SMALL.z_dim), torch.rand(SMALL.z_dim) + 0.5)
    init = tmp_path / "start.safetensors"
    start.save(init)
    cfg = TokenizerTrainConfig(vae=SMALL, frames=5, stats_batches=2, vae_train=quick, tiny_train=quick,
                               vae_adv=adv, tiny_adv=adv, run_dir=str(tmp_path / "ft"), out="", decoder_only=True)
    tuned = train_tokenizer(cfg, data, init=init).tokenizer
    before, after = start.state_dict(), tuned.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("vae.decoder.", "vae.post_quant_conv.", "tiny.")) for k in moved), moved
    assert any(k.startswith("vae.decoder.") for k in moved) and any(k.startswith("tiny.") for k in moved)
    clip_ = torch.rand(1, 3, 5, SMALL.height, SMALL.width) * 2 - 1
    torch.testing.assert_close(tuned.encode(clip_), start.encode(clip_), rtol=0, atol=0)
    with pytest.raises(ValueError, match="pass init"):
        train_tokenizer(cfg, data)


def test_newest_tokenizer_brings_home_what_a_run_reached(tmp_path):
    """What a GPU call brings home before a machine can go back: after the run, exactly the tokenizer it saved; with
    the run stopped in the tiny stage, the tiny stage's newest checkpoint on the VAE stage's tokenizer; in the VAE
    stage of a decoder-only run, the VAE stage's checkpoint (the init's latents); of a full run there, nothing."""
    from relickit.train_tokenizer import STAGE_ONE, newest_tokenizer

    torch.manual_seed(0)
    quick = TrainConfig(steps=2, batch_size=1, log_every=1, lr=1e-3, ckpt_every=1, ema_decay=0.5)
    data = SyntheticClips(size=4, frames=5, height=SMALL.height, width=SMALL.width)
    init = tmp_path / "start.safetensors"
    Tokenizer(SMALL).save(init)
    run = tmp_path / "ft"
    cfg = TokenizerTrainConfig(vae=SMALL, frames=5, stats_batches=2, vae_train=quick, tiny_train=quick, vae_adv=ADV,
                               tiny_adv=ADV, run_dir=str(run), out=str(tmp_path / "out.safetensors"),
                               decoder_only=True)
    assert newest_tokenizer(run) is None
    train_tokenizer(cfg, data, init=init)
    saved, stage_one = Tokenizer.load(cfg.out).state_dict(), Tokenizer.load(run / STAGE_ONE).state_dict()
    tok, source = newest_tokenizer(run)
    assert source.startswith(str(run / "tiny" / "checkpoints")) and source.endswith("ema.safetensors")
    for k, v in tok.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(saved[k], stage_one[k]) for k in saved if k.startswith("tiny."))

    shutil.rmtree(run / "tiny")  # the tiny stage had not checkpointed yet
    tok, source = newest_tokenizer(run)
    assert source == str(run / STAGE_ONE) and all(torch.equal(v, stage_one[k]) for k, v in tok.state_dict().items())

    (run / STAGE_ONE).unlink()  # the VAE stage running: a decoder-only run's checkpoint is a whole tokenizer
    tok, source = newest_tokenizer(run)
    assert source.startswith(str(run / "vae" / "checkpoints"))
    for k, v in tok.state_dict().items():
        if not k.startswith("tiny."):
            torch.testing.assert_close(v, stage_one[k], rtol=0, atol=0, msg=k)
    config = run / "config.json"
    config.write_text(config.read_text().replace('"decoder_only": true', '"decoder_only": false'))
    assert newest_tokenizer(run) is None  # a full run's encoder moved before its latent stats were measured


def test_the_cli_widens_a_layouts_vae_cools_both_stages_and_refuses_a_narrower_init(tmp_path, monkeypatch, capsys):
    from relickit.train_tokenizer import config_from_cli

    monkeypatch.setenv("RELICKIT_SMOKE", "0")
    cfg, _ = config_from_cli(["--data", str(sample_data("train")), "--layout", "f4c16", "--base-dim", "64",
                              "--res-blocks", "2", "--vae-lr", "1e-4", "--cooldown", "0.3", "--tiny-minutes", "5"])
    assert cfg.vae == dataclasses.replace(LAYOUTS["f4c16"], base_dim=64, num_res_blocks=2)  # latents, tiny decoder kept
    assert cfg.vae_train.lr == 1e-4
    assert cfg.vae_train.cooldown == cfg.tiny_train.cooldown == 0.3 and cfg.tiny_train.time_limit_s == 300
    assert config_from_cli(["--data", "d"])[0].tiny_train.cooldown == TokenizerTrainConfig().tiny_train.cooldown
    textured, _ = config_from_cli(["--data", "d", "--gan-weight", "0.1", "--texture-sigma", "1"])  # run 10a's
    assert all((adv.weight, adv.texture_sigma) == (0.1, 1.0) for adv in (textured.vae_adv, textured.tiny_adv))
    assert config_from_cli(["--data", "d", "--layout", "f4c16"])[0].vae == LAYOUTS["f4c16"]
    with pytest.raises(SystemExit):
        config_from_cli(["--data", "d", "--res-blocks", "0"])
    assert "--res-blocks must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        config_from_cli(["--data", "d", "--cooldown", "1.5"])
    assert "--cooldown is a fraction of each stage" in capsys.readouterr().err
    Tokenizer(SMALL).save(tmp_path / "narrow.safetensors")
    wide = TokenizerTrainConfig(vae=dataclasses.replace(SMALL, base_dim=16), run_dir=str(tmp_path / "w"), out="")
    with pytest.raises(ValueError, match=r"another config.*base_dim"):
        train_tokenizer(wide, SyntheticClips(size=2, frames=5, height=SMALL.height, width=SMALL.width),
                        init=tmp_path / "narrow.safetensors")


def test_init_from_a_narrower_latent_widens_it_and_trains(tmp_path):
    """`init` of the same layout with fewer latent channels (f4c16 for an f4c32 run) starts from the widened
    tokenizer (relickit.widen): what the narrow one reconstructs, with the encoder training; decoder-only refuses."""
    torch.manual_seed(0)
    narrow = Tokenizer(SMALL).eval()
    narrow.save(tmp_path / "narrow.safetensors")
    wide_vae = dataclasses.replace(SMALL, z_dim=SMALL.z_dim * 2)
    data = SyntheticClips(size=2, frames=5, height=SMALL.height, width=SMALL.width)
    zero = TrainConfig(steps=0, batch_size=1)
    cfg = TokenizerTrainConfig(vae=wide_vae, frames=5, stats_batches=1, vae_train=zero, tiny_train=zero,
                               run_dir=str(tmp_path / "w"), out="")
    wide = train_tokenizer(cfg, data, init=tmp_path / "narrow.safetensors").tokenizer
    assert wide.cfg == wide_vae
    v = data[0]["frames"][None].transpose(1, 2)
    # the latent stats are re-measured after the VAE stage (the tiny decoder, which reads normalised latents, trains
    # after it); through the Wan decoder, which reads raw ones, the pictures are the narrow tokenizer's
    torch.testing.assert_close(wide.decode(wide.encode(v)), narrow.decode(narrow.encode(v)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="leave out --decoder-only"):
        train_tokenizer(dataclasses.replace(cfg, decoder_only=True, run_dir=str(tmp_path / "d")), data,
                        init=tmp_path / "narrow.safetensors")
