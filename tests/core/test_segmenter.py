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


def test_eval_mode_folds_batchnorms_into_the_convolutions_exactly():
    """Eval-mode inference folds each BatchNorm into its convolution; it must equal the modules run as they are."""
    torch.manual_seed(0)
    net = UNetSegmenter(UNetConfig(resolution=16, width=8, depth=2, num_classes=4))
    with torch.no_grad():  # trained-looking statistics
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.2, 3)
            bn.weight.uniform_(0.5, 2)
            bn.bias.normal_()
    net.eval()

    def unfolded(x):  # the same network, each block's modules in turn
        skips = []
        for i, blk in enumerate(net.down):
            x = blk(x if i == 0 else torch.nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(net.up, net.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return net.head(x)

    x = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1).requires_grad_(True)
    ours = net(x)
    (grad,) = torch.autograd.grad(ours.square().sum(), x)
    ref = unfolded(x)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-4)
    net.train()  # training uses batch statistics, as the modules do
    torch.testing.assert_close(net(x), unfolded(x), rtol=1e-4, atol=1e-5)
