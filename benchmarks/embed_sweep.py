"""How the embedding's settings change what survives reconstruction.

    python -m benchmarks.embed_sweep --model checkpoints/faces64 --images 12

For a few held-out procedural images (the same stream as bench_joint's
embedding figures), embed as EditGAN.embed does (branch part weights, image
reader term) with each setting (EmbedConfig fields over the defaults: step size,
budget, the reader's weight) and report PSNR and the oracle mIoU between the
true mask and the reconstruction's oracle mask, with the eye and brow IoU beside
it (the small parts are what the embedding loses). Writes
benchmarks/results/embed_sweep.json.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

import torch

from benchmarks.bench_joint import HELDOUT_SEED, RESULTS
from benchmarks.embed_ceiling import embed_and_score
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.editgan import EditGAN
from core.embed import EmbedConfig

SETTINGS = ({"lr": 0.01}, {"w_reader": 0.0}, {}, {"w_reader": 0.3}, {"w_reader": 1.0})  # {} = the defaults


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "embed_sweep.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("encoder",))
    oracle = load_oracle(model.resolution)
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    cases = [ds.batch(i, 1) for i in range(args.images)]
    truth = torch.stack([m[0] for _, m in cases])
    rows = []
    for over in SETTINGS:
        cfg = dataclasses.replace(EmbedConfig(), **over)
        score = embed_and_score(model, oracle, [x for x, _ in cases], truth, cfg, encoder_only=False)
        rows.append({"lr": cfg.lr, "steps": cfg.steps, "w_reader": cfg.w_reader if model.reader is not None else None,
                     "psnr_mean_db": score["psnr_mean_db"], "oracle_miou_true_vs_reconstruction": score["oracle_miou"],
                     "left_eye_iou": score["left_eye_iou"], "left_brow_iou": score["left_brow_iou"],
                     "seconds_per_image": score["seconds_per_image"]})  # fmt: skip
    result = {"model": args.model, "model_id": model.model_id, "images": args.images, "heldout_seed": HELDOUT_SEED,
              "perceptual_backend": model.perceptual.backend, "torch_threads": args.threads, "settings": rows}  # fmt: skip
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
