import pytest
import torch

from core.data.palette import CLASS_NAMES
from core.segmenter import UNetConfig, UNetSegmenter, mirror_labels, train_few_shot


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
