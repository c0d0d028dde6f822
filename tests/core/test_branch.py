import dataclasses

import pytest
import torch

import core.branch
from core.branch import BranchConfig, SegmentationBranch, _gather_is_cheaper, sample_features
from core.train.branch import (
    BranchTrainConfig,
    _sample_pixels,
    class_weight_map,
    train_branch,
    trusted_pixels,
)


def _branch(g, **kw):
    cfg = BranchConfig(feature_channels=tuple(g.feature_channels), resolution=g.config.resolution, num_classes=5,
                       hidden=(16, 8), ensemble=3, **kw)  # fmt: skip
    torch.manual_seed(0)
    branch = SegmentationBranch(cfg).eval()
    with torch.no_grad():  # trained-looking BatchNorms: inference folds them into the next Linear
        for bn in (m for m in branch.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.2, 3)
            bn.weight.uniform_(0.5, 2)
            bn.bias.normal_()
    return branch


@pytest.fixture(params=["box", "gather"])
def logits_path(request, monkeypatch):
    """logits_at through its bounding box, or gathered pixel by pixel (it picks by cost; both must be exact)."""
    monkeypatch.setattr(core.branch, "_gather_is_cheaper", lambda *a: request.param == "gather")
    return request.param


def test_point_sampling_equals_upsampling_everything(tiny_generator, logits_path):
    g = tiny_generator
    feats = g.synthesis(g.sample_w_plus(1, 2)).features
    br = _branch(g)
    full_ref = br.forward_upsampled(feats)
    torch.testing.assert_close(br(feats, chunk=50), full_ref, rtol=1e-5, atol=1e-5)
    bi = torch.tensor([0, 1, 1, 0])
    ys, xs = torch.tensor([0, 15, 7, 3]), torch.tensor([0, 15, 2, 9])
    torch.testing.assert_close(br.logits_at(feats, bi, ys, xs), full_ref[bi, :, ys, xs], rtol=1e-5, atol=1e-5)


def test_gradients_equal_the_upsampled_formulation(tiny_generator, logits_path):
    """logits_at's projected-then-interpolated path backpropagates exactly like upsample-everything."""
    g = tiny_generator
    feats = [f.detach().requires_grad_(True) for f in g.synthesis(g.sample_w_plus(2, 2)).features]
    br = _branch(g, layers=(1, 2, 4, 5))  # a subset, as a shipped branch may read
    gen = torch.Generator().manual_seed(0)
    bi, ys, xs = (torch.randint(0, hi, (40,), generator=gen) for hi in (2, 16, 16))
    br.logits_at(feats, bi, ys, xs).square().sum().backward()
    ours = [None if f.grad is None else f.grad.clone() for f in feats]
    for f in feats:
        f.grad = None
    br.forward_upsampled(feats)[bi, :, ys, xs].square().sum().backward()
    for i, f in enumerate(feats):
        if i in (1, 2, 4, 5):
            torch.testing.assert_close(ours[i], f.grad, rtol=1e-4, atol=1e-5)
        else:
            assert ours[i] is None and f.grad is None


def test_logits_at_gathers_few_spread_out_pixels_and_boxes_a_compact_region(tiny_generator):
    g = tiny_generator
    feats = _branch(g).select(g.synthesis(g.sample_w_plus(1, 16)).features)
    r = g.config.resolution
    assert _gather_is_cheaper(feats, 16 * 4, r, 0, r, 0, r)  # four pixels on each of 16 faces, across the image
    assert not _gather_is_cheaper(feats, 16 * r * r, r, 0, r, 0, r)  # every pixel
    assert not _gather_is_cheaper([f[:1] for f in feats], 16, r, 4, 8, 4, 8)  # a filled 4x4 region of one face


def test_a_region_in_one_corner_and_an_empty_region(tiny_generator, logits_path):
    g = tiny_generator
    feats = g.synthesis(g.sample_w_plus(4)).features
    br = _branch(g)
    ref = br.forward_upsampled(feats)
    ys, xs = torch.tensor([15, 15, 14]), torch.tensor([15, 14, 15])  # the border taps clamp
    torch.testing.assert_close(br.logits_at(feats, torch.zeros(3, dtype=torch.long), ys, xs), ref[0, :, ys, xs].t())
    empty = torch.zeros(0, dtype=torch.long)
    assert br.logits_at(feats, empty, empty, empty).shape == (0, 5)


