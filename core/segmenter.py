"""A small image-space segmenter (U-Net), and its few-shot training.

Three users:

* the branch trainer's *teacher* (:mod:`core.train.branch`): trained on the
  same few labelled images as the branch, it labels extra GAN samples, whose
  labels then sit exactly on the generator's own pixels (an embedded labelled
  image's labels only sit where its reconstruction put the parts);
* the *image reader* (:class:`ImageReader`, shipped in a bundle as
  ``reader.safetensors``): the same few-shot U-Nets, read by mask edits as a
  second judge beside the branch (:class:`core.edit.EditConfig` ``w_reader``);
* the benchmarks' oracle (:mod:`benchmarks.oracle`), the same architecture
  trained with full supervision, and the few-shot baseline that DatasetGAN
  compares its branch with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.data.palette import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True)
class UNetConfig:
    resolution: int = 64
    width: int = 24
    depth: int = 3
    num_classes: int = NUM_CLASSES

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class UNetSegmenter(nn.Module):
    """Image [B, 3, H, W] in [-1, 1] -> logits [B, num_classes, H, W]."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        w = config.width
        widths = [w * 2**i for i in range(config.depth + 1)]
        self.down = nn.ModuleList([_block(3, widths[0])] + [_block(widths[i], widths[i + 1]) for i in range(config.depth)])
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(config.depth))]
        )
        self.dec = nn.ModuleList([_block(widths[i] * 2, widths[i]) for i in reversed(range(config.depth))])
        self.head = nn.Conv2d(widths[0], config.num_classes, 1)

    def _run(self, block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """A conv-BN-ReLU block; in eval mode each BatchNorm (running statistics: an affine map per channel) is
        folded into the convolution before it, which saves its forward and backward passes."""
        if self.training:
            return block(x)
        for conv, bn in ((block[0], block[1]), (block[3], block[4])):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            x = F.relu(F.conv2d(x, conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale,
                                padding=conv.padding))  # fmt: skip
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled bottleneck features [B, C] (used for the Frechet distance)."""
        for i, blk in enumerate(self.down):
            x = self._run(blk, x if i == 0 else F.max_pool2d(x, 2))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, blk in enumerate(self.down):
            x = self._run(blk, x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = self._run(dec, torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def mirror_labels(mask: torch.Tensor, class_names: Sequence[str] = CLASS_NAMES) -> torch.Tensor:
    """Class ids of a horizontally flipped image: every ``left_*`` class swaps with its ``right_*``."""
    perm = list(range(len(class_names)))
    for i, name in enumerate(class_names):
        if name.startswith("left_") and "right_" + name[5:] in class_names:
            j = class_names.index("right_" + name[5:])
            perm[i], perm[j] = j, i
    return torch.tensor(perm, device=mask.device)[mask]


def random_affine(images: torch.Tensor, masks: torch.Tensor, strength: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The same random similarity transform applied to each image ([B, 3, H, W]) and its mask ([B, H, W]).

    ``strength`` s draws the scale from 1 +- s, the rotation from +- 80*s degrees and
    the shift from +- 30*s percent of the half-width (s = 0.1: +-10 %, +-8 degrees,
    +-3 px at 64 px). Images are resampled bilinearly, masks by nearest neighbour,
    both with border padding. Class ids >= 0 pass through unchanged (an ignore id too).
    """
    b = images.shape[0]

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1]
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(images.device)

    scale = 1 + uniform(b) * strength
    angle = uniform(b) * math.radians(80 * strength)
    theta = torch.zeros(b, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / scale, -angle.sin() / scale
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / scale, angle.cos() / scale
    theta[:, :, 2] = uniform(b, 2) * 0.3 * strength
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    masks = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return images, masks[:, 0].round().long()


def train_few_shot(images: torch.Tensor, masks: torch.Tensor, steps: int = 1500, width: int = 16,
                   seed: int = 0, num_classes: int = NUM_CLASSES,
                   class_names: Sequence[str] = CLASS_NAMES, affine: float = 0.1,
                   callback: Optional[Callable[[int], None]] = None) -> UNetSegmenter:  # fmt: skip
    """A U-Net trained on a few labelled images ([N, 3, R, R] in [-1, 1], [N, R, R]).

    ``callback(step)`` runs after every step (progress; an exception it raises stops the training).

    Augmented with mirroring and a random similarity transform of strength
    ``affine`` (:func:`random_affine`; 0 = mirroring only): with 16 labelled
    images the transform is what lets the U-Net read GAN samples well
    (docs/results.md, segmentation branch).
    """
    if images.ndim != 4 or masks.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"need images [N, 3, R, R] and masks [N, R, R], got {list(images.shape)} and {list(masks.shape)}")
    torch.manual_seed(seed)
    net = UNetSegmenter(UNetConfig(resolution=images.shape[-1], width=width, num_classes=num_classes))
    net = net.to(images.device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(images), (8,), generator=gen).to(images.device)
        x, y = images[idx], masks[idx].long()
        if torch.rand((), generator=gen) < 0.5:
            x, y = x.flip(-1), mirror_labels(y.flip(-1), class_names)
        if affine > 0:
            x, y = random_affine(x, y, affine, gen)
        net.train()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback is not None:
            callback(step)
    return net.eval()


@dataclass(frozen=True)
class ReaderConfig:
    unet: UNetConfig
    members: int = 2

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "members": self.members}

    @classmethod
    def from_dict(cls, data: dict) -> "ReaderConfig":
        try:
            return cls(UNetConfig(**data["unet"]), int(data.get("members", 2)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"reader config must be {{'unet': {{resolution, width, depth, num_classes}}, "
                             f"'members': n}}, got {data!r} ({e})") from None


class ImageReader(nn.Module):
    """Few-shot U-Nets read together: image [B, 3, H, W] in [-1, 1] -> log of their mean probability [B, K, H, W].

    A mask edit guided by the branch alone can reach the painted mask in the
    branch's reading while the image shows less of it (the branch reads the
    generator's features, which the edit moves directly). A reader that looks at
    the pixels makes the edit show the change in the image too.
    """

    def __init__(self, config: ReaderConfig):
        super().__init__()
        if config.members < 1:
            raise ValueError(f"a reader needs at least one member, got {config.members}")
        self.config = config
        self.members = nn.ModuleList([UNetSegmenter(config.unet) for _ in range(config.members)])

    @classmethod
    def from_members(cls, members: Sequence[UNetSegmenter]) -> "ImageReader":
        reader = cls(ReaderConfig(members[0].config, len(members)))
        for dst, src in zip(reader.members, members):
            dst.load_state_dict(src.state_dict())
        return reader.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([m(x).log_softmax(1) for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))
