import math

import pytest
import torch
import torch.nn.functional as F

from core.generator import GeneratorConfig, ModulatedConv2d
from core.ops import upfirdn2d


def test_synthesis_shapes_and_features(tiny_generator):
    g = tiny_generator
    w = g.sample_w_plus(seed=1, batch=2)
    assert w.shape == (2, g.n_latent, 32)
    out = g.synthesis(w)
    assert out.image.shape == (2, 3, 16, 16)
    assert [f.shape[1] for f in out.features] == g.feature_channels
    assert [f.shape[-1] for f in out.features] == g.feature_resolutions
    assert g.n_latent == 2 * int(math.log2(16)) - 2
    assert torch.isfinite(out.image).all()


def test_const_noise_is_deterministic_and_random_noise_is_not(tiny_generator):
    g = tiny_generator
    w = g.sample_w_plus(seed=3)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)  # freshly initialised noise strengths are zero
        a, b = g(w).image, g(w).image
        torch.manual_seed(1)
        c = g(w, noise_mode="random").image
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_seeds_give_reproducible_latents(tiny_generator):
    g = tiny_generator
    assert torch.equal(g.sample_w_plus(7), g.sample_w_plus(7))
    assert not torch.equal(g.sample_w_plus(7), g.sample_w_plus(8))


def test_truncation_zero_gives_average_latent(tiny_generator):
    g = tiny_generator
    w = g.sample_w_plus(5, truncation=0.0)
    assert torch.allclose(w, g.w_avg.expand_as(w))


def test_wrong_latent_shape_is_refused(tiny_generator):
    with pytest.raises(ValueError, match=r"\[B, 6, 32\]"):
        tiny_generator.synthesis(torch.zeros(1, 5, 32))


def test_config_rejects_unknown_keys_and_bad_resolution():
    with pytest.raises(ValueError, match="resolutoin"):
        GeneratorConfig.from_dict({"resolutoin": 64})
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(resolution=48)
    cfg = GeneratorConfig(resolution=32, style_dim=16)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_default_channel_table_matches_rosinality():
    cfg = GeneratorConfig(resolution=1024, channel_multiplier=2)
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    assert {r: cfg.channels(r) for r in table} == table


def _fused_modulated_conv(mod: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """rosinality's fused path: one weight per sample, grouped convolution."""
    b, cin, h, wd = x.shape
    style = mod.modulation(w).view(b, 1, cin, 1, 1)
    weight = mod.scale * mod.weight * style
    if mod.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
        weight = weight * demod.view(b, mod.out_channel, 1, 1, 1)
    k = mod.kernel_size
    weight = weight.view(b * mod.out_channel, cin, k, k)
    if mod.upsample:
        x = x.view(1, b * cin, h, wd)
        weight = weight.view(b, mod.out_channel, cin, k, k).transpose(1, 2).reshape(b * cin, mod.out_channel, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
        out = out.view(b, mod.out_channel, *out.shape[-2:])
        return upfirdn2d(out, mod.blur.kernel, pad=mod.blur.pad)
    out = F.conv2d(x.view(1, b * cin, h, wd), weight, padding=mod.padding, groups=b)
    return out.view(b, mod.out_channel, h, wd)


@pytest.mark.parametrize("upsample,demodulate", [(False, True), (True, True), (False, False)])
def test_activation_modulation_equals_fused_weight_modulation(upsample, demodulate):
    torch.manual_seed(0)
    mod = ModulatedConv2d(6, 5, 3 if demodulate else 1, 8, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        mod.modulation.bias.normal_()
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 8)
    ours, ref = mod(x, w), _fused_modulated_conv(mod, x, w)
    assert ours.shape == ref.shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_generator_is_differentiable_in_w_plus(tiny_generator):
    w = tiny_generator.sample_w_plus(2).requires_grad_(True)
    tiny_generator(w).image.square().mean().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
