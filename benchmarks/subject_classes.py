"""Which classes a painted change is about: the library's class filter, measured on the scripted edits.

    python -m benchmarks.subject_classes --model checkpoints/faces64

A vector lists every class on either side of a changed pixel as edited (refinement and the warnings about vectors
that touch the same classes need them all); the library's class filter matches its subject classes only
(core.vector_format.subject_classes). For each scripted edit kind, on the branch's masks of n sampled faces (the
masks a user paints on, bench_edit's transfer seeds), this counts both lists and checks the subjects against the
class the kind is meant to change. "unrelated" counts the classes, other than the intended ones, under which the
class filter lists such a vector: with every edited class (as before) and with the subject classes (now). Under a
minute on a 2-core CPU. Writes benchmarks/results/subject_classes.json.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from benchmarks.bench_edit import _cases
from benchmarks.results_io import write_result
from core.edit import region_of_interest
from core.editgan import EditGAN
from core.mask_edits import HELD_OUT_EDITS, SCRIPTED_EDITS
from core.vector_format import subject_classes

# the classes each scripted edit is meant to change
INTENDED = {
    "enlarge_eyes": {"left_eye", "right_eye"},
    "open_mouth": {"teeth", "lips"},
    "smile": {"lips"},
    "add_glasses": {"glasses"},
    "shorten_hair": {"hair"},
    "shrink_nose": {"nose"},
    "remove_glasses": {"glasses"},
    "slim_face": {"background", "skin"},
}


def measure_kind(model: EditGAN, kind: str, n: int, truncation: float) -> dict:
    names = tuple(model.class_names)
    intended = INTENDED[kind]
    edited_n, subject_n, lead, clean, before, now = [], [], [], [], [], []
    seen: Counter = Counter()
    for _, _, mask, target in _cases(model, kind, n, 5000, truncation):
        edited = region_of_interest(mask, target, names)[1]
        change = torch.stack([mask, target]).numpy().astype(np.uint8)
        subjects = subject_classes(change, names)
        edited_n.append(len(edited))
        subject_n.append(len(subjects))
        lead.append(subjects[0] in intended)
        clean.append(set(subjects) <= intended)
        before.append(len(set(edited) - intended))
        now.append(len(set(subjects) - intended))
        seen[", ".join(subjects)] += 1
    m = len(edited_n)
    return {
        "faces": m, "intended": sorted(intended),
        "edited_classes_mean": float(np.mean(edited_n)), "subject_classes_mean": float(np.mean(subject_n)),
        "leads_with_intended": float(np.mean(lead)), "subjects_all_intended": float(np.mean(clean)),
        "unrelated_classes_listed_under_before": float(np.mean(before)),
        "unrelated_classes_listed_under_now": float(np.mean(now)),
        "subjects_seen": dict(seen.most_common(5)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--faces", type=int, default=50, help="faces per kind")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--kinds", nargs="*", default=list(SCRIPTED_EDITS) + list(HELD_OUT_EDITS))
    ap.add_argument("--out", default="benchmarks/results/subject_classes.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = EditGAN.load(args.model)
    kinds = {k: measure_kind(model, k, args.faces, args.truncation) for k in args.kinds}
    total = sum(r["faces"] for r in kinds.values())

    def mean(key: str) -> float:
        return round(sum(r[key] * r["faces"] for r in kinds.values()) / max(total, 1), 3)

    write_result(args.out, {
        "benchmark": "subject_classes", "model": args.model, "faces_per_kind": args.faces,
        "truncation": args.truncation,
        "all": {k: mean(k) for k in ("edited_classes_mean", "subject_classes_mean", "leads_with_intended",
                                     "subjects_all_intended", "unrelated_classes_listed_under_before",
                                     "unrelated_classes_listed_under_now")},
        "kinds": kinds,
    })


if __name__ == "__main__":
    main()
