import pytest
import torch

from core.data.palette import CLASS_NAMES
from core.segmenter import (
    UNetConfig,
    UNetSegmenter,
    mirror_labels,
    random_affine,
    train_few_shot,
)


def test_mirror_labels_swaps_left_and_right_only():
    ids = torch.arange(len(CLASS_NAMES))
    out = mirror_labels(ids)
    for i, name in enumerate(CLASS_NAMES):
        twin = name.replace("left_", "right_") if name.startswith("left_") else name.replace("right_", "left_")
        assert CLASS_NAMES[out[i]] == twin
    assert torch.equal(mirror_labels(mirror_labels(ids)), ids)


def test_few_shot_training_fits_its_images():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1
    masks = (images[:, 1] > 0).long()  # class 0 / 1, neither mirrored
    net = train_few_shot(images, masks, steps=80, width=8, num_classes=2)
    acc = (net(images).argmax(1) == masks).float().mean().item()
    assert acc > 0.8
    assert isinstance(net, UNetSegmenter) and net.config == UNetConfig(resolution=16, width=8, num_classes=2)
    with pytest.raises(ValueError, match="masks"):
        train_few_shot(images, masks[:2])


def test_random_affine_of_strength_zero_is_the_identity():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1
    masks = torch.randint(0, 5, (3, 16, 16), generator=gen)
    x, y = random_affine(images, masks, 0.0, torch.Generator().manual_seed(2))
    torch.testing.assert_close(x, images, atol=1e-5, rtol=0)
    assert torch.equal(y, masks)


def test_random_affine_moves_image_and_mask_together():
    masks = torch.zeros(4, 32, 32, dtype=torch.long)
    masks[:, 8:20, 6:18] = 1
    masks[:, 22:28, 20:30] = 255  # an ignore id survives as itself
    images = (masks == 1).float()[:, None].repeat(1, 3, 1, 1) * 2 - 1
    x, y = random_affine(images, masks, 0.2, torch.Generator().manual_seed(3))
    assert not torch.equal(y, masks)  # it did move
    assert set(y.unique().tolist()) <= {0, 1, 255} and (y == 255).any()
    sure = (x[:, 0].abs() > 0.5) & (y != 255)  # away from the blob's blurred edge
    agree = ((x[:, 0] > 0).long() == y)[sure].float().mean().item()
    assert agree > 0.99
