"""Tiny seeded CPU models shared by the core tests."""

import pytest
import torch

from core.generator import Generator, GeneratorConfig

TINY = GeneratorConfig(resolution=16, style_dim=32, n_mlp=2, channel_base=256, channel_max=32, channel_multiplier=1)


@pytest.fixture
def tiny_config() -> GeneratorConfig:
    return TINY


@pytest.fixture
def tiny_generator() -> Generator:
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    g.compute_w_avg(256)
    return g
