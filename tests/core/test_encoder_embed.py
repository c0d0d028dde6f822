import dataclasses
import json

import numpy as np
import pytest
import torch

from core.embed import EmbedConfig, embed, embed_tensor, psnr
from core.encoder import Encoder, EncoderConfig
from core.perceptual import PerceptualLoss
from core.train.encoder import EncoderTrainConfig, EncoderTrainer, random_w_plus


@pytest.fixture
def tiny_encoder(tiny_generator):
    torch.manual_seed(0)
    g = tiny_generator
    e = Encoder(EncoderConfig(resolution=16, n_latent=g.n_latent, w_dim=32, base_channels=8, max_channels=16,
                              pyramid_channels=16))  # fmt: skip
    e.w_avg.copy_(g.w_avg)
    return e.eval()


def test_latent_groups_cover_every_latent_once():
    for res, n in [(16, 6), (64, 10), (256, 14), (1024, 18)]:
        groups = EncoderConfig(resolution=res, n_latent=n, w_dim=8).latent_groups()
        assert sorted(i for grp in groups for i in grp) == list(range(n))


def test_encoder_shapes_and_start_near_average(tiny_encoder, tiny_generator):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    w = tiny_encoder(x)
    assert w.shape == (2, tiny_generator.n_latent, 32)
    assert (w - tiny_generator.w_avg).abs().mean() < tiny_generator.w_avg.abs().mean() + 1.0
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        tiny_encoder(torch.zeros(1, 3, 32, 32))


def test_embedding_optimisation_improves_on_the_encoder(tiny_generator, tiny_encoder):
    g = tiny_generator
    with torch.no_grad():
        target = g(g.sample_w_plus(11)).image
    cfg = EmbedConfig(steps=40, lr=0.05)
    res = embed_tensor(g, tiny_encoder, target, cfg, PerceptualLoss())
    assert res.w_plus.shape == (1, g.n_latent, 32)
    assert min(res.losses) < res.losses[0]
    assert res.psnr >= res.psnr_encoder
    assert res.losses[res.best_step] == min(res.losses)
    assert res.perceptual_backend


def test_early_stop_and_zero_steps(tiny_generator, tiny_encoder):
    target = torch.zeros(1, 3, 16, 16)
    r0 = embed_tensor(tiny_generator, tiny_encoder, target, EmbedConfig(steps=0))
    assert r0.losses == [] and r0.psnr == r0.psnr_encoder
    r = embed_tensor(tiny_generator, tiny_encoder, target, EmbedConfig(steps=50, lr=5.0, early_stop_patience=2))
    assert len(r.losses) < 50


def test_embed_any_image_returns_crop_box(tiny_generator, tiny_encoder):
    photo = (np.random.default_rng(0).random((40, 70, 3)) * 255).astype(np.uint8)
    r = embed(tiny_generator, tiny_encoder, photo, EmbedConfig(steps=2))
    assert r.crop is not None and (r.crop.left, r.crop.top, r.crop.size) == (15, 0, 40)
    assert r.target.shape == (1, 3, 16, 16)


def test_psnr():
    a = torch.zeros(1, 3, 4, 4)
    assert psnr(a, a) == float("inf")
    assert abs(psnr(a, a + 0.2) - 10 * np.log10(4 / 0.04)) < 1e-4


def test_random_w_plus_mixes_layers(tiny_generator):
    w = random_w_plus(tiny_generator, 8, 1.0, torch.Generator().manual_seed(0))
    assert w.shape == (8, tiny_generator.n_latent, 32)
    assert any(not torch.equal(w[i, 0], w[i, -1]) for i in range(8))


def test_encoder_training_steps_resume_and_export(tiny_generator, tmp_path):
    from core.checkpoint import save_generator
    from core.editgan import EditGAN

    cfg = EncoderTrainConfig(iterations=3, batch_size=2, base_channels=8, max_channels=16, pyramid_channels=16,
                             ckpt_every=3, log_every=1)  # fmt: skip
    t = EncoderTrainer(tiny_generator, cfg, tmp_path / "run")
    assert t.fit(progress=False) == 3
    assert all(np.isfinite(r["loss"]) for r in t.log)
    t2 = EncoderTrainer(tiny_generator, EncoderTrainConfig(**{**cfg.to_dict(), "iterations": 4}), tmp_path / "run")
    assert t2.step == 3 and t2.fit(progress=False) == 4
    save_generator(tiny_generator, tmp_path / "model")
    t2.export(tmp_path / "model")
    cfg_json = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg_json["encoder"]["n_latent"] == tiny_generator.n_latent
    m = EditGAN.load(tmp_path / "model", require=("encoder",))
    assert m.encoder is not None and m.branch is None
    with pytest.raises(ValueError, match="no branch"):
        EditGAN.load(tmp_path / "model", require=("branch",))


