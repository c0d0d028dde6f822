import pytest
import torch

from core.branch import BranchConfig, SegmentationBranch, sample_features
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
    return SegmentationBranch(cfg).eval()


def test_point_sampling_equals_upsampling_everything(tiny_generator):
    g = tiny_generator
    feats = g.synthesis(g.sample_w_plus(1, 2)).features
    br = _branch(g)
    full_ref = br.forward_upsampled(feats)
    torch.testing.assert_close(br(feats, chunk=50), full_ref, rtol=1e-5, atol=1e-5)
    bi = torch.tensor([0, 1, 1, 0])
    ys, xs = torch.tensor([0, 15, 7, 3]), torch.tensor([0, 15, 2, 9])
    torch.testing.assert_close(br.logits_at(feats, bi, ys, xs), full_ref[bi, :, ys, xs], rtol=1e-5, atol=1e-5)


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
