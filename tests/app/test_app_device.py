"""The app's device setting and the ZeroGPU decorator (a no-op off a Space)."""

import importlib.machinery
import sys
import types

import pytest
import torch

from app.config import AppConfig
from app.gpu import gpu_task, zero_gpu_available

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_device_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("EDITGAN_DEVICE", raising=False)
    assert AppConfig.from_env().device == "auto"
    monkeypatch.setenv("EDITGAN_DEVICE", "cpu")
    cfg = AppConfig.from_env()
    assert cfg.device == "cpu" and cfg.torch_device == torch.device("cpu")
    monkeypatch.setenv("EDITGAN_DEVICE", "tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        AppConfig.from_env().torch_device


@no_cuda
def test_runtime_refuses_cuda_without_a_gpu(monkeypatch, tmp_path):
    from app.runtime import Runtime

    monkeypatch.setenv("EDITGAN_DEVICE", "cuda")
    cfg = AppConfig.from_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        Runtime.create(cfg)


def _fn(x, request=None):
    return x + 1


def test_gpu_task_is_a_no_op_off_a_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not zero_gpu_available()
    assert gpu_task(30)(_fn) is _fn


def test_gpu_task_wraps_with_spaces_gpu_on_a_space(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")
    fake.__spec__ = importlib.machinery.ModuleSpec("spaces", None)

    def GPU(duration):  # noqa: N802 -- the spaces package's name
        def deco(fn):
            calls.append(duration)
            return fn
        return deco

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert gpu_task(30)(_fn) is _fn and calls == []  # the package alone is not enough
    monkeypatch.setenv("SPACE_ID", "owner/editor")
    assert zero_gpu_available()
    assert gpu_task(45)(_fn)(1) == 2 and calls == [45]
