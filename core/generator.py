"""StyleGAN2 generator (Karras et al., CVPR 2020) with a W+ interface.

The module tree and parameter names follow rosinality/stylegan2-pytorch
``model.py`` exactly (``style.1.weight``, ``convs.3.conv.modulation.bias``,
``noises.noise_5`` ...), so its checkpoints -- EditGAN's released models among
them -- load with :func:`core.checkpoint.load_rosinality`. Two things differ by
design:

* the modulated convolution scales activations instead of building one weight
  per sample (mathematically the same as the "fused" path, much faster for
  batches on CPU);
* synthesis takes a W+ latent ``[B, n_latent, w_dim]`` and can return every
  layer's feature map, which the segmentation branch and the editor read.

Noise inputs are fixed buffers by default, so the same latent always gives the
same image (edits must be deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from core.config import ConfigMixin
from core.ops import Blur, EqualLinear, FusedLeakyReLU, PixelNorm, Upsample


@dataclass(frozen=True)
class GeneratorConfig(ConfigMixin):
    """Architecture of a StyleGAN2 generator.

    Channel width at resolution ``r`` is ``min(channel_max, channel_base * channel_multiplier // r)``;
    the defaults reproduce rosinality's table (512 up to 32 px, then 256*cm at 64 px, ...).
    """

    resolution: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    channel_base: int = 16384
    channel_max: int = 512
    lr_mlp: float = 0.01
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    noise_seed: int = 0  # seeds the fixed noise buffers

    def __post_init__(self) -> None:
        log = math.log2(self.resolution) if self.resolution > 0 else -1
        if log != int(log) or self.resolution < 8:
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        for name in ("style_dim", "n_mlp", "channel_multiplier", "channel_base", "channel_max"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "blur_kernel", tuple(int(t) for t in self.blur_kernel))

    @property
    def log_size(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def n_latent(self) -> int:
        """Number of W+ entries: one per styled conv plus one per ToRGB, shared as in rosinality."""
        return self.log_size * 2 - 2

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_max, self.channel_base * self.channel_multiplier // res))

class ModulatedConv2d(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: tuple[int, ...] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # x: [B, in, H, W], w: [B, style_dim]
        style = self.modulation(w)  # [B, in]
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * style[:, :, None, None]
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # d[b, o] = 1/sqrt(sum_{i,k} (weight[o,i,k] * style[b,i])^2): the fused path's norm.
            w2 = weight.pow(2).sum(dim=(2, 3))  # [out, in]
            demod = torch.rsqrt(style.pow(2) @ w2.t() + 1e-8)  # [B, out]
            x = x * demod[:, :, None, None]
        if self.upsample:
            x = self.blur(x)
        return x

class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
        if noise is None:
            return x
        return x + self.weight * noise

class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)

class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, w, noise=None):
        return self.activate(self.noise(self.conv(x, w), noise))

class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, w, skip=None):
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out

@dataclass
class GeneratorOutput:
    """What one synthesis pass gives back.

    image: [B, 3, H, W] in roughly [-1, 1].
    features: the constant input, then one map per styled conv, coarse to fine: [B, C_i, H_i, W_i]
        (16 maps, 6016 channels for a 512 px config-f generator, as DatasetGAN/EditGAN read them).
    """

    image: torch.Tensor
    features: list[torch.Tensor] = field(default_factory=list)

class Generator(nn.Module):
    """Mapping network + synthesis network, W+ in, image (and feature maps) out."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config
        layers: list[nn.Module] = [PixelNorm()]
        for _ in range(c.n_mlp):
            layers.append(EqualLinear(c.style_dim, c.style_dim, lr_mul=c.lr_mlp, activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        ch4 = c.channels(4)
        self.input = ConstantInput(ch4)
        self.conv1 = StyledConv(ch4, ch4, 3, c.style_dim, blur_kernel=c.blur_kernel)
        self.to_rgb1 = ToRGB(ch4, c.style_dim, upsample=False)

        self.num_layers = (c.log_size - 2) * 2 + 1
        self.noises = nn.Module()
        gen = torch.Generator().manual_seed(c.noise_seed)
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res, generator=gen))

        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch4
        for i in range(3, c.log_size + 1):
            out_ch = c.channels(2**i)
            self.convs.append(StyledConv(in_ch, out_ch, 3, c.style_dim, upsample=True, blur_kernel=c.blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, c.style_dim, blur_kernel=c.blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, c.style_dim, blur_kernel=c.blur_kernel))
            in_ch = out_ch
        self.n_latent = c.n_latent
        # Running mean of W, the centre for truncation. Not part of rosinality's
        # state dict: recomputed when one of its checkpoints is loaded.
        self.register_buffer("w_avg", torch.zeros(c.style_dim))

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def feature_channels(self) -> list[int]:
        """Channels of each map in ``GeneratorOutput.features``: the constant input, conv1, then every conv."""
        c4 = self.conv1.activate.bias.shape[0]
        return [c4, c4] + [m.activate.bias.shape[0] for m in self.convs]

    @property
    def feature_resolutions(self) -> list[int]:
        return [4, 4] + [2 ** (3 + i // 2) for i in range(len(self.convs))]

    # -- latents ----------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, style_dim] -> w [B, style_dim]."""
        return self.style(z)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        if psi == 1.0:
            return w
        return self.w_avg.to(w.dtype) + psi * (w - self.w_avg.to(w.dtype))

    def to_w_plus(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, style_dim] -> W+ [B, n_latent, style_dim] (the same w for every layer)."""
        return w[:, None, :].expand(-1, self.n_latent, -1).contiguous()

    def z_from_seed(self, seed: int, batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(batch, self.config.style_dim, generator=g).to(device)

    @torch.no_grad()
    def sample_w_plus(self, seed: int, batch: int = 1, truncation: float = 1.0) -> torch.Tensor:
        """Deterministic W+ latents for a seed: [batch, n_latent, style_dim]."""
        device = self.w_avg.device
        w = self.mapping(self.z_from_seed(seed, batch, device))
        return self.to_w_plus(self.truncate(w, truncation))

    @torch.no_grad()
    def compute_w_avg(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        z = self.z_from_seed(seed, n, self.w_avg.device)
        self.w_avg.copy_(self.mapping(z).mean(0))
        return self.w_avg

    # -- synthesis --------------------------------------------------------------------------------
    def _noise(self, i: int, batch: int, mode: str, ref: torch.Tensor) -> Optional[torch.Tensor]:
        if mode == "const":
            return getattr(self.noises, f"noise_{i}")
        if mode == "random":
            res = 2 ** ((i + 5) // 2)
            return torch.randn(batch, 1, res, res, device=ref.device, dtype=ref.dtype)
        if mode == "none":
            return None
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {mode!r}")

    def synthesis(
        self,
        w_plus: torch.Tensor,  # [B, n_latent, style_dim]
        noise_mode: str = "const",
        return_features: bool = True,
    ) -> GeneratorOutput:
        if w_plus.ndim != 3 or w_plus.shape[1:] != (self.n_latent, self.config.style_dim):
            raise ValueError(
                f"W+ latent must have shape [B, {self.n_latent}, {self.config.style_dim}], got {list(w_plus.shape)}"
            )
        batch = w_plus.shape[0]
        x = self.input(batch)
        features = [x] if return_features else []
        x = self.conv1(x, w_plus[:, 0], noise=self._noise(0, batch, noise_mode, x))
        if return_features:
            features.append(x)
        skip = self.to_rgb1(x, w_plus[:, 1])
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            conv_up, conv = self.convs[2 * j], self.convs[2 * j + 1]
            x = conv_up(x, w_plus[:, i], noise=self._noise(2 * j + 1, batch, noise_mode, x))
            if return_features:
                features.append(x)
            x = conv(x, w_plus[:, i + 1], noise=self._noise(2 * j + 2, batch, noise_mode, x))
            if return_features:
                features.append(x)
            skip = to_rgb(x, w_plus[:, i + 2], skip)
            i += 2
        return GeneratorOutput(image=skip, features=features)

    def forward(self, w_plus: torch.Tensor, noise_mode: str = "const", return_features: bool = False) -> GeneratorOutput:
        return self.synthesis(w_plus, noise_mode=noise_mode, return_features=return_features)
