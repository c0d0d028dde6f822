"""How faithfully does a painted change land on another face? (core.mask_transfer)

    python -m benchmarks.carry_check --model checkpoints/faces64

For each scripted edit kind, three source faces (bench_edit's first mode-3 seeds) have the edit painted on
their branch masks; each change is carried onto 20 other faces (bench_edit's transfer seeds) and compared,
inside that face's own region of interest, with the same scripted edit applied to that face: region IoU of
the carried target, beside the IoU of leaving the face as it is. Masks only (no optimisation), about a
minute on a 2-core CPU. Writes benchmarks/results/carry_check.json. The held-out kinds
(core.mask_edits.HELD_OUT_EDITS) are included; ``--no-face-frame --no-complete-removal`` carries a change as
before issue #21 (a context-only change on the parts near it; a removed part only where the source's change maps).
"""

from __future__ import annotations

import argparse
from typing import Optional

import numpy as np

from benchmarks.bench_edit import RESULTS, _cases
from benchmarks.results_io import write_result
from core.edit import region_iou, region_of_interest
from core.editgan import EditGAN
from core.mask_edits import HELD_OUT_EDITS, SCRIPTED_EDITS
from core.mask_transfer import describe_change, transfer_change


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--kinds", nargs="*", default=sorted(SCRIPTED_EDITS) + sorted(HELD_OUT_EDITS))
    ap.add_argument("--no-face-frame", action="store_true", help="the anchors before issue #21")
    ap.add_argument("--no-complete-removal", action="store_true", help="a removed part as carried before #21")
    ap.add_argument("--out", default=str(RESULTS / "carry_check.json"))
    args = ap.parse_args(argv)
    model = EditGAN.load(args.model, require=("branch",))
    names = model.class_names
    result = {"model": args.model, "model_id": model.model_id, "faces_per_source": args.faces,
              "face_frame": not args.no_face_frame, "complete_removal": not args.no_complete_removal,
              "per_kind": {}}  # fmt: skip
    for kind in args.kinds:
        others = [(m, t) for _, _, m, t in _cases(model, kind, args.faces, 5000, args.truncation)]
        rows = []
        for seed, w, mask, target in _cases(model, kind, args.sources, 1000, args.truncation):
            roi, _ = region_of_interest(mask, target, names)
            change = describe_change(mask, target, roi, names, face_frame=not args.no_face_frame)
            carried, unchanged, skipped = [], [], 0
            for other, other_target in others:
                other_roi, _ = region_of_interest(other, other_target, names)
                out = transfer_change(change, other, complete_removal=not args.no_complete_removal)
                if out is None:
                    skipped += 1
                    continue
                carried.append(region_iou(out[0], other_target, other_roi))
                unchanged.append(region_iou(other, other_target, other_roi))
            rows.append({"source_seed": seed, "anchor": [names[i] for i in change.anchor_ids],
                         "carried_iou": round(float(np.mean(carried)), 4) if carried else None,
                         "unchanged_iou": round(float(np.mean(unchanged)), 4) if unchanged else None,
                         "faces_without_anchor": skipped})  # fmt: skip
        result["per_kind"][kind] = rows
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
