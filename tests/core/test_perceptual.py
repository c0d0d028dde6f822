import importlib

import pytest
import torch

import core.perceptual as perceptual


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def test_substitute_when_backbone_missing_and_it_says_so(empty_hub, caplog):
    perceptual._warned = False
    with caplog.at_level("WARNING"):
        p = perceptual.PerceptualLoss(net="vgg")
    assert not p.is_lpips and "substitute" in p.backend
    assert "LPIPS backbone weights" in caplog.text
    with pytest.raises(RuntimeError, match="--fetch"):
        perceptual.PerceptualLoss(net="vgg", require_lpips=True)


def test_lap1_is_a_distance_and_differentiable(empty_hub):
    p = perceptual.PerceptualLoss()
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    b = a.clone().requires_grad_(True)
    assert torch.allclose(p(a, a), torch.zeros(2))
    d = p(a, (b + 0.3 * torch.randn_like(b)))
    assert (d > 0).all()
    d.sum().backward()
    assert b.grad is not None
    # structure matters more than the same energy of flat colour shift
    shift = p(a, a + 0.1)
    noise = p(a, a + 0.1 * torch.sign(torch.randn_like(a)))
    assert (noise > shift).all()
    with pytest.raises(ValueError, match="equal shapes"):
        p(a, a[:, :, :16])


def test_real_lpips_is_used_when_the_backbone_is_cached(empty_hub):
    from torchvision.models import alexnet

    (empty_hub / "checkpoints").mkdir()
    torch.save(alexnet().state_dict(), empty_hub / "checkpoints" / "alexnet-owt-7be5be79.pth")
    importlib.reload(perceptual)
    p = perceptual.PerceptualLoss(net="alex")
    assert p.is_lpips and p.backend == "lpips-alex"
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert p(a, a).abs().item() < 1e-6
    assert p(a, -a).item() > 0


def test_unknown_net_is_refused():
    with pytest.raises(ValueError, match="net must be"):
        perceptual.backbone_path("resnet")


def test_random_backbone_is_labelled_timing_only_and_needs_no_download(empty_hub):
    p = perceptual.PerceptualLoss(net="alex", random_backbone=True)
    assert p.is_lpips and p.backend == "lpips-alex (random backbone: timing only)"
    assert not (empty_hub / "checkpoints").exists()  # nothing was fetched
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert p(a, a).abs().item() < 1e-6
    with pytest.raises(ValueError, match="net must be"):
        perceptual.PerceptualLoss(net="resnet", random_backbone=True)
