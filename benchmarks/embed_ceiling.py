"""How much of the embedding's gap is the generator's range rather than the optimisation.

    python -m benchmarks.embed_ceiling --model checkpoints/faces64 --images 24

Embeds, as EditGAN.embed does, two kinds of image and scores each
reconstruction with the oracle:

* ``gan_samples``: images the generator itself drew (no truncation). Every one
  has a latent that reproduces it exactly; the truth is the oracle's mask of
  the sample. What the encoder + optimisation reach here is what they can do
  when the image is in the generator's range.
* ``procedural_photos``: held-out procedural images (bench_joint's stream),
  against their true masks -- the issue's measurement -- at the default step
  budget and at ``--long-steps``.

Beside them: the oracle's own mIoU on those photos (what a perfect
reconstruction would score). If GAN samples come back nearly whole and the
photos do not, with more steps changing little, the photos lie outside what
the generator can draw and a better generator is the lever, not the
embedding. Writes benchmarks/results/embed_ceiling.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Optional

import numpy as np
import torch

from benchmarks.bench_joint import HELDOUT_SEED, RESULTS, miou
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.editgan import EditGAN
from core.embed import EmbedConfig

SAMPLE_SEED = 4321  # the GAN samples' latent stream


@torch.no_grad()
def _read(oracle, image: torch.Tensor) -> torch.Tensor:
    return oracle(image.clamp(-1, 1)).argmax(1)[0]


def embed_and_score(model: EditGAN, oracle, images: list[torch.Tensor], truth: torch.Tensor, config: EmbedConfig,
                    encoder_only: bool = True) -> dict:  # fmt: skip
    """Embed each [1, 3, R, R] image; oracle mIoU of the optimised (and, with ``encoder_only``, the encoder's)
    reconstructions against ``truth``, mean PSNR, eye and brow IoU, seconds per image."""
    t0, optimised, encoded, psnrs = time.time(), [], [], []
    for x in images:
        r = model.embed_tensor(x, config)
        optimised.append(_read(oracle, r.image))
        if encoder_only:
            with torch.no_grad():
                encoded.append(_read(oracle, model.generator(model.encoder(x)).image))
        psnrs.append(r.psnr)
    mi, per = miou(torch.stack(optimised), truth)
    row = {"steps": config.steps, "psnr_mean_db": round(float(np.mean(psnrs)), 3), "oracle_miou": round(mi, 4)}
    if encoder_only:
        row["encoder_only_oracle_miou"] = round(miou(torch.stack(encoded), truth)[0], 4)
    return {**row, "left_eye_iou": per.get("left_eye"), "left_brow_iou": per.get("left_brow"),
            "seconds_per_image": round((time.time() - t0) / len(images), 2)}


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--long-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "embed_ceiling.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("encoder",))
    oracle = load_oracle(model.resolution)
    with torch.no_grad():
        ws = model.generator.sample_w_plus(SAMPLE_SEED, args.images, 1.0)
        samples = [model.generator(ws[i : i + 1]).image.clamp(-1, 1) for i in range(args.images)]
    sample_truth = torch.stack([_read(oracle, x) for x in samples])
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    cases = [ds.batch(i, 1) for i in range(args.images)]
    photos, photo_truth = [x for x, _ in cases], torch.stack([m[0] for _, m in cases])
    cfg = EmbedConfig()
    rows = {
        "oracle_on_the_photos_themselves": round(miou(torch.stack([_read(oracle, x) for x in photos]), photo_truth)[0], 4),
        "gan_samples": embed_and_score(model, oracle, samples, sample_truth, cfg),
        "procedural_photos": embed_and_score(model, oracle, photos, photo_truth, cfg),
        "procedural_photos_long": embed_and_score(model, oracle, photos, photo_truth,
                                                  dataclasses.replace(cfg, steps=args.long_steps)),
    }  # fmt: skip
    result = {"model": args.model, "model_id": model.model_id, "images": args.images, "sample_seed": SAMPLE_SEED,
              "heldout_seed": HELDOUT_SEED, "embed_config": cfg.to_dict(), "image_reader": model.reader is not None,
              "perceptual_backend": model.perceptual.backend, "torch_threads": args.threads, **rows}  # fmt: skip
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
