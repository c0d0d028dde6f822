"""StyleGAN2 residual discriminator, laid out as rosinality's ``Discriminator``.

Only used for training; the editor never needs it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.generator import GeneratorConfig
from core.ops import Blur, EqualConv2d, EqualLinear, FusedLeakyReLU


class ConvLayer(nn.Sequential):
    def __init__(self, in_ch, out_ch, kernel_size, downsample=False, blur_kernel=(1, 3, 3, 1), bias=True, activate=True):
        layers: list[nn.Module] = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, padding=padding, stride=stride, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False, bias=False, blur_kernel=blur_kernel)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """Image [B, 3, H, W] -> realness logit [B, 1]. Channel widths follow the generator's config."""

    def __init__(self, config: GeneratorConfig, stddev_group: int = 4):
        super().__init__()
        c = config
        convs: list[nn.Module] = [ConvLayer(3, c.channels(c.resolution), 1)]
        in_ch = c.channels(c.resolution)
        for i in range(c.log_size, 2, -1):
            out_ch = c.channels(2 ** (i - 1))
            convs.append(ResBlock(in_ch, out_ch, c.blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_ch + 1, c.channels(4), 3)
        self.final_linear = nn.Sequential(
            EqualLinear(c.channels(4) * 4 * 4, c.channels(4), activation="fused_lrelu"),
            EqualLinear(c.channels(4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        b, ch, h, w = out.shape
        group = min(b, self.stddev_group)
        while b % group:
            group -= 1
        std = out.view(group, -1, self.stddev_feat, ch // self.stddev_feat, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        std = std.repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, std], 1))
        return self.final_linear(out.view(b, -1))
