"""EDITGAN_DEVICE / --device: auto, cpu, cuda; a clear refusal of cuda where torch sees no GPU."""

import pytest
import torch

from core.cli import main
from core.device import ENV_DEVICE, device_spec_from_env, resolve_device
from core.testing import make_tiny_bundle

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == expected and resolve_device(None) == expected and resolve_device("") == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda0", "mps", "cuda:x", "cpu:0"])
def test_unknown_specs_are_refused(spec):
    with pytest.raises(ValueError, match="unknown device.*auto, cpu, cuda"):
        resolve_device(spec)


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused_not_replaced(spec):
    with pytest.raises(ValueError, match="sees no CUDA GPU.*EDITGAN_DEVICE=cpu"):
        resolve_device(spec)


def test_the_environment_gives_the_default(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    assert device_spec_from_env() == "auto"
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    assert device_spec_from_env() == "cpu"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("m") / "model")


def test_cli_device_cpu_runs(bundle, tmp_path):
    assert main(["--model", str(bundle), "--device", "cpu", "sample", "--seed", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sample_1.png").exists()


@no_cuda
def test_cli_device_cuda_fails_clearly(bundle, tmp_path, capsys):
    assert main(["--model", str(bundle), "--device", "cuda", "sample", "--out", str(tmp_path)]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "sample_0.png").exists()
