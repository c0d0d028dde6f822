"""Is mode 1's shortfall the vector's amount or its shape? Transfer success at several scales.

    python -m benchmarks.transfer_scale --model checkpoints/faces64

bench_edit applies each vector at scale 1. A user drags the slider, so a vector that makes the right change
too weakly or too strongly on another face is rescued by the scale; one that draws the wrong shape there is
not. For each edit kind, one vector is made as bench_edit makes its vectors (the best of four mode-3 edits,
then made transferable, with the model's edit defaults) and applied in mode 1 to bench_edit's transfer faces at
several scales, judged like bench_edit against that face's own scripted edit (benchmarks.edit_judge: its changed
pixels read as painted, the region's other pixels kept, PSNR outside >= 30 dB). Beside the success at each scale: the success with each face's best scale (a ceiling no slider
position beats) and with the scale a machine could pick without the answer (the one whose branch mask best
matches the vector's painted change carried onto that face, core.mask_transfer). About 4 minutes for three
kinds on a 2-core CPU. Writes benchmarks/results/transfer_scale.json.
"""

from __future__ import annotations

import argparse
import time
from typing import Optional

import torch

from benchmarks.bench_edit import RESULTS, _cases, _pick_sources, _summary
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.edit import EditConfig, edit_by_mask, region_iou, region_of_interest
from core.edit_vector import (
    ScaleCalibration,
    apply_vectors,
    carried_target,
    make_transferable,
    pick_scale,
    vector_from_edit,
)
from core.editgan import EditGAN

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
KINDS = ("open_mouth", "smile", "add_glasses")


def _vector(model: EditGAN, oracle, kind: str, candidates: int, truncation: float, cfg: EditConfig):
    edits = []
    for seed, w, mask, target in _cases(model, kind, candidates, 1000, truncation):
        r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                         model.encoder, reader=model.reader)  # fmt: skip
        edits.append(({**judge(oracle, r.image, model.render(w), mask, target, r.roi), "seed": seed}, r, (w, target, None)))
    src, r, (w, _, _) = _pick_sources(edits, 1)[0]
    r = make_transferable(model.generator, model.branch, w, r, model.class_names, edit_config=cfg,
                          perceptual=model.perceptual, encoder=model.encoder, reader=model.reader)  # fmt: skip
    return src, vector_from_edit(r, model.model_id, name=kind)


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--faces", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=4, help="mode-3 edits the vector's source is picked from")
    ap.add_argument("--scales", type=float, nargs="*", default=list(SCALES))
    ap.add_argument("--calibration-faces", type=int, default=8, help="held-out faces a vector's scale is picked on")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "transfer_scale.json"))
    args = ap.parse_args(argv)
    if 1.0 not in args.scales:
        ap.error("--scales must include 1.0 (the carried change the machine-picked scale is matched against)")
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    cfg = model.edit_config()
    per_kind = {}
    for kind in args.kinds:
        t0 = time.time()
        src, vec = _vector(model, oracle, kind, args.candidates, args.truncation, cfg)
        at = {s: [] for s in args.scales}
        best, picked = [], []
        for _, w, mask, target in _cases(model, kind, args.faces, 5000, args.truncation):
            original = model.render(w)
            roi = region_of_interest(mask, target, model.class_names, cfg.dilation)[0]
            applied = {s: apply_vectors(model.generator, w, [(vec, s)], model.model_id, model.branch) for s in args.scales}
            carried, region, _ = carried_target([(vec, 1.0)], mask, applied[1.0].mask[0].cpu(), model.class_names, cfg)
            judged = {s: judge(oracle, a.image, original, mask, target, roi) for s, a in applied.items()}
            for s, j in judged.items():
                at[s].append(j)
            best.append(max(judged.values(), key=lambda j: (j["success"], j["changed_accuracy"])))
            fit = {s: region_iou(a.mask[0].cpu(), carried, region) if region.any() else 0.0 for s, a in applied.items()}
            picked.append(judged[max(fit, key=fit.get)])
        per_scale = {str(s): _summary(v) for s, v in at.items()}
        per_kind[kind] = {"source_edit": src, "per_scale": per_scale,
                          "best_scale_per_face": _summary(best), "scale_picked_by_carried_change": _summary(picked),
                          "seconds": round(time.time() - t0, 1)}  # fmt: skip
        # one scale per vector, picked on held-out faces from the branch's (or the image reader's) reading of the
        # carried change (core.edit_vector.pick_scale): what a saved vector's default scale could be
        cal = ScaleCalibration(scales=tuple(args.scales), faces=args.calibration_faces)
        for name, reader in (("branch", None), ("reader", model.reader)):
            if name == "reader" and reader is None:
                continue
            s, table = pick_scale(model.generator, model.branch, vec.delta, vec.change, model.class_names, cal, cfg,
                                  reader)
            per_kind[kind][f"vector_scale_picked_by_{name}"] = {
                "scale": s, "calibration": table,
                "success_rate": per_scale[str(s)]["success_rate"] if s is not None else None}  # fmt: skip
        print(kind, {k: v["success_rate"] for k, v in per_kind[kind]["per_scale"].items()},
              "best", per_kind[kind]["best_scale_per_face"]["success_rate"],
              "picked", per_kind[kind]["scale_picked_by_carried_change"]["success_rate"],
              {k: (v["scale"], v["success_rate"]) for k, v in per_kind[kind].items() if k.startswith("vector_scale")},
              flush=True)  # fmt: skip
    result = {"model": args.model, "model_id": model.model_id, "faces": args.faces, "truncation": args.truncation,
              "perceptual_backend": model.perceptual.backend, "scales": args.scales, "per_kind": per_kind}  # fmt: skip
    write_result(args.out, result, echo=False)
    return result


if __name__ == "__main__":
    main()
