"""core.accel: CUDA-only switches; on the CPU the edit loop is the plain one, bit for bit."""

import pytest
import torch

from core.accel import AccelConfig, precision
from core.branch import BranchConfig, SegmentationBranch
from core.edit import EditConfig, EditObjective, optimize_edit
from core.perceptual import PerceptualLoss


def _objective(generator, device="cpu"):
    g = generator.to(device)
    br = SegmentationBranch(BranchConfig(feature_channels=tuple(g.feature_channels), resolution=16, num_classes=4,
                                         hidden=(16, 8), ensemble=2)).eval().to(device)  # fmt: skip
    w = g.sample_w_plus(3).to(device)
    roi = torch.zeros(16, 16, dtype=torch.bool, device=device)
    roi[3:11, 5:13] = True
    target = torch.randint(0, 4, (16, 16), generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        img = g(w).image
    return EditObjective(g, br, None, PerceptualLoss().to(device), img, target, roi, EditConfig(lr=0.05)), w


def test_accel_is_ignored_on_the_cpu(tiny_generator):
    obj, w = _objective(tiny_generator)
    plain = optimize_edit(obj, w, 5)
    graphed = optimize_edit(obj, w, 5, accel=AccelConfig(tf32=True, cuda_graphs=True))
    assert plain[1] == graphed[1] and plain[2] == graphed[2]
    assert torch.equal(plain[0], graphed[0])


def test_the_objective_knows_its_box(tiny_generator):
    obj, _ = _objective(tiny_generator)
    assert obj.box == (3, 11, 5, 13)


def test_precision_sets_tf32_for_cuda_only_and_restores_it():
    holders = [torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", torch.backends.cudnn)]
    name = "fp32_precision" if all(hasattr(h, "fp32_precision") for h in holders) else "allow_tf32"
    before = [getattr(h, name) for h in holders]
    with precision(torch.device("cpu"), True):
        assert [getattr(h, name) for h in holders] == before
    for on in (True, False):
        with precision(torch.device("cuda"), on):  # only flags: runs without a GPU
            assert all(getattr(h, name) == ({True: "tf32", False: "ieee"}[on] if name == "fp32_precision" else on)
                       for h in holders)  # fmt: skip
        assert [getattr(h, name) for h in holders] == before
    with precision(torch.device("cuda"), None):
        assert [getattr(h, name) for h in holders] == before


def test_config_is_checked():
    with pytest.raises(ValueError, match="graph_warmup"):
        AccelConfig(graph_warmup=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replays_the_eager_loop(tiny_generator):
    """Run on a GPU machine: pytest -m gpu tests/core/test_accel.py (never run yet: no GPU was lent)."""
    obj, w = _objective(tiny_generator, "cuda")
    eager = optimize_edit(obj, w, 12, accel=AccelConfig(tf32=False))
    seen = []
    graphed = optimize_edit(obj, w, 12, callback=lambda s, v, img: seen.append(s),
                            accel=AccelConfig(tf32=False, cuda_graphs=True))  # fmt: skip
    assert seen == list(range(12))
    torch.testing.assert_close(torch.tensor(graphed[1]), torch.tensor(eager[1]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(graphed[0], eager[0], rtol=1e-4, atol=1e-5)