def test_batchnorms_fold_only_in_eval_mode(tiny_generator):
    """Inference folds each BatchNorm's running statistics into the next Linear; training keeps batch statistics."""
    g = tiny_generator
    feats = g.synthesis(g.sample_w_plus(5)).features
    br = _branch(g)
    flat = torch.randn(64, br.config.in_dim)
    hidden = torch.cat([m.net[0](flat) for m in br.members], 1)
    torch.testing.assert_close(br._heads(hidden), br.classify(flat), rtol=1e-5, atol=1e-5)
    br.train()
    torch.testing.assert_close(br._heads(hidden), br.classify(flat), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(br._heads(hidden), br.eval()._heads(hidden), atol=1e-3)
    assert br(feats).shape == (1, 5, 16, 16)


def test_layer_subset_and_config_round_trip(tiny_generator):
    g = tiny_generator
    br = _branch(g, layers=(0, 3, 4))
    assert br.config.in_dim == sum(g.feature_channels[i] for i in (0, 3, 4))
    assert BranchConfig.from_dict(br.config.to_dict()) == br.config
    with pytest.raises(ValueError, match="layers"):
        BranchConfig(feature_channels=(4, 4), resolution=16, num_classes=3, layers=(5,))
    with pytest.raises(ValueError, match="unknown key"):
        BranchConfig.from_dict({**br.config.to_dict(), "hiden": [3]})


def test_sampled_features_are_differentiable(tiny_generator):
    g = tiny_generator
    w = g.sample_w_plus(0).requires_grad_(True)
    feats = g.synthesis(w).features
    v = sample_features(feats, torch.tensor([0]), torch.tensor([5]), torch.tensor([6]), 16)
    v.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_training_learns_a_mask_from_few_images(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(3, 4)
    with torch.no_grad():
        img = g(latents).image
    # a mask the features can explain: bins of the red channel's brightness
    masks = torch.bucketize(img[:, 0], torch.tensor([-0.3, 0.0, 0.3])).long()
    cfg = BranchTrainConfig(ensemble=2, hidden=(32, 16), steps=150, images_per_step=2, pixels_per_image=128, lr=3e-3)
    br, stats = train_branch(g, latents, masks, cfg, progress=False)
    with torch.no_grad():
        pred = br(g.synthesis(latents).features).argmax(1)
    acc = (pred == masks).float().mean().item()
    assert acc > 0.6, acc
    assert stats["feature_cache"] is True


def test_training_recomputes_features_when_cache_does_not_fit(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(3, 2)
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    masks[:, 8:] = 1
    cfg = BranchTrainConfig(ensemble=1, hidden=(8,), steps=3, images_per_step=2, pixels_per_image=16, cache_budget_mb=0)
    _, stats = train_branch(g, latents, masks, cfg, progress=False)
    assert stats["feature_cache"] is False


def test_soft_targets_are_what_the_branch_learns(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(3, 2)
    masks = torch.zeros(2, 16, 16, dtype=torch.long)  # hard labels say class 0 everywhere ...
    soft = torch.zeros(2, 3, 16, 16)
    soft[:, 2] = 0.8  # ... the soft targets say mostly class 2
    soft[:, 0] = 0.2
    cfg = BranchTrainConfig(ensemble=1, hidden=(16,), steps=200, images_per_step=2, pixels_per_image=64, lr=1e-2)
    br, _ = train_branch(g, latents, masks, cfg, progress=False, num_classes=3, soft=soft)
    with torch.no_grad():
        prob = br(g.synthesis(latents).features).softmax(1)
    assert (prob.argmax(1) == 2).all()
    assert 0.6 < prob[:, 2].mean() < 0.95  # the soft target's 0.8, not a hard 1.0
    with pytest.raises(ValueError, match="soft targets must be"):
        train_branch(g, latents, masks, cfg, progress=False, num_classes=3, soft=soft[:, :2])


def test_mask_shape_mismatch_is_refused(tiny_generator):
    with pytest.raises(ValueError, match="masks must be"):
        train_branch(tiny_generator, tiny_generator.sample_w_plus(0, 2), torch.zeros(2, 8, 8, dtype=torch.long))


def test_untrusted_pixels_are_never_sampled():
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[2:4, 2:4] = 3
    valid = torch.ones(8, 8, dtype=torch.bool)
    valid[:, :4] = False  # the whole small class sits in the untrusted half
    ys, xs = _sample_pixels(mask, 500, 0.5, torch.Generator().manual_seed(0), valid)
    assert valid[ys, xs].all()
    assert (mask[ys, xs] == 3).sum() == 0


def test_trusted_pixels_follow_the_reconstruction_error(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(5, 2)
    with torch.no_grad():
        images = g(latents).image.clamp(-1, 1)
    images[0, :, :4] = -images[0, :, :4] + 0.5  # the "real" image differs from G(w) in its top rows
    valid = trusted_pixels(g, latents, images, max_error=0.1)
    assert valid[1].all() and valid[0, 8:].all()
    assert not valid[0, :4].all()
    assert trusted_pixels(g, latents, images, max_error=0).all()  # <= 0 trusts every pixel


def test_an_image_without_trusted_pixels_is_refused(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(3, 2)
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    valid = torch.ones(2, 16, 16, dtype=torch.bool)
    valid[1] = False
    cfg = BranchTrainConfig(ensemble=1, hidden=(8,), steps=2, images_per_step=2, pixels_per_image=16)
    with pytest.raises(ValueError, match=r"labelled images \[1\] have no trusted pixel"):
        train_branch(g, latents, masks, cfg, progress=False, valid=valid)
    with pytest.raises(ValueError, match="valid must be"):
        train_branch(g, latents, masks, cfg, progress=False, valid=valid[:, :8])


def test_class_weight_map_favours_small_classes():
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[0, 0] = 2
    w = class_weight_map(mask, 0.5)
    assert w.shape == (1, 1, 8, 8)
    assert abs(w.mean().item() - 1) < 1e-5
    assert w[0, 0, 0, 0] / w[0, 0, 5, 5] == pytest.approx(63**0.5)
    assert torch.allclose(class_weight_map(mask, 0.0), torch.ones(1, 1, 8, 8))


def test_training_reads_only_the_configured_maps(tiny_generator):
    g = tiny_generator
    latents = g.sample_w_plus(5, 2)
    masks = torch.randint(0, 3, (2, 16, 16))
    cfg = BranchTrainConfig(ensemble=1, hidden=(8,), steps=2, images_per_step=2, pixels_per_image=16, layers=(3, 4))
    br, _ = train_branch(g, latents, masks, cfg, progress=False, num_classes=3)
    assert br.config.layers == (3, 4) and br.config.in_dim == g.feature_channels[3] + g.feature_channels[4]
    assert br(g.synthesis(latents).features).shape == (2, 3, 16, 16)


def test_cli_parses_integer_lists():
    import argparse

    from core.train.branch import _int_tuple

    assert _int_tuple("128,32") == (128, 32) and _int_tuple("6") == (6,)
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated"):
        _int_tuple("wide")


def test_min_map_resolution_picks_the_large_maps(tiny_generator):
    from core.train.branch import branch_layers

    g = tiny_generator
    big = branch_layers(g, BranchTrainConfig(min_map_resolution=8))
    assert big and all(g.feature_resolutions[i] >= 8 for i in big)
    assert len(big) == sum(r >= 8 for r in g.feature_resolutions)
    assert branch_layers(g, BranchTrainConfig()) is None
    with pytest.raises(ValueError, match="no feature map"):
        branch_layers(g, BranchTrainConfig(min_map_resolution=10_000))
    with pytest.raises(ValueError, match="not both"):
        branch_layers(g, BranchTrainConfig(min_map_resolution=8, layers=(1,)))


def test_recorded_config_reads_the_shipped_recipe(tmp_path):
    import json

    from core.train.branch import recorded_config

    cfg = BranchTrainConfig(min_map_resolution=32, hidden=(64, 16), steps=7)
    (tmp_path / "config.json").write_text(json.dumps({"branch_training": {**cfg.to_dict(), "train_seconds": 3.0}}))
    assert recorded_config(tmp_path) == cfg
    (tmp_path / "config.json").write_text(json.dumps({"model_id": "x"}))
    with pytest.raises(ValueError, match="no trained branch"):
        recorded_config(tmp_path)


def test_teacher_labels_gan_samples_from_the_labelled_images_only(tiny_generator):
    from core.train.branch import teacher_labelled_samples

    g = tiny_generator
    with torch.no_grad():
        images = g(g.sample_w_plus(8, 4)).image.clamp(-1, 1)
    masks = torch.bucketize(images[:, 0], torch.tensor([-0.2, 0.2])).long()  # a mask the image explains
    cfg = BranchTrainConfig(teacher_samples=5, teacher_steps=60, teacher_min_confidence=0.4)
    lat, labels, confident, prob = teacher_labelled_samples(g, images, masks, cfg, num_classes=3)
    assert lat.shape == (5, *g.sample_w_plus(0).shape[1:]) and labels.shape == confident.shape == (5, 16, 16)
    assert prob.shape == (5, 3, 16, 16) and prob.dtype == torch.float16
    torch.testing.assert_close(prob.float().sum(1), torch.ones(5, 16, 16), atol=3e-3, rtol=0)
    assert torch.equal(prob.argmax(1), labels)
    assert labels.max() < 3 and confident.dtype == torch.bool and confident.any()
    torch.testing.assert_close(lat, g.sample_w_plus(cfg.teacher_seed, 5, 1.0))  # reproducible stream


def test_teacher_ensemble_averages_its_members_probabilities(tiny_generator, monkeypatch):
    import core.train.branch as tb

    # member k always prefers class k a little and class 2 somewhat: averaged, class 2 wins
    logits = [torch.tensor([2.0, 0.0, 1.5]), torch.tensor([0.0, 2.0, 1.5])]
    calls = []

    def fake_train(images, masks, steps, seed, num_classes, class_names, affine):
        calls.append((seed, affine))
        k = len(calls) - 1
        return lambda x: logits[k].view(1, 3, 1, 1).expand(x.shape[0], 3, *x.shape[-2:])

    monkeypatch.setattr(tb, "train_few_shot", fake_train)
    g = tiny_generator
    cfg = BranchTrainConfig(teacher_samples=3, teacher_ensemble=2, teacher_affine=0.05, seed=7, teacher_min_confidence=0.4)
    _, labels, confident, _ = tb.teacher_labelled_samples(g, torch.zeros(2, 3, 16, 16), torch.zeros(2, 16, 16), cfg,
                                                          num_classes=3)  # fmt: skip
    assert calls == [(7, 0.05), (8, 0.05)]
    assert (labels == 2).all()
    # averaged, the top class holds 0.35 < 0.4 (each member alone is 0.55 sure): nothing is confident
    assert not confident.any()


def test_teacher_reads_mirrored_samples_with_left_and_right_swapped(tiny_generator, monkeypatch):
    import core.train.branch as tb

    names = ("background", "left_eye", "right_eye")
    # a teacher that calls every pixel a left eye: read mirrored, those become right eyes of the sample
    fake = lambda x: torch.tensor([0.0, 3.0, 0.0]).view(1, 3, 1, 1).expand(x.shape[0], 3, *x.shape[-2:])  # noqa: E731
    monkeypatch.setattr(tb, "train_few_shot", lambda *a, **k: fake)
    args = (tiny_generator, torch.zeros(2, 3, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long))
    cfg = BranchTrainConfig(teacher_samples=2, teacher_ensemble=1)
    _, _, _, plain = tb.teacher_labelled_samples(*args, dataclasses.replace(cfg, teacher_flip=False), 3, names)
    _, _, _, both = tb.teacher_labelled_samples(*args, cfg, 3, names)
    assert (plain.argmax(1) == 1).all()
    torch.testing.assert_close(both[:, 1], both[:, 2])  # half the reading says left, half right
    torch.testing.assert_close(both[:, 1].float(), plain[:, 1].float() / 2 + plain[:, 2].float() / 2, atol=1e-3, rtol=0)


def test_one_hot_targets():
    from core.train.branch import one_hot_targets

    m = torch.tensor([[[0, 2], [1, 1]]])
    t = one_hot_targets(m, 3)
    assert t.shape == (1, 3, 2, 2) and t.dtype == torch.float16
    assert torch.equal(t.argmax(1), m) and (t.sum(1) == 1).all()


def test_teacher_ensemble_of_none_is_refused(tiny_generator):
    from core.train.branch import teacher_labelled_samples

    with pytest.raises(ValueError, match="teacher_ensemble"):
        teacher_labelled_samples(tiny_generator, torch.zeros(2, 3, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long),
                                 BranchTrainConfig(teacher_ensemble=0))  # fmt: skip


def test_boolean_trainer_options_read_false_as_false(capsys):
    from core.train.branch import _bool, main

    assert [_bool(t) for t in ("True", "false", "1", "no", " YES ")] == [True, False, True, False, True]
    with pytest.raises(SystemExit):  # refused by the parser, before any model is loaded
        main(["--model", "nowhere", "--teacher-soft", "maybe"])
    assert "expected true or false" in capsys.readouterr().err


def test_labelled_images_are_embedded_under_the_teachers_reading_of_their_own_masks(tiny_generator, monkeypatch):
    import core.train.branch as tb
    from core.embed import EmbedResult

    seen = []

    def fake_embed(generator, encoder, image, cfg, perceptual, **kw):
        seen.append((cfg, kw))
        return EmbedResult(w_plus=torch.full((1, 2, 3), float(len(seen))), image=image, target=image, crop=None)

    monkeypatch.setattr(tb, "embed_tensor", fake_embed)
    images, masks = torch.zeros(2, 3, 16, 16), torch.randint(0, 3, (2, 16, 16))
    reader = object()
    cfg = tb.BranchTrainConfig(embed_steps=7, embed_reader_weight=0.25)
    out = tb.embed_labelled(tiny_generator, None, images, masks, cfg, perceptual=object(), progress=False, reader=reader)
    assert out[:, 0, 0].tolist() == [1.0, 2.0]
    for i, (c, kw) in enumerate(seen):
        assert (c.steps, c.w_reader) == (7, 0.25) and kw["reader"] is reader
        assert torch.equal(kw["target_mask"], masks[i])


def test_reader_learns_the_labelled_images_beside_gan_samples_the_branch_labelled(tiny_generator, monkeypatch):
    import core.train.branch as tb

    g = tiny_generator
    br = _branch(g)
    seen = []

    def fake_train(images, masks, steps, seed, num_classes, class_names, affine):
        seen.append((images, masks, steps, seed, affine))
        return seed

    monkeypatch.setattr(tb, "train_few_shot", fake_train)
    images, masks = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randint(0, 5, (2, 16, 16))
    cfg = BranchTrainConfig(reader_samples=3, reader_real_repeat=4, teacher_ensemble=2, teacher_steps=9, seed=5)
    assert tb.train_reader(g, br, images, masks, cfg, num_classes=5) == [5, 6]  # one U-Net per seed
    x, y, steps, _, affine = seen[0]
    assert x.shape == (2 * 4 + 3, 3, 16, 16) and y.shape == (11, 16, 16) and (steps, affine) == (9, cfg.teacher_affine)
    assert torch.equal(x[:8], images.repeat(4, 1, 1, 1)) and torch.equal(y[:8], masks.repeat(4, 1, 1))
    with torch.no_grad():  # the samples: the reader's latent stream, labelled by the branch's reading of them
        out = g.synthesis(g.sample_w_plus(cfg.reader_seed, 3, 1.0))
    torch.testing.assert_close(x[8:], out.image.clamp(-1, 1))
    assert torch.equal(y[8:], br(out.features).argmax(1))


def test_reader_without_samples_is_the_teachers_and_with_them_needs_a_branch(tiny_generator, monkeypatch):
    import core.train.branch as tb

    monkeypatch.setattr(tb, "train_few_shot", lambda images, masks, **kw: (len(images), kw["seed"]))
    images, masks = torch.zeros(2, 3, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long)
    cfg = BranchTrainConfig(reader_samples=0, teacher_ensemble=2)
    assert tb.train_reader(tiny_generator, None, images, masks, cfg) == [(2, 0), (2, 1)]  # the labelled images alone
    with pytest.raises(ValueError, match="needs a trained branch"):
        tb.train_reader(tiny_generator, None, images, masks, dataclasses.replace(cfg, reader_samples=4))
    with pytest.raises(ValueError, match="reader_real_repeat"):
        tb.train_reader(tiny_generator, None, images, masks, dataclasses.replace(cfg, reader_real_repeat=0))
