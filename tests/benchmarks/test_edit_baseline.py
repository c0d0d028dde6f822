"""The faithful baseline computes our loss by the released strategy: same values, same gradient, same step."""

import pytest
import torch

from benchmarks.edit_baseline import baseline_terms
from core.branch import BranchConfig, SegmentationBranch
from core.edit import EditConfig, EditObjective, region_of_interest
from core.editgan import EditGAN
from core.generator import Generator
from core.perceptual import PerceptualLoss
from core.testing import TINY_GENERATOR


def _tiny_case():
    """A seeded 16 px generator and a 2-member branch whose BatchNorms have non-trivial running statistics."""
    torch.manual_seed(0)
    g = Generator(TINY_GENERATOR).eval()
    g.compute_w_avg(256)
    br = SegmentationBranch(BranchConfig(feature_channels=tuple(g.feature_channels), resolution=16, num_classes=4,
                                         hidden=(16, 8), ensemble=2)).eval()  # fmt: skip
    for m in br.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    w = g.sample_w_plus(3)
    roi = torch.zeros(16, 16, dtype=torch.bool)
    roi[3:11, 5:13] = True
    target = torch.randint(0, 4, (16, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img = g(w).image
    return EditObjective(g, br, None, PerceptualLoss(), img, target, roi, EditConfig()), w


def _faces64_case():
    model = EditGAN.load("faces64", require=("branch",))
    w = model.sample(3)
    mask = model.segment(w)[0]
    target = mask.clone()
    target[20:30, 24:40] = model.class_names.index("hair")
    roi, _ = region_of_interest(mask, target, model.class_names)
    with torch.no_grad():
        img = model.generator(w).image
    obj = EditObjective(model.generator, model.branch, model.encoder, model.perceptual, img, target, roi,
                        EditConfig(), model.reader)  # fmt: skip
    return obj, w


def _one_step(fn, obj, w0, lr=0.02):
    """One Adam step from w0 under loss ``fn``: (loss, terms, gradient, delta)."""
    w = w0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    loss, _, parts = fn(obj, w)
    loss.backward()
    grad = w.grad.detach().clone()
    opt.step()
    return loss.detach(), {k: v.detach() for k, v in parts.items()}, grad, (w - w0).detach()


def _ours(obj, w):
    return obj.terms(w)


@pytest.mark.parametrize("case", [_tiny_case, _faces64_case], ids=["tiny", "faces64"])
def test_baseline_equals_our_step(case):
    obj, w = case()
    for m in (obj.generator, obj.branch, obj.encoder, obj.reader):
        if m is not None:
            m.requires_grad_(False)
    w0 = w + 0.05 * torch.randn(w.shape, generator=torch.Generator().manual_seed(2))
    ours = _one_step(_ours, obj, w0)
    base = _one_step(baseline_terms, obj, w0)
    assert set(ours[1]) == set(base[1]) and len(ours[1]) >= 3
    for k in ours[1]:
        torch.testing.assert_close(ours[1][k], base[1][k], rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(ours[0], base[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[2], base[2], rtol=1e-4, atol=1e-7)
    # Adam's first step is about lr * sign(grad): compare where the gradient is clear of float noise
    clear = ours[2].abs() > 1e-5 * ours[2].abs().max()
    torch.testing.assert_close(ours[3][clear], base[3][clear], rtol=1e-4, atol=1e-6)
    assert ours[3].abs().max() > 0
