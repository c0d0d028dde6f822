"""bench_train measures the three data paths side by side and the renderers per core."""

import dataclasses

import torch

import benchmarks.bench_train as bt
from core.generator import GeneratorConfig

TINY = GeneratorConfig(resolution=16, style_dim=32, n_mlp=2, channel_base=256, channel_max=32, channel_multiplier=1)


def test_every_path_is_timed_with_finite_losses(monkeypatch):
    monkeypatch.setattr(bt, "RECIPE", dataclasses.replace(bt.RECIPE, generator=TINY))
    row = bt.measure(16, 2, steps=1, warmup=1, device=torch.device("cpu"), workers=0)
    for path in ("old", "loader", "new"):
        assert row[f"{path}_train_images_per_s"] > 0 and row[f"{path}_data_images_per_s"] > 0
    assert row["new_over_old"] > 0 and row["loader_over_old"] > 0


def test_the_renderers_are_compared_per_core():
    threads = torch.get_num_threads()
    r = bt.render_speed(16, n=4, batch=2)
    assert torch.get_num_threads() == threads  # restored
    assert r["numpy_per_item_images_per_s"] > 0 and r["torch_batched_images_per_s"] > 0 and r["threads"] == 1
