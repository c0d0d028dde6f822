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
pixel in bands of rows; a test checks it equals the upsample-everything
formulation.

Inference (``logits_at``, ``forward``) uses three exact rewrites that keep it fast
on a GPU and a CPU alike:

* every member's first layer is linear, and so is bilinear interpolation, so
  they commute: each map is cut to the window of cells the wanted pixels read,
  projected to the members' first hidden layer at its own resolution (a 1x1
  convolution), and only then interpolated. At 512 px with a 28k-pixel region
  that is ~17 GFLOP instead of the ~435 GFLOP of projecting 6,016-channel
  per-pixel vectors;
* interpolation of a window is two small dense matrix products (rows, then
  columns), whose backward is two more products. Gathering the four taps per
  pixel instead has a scatter for a backward, and on CUDA that sort-based
  scatter took over half of every 512 px edit step;
* in eval mode a BatchNorm is an affine map per channel, folded into the
  Linear after it, and the members' later layers run as batched products: at
  64 px a full mask's forward and backward (pivotal tuning's branch term) went
  from 113 to 45 ms on this CPU, most of it BatchNorm's backward.

Training (:func:`core.train.branch.train_branch`) samples pixels from many
images and never backpropagates into the features, so it keeps the plain
four-tap gather of :func:`sample_features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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
            layers += [nn.Linear(d, h), nn.ReLU(), nn.BatchNorm1d(h)]  # not in place: members get views
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


@lru_cache(maxsize=512)
def _window(src_size: int, dst_size: int, lo: int, hi: int) -> tuple[int, int, Optional[torch.Tensor]]:
    """Cells [a, b) of a src_size axis that output rows [lo, hi) read, and the [hi-lo, b-a] interpolation matrix.

    The matrix is None when the axis is already at dst_size (the window is the rows themselves).
    """
    if src_size == dst_size:
        return lo, hi, None
    i0, i1, w = _bilinear_taps(torch.arange(lo, hi), src_size, dst_size)
    a, b = int(i0.min()), int(i1.max()) + 1
    m = torch.zeros(hi - lo, b - a)
    rows = torch.arange(hi - lo)
    m.index_put_((rows, i0 - a), 1 - w, accumulate=True)
    m.index_put_((rows, i1 - a), w, accumulate=True)  # i0 == i1 at the border: weights still sum to 1
    return a, b, m


@lru_cache(maxsize=512)
def _window_on(src_size: int, dst_size: int, lo: int, hi: int, device: torch.device, dtype: torch.dtype
               ) -> Optional[torch.Tensor]:  # fmt: skip
    """:func:`_window`'s matrix on ``device``, copied there once (a copy from the host every step would stop a
    CUDA graph's capture and adds small copies to the launch-bound GPU step); on the CPU, the matrix itself."""
    m = _window(src_size, dst_size, lo, hi)[2]
    return None if m is None else m.to(device, dtype)


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


def _gather_is_cheaper(feats: Sequence[torch.Tensor], n: int, out_size: int, y0: int, y1: int, x0: int, x1: int
                       ) -> bool:  # fmt: skip
    """Whether ``n`` pixels are cheaper gathered (four taps per pixel, then the first layer on each pixel's
    features) than computed through their bounding box (the first layer on every window cell, two interpolation
    products, the box's hidden tensor built and indexed).

    Both are counted in multiply-adds per first-layer output channel, and the gather must win by 1.5x: its
    backward is a scatter, slow on CUDA. It wins for make_transferable's carried change (thousands of pixels
    spread over 16 faces), not for a region of one face nor for a 6,016-channel branch (docs/results.md,
    speed on the CPU)."""
    batch, in_dim = feats[0].shape[0], sum(f.shape[1] for f in feats)
    h, w = y1 - y0, x1 - x0
    box, groups = 0, {}
    for f in feats:
        s = f.shape[-1]
        ya, yb, _ = _window(s, out_size, y0, y1)
        xa, xb, _ = _window(s, out_size, x0, x1)
        box += (yb - ya) * (xb - xa) * f.shape[1]  # the 1x1 projection of the window
        if s != out_size:
            groups[s] = h * (yb - ya) * (xb - xa) + h * (xb - xa) * w  # rows, then columns
    box += sum(groups.values()) + h * w * (len(groups) + 3)  # sums, bias, the permuted copy, index_select
    return 1.5 * n * in_dim < batch * box


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

    def _first_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's first Linear, stacked: weight [E*H, in_dim], bias [E*H]."""
        return (torch.cat([m.net[0].weight for m in self.members], 0),
                torch.cat([m.net[0].bias for m in self.members]))  # fmt: skip

    def _hidden_in_box(self, feats: Sequence[torch.Tensor], y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Every member's first layer on the output pixels [y0, y1) x [x0, x1): [B, E*H, y1-y0, x1-x0].

        Exact rewrite of "upsample every map, concatenate, apply the first
        Linear": each map is cut to the cells the box reads, projected by its
        block of the first-layer weights (maps of one size are summed), and
        interpolated to the box by two matrix products.
        """
        r = self.config.resolution
        weight, bias = self._first_layer()
        by_size: dict[int, torch.Tensor] = {}
        off = 0
        for f in feats:
            s, c = f.shape[-1], f.shape[1]
            block = weight[:, off : off + c, None, None]
            off += c
            ya, yb, _ = _window(s, r, y0, y1)
            xa, xb, _ = _window(s, r, x0, x1)
            p = F.conv2d(f[:, :, ya:yb, xa:xb], block.to(f.dtype))
            by_size[s] = p if s not in by_size else by_size[s] + p
        h = None
        for s, p in by_size.items():
            my = _window_on(s, r, y0, y1, p.device, p.dtype)
            mx = _window_on(s, r, x0, x1, p.device, p.dtype)
            if my is not None:
                p = torch.matmul(my, p)  # [h, s'] @ [B, EH, s', s''] -> [B, EH, h, s'']
            if mx is not None:
                p = torch.matmul(p, mx.t())  # -> [B, EH, h, w]
            h = p if h is None else h + p
        return h + bias[None, :, None, None].to(h.dtype)

    def _heads(self, hidden: torch.Tensor,
               folded: Optional[list[tuple[torch.Tensor, torch.Tensor]]] = None) -> torch.Tensor:  # fmt: skip
        """First-layer outputs [N, E*H] -> each member's remaining layers -> ensemble-mean logits [N, K].

        ``folded``: :meth:`_folded_layers`, when the caller runs several bands with the same weights."""
        h = hidden.view(hidden.shape[0], len(self.members), -1)
        if self.training:  # batch statistics: each member's own layers
            return torch.stack([m.net[1:](h[:, e]) for e, m in enumerate(self.members)], 0).mean(0)
        # eval: a BatchNorm with running statistics is an affine map per channel, folded into the Linear after it,
        # and the members run as batched products (BatchNorm's backward was most of a branch term's cost)
        *hidden_layers, (weight, bias) = folded or self._folded_layers()
        h = torch.relu(h.transpose(0, 1))  # [E, N, H]
        for w, b in hidden_layers:
            h = torch.relu(torch.baddbmm(b[:, None], h, w.transpose(1, 2)))
        return torch.einsum("enh,ekh->nk", h, weight) / len(self.members) + bias.mean(0)  # the members' mean

    def _folded_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every member's layers after the first, stacked, BatchNorms folded in: [(weight [E, out, in], bias [E, out])].

        Stacked first, then folded in a few batched operations: the GPU edit step is launch-bound.
        """
        nets = [m.net for m in self.members]

        def stacked(i: int, name: str) -> torch.Tensor:
            return torch.stack([getattr(net[i], name) for net in nets])

        layers, scale, shift = [], None, None  # the pending BatchNorm: x -> x * scale + shift, [E, in]
        for i, mod in enumerate(nets[0]):
            if i == 0:  # the first layer is applied before interpolation (_hidden_in_box)
                continue
            if isinstance(mod, nn.BatchNorm1d):
                scale = stacked(i, "weight") / torch.sqrt(stacked(i, "running_var") + mod.eps)
                shift = stacked(i, "bias") - stacked(i, "running_mean") * scale
            elif isinstance(mod, nn.Linear):
                weight, bias = stacked(i, "weight"), stacked(i, "bias")
                if scale is not None:
                    weight, bias = weight * scale[:, None, :], bias + torch.einsum("eoi,ei->eo", weight, shift)
                    scale = shift = None
                layers.append((weight, bias))
        return layers

    def logits_at(
        self, features: Sequence[torch.Tensor], batch_idx: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
        box: Optional[tuple[int, int, int, int]] = None,
    ) -> torch.Tensor:
        """Logits [N, num_classes] at chosen pixels only (what editing needs inside its region).

        Work and memory scale with the pixels' bounding box, not the image, or with the pixels themselves when
        they are few and spread out (:func:`_gather_is_cheaper`). ``box``: the pixels' (y0, y1, x0, x1) bounds,
        when the caller knows them (reading them from CUDA tensors waits for the GPU, and stops a graph capture).
        """
        if len(ys) == 0:
            return torch.zeros(0, self.config.num_classes, device=ys.device)
        feats = self.select(features)
        y0, y1, x0, x1 = box or (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
        if _gather_is_cheaper(feats, len(ys), self.config.resolution, y0, y1, x0, x1):
            weight, bias = self._first_layer()
            h = sample_features(feats, batch_idx, ys, xs, self.config.resolution)
            return self._heads(torch.addmm(bias.to(h.dtype), h, weight.t().to(h.dtype)))
        h = self._hidden_in_box(feats, y0, y1, x0, x1)
        flat = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])  # [B*hb*wb, E*H]
        hb, wb = y1 - y0, x1 - x0
        return self._heads(flat.index_select(0, batch_idx * (hb * wb) + (ys - y0) * wb + (xs - x0)))

    def forward(self, features: Sequence[torch.Tensor], chunk: int = 16384) -> torch.Tensor:
        """Full-image logits [B, num_classes, H, W], computed a band of rows (about ``chunk`` pixels) at a time."""
        feats = self.select(features)
        b, r = feats[0].shape[0], self.config.resolution
        rows = max(1, chunk // (b * r))
        folded = None if self.training else self._folded_layers()  # once for all bands
        bands = []
        for y0 in range(0, r, rows):
            y1 = min(r, y0 + rows)
            h = self._hidden_in_box(feats, y0, y1, 0, r)
            logits = self._heads(h.permute(0, 2, 3, 1).reshape(-1, h.shape[1]), folded)
            bands.append(logits.view(b, y1 - y0, r, -1))
        return torch.cat(bands, 1).permute(0, 3, 1, 2)

    def forward_upsampled(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The original release's formulation: upsample every map, classify every pixel (memory-heavy)."""
        feats = self.select(features)
        r = self.config.resolution
        up = torch.cat([F.interpolate(f, size=(r, r), mode="bilinear", align_corners=False) for f in feats], 1)
        b = up.shape[0]
        flat = up.permute(0, 2, 3, 1).reshape(-1, up.shape[1])
        return self.classify(flat).view(b, r, r, -1).permute(0, 3, 1, 2)
