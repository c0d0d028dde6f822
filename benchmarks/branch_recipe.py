"""What limits the segmentation branch: label alignment, measured by ablation.

    python -m benchmarks.branch_recipe --model checkpoints/faces64

Trains the branch three ways with the shipped branch's BranchTrainConfig (as
recorded in the bundle's config.json: steps, ensemble, feature maps, seed) and scores each against the oracle on the same GAN samples (same images
for branch and oracle):

* ``aligned_upper_bound``: 16 GAN samples labelled by the oracle itself. Labels
  sit exactly on the generator's own pixels; no embedding is involved. This is
  what the branch architecture can do with 16 perfectly aligned labels.
* ``plain_embedding``: the 16 labelled procedural images embedded with the
  plain reconstruction loss, every pixel trusted.
* ``shipped_recipe``: the shipped recipe: L2 weighted towards small
  parts (``embed_class_balance``) and untrusted pixels skipped
  (``max_recon_error``).

For the two embedding variants it also reports the oracle mIoU between the
true masks and the reconstructions of the labelled images (how well the labels
line up). Writes benchmarks/results/branch_recipe.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Optional

import torch

from benchmarks.bench_joint import RESULTS, branch_and_oracle_masks, miou
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.editgan import EditGAN
from core.train.branch import (
    embed_labelled,
    labelled_set,
    recorded_config,
    train_branch,
    trusted_pixels,
)


class _WithBranch:
    """The loaded model with another branch swapped in (for scoring)."""

    def __init__(self, model: EditGAN, branch):
        self.generator, self.render, self._branch = model.generator, model.render, branch

    @torch.no_grad()
    def segment(self, w: torch.Tensor) -> torch.Tensor:
        return self._branch(self.generator.synthesis(w).features).argmax(1)


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--samples", type=int, default=200, help="GAN samples (psi = 1) the branches are scored on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "branch_recipe.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("encoder",))
    oracle = load_oracle(model.resolution)
    g, cfg = model.generator, recorded_config(model.path)

    def score(branch) -> dict:
        _, b, o = branch_and_oracle_masks(_WithBranch(model, branch), oracle, args.samples, 1.0)
        mi, per = miou(b, o)
        return {"branch_miou_vs_oracle": round(mi, 4), "per_class_iou": per}

    images, masks = labelled_set(model.resolution, cfg.n_images)
    variants = {}

    t0 = time.time()
    w_up = g.sample_w_plus(777, cfg.n_images, 1.0)
    with torch.no_grad():
        m_up = oracle(model.render(w_up)).argmax(1)
    branch, _ = train_branch(g, w_up, m_up, cfg, progress=False)
    variants["aligned_upper_bound"] = {**score(branch), "seconds": round(time.time() - t0, 1)}
    print(json.dumps({"aligned_upper_bound": variants["aligned_upper_bound"]["branch_miou_vs_oracle"]}), flush=True)

    for name, over in (("plain_embedding", {"embed_class_balance": 0.0, "max_recon_error": 0.0}), ("shipped_recipe", {})):
        vcfg = dataclasses.replace(cfg, **over)
        t0 = time.time()
        latents = embed_labelled(g, model.encoder, images, masks, vcfg, model.perceptual, progress=False)
        with torch.no_grad():
            rec_masks = oracle(model.render(latents)).argmax(1)
        valid = trusted_pixels(g, latents, images, vcfg.max_recon_error)
        branch, _ = train_branch(g, latents, masks, vcfg, progress=False, valid=valid)
        variants[name] = {**score(branch), "labelled_reconstruction_oracle_miou": round(miou(rec_masks, masks)[0], 4),
                          "trusted_pixel_fraction": round(valid.float().mean().item(), 4),
                          "embed_class_balance": vcfg.embed_class_balance, "max_recon_error": vcfg.max_recon_error,
                          "seconds": round(time.time() - t0, 1)}  # fmt: skip
        print(json.dumps({name: variants[name]["branch_miou_vs_oracle"]}), flush=True)

    result = {"model": args.model, "model_id": model.model_id, "samples": args.samples, "truncation": 1.0,
              "branch_config": cfg.to_dict(), "perceptual_backend": model.perceptual.backend,
              "torch_threads": args.threads, "variants": variants}  # fmt: skip
    write_result(args.out, result, echo=False)
    print(json.dumps({k: v["branch_miou_vs_oracle"] for k, v in variants.items()}, indent=2))
    return result


if __name__ == "__main__":
    main()
