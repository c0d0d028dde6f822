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


def make_tiny_bundle(folder: str | Path, seed: int = 0, config: GeneratorConfig = TINY_GENERATOR,
                     reader: bool = True) -> Path:  # fmt: skip
    folder = Path(folder)
    torch.manual_seed(seed)
    g = Generator(config).eval()
    g.compute_w_avg(256)
    save_generator(g, folder, extra={"name": "tiny-test-model", "note": "random weights, for tests only"})
    br = SegmentationBranch(BranchConfig(feature_channels=tuple(g.feature_channels), resolution=config.resolution,
                                         num_classes=NUM_CLASSES, hidden=(8,), ensemble=1)).eval()  # fmt: skip
    export_branch(br, folder, {"note": "random weights, for tests only"})
    enc = Encoder(EncoderConfig(resolution=config.resolution, n_latent=g.n_latent, w_dim=config.style_dim,
                                base_channels=8, max_channels=16, pyramid_channels=16))  # fmt: skip
    enc.w_avg.copy_(g.w_avg)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(folder / "encoder.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["encoder"] = enc.config.to_dict()
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if reader:
        unets = [UNetSegmenter(UNetConfig(resolution=config.resolution, width=4, depth=2, num_classes=NUM_CLASSES))
                 for _ in range(2)]  # fmt: skip
        export_reader(unets, folder, {"note": "random weights, for tests only"})
    return folder
