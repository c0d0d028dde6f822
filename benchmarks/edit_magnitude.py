"""Is an edit beyond what the generator can draw? Mode-3 success of one edit kind at several strengths.

    python -m benchmarks.edit_magnitude --model checkpoints/faces64

bench_edit's ``enlarge_eyes`` scales each eye by 1.6, and no mode-3 edit of it
passes the bar. This benchmark repeats that edit at smaller factors on the same
samples, judged like bench_edit (benchmarks.edit_judge; formerly oracle IoU against the target inside the
region >= 0.7 and PSNR outside >= 30 dB), and sets each factor's target eye
areas beside the eye areas of the procedural images the generator learned
from: a target larger than every eye in the training domain asks the
generator for something it never saw, and the branch, not the image, is what
then moves. Writes benchmarks/results/edit_magnitude.json.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Optional

import numpy as np
import torch

from benchmarks.bench_edit import RESULTS, _cases, _summary
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.edit import edit_by_mask
from core.editgan import EditGAN
from core.mask_edits import enlarge_eyes

FACTORS = (1.2, 1.4, 1.6)


def eye_areas(masks: torch.Tensor, class_names) -> np.ndarray:
    """Pixel area of each eye present, over a batch of [N, R, R] masks."""
    areas = [(masks == class_names.index(c)).flatten(1).sum(1) for c in ("left_eye", "right_eye")]
    a = torch.cat(areas).numpy()
    return a[a > 0]


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--factors", type=float, nargs="*", default=list(FACTORS))
    ap.add_argument("--n", type=int, default=10, help="samples per factor (the same samples for every factor)")
    ap.add_argument("--domain-images", type=int, default=2000, help="procedural images whose eyes set the domain")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "edit_magnitude.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    names = list(model.class_names)
    _, real_masks = ProceduralFaces(model.resolution, seed=0).batch(0, args.domain_images)
    domain = eye_areas(real_masks, names)
    # bench_edit's mode-3 samples (where the eye edit applies), with the branch's mask each target starts from
    cases = [(w, mask) for _, w, mask, _ in _cases(model, "enlarge_eyes", args.n, 1000, args.truncation)]
    rows = {}
    for factor in args.factors:
        t0, recs, target_areas = time.time(), [], []
        for w, mask in cases:
            target = torch.from_numpy(enlarge_eyes(mask, factor))
            target_areas.append(eye_areas(target[None], names))
            r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, model.edit_config(),
                             model.perceptual, model.encoder, reader=model.reader)  # fmt: skip
            recs.append({**judge(oracle, r.image, model.render(w), mask, target, r.roi),
                         "branch_iou": r.metrics["target_iou_in_region"]})  # fmt: skip
        ta = np.concatenate(target_areas)
        rows[str(factor)] = {**_summary(recs), "mean_branch_iou_in_region": round(float(np.mean([r["branch_iou"] for r in recs])), 4),
                             "target_eye_area_median_px": float(np.median(ta)),
                             "target_eyes_larger_than_every_domain_eye": round(float(np.mean(ta > domain.max())), 3),
                             "seconds": round(time.time() - t0, 1)}  # fmt: skip
        print(json.dumps({factor: rows[str(factor)]}), flush=True)
    result = {"model": args.model, "model_id": model.model_id, "edit": "enlarge_eyes", "samples": len(cases),
              "truncation": args.truncation, "perceptual_backend": model.perceptual.backend,
              "domain_eye_area_px": {"images": args.domain_images, "median": float(np.median(domain)),
                                     "p99": float(np.percentile(domain, 99)), "max": float(domain.max())},
              "factors": rows}  # fmt: skip
    write_result(args.out, result, echo=False)
    return result


if __name__ == "__main__":
    main()
