"""Differentiable augmentation for discriminator inputs (DiffAugment, Zhao et al. 2020).

Applied identically in spirit to real and fake images so D cannot memorise;
optional in GAN training (the procedural domain is infinite, so it is off by
default and meant for small real datasets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None, translation: float = 0.125) -> torch.Tensor:
    """x [B, 3, H, W] in [-1, 1] -> randomly recoloured and translated copy (same shape)."""
    b = x.shape[0]
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    x = x + (rand(b, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean  # contrast
    if translation > 0:
        h, w = x.shape[-2:]
        sh, sw = int(h * translation + 0.5), int(w * translation + 0.5)
        ty = (rand(b) * (2 * sh + 1)).long() - sh
        tx = (rand(b) * (2 * sw + 1)).long() - sw
        padded = F.pad(x, (sw, sw, sh, sh))
        gy = (torch.arange(h, device=dev)[None, :] + sh - ty[:, None]).clamp(0, h + 2 * sh - 1)
        gx = (torch.arange(w, device=dev)[None, :] + sw - tx[:, None]).clamp(0, w + 2 * sw - 1)
        bi = torch.arange(b, device=dev)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[bi, gy[:, :, None], gx[:, None, :]].permute(0, 3, 1, 2)
    return x
