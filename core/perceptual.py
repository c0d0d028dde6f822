"""Perceptual distance: LPIPS where its backbone weights exist, a documented substitute where not.

LPIPS (Zhang et al., CVPR 2018) needs two sets of weights: its small linear
heads, which ship inside the ``lpips`` package, and an ImageNet backbone
(AlexNet or VGG16), which torchvision downloads into the torch hub cache on
first use. Machines without internet have no backbone, so this wrapper checks
the cache *before* building LPIPS and, if the file is missing, says so once and
uses the substitute:

* ``lap1``: the Laplacian-pyramid L1 distance of Bojanowski et al. 2018
  ("Optimizing the Latent Space of Generative Networks"), a training-free loss
  proposed as a perceptual proxy: L1 differences of the band-pass images at
  every scale, the sum at level j weighted 2^(2j) as in that paper (which is
  the same as weighting every level's per-pixel mean equally), so structure at
  all scales counts, not only per-pixel colour.

Every result that depends on it records :attr:`PerceptualLoss.backend`.
Get the real weights on a machine with internet:

    python -m core.perceptual --fetch            # downloads AlexNet and VGG16 backbones
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_warned = False


def backbone_path(net: str) -> Path:
    if net not in _BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(_BACKBONE_FILES)}, got {net!r}")
    return Path(torch.hub.get_dir()) / "checkpoints" / _BACKBONE_FILES[net]


def lpips_available(net: str = "vgg") -> bool:
    return backbone_path(net).is_file()


@lru_cache(maxsize=16)
def _gauss_kernel(device, dtype) -> torch.Tensor:  # cached: built from a list, it is a host copy every call
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    k = (k[:, None] * k[None, :]) / 256.0
    return k[None, None].repeat(3, 1, 1, 1)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """x [B, 3, H, W] -> band-pass images, finest first, plus the low-pass residual last."""
    k = _gauss_kernel(x.device, x.dtype)
    bands = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 4:
            break
        blurred = F.conv2d(F.pad(cur, (2, 2, 2, 2), mode="reflect"), k, groups=3)
        down = blurred[:, :, ::2, ::2]
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(cur - up)
        cur = down
    bands.append(cur)
    return bands


def lap1_distance(a: torch.Tensor, b: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Laplacian-pyramid L1 per sample: [B, 3, H, W] x2 -> [B]."""
    pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    # 2^(2j) times the level-j sum (4^-j as many pixels) = the level-j mean, up to H*W
    per_level = [(u - v).abs().flatten(1).mean(1) for u, v in zip(pa, pb)]
    return torch.stack(per_level, 0).mean(0)


class PerceptualLoss(nn.Module):
    """Perceptual distance between images in [-1, 1]: ``forward(a, b) -> [B]``.

    ``backend`` is "lpips-vgg", "lpips-alex" or "lap1 (substitute: LPIPS backbone weights missing)".
    ``require_lpips=True`` raises instead of substituting.
    ``random_backbone=True`` builds LPIPS with an untrained backbone (backend
    "lpips-<net> (random backbone: timing only)"): the same network and cost as
    the real one, for speed and memory measurements on machines without the
    weights. Its distances mean nothing; never use it for quality.
    """

    def __init__(self, net: str = "vgg", require_lpips: bool = False, random_backbone: bool = False):
        super().__init__()
        global _warned
        self.net = net
        if random_backbone:
            import lpips

            backbone_path(net)  # validates the name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.lpips = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
            self.lpips.requires_grad_(False)
            self.backend = f"lpips-{net} (random backbone: timing only)"
        elif lpips_available(net):
            import lpips

            with warnings.catch_warnings():  # lpips 0.1.4 uses torchvision's deprecated `pretrained=`
                warnings.simplefilter("ignore", UserWarning)
                self.lpips = lpips.LPIPS(net=net, pretrained=True, verbose=False).eval()
            self.lpips.requires_grad_(False)
            self.backend = f"lpips-{net}"
        else:
            if require_lpips:
                raise RuntimeError(
                    f"LPIPS backbone weights not found at {backbone_path(net)}; "
                    "run `python -m core.perceptual --fetch` on a machine with internet"
                )
            self.lpips = None
            self.backend = "lap1 (substitute: LPIPS backbone weights missing)"
            if not _warned:
                log.warning(
                    "LPIPS backbone weights for %r are not in %s (offline machine?). Using the "
                    "Laplacian-pyramid L1 substitute; results record this. Fetch the real weights "
                    "with `python -m core.perceptual --fetch`.",
                    net,
                    backbone_path(net).parent,
                )
                _warned = True

    @property
    def is_lpips(self) -> bool:
        return self.lpips is not None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"perceptual loss needs equal shapes, got {list(a.shape)} and {list(b.shape)}")
        if self.lpips is not None:
            return self.lpips(a, b, normalize=False).flatten()
        return lap1_distance(a, b)


def fetch(nets: tuple[str, ...] = ("alex", "vgg")) -> None:
    """Download the torchvision backbones into the torch hub cache (needs internet)."""
    from torchvision import models

    for net in nets:
        weights = {"alex": models.AlexNet_Weights.IMAGENET1K_V1, "vgg": models.VGG16_Weights.IMAGENET1K_V1}[net]
        weights.get_state_dict(progress=True)
        print(f"{net}: {backbone_path(net)} ({os.path.getsize(backbone_path(net)) / 1e6:.0f} MB)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="LPIPS backbone weights")
    ap.add_argument("--fetch", action="store_true", help="download AlexNet and VGG16 backbones")
    args = ap.parse_args()
    if args.fetch:
        fetch()
    else:
        for n in _BACKBONE_FILES:
            print(f"{n}: {'present' if lpips_available(n) else 'missing'} ({backbone_path(n)})")
