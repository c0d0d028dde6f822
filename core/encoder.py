"""Image -> W+ encoder: a feature pyramid with one head per W+ layer group.

EditGAN initialises its embedding with an encoder in the style of pSp
(Richardson et al., CVPR 2021): a convolutional backbone, a top-down feature
pyramid, and separate heads for the coarse, middle and fine layers of W+, each
reading the pyramid level whose scale matches what those layers control. The
output is an offset from the generator's average latent, so an untrained
encoder already starts at the mean face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ConfigMixin


@dataclass(frozen=True)
class EncoderConfig(ConfigMixin):
    resolution: int
    n_latent: int
    w_dim: int
    base_channels: int = 32
    max_channels: int = 256
    pyramid_channels: int = 128

    def __post_init__(self) -> None:
        if self.resolution < 16 or math.log2(self.resolution) != int(math.log2(self.resolution)):
            raise ValueError(f"encoder resolution must be a power of two >= 16, got {self.resolution}")

    def latent_groups(self) -> list[list[int]]:
        """W+ indices per head: coarse (layers at <= 8 px), middle (16-32 px), fine (>= 64 px).

        Latent 0 drives the 4 px conv and latent 1 its ToRGB; latent i >= 1 drives layers at
        2 ** (3 + (i - 1) // 2) px, as in rosinality's synthesis loop.
        """
        res = [4] + [2 ** (3 + (i - 1) // 2) for i in range(1, self.n_latent)]
        groups = [[i for i, r in enumerate(res) if r <= 8], [i for i, r in enumerate(res) if 16 <= r <= 32],
                  [i for i, r in enumerate(res) if r >= 64]]  # fmt: skip
        return [g for g in groups if g]


class _Down(nn.Module):
    """Residual block, stride 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        return (F.leaky_relu(self.conv2(h), 0.2) + self.skip(x)) / math.sqrt(2)


class _Head(nn.Module):
    """Pyramid level [B, C, s, s] -> len(indices) latents [B, k, w_dim]."""

    def __init__(self, channels: int, size: int, k: int, w_dim: int):
        super().__init__()
        convs: list[nn.Module] = []
        while size > 4:
            convs += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            size //= 2
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Linear(channels * 16, k * w_dim)
        nn.init.zeros_(self.fc.bias)
        self.fc.weight.data.mul_(0.1)  # start near the average latent
        self.k, self.w_dim = k, w_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).flatten(1)).view(-1, self.k, self.w_dim)


class Encoder(nn.Module):
    """[B, 3, R, R] in [-1, 1] -> W+ [B, n_latent, w_dim] (offset added to ``w_avg``)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        ch = lambda i: min(c.max_channels, c.base_channels * 2**i)  # noqa: E731
        self.stem = nn.Conv2d(3, ch(0), 3, padding=1)
        n_down = int(math.log2(c.resolution)) - 2  # down to 4 x 4
        self.downs = nn.ModuleList([_Down(ch(i), ch(i + 1)) for i in range(n_down)])
        # pyramid levels at 4, 8 and 16 px (or fewer for small inputs)
        self.level_sizes = [4, 8, 16][: max(1, min(3, n_down))]
        self.lateral = nn.ModuleList(
            [nn.Conv2d(ch(n_down - j), c.pyramid_channels, 1) for j in range(len(self.level_sizes))]
        )
        self.groups = c.latent_groups()
        self.heads = nn.ModuleList()
        for gi, idx in enumerate(self.groups):
            size = self.level_sizes[min(gi, len(self.level_sizes) - 1)]
            self.heads.append(_Head(c.pyramid_channels, size, len(idx), c.w_dim))
        self.register_buffer("w_avg", torch.zeros(c.w_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, self.config.resolution, self.config.resolution):
            r = self.config.resolution
            raise ValueError(f"encoder input must be [B, 3, {r}, {r}], got {list(x.shape)}")
        h = F.leaky_relu(self.stem(x), 0.2)
        feats = []
        for down in self.downs:
            h = down(h)
            feats.append(h)
        # top-down pyramid: coarsest first
        levels = []
        top = None
        for j in range(len(self.level_sizes)):
            lat = self.lateral[j](feats[-1 - j])
            top = lat if top is None else lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            levels.append(top)
        out = torch.zeros(x.shape[0], self.config.n_latent, self.config.w_dim, device=x.device, dtype=x.dtype)
        for gi, (idx, head) in enumerate(zip(self.groups, self.heads)):
            out[:, idx] = head(levels[min(gi, len(levels) - 1)])
        return out + self.w_avg
