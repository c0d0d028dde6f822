"""How faithfully does a painted change land on another face? (core.mask_transfer)

    python -m benchmarks.carry_check --model checkpoints/faces64

For each scripted edit kind, three source faces (bench_edit's first mode-3 seeds) have the edit painted on
their branch masks; each change is carried onto 20 other faces (bench_edit's transfer seeds) and compared,
inside that face's own region of interest, with the same scripted edit applied to that face: region IoU of
the carried target, beside the IoU of leaving the face as it is; and, since a region's IoU is mostly the pixels
that stay (a no-op scores 0.96 on shorten_hair), the share of the face's own changed pixels that the carried
target gets right (``changed_accuracy``) and the pixels it changes that the face's own edit keeps, per changed
pixel (``false_changes``). Masks only (no optimisation), about a
minute on a 2-core CPU. Writes benchmarks/results/carry_check.json. The held-out kinds
(core.mask_edits.HELD_OUT_EDITS) are included; ``--no-face-frame --no-complete-removal`` carries a change as
before issue #21 (a context-only change on the parts near it; a removed part only where the source's change maps);
``--no-by-transition`` copies the painted classes near the change instead of carrying what it does to each class
(core.mask_transfer.transfer_change).
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
    ap.add_argument("--no-by-transition", action="store_true", help="the painted classes copied, as before #21")
    ap.add_argument("--out", default=str(RESULTS / "carry_check.json"))
    args = ap.parse_args(argv)
    model = EditGAN.load(args.model, require=("branch",))
    names = model.class_names
    result = {"model": args.model, "model_id": model.model_id, "faces_per_source": args.faces,
              "face_frame": not args.no_face_frame, "complete_removal": not args.no_complete_removal,
              "by_transition": not args.no_by_transition, "per_kind": {}}  # fmt: skip
    for kind in args.kinds:
        others = [(m, t) for _, _, m, t in _cases(model, kind, args.faces, 5000, args.truncation)]
        rows = []
        for seed, w, mask, target in _cases(model, kind, args.sources, 1000, args.truncation):
            roi, _ = region_of_interest(mask, target, names)
            change = describe_change(mask, target, roi, names, face_frame=not args.no_face_frame,
                                     around_face=not args.no_by_transition)
            carried, unchanged, right, false, skipped = [], [], [], [], 0
            for other, other_target in others:
                other_roi, _ = region_of_interest(other, other_target, names)
                out = transfer_change(change, other, complete_removal=not args.no_complete_removal,
                                      by_transition=not args.no_by_transition)
                if out is None:
                    skipped += 1
                    continue
                own = other != other_target
                right.append(float((out[0][own] == other_target[own]).float().mean()))
                false.append(float(((out[0] != other) & ~own).sum()) / max(1, int(own.sum())))
                carried.append(region_iou(out[0], other_target, other_roi))
                unchanged.append(region_iou(other, other_target, other_roi))
            rows.append({"source_seed": seed, "anchor": [names[i] for i in change.anchor_ids],
                         "carried_iou": round(float(np.mean(carried)), 4) if carried else None,
                         "unchanged_iou": round(float(np.mean(unchanged)), 4) if unchanged else None,
                         "changed_accuracy": round(float(np.mean(right)), 4) if right else None,
                         "false_changes": round(float(np.mean(false)), 4) if false else None,
                         "faces_without_anchor": skipped})  # fmt: skip
        result["per_kind"][kind] = rows
        print(kind, " ".join(f"{r['changed_accuracy']}/{r['false_changes']}" for r in rows), flush=True)
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
