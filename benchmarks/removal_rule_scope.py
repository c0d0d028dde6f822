"""Which of bench_edit's cases the judge's removal rule can change: those whose paint takes a class off the mask.

    python -m benchmarks.removal_rule_scope --model checkpoints/faces64

The judge counts the oracle's pixels of a class as changed when the paint takes that class off the mask entirely
(benchmarks.edit_judge.judge_masks, since 2026-12-05). On any other case its verdict is the one before, bit for
bit. This lists, for bench_edit's own faces (the mode-3 faces and the transfer faces, same seeds and counts), the
cases where the scripted edit removes a class, per kind. A kind with none is judged the same under both rules, so
its results from a run before the rule stand. Writes benchmarks/results/removal_rule_scope.json.
"""

from __future__ import annotations

import argparse
from typing import Optional

import torch

from benchmarks.bench_edit import RESULTS, _cases
from benchmarks.edit_judge import removed_classes
from benchmarks.results_io import write_result
from core.editgan import EditGAN
from core.mask_edits import HELD_OUT_EDITS, SCRIPTED_EDITS


def scope(model: EditGAN, kinds, n_edit: int, n_transfer: int, truncation: float) -> dict:
    out = {}
    for kind in kinds:
        row = {}
        for name, n, start in (("mode3_faces", n_edit, 1000), ("transfer_faces", n_transfer, 5000)):
            cases = _cases(model, kind, n, start, truncation)
            removing = [(seed, [model.class_names[c] for c in removed_classes(mask, target)])
                        for seed, _, mask, target in cases]  # fmt: skip
            removing = [(seed, names) for seed, names in removing if names]
            row[name] = {"cases": len(cases), "removing_a_class": len(removing),
                         "classes_removed": sorted({c for _, names in removing for c in names})}  # fmt: skip
        out[kind] = row
        print(kind, row, flush=True)
    return out


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="*", default=sorted(SCRIPTED_EDITS) + sorted(HELD_OUT_EDITS))
    ap.add_argument("--n-edit", type=int, default=20)
    ap.add_argument("--n-transfer", type=int, default=50)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "removal_rule_scope.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch",))
    result = {"model": args.model, "model_id": model.model_id, "n_edit": args.n_edit, "n_transfer": args.n_transfer,
              "truncation": args.truncation,
              "per_kind": scope(model, args.kinds, args.n_edit, args.n_transfer, args.truncation)}  # fmt: skip
    write_result(args.out, result, echo=False)
    return result


if __name__ == "__main__":
    main()
