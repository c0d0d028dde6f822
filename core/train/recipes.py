"""Named training recipes: the architecture and GAN settings of each model this project trains.

``faces64`` is the shipped default's (checkpoints/faces64/training/state.json: trained on 2 CPU cores at batch 8).
``faces128`` is its successor for a lent GPU (issue #26): the same mapping and style width, one more
resolution block. The 128 px architecture was chosen by what a CPU-only Space can edit with
(benchmarks/bench_arch.py, results/arch_cpu.json; docs/results_train.md): of the candidates in
:data:`ARCHITECTURES`, ``faces128`` is the one the recipe uses.
"""

from __future__ import annotations

from dataclasses import replace

from core.generator import GeneratorConfig
from core.train.gan import TrainConfig

_FACES = dict(style_dim=256, n_mlp=4, channel_multiplier=1, channel_max=256)

# channels per resolution = min(channel_max, channel_base // r): base 2048 gives 256 up to 8 px, 128 at 16,
# 64 at 32, 32 at 64 and 16 at 128 px; base 4096 doubles every width from 16 px up
ARCHITECTURES: dict[str, GeneratorConfig] = {
    "faces64": GeneratorConfig(resolution=64, channel_base=2048, **_FACES),
    "faces128": GeneratorConfig(resolution=128, channel_base=2048, **_FACES),
    "faces128-wide": GeneratorConfig(resolution=128, channel_base=4096, **_FACES),
}

RECIPES: dict[str, TrainConfig] = {
    # as the shipped run was made (its state.json), on a CPU
    "faces64": TrainConfig(generator=ARCHITECTURES["faces64"], iterations=40000, batch_size=8, r1_gamma=0.5,
                           ema_half_life_kimg=5.0, ckpt_every=250, sample_every=500, log_every=25),  # fmt: skip
    # one GPU sitting at a time (scripts/gpu_train128.sh): a larger batch, the EMA's half-life scaled with it, data
    # drawn on the device; R1 and learning rate as faces64's, which trained stably
    "faces128": TrainConfig(generator=ARCHITECTURES["faces128"], iterations=10**8, batch_size=64, r1_gamma=0.5,
                            ema_half_life_kimg=10.0, ckpt_every=2000, sample_every=0, log_every=100,
                            data="auto"),  # fmt: skip
}


def recipe(name: str, **overrides) -> TrainConfig:
    """The named recipe, with ``overrides`` (TrainConfig fields) applied; an unknown name is a clear error."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return replace(RECIPES[name], **overrides)
