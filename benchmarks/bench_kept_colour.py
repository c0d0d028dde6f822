"""Does holding the colour of what the paint keeps cost edits? Mode 3 with ``EditConfig.w_kept`` at each weight.

EditGAN leaves the region of an edit free: only the branch's reading is asked for there. The region holds every
pixel of each edited class, so cutting the hair at the sides lets the whole hair change, and on faces64 it did
(blond to brown). ``w_kept`` holds the colour of the region's pixels whose class the paint keeps, farther than
``dilation`` from the change. This runs the same mode-3 edits at each weight and reports, per kind, the judge's
success (``benchmarks.edit_judge``) and ``psnr_kept``, the PSNR of those pixels against the original (reported by
the judge, not judged):

    python -m benchmarks.bench_kept_colour                      # 8 kinds x 4 faces x weights 0 and 10
    python -m benchmarks.bench_kept_colour --n 2 --weights 0,3,10 --kinds smile shorten_hair

Writes ``results/kept_colour.json`` and ``results/kept_colour.png`` (shorten_hair: the original, then each
weight's result, one face per row).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_edit import _cases, _median_db
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.edit import EditConfig, edit_by_mask
from core.editgan import EditGAN
from core.mask_edits import HELD_OUT_EDITS, SCRIPTED_EDITS

RESULTS = Path(__file__).resolve().parent / "results"


def _img(t: torch.Tensor) -> np.ndarray:
    return ((t[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="*", default=sorted(SCRIPTED_EDITS) + sorted(HELD_OUT_EDITS))
    ap.add_argument("--n", type=int, default=4, help="mode-3 faces per kind (bench_edit's first seeds)")
    ap.add_argument("--weights", default="0,10", help="comma-separated EditConfig.w_kept values")
    ap.add_argument("--steps", type=int, default=EditConfig.steps)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--picture-kind", default="shorten_hair")
    ap.add_argument("--out", default=str(RESULTS / "kept_colour.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = [float(x) for x in args.weights.split(",")]
    model = EditGAN.load(args.model, require=("branch",))
    oracle = load_oracle(model.resolution)
    per_kind, rows = {}, []
    t0 = time.perf_counter()
    for kind in args.kinds:
        cases = _cases(model, kind, args.n, 1000, 0.7)
        per_kind[kind] = {}
        for wk in weights:
            cfg = EditConfig(steps=args.steps, w_kept=wk)
            recs = []
            for i, (seed, w, mask, target) in enumerate(cases):
                r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                                 model.encoder, reader=model.reader)  # fmt: skip
                orig = model.render(w)
                recs.append({**judge(oracle, r.image, orig, mask, target, r.roi), "seed": seed})
                if kind == args.picture_kind:
                    while len(rows) <= i:
                        rows.append([_img(orig)])
                    rows[i].append(_img(r.image))
            per_kind[kind][f"w_kept={wk:g}"] = {
                "n": len(recs),
                "success_rate": round(float(np.mean([r["success"] for r in recs])), 4) if recs else None,
                "mean_changed_accuracy": round(float(np.mean([r["changed_accuracy"] for r in recs])), 4) if recs else None,
                "median_psnr_kept_db": _median_db([r["psnr_kept"] for r in recs]),
                "cases_with_kept_pixels": sum(r["psnr_kept"] is not None for r in recs),
                "edits": recs,
            }  # fmt: skip
            print(kind, f"w_kept={wk:g}", {k: v for k, v in per_kind[kind][f"w_kept={wk:g}"].items() if k != "edits"},
                  flush=True)  # fmt: skip
    totals = {}
    for wk in weights:
        key = f"w_kept={wk:g}"
        recs = [e for k in per_kind.values() for e in k[key]["edits"]]
        totals[key] = {"n": len(recs), "successes": sum(e["success"] for e in recs),
                       "median_psnr_kept_db": _median_db([e["psnr_kept"] for e in recs])}  # fmt: skip
    out = Path(args.out)
    picture = None
    if rows:
        picture = out.with_suffix(".png")
        grid = np.concatenate([np.concatenate(r, 1) for r in rows if len(r) == len(weights) + 1], 0)
        Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(picture)
    result = {"model": args.model, "model_id": model.model_id, "steps": args.steps, "faces_per_kind": args.n,
              "weights": weights, "totals": totals, "per_kind": per_kind,
              "picture": None if picture is None else f"{args.picture_kind}: original, then w_kept = {args.weights}",
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    write_result(out, result)
    return result


if __name__ == "__main__":
    main()