def test_new_generator_retires_the_parts_trained_on_the_old_one(tiny_generator, tmp_path):
    from core.checkpoint import save_generator
    from core.editgan import EditGAN

    cfg = EncoderTrainConfig(iterations=1, batch_size=2, base_channels=8, max_channels=16, pyramid_channels=16)
    t = EncoderTrainer(tiny_generator, cfg, tmp_path / "run")
    t.fit(progress=False)
    old = save_generator(tiny_generator, tmp_path / "model")
    t.export(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["encoder_training"]["generator_model_id"] == old
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "model" / "encoder.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}  # halves the file
    assert all(p.dtype == torch.float32 for p in EditGAN.load(tmp_path / "model").encoder.parameters())
    # a hand-edited folder that pairs the encoder with another generator is refused, naming both ids
    cfg_path = tmp_path / "model" / "config.json"
    cfg_json = json.loads(cfg_path.read_text())
    cfg_json["encoder_training"]["generator_model_id"] = "0123456789abcdef"
    cfg_path.write_text(json.dumps(cfg_json))
    with pytest.raises(ValueError, match="encoder was trained for generator 0123456789abcdef"):
        EditGAN.load(tmp_path / "model")
    # retraining the generator sets the old encoder aside instead of silently keeping it
    with torch.no_grad():
        tiny_generator.style[1].weight.add_(0.5)
    new = save_generator(tiny_generator, tmp_path / "model")
    assert new != old
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert "encoder.safetensors" not in files and f"encoder.for-{old}.safetensors" in files
    m = EditGAN.load(tmp_path / "model")
    assert m.model_id == new and m.encoder is None


def test_pixel_weight_steers_the_l2_term(tiny_generator, tiny_encoder):
    g = tiny_generator
    with torch.no_grad():
        target = g(g.sample_w_plus(12)).image
    cfg = EmbedConfig(steps=5, lr=0.05, w_perceptual=0.0, w_encoder=0.0)
    plain = embed_tensor(g, tiny_encoder, target, cfg)
    ones = embed_tensor(g, tiny_encoder, target, cfg, pixel_weight=torch.ones(1, 1, 16, 16))
    assert ones.losses == pytest.approx(plain.losses)
    half = torch.zeros(1, 1, 16, 16)
    half[..., :8, :] = 2.0  # only the top half counts (mean weight 1)
    top = embed_tensor(g, tiny_encoder, target, cfg, pixel_weight=half)
    start = embed_tensor(g, tiny_encoder, target, EmbedConfig(steps=0)).image  # the encoder's reconstruction
    assert top.losses[0] == pytest.approx(((start - target) ** 2 * half).mean().item(), rel=1e-4)
    assert top.losses[0] != pytest.approx(plain.losses[0], rel=1e-3)
    for bad in (torch.ones(1, 1, 8, 8), torch.full((1, 1, 16, 16), float("nan")), -torch.ones(1, 1, 16, 16)):
        with pytest.raises(ValueError, match="pixel_weight"):
            embed_tensor(g, tiny_encoder, target, cfg, pixel_weight=bad)


def test_a_segmenter_weighs_the_l2_term_towards_small_parts(tiny_generator, tiny_encoder):
    from core.embed import class_weight_map

    g = tiny_generator
    with torch.no_grad():
        target = g(g.sample_w_plus(12)).image
    parts = torch.zeros(1, 16, 16, dtype=torch.long)
    parts[0, 2:4, 2:4] = 1  # a 4-pixel part in a 252-pixel background
    seen = []

    def segment(w):
        seen.append(w.shape)
        return parts

    cfg = EmbedConfig(steps=3, lr=0.05, w_perceptual=0.0, w_encoder=0.0)
    weighted = embed_tensor(g, tiny_encoder, target, cfg, segment=segment)
    by_hand = embed_tensor(g, tiny_encoder, target, cfg, pixel_weight=class_weight_map(parts[0], cfg.part_balance))
    assert weighted.part_weighted and seen == [(1, *g.sample_w_plus(0).shape[1:])]
    assert weighted.losses == pytest.approx(by_hand.losses)
    w = class_weight_map(parts[0], 0.5)
    assert w[0, 0, 2, 2] / w[0, 0, 10, 10] == pytest.approx((252 / 4) ** 0.5)  # the small part weighs more
    plain = embed_tensor(g, tiny_encoder, target, dataclasses.replace(cfg, part_balance=0.0), segment=segment)
    assert not plain.part_weighted and len(seen) == 1  # 0 turns it off without asking the segmenter
    with pytest.raises(ValueError, match="segment must return"):
        embed_tensor(g, tiny_encoder, target, cfg, segment=lambda w: parts[0])


def test_editgan_embed_uses_its_branch_for_part_weights(tiny_generator, tiny_encoder):
    from core.branch import BranchConfig, SegmentationBranch
    from core.data.palette import NUM_CLASSES
    from core.editgan import EditGAN

    g = tiny_generator
    photo = np.zeros((16, 16, 3), dtype=np.uint8)
    assert not EditGAN(g, encoder=tiny_encoder).embed(photo, EmbedConfig(steps=1)).part_weighted  # no branch
    bcfg = BranchConfig(feature_channels=tuple(g.feature_channels), resolution=16, num_classes=NUM_CLASSES,
                        hidden=(8,), ensemble=1)  # fmt: skip
    m = EditGAN(g, branch=SegmentationBranch(bcfg).eval(), encoder=tiny_encoder)
    assert m.embed(photo, EmbedConfig(steps=1)).part_weighted
    assert not m.embed(photo, EmbedConfig(steps=1, part_balance=0.0)).part_weighted


@pytest.fixture
def tiny_reader():
    from core.data.palette import NUM_CLASSES
    from core.segmenter import ImageReader, UNetConfig, UNetSegmenter

    torch.manual_seed(3)
    unets = [UNetSegmenter(UNetConfig(resolution=16, width=4, depth=2, num_classes=NUM_CLASSES)) for _ in range(2)]
    with torch.no_grad():
        for u in unets:
            u.head.weight.mul_(30)  # random U-Nets read almost uniformly; make this one opinionated
    return ImageReader.from_members(unets)


def test_the_image_reader_pulls_the_reconstruction_towards_the_known_mask(tiny_generator, tiny_encoder, tiny_reader):
    from core.embed import class_weight_map

    g = tiny_generator
    with torch.no_grad():
        target = g(g.sample_w_plus(21)).image
    mask = torch.zeros(16, 16, dtype=torch.long)
    mask[4:12, 3:13] = 1
    mask[6:8, 5:7] = 4
    cfg = EmbedConfig(steps=30, lr=0.05, w_perceptual=0.0, w_l2=0.0, w_encoder=0.0, w_reader=1.0)
    res = embed_tensor(g, tiny_encoder, target, cfg, reader=tiny_reader, target_mask=mask)
    start = embed_tensor(g, tiny_encoder, target, EmbedConfig(steps=0)).image  # the encoder's reconstruction
    with torch.no_grad():  # the reader's cross-entropy against the known mask, small parts weighted up
        nll = torch.nn.functional.nll_loss(tiny_reader(start), mask[None], reduction="none")[0]
    assert res.reader_guided
    assert res.losses[0] == pytest.approx((nll * class_weight_map(mask, cfg.part_balance)[0, 0]).mean().item(), rel=1e-5)
    assert min(res.losses) < 0.97 * res.losses[0] and res.best_step > 0
    off = embed_tensor(g, tiny_encoder, target, dataclasses.replace(cfg, w_reader=0.0), reader=tiny_reader)
    assert not off.reader_guided and off.losses == [0.0] * 30  # nothing else in this loss: the term is all there is


def test_without_a_known_mask_the_reader_reads_the_photo_itself(tiny_generator, tiny_encoder, tiny_reader):
    g = tiny_generator
    with torch.no_grad():
        target = g(g.sample_w_plus(22)).image
        own = tiny_reader(target).argmax(1)[0]
    cfg = EmbedConfig(steps=3, lr=0.05, w_reader=0.5)
    assert (embed_tensor(g, tiny_encoder, target, cfg, reader=tiny_reader).losses
            == pytest.approx(embed_tensor(g, tiny_encoder, target, cfg, reader=tiny_reader, target_mask=own).losses))
    with pytest.raises(ValueError, match="target_mask must be"):
        embed_tensor(g, tiny_encoder, target, cfg, reader=tiny_reader, target_mask=own[:8])
    with pytest.raises(ValueError, match="outside"):
        embed_tensor(g, tiny_encoder, target, cfg, reader=tiny_reader, target_mask=own + 100)


def test_editgan_embed_uses_its_image_reader(tmp_path):
    from core.editgan import EditGAN
    from core.testing import make_tiny_bundle

    photo = np.full((20, 24, 3), 128, dtype=np.uint8)
    with_reader = EditGAN.load(make_tiny_bundle(tmp_path / "a"))
    assert with_reader.embed(photo, EmbedConfig(steps=1)).reader_guided
    assert not with_reader.embed(photo, EmbedConfig(steps=1, w_reader=0.0)).reader_guided
    assert not EditGAN.load(make_tiny_bundle(tmp_path / "b", reader=False)).embed(photo, EmbedConfig(steps=1)).reader_guided
    from core.image_io import to_model_input

    cfg = EmbedConfig(steps=3)
    from_photo = with_reader.embed(photo, cfg)
    from_tensor = with_reader.embed_tensor(to_model_input(photo, 16, cfg.policy)[0], cfg)  # the same guides, no crop box
    assert from_tensor.reader_guided and from_tensor.part_weighted and from_tensor.crop is None
    assert from_tensor.losses == pytest.approx(from_photo.losses)


@pytest.mark.parametrize("bad", [{"steps": -1}, {"lr": 0.0}, {"lr": float("nan")}, {"w_reader": -0.1},
                                 {"part_balance": -1.0}, {"early_stop_patience": 0}, {"policy": "stretch"}])
def test_a_nonsensical_embed_config_is_refused(bad):
    with pytest.raises(ValueError):
        EmbedConfig(**bad)
