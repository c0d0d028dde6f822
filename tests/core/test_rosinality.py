"""Loading rosinality/stylegan2-pytorch checkpoints.

The expected keys and shapes are written out here from rosinality's model.py,
independently of core.generator, so a naming slip in our module tree fails.
"""

import argparse

import pytest
import torch

from core.checkpoint import infer_rosinality_config, load_rosinality, rosinality_state_dict
from core.generator import GeneratorConfig
from core.ops import make_kernel


def rosinality_shapes(size=256, style_dim=512, n_mlp=8, cm=2):
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    s = {}
    for i in range(1, n_mlp + 1):
        s[f"style.{i}.weight"] = (style_dim, style_dim)
        s[f"style.{i}.bias"] = (style_dim,)
    s["input.input"] = (1, ch[4], 4, 4)

    def styled(p, cin, cout, up):
        s[f"{p}.conv.weight"] = (1, cout, cin, 3, 3)
        s[f"{p}.conv.modulation.weight"] = (cin, style_dim)
        s[f"{p}.conv.modulation.bias"] = (cin,)
        if up:
            s[f"{p}.conv.blur.kernel"] = (4, 4)
        s[f"{p}.noise.weight"] = (1,)
        s[f"{p}.activate.bias"] = (cout,)

    def to_rgb(p, cin, up):
        if up:
            s[f"{p}.upsample.kernel"] = (4, 4)
        s[f"{p}.conv.weight"] = (1, 3, cin, 1, 1)
        s[f"{p}.conv.modulation.weight"] = (cin, style_dim)
        s[f"{p}.conv.modulation.bias"] = (cin,)
        s[f"{p}.bias"] = (1, 3, 1, 1)

    styled("conv1", ch[4], ch[4], False)
    to_rgb("to_rgb1", ch[4], False)
    log_size = size.bit_length() - 1
    for layer in range((log_size - 2) * 2 + 1):
        r = 2 ** ((layer + 5) // 2)
        s[f"noises.noise_{layer}"] = (1, 1, r, r)
    cin = ch[4]
    for i in range(3, log_size + 1):
        cout = ch[2**i]
        styled(f"convs.{2 * (i - 3)}", cin, cout, True)
        styled(f"convs.{2 * (i - 3) + 1}", cout, cout, False)
        to_rgb(f"to_rgbs.{i - 3}", cout, True)
        cin = cout
    return s


def build_state_dict(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in shapes.items():
        if k.endswith("blur.kernel") or k.endswith("upsample.kernel"):
            sd[k] = make_kernel([1, 3, 3, 1]) * 4
        elif k.endswith("modulation.bias"):
            sd[k] = torch.ones(shape)
        else:
            sd[k] = torch.randn(*shape, generator=g) * (0.1 if "noise.weight" in k else 1.0)
    return sd


@pytest.fixture(scope="module")
def config_f_state():
    return build_state_dict(rosinality_shapes())


def test_config_f_keys_and_shapes_match_exactly(config_f_state):
    g = load_rosinality({"g_ema": config_f_state})
    ours = {k: tuple(v.shape) for k, v in rosinality_state_dict(g).items()}
    assert ours == rosinality_shapes()
    assert g.config == GeneratorConfig(resolution=256, style_dim=512, n_mlp=8, channel_multiplier=2)
    for k, v in config_f_state.items():
        assert torch.equal(g.state_dict()[k], v), k


def test_config_f_output_is_finite_and_deterministic(config_f_state):
    g = load_rosinality({"g_ema": config_f_state})
    w = g.sample_w_plus(0, truncation=0.7)
    with torch.no_grad():
        a, b = g(w).image, g(w).image
    assert a.shape == (1, 3, 256, 256)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)


def test_pt_file_with_args_namespace_loads(tmp_path):
    shapes = rosinality_shapes(size=64, style_dim=64, n_mlp=2, cm=1)
    sd = build_state_dict(shapes)
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": sd, "g": sd, "args": argparse.Namespace(size=64, latent=64)}, path)
    g = load_rosinality(path, config=infer_rosinality_config(sd))
    assert g.config.resolution == 64 and g.n_latent == 10


def test_wrong_shape_is_named_and_nothing_is_loaded():
    shapes = rosinality_shapes(size=64, style_dim=64, n_mlp=2, cm=1)
    sd = build_state_dict(shapes)
    sd["convs.1.conv.weight"] = torch.randn(1, 256, 256, 3, 3)
    with pytest.raises(ValueError, match=r"convs\.1\.conv\.weight: shape \[1, 256, 256, 3, 3\]"):
        load_rosinality({"g_ema": sd}, config=GeneratorConfig(resolution=64, style_dim=64, n_mlp=2, channel_multiplier=1))


def test_missing_and_unexpected_keys_are_named():
    shapes = rosinality_shapes(size=64, style_dim=64, n_mlp=2, cm=1)
    sd = build_state_dict(shapes)
    del sd["to_rgbs.1.bias"]
    sd["extra.weight"] = torch.zeros(1)
    cfg = GeneratorConfig(resolution=64, style_dim=64, n_mlp=2, channel_multiplier=1)
    with pytest.raises(ValueError, match=r"missing keys \['to_rgbs\.1\.bias'\].*unexpected keys \['extra\.weight'\]"):
        load_rosinality({"g_ema": sd}, config=cfg)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable PyTorch checkpoint"):
        load_rosinality(bad)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"g_ema": Evil()}, path)
    with pytest.raises(ValueError, match="not a loadable PyTorch checkpoint"):
        load_rosinality(path)
