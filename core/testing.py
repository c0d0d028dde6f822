"""A tiny, complete model bundle with random weights, for tests of everything built on core.

    from core.testing import make_tiny_bundle
    folder = make_tiny_bundle(tmp_path / "model")      # generator + branch + encoder + image reader, 16 px
    model = EditGAN.load(folder)

The weights are random (seeded), so masks and images are noise; what it offers
is the real file layout, shapes and code paths at a size that runs in
milliseconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.branch import BranchConfig, SegmentationBranch
from core.checkpoint import save_generator
from core.data.palette import NUM_CLASSES
from core.encoder import Encoder, EncoderConfig
from core.generator import Generator, GeneratorConfig
from core.segmenter import UNetConfig, UNetSegmenter
from core.train.branch import export_branch, export_reader

TINY_GENERATOR = GeneratorConfig(resolution=16, style_dim=32, n_mlp=2, channel_base=256, channel_max=32,
                                 channel_multiplier=1)  # fmt: skip


# the parts beside the generator: "tiny" for tests (milliseconds), "shipped" at checkpoints/faces64's sizes
# (for timing the real cost of an architecture with random weights: benchmarks/bench_arch.py)
PART_SIZES = {
    "tiny": {"branch_hidden": (8,), "ensemble": 1, "encoder": (8, 16, 16), "reader": (4, 2)},
    "shipped": {"branch_hidden": (128, 32), "ensemble": 5, "encoder": (32, 256, 128), "reader": (16, 3)},
}


def make_tiny_bundle(folder: str | Path, seed: int = 0, config: GeneratorConfig = TINY_GENERATOR,
                     reader: bool = True, parts: str = "tiny", min_map_resolution: int | None = None,
                     name: str = "tiny-test-model", note: str = "random weights, for tests only") -> Path:  # fmt: skip
    """A model folder of random weights: ``config``'s generator, a branch, an encoder and (``reader``) an image
    reader, sized by ``parts`` (PART_SIZES). ``min_map_resolution``: the branch reads only the generator's
    maps at least that large (default: the branch's default layers)."""
    if parts not in PART_SIZES:
        raise ValueError(f"parts must be one of {sorted(PART_SIZES)}, got {parts!r}")
    size = PART_SIZES[parts]
    folder = Path(folder)
    torch.manual_seed(seed)
    g = Generator(config).eval()
    g.compute_w_avg(256)
    save_generator(g, folder, extra={"name": name, "note": note})
    layers = {}
    if min_map_resolution is not None:
        layers["layers"] = tuple(i for i, r in enumerate(g.feature_resolutions) if r >= min_map_resolution)
    br = SegmentationBranch(BranchConfig(feature_channels=tuple(g.feature_channels), resolution=config.resolution,
                                         num_classes=NUM_CLASSES, hidden=size["branch_hidden"],
                                         ensemble=size["ensemble"], **layers)).eval()  # fmt: skip
    export_branch(br, folder, {"note": note})
    base, top, pyramid = size["encoder"]
    enc = Encoder(EncoderConfig(resolution=config.resolution, n_latent=g.n_latent, w_dim=config.style_dim,
                                base_channels=base, max_channels=top, pyramid_channels=pyramid))  # fmt: skip
    enc.w_avg.copy_(g.w_avg)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(folder / "encoder.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["encoder"] = enc.config.to_dict()
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if reader:
        width, depth = size["reader"]
        unets = [UNetSegmenter(UNetConfig(resolution=config.resolution, width=width, depth=depth,
                                          num_classes=NUM_CLASSES)) for _ in range(2)]  # fmt: skip
        export_reader(unets, folder, {"note": note})
    return folder
