"""The segmentation branch: per-pixel classifiers over the generator's features.

DatasetGAN (Zhang et al., CVPR 2021) and EditGAN read a semantic mask out of
StyleGAN by upsampling every synthesis feature map to image size,
concatenating them per pixel, and classifying each pixel with an ensemble of
small MLPs whose logits are averaged. The original release materialises that
``[H*W, sum(C_i)]`` tensor for every pixel (and caches it for the whole
training set: 76-160 GB of RAM). Here features are *sampled at the pixels that
are needed*: bilinear interpolation at a pixel reads only the four nearest
cells of each native-resolution map, so :meth:`SegmentationBranch.logits_at`
costs O(pixels * channels) and never builds the full upsampled stack. The full
mask (:meth:`SegmentationBranch.forward`) is the same computation over every
pixel in chunks; a test checks it equals the upsample-everything formulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ConfigMixin


@dataclass(frozen=True)
class BranchConfig(ConfigMixin):
    feature_channels: tuple[int, ...]  # channels of the generator maps the branch reads
    resolution: int  # output (image) resolution
    num_classes: int
    layers: Optional[tuple[int, ...]] = None  # indices into GeneratorOutput.features; None = all
    hidden: tuple[int, ...] = (128, 32)
    ensemble: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_channels", tuple(int(c) for c in self.feature_channels))
        object.__setattr__(self, "hidden", tuple(int(c) for c in self.hidden))
        if self.layers is not None:
            layers = tuple(int(i) for i in self.layers)
            bad = [i for i in layers if not 0 <= i < len(self.feature_channels)]
            if bad or not layers:
                raise ValueError(f"layers {list(layers)} must index the {len(self.feature_channels)} feature maps")
            object.__setattr__(self, "layers", layers)
        if self.ensemble < 1 or self.num_classes < 2:
            raise ValueError("ensemble must be >= 1 and num_classes >= 2")

    @property
    def used_layers(self) -> tuple[int, ...]:
        return self.layers if self.layers is not None else tuple(range(len(self.feature_channels)))

    @property
    def in_dim(self) -> int:
        return sum(self.feature_channels[i] for i in self.used_layers)


class PixelClassifier(nn.Module):
    """DatasetGAN's MLP: Linear-ReLU-BN blocks, then a linear head. [N, in_dim] -> [N, num_classes]."""

    def __init__(self, in_dim: int, hidden: Sequence[int], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True), nn.BatchNorm1d(h)]
            d = h
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _bilinear_taps(dst: torch.Tensor, src_size: int, dst_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weight of F.interpolate(mode='bilinear', align_corners=False) along one axis."""
    src = ((dst.to(torch.float32) + 0.5) * (src_size / dst_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=src_size - 1)
    i1 = (i0 + 1).clamp(max=src_size - 1)
    return i0, i1, src - i0


def sample_features(
    features: Sequence[torch.Tensor],  # maps [B, C_i, s_i, s_i]
    batch_idx: torch.Tensor,  # [N] long
    ys: torch.Tensor,  # [N] long, pixel rows at output resolution
    xs: torch.Tensor,  # [N] long
    out_size: int,
) -> torch.Tensor:
    """Per-pixel feature vectors [N, sum(C_i)], as if every map were bilinearly upsampled to out_size."""
    cols = []
    for f in features:
        s = f.shape[-1]
        if s == out_size:
            cols.append(f[batch_idx, :, ys, xs])
            continue
        y0, y1, wy = _bilinear_taps(ys, s, out_size)
        x0, x1, wx = _bilinear_taps(xs, s, out_size)
        wy, wx = wy[:, None].to(f.dtype), wx[:, None].to(f.dtype)
        top = f[batch_idx, :, y0, x0] * (1 - wx) + f[batch_idx, :, y0, x1] * wx
        bot = f[batch_idx, :, y1, x0] * (1 - wx) + f[batch_idx, :, y1, x1] * wx
        cols.append(top * (1 - wy) + bot * wy)
    return torch.cat(cols, 1)


class SegmentationBranch(nn.Module):
    def __init__(self, config: BranchConfig):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(
            [PixelClassifier(config.in_dim, config.hidden, config.num_classes) for _ in range(config.ensemble)]
        )

    def select(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.config.feature_channels):
            raise ValueError(f"expected {len(self.config.feature_channels)} feature maps, got {len(features)}")
        return [features[i] for i in self.config.used_layers]

    def classify(self, pixel_features: torch.Tensor) -> torch.Tensor:
        """[N, in_dim] -> ensemble-mean logits [N, num_classes]."""
        return torch.stack([m(pixel_features) for m in self.members], 0).mean(0)

    def logits_at(
        self, features: Sequence[torch.Tensor], batch_idx: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor
    ) -> torch.Tensor:
        """Logits [N, num_classes] at chosen pixels only (what editing needs inside its region)."""
        return self.classify(sample_features(self.select(features), batch_idx, ys, xs, self.config.resolution))

    def forward(self, features: Sequence[torch.Tensor], chunk: int = 16384) -> torch.Tensor:
        """Full-image logits [B, num_classes, H, W], computed a chunk of pixels at a time."""
        feats = self.select(features)
        b, r = feats[0].shape[0], self.config.resolution
        n = b * r * r
        idx = torch.arange(n, device=feats[0].device)
        bi, ys, xs = idx // (r * r), (idx // r) % r, idx % r
        out = torch.cat(
            [
                self.classify(sample_features(feats, bi[i : i + chunk], ys[i : i + chunk], xs[i : i + chunk], r))
                for i in range(0, n, chunk)
            ]
        )
        return out.view(b, r, r, -1).permute(0, 3, 1, 2)

    def forward_upsampled(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The original release's formulation: upsample every map, classify every pixel (memory-heavy)."""
        feats = self.select(features)
        r = self.config.resolution
        up = torch.cat([F.interpolate(f, size=(r, r), mode="bilinear", align_corners=False) for f in feats], 1)
        b = up.shape[0]
        flat = up.permute(0, 2, 3, 1).reshape(-1, up.shape[1])
        return self.classify(flat).view(b, r, r, -1).permute(0, 3, 1, 2)
