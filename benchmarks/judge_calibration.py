"""Where the edit judge's bars come from: the oracle's own accuracy on real procedural edits.

    python -m benchmarks.judge_calibration --faces 200

The procedural renderer draws every part from its own parameters, so an edit can be *really*
made: the same face rendered twice, once with a part changed (eyes 1.6x as wide, the nose 0.7x,
the mouth opened, a smile, glasses put on or taken off, the hair cut to the ears). The two true masks give the
changed pixels exactly, and the image after is a perfectly realised edit. On such pairs this
measures what the judge (:mod:`benchmarks.edit_judge`) measures:

* changed-pixel accuracy of the image after (a perfect edit: the ceiling a real edit can reach
  under this oracle) and of the image before (a no-op: 0 by the judge's construction, kept as a
  check);
* agreement of the oracle's readings before and after on the region's unchanged pixels;

and, beside them, the oracle's per-class accuracy (recall) on the test images, overall and on
pixels at a class boundary (where most changed pixels of a scripted edit lie).

Writes benchmarks/results/judge_calibration.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from benchmarks.edit_judge import CHANGED_OK, KEPT_OK, judge_masks
from benchmarks.oracle import ORACLE_SEED, TEST_START, load_oracle
from benchmarks.results_io import write_result
from core.data.faces import FaceParams, ProceduralFaces, render_face
from core.data.palette import CLASS_NAMES, NUM_CLASSES
from core.edit import region_of_interest

RESULTS = Path(__file__).resolve().parent / "results"
BARS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _hair(p: FaceParams) -> Optional[FaceParams]:
    return p.replace(hair_len=0.0) if p.hair_style in ("long", "side", "bangs") and p.hair_len > 0.3 else None


# the scripted kinds as the renderer makes them (None: the face cannot take that edit)
REAL_EDITS: dict[str, Callable[[FaceParams], Optional[FaceParams]]] = {
    "enlarge_eyes": lambda p: p.replace(eye_w=p.eye_w * 1.6),
    "shrink_nose": lambda p: p.replace(nose_w=p.nose_w * 0.7, nose_len=p.nose_len * 0.7),
    "open_mouth": lambda p: p.replace(mouth_open=0.045) if p.mouth_open == 0 else None,
    "smile": lambda p: p.replace(smile=p.smile + 0.08),
    "add_glasses": lambda p: p.replace(glasses=True) if not p.glasses else None,
    "remove_glasses": lambda p: p.replace(glasses=False) if p.glasses else None,
    "shorten_hair": _hair,
}


def _x(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def boundary(mask: torch.Tensor) -> torch.Tensor:
    """bool [H, W]: pixels with a 4-neighbour of another class."""
    m = mask
    b = torch.zeros_like(m, dtype=torch.bool)
    b[1:] |= m[1:] != m[:-1]
    b[:-1] |= m[:-1] != m[1:]
    b[:, 1:] |= m[:, 1:] != m[:, :-1]
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    return b


@torch.no_grad()
def per_class_accuracy(oracle, n: int, resolution: int) -> dict:
    """The oracle's recall per class on ``n`` test images, on all pixels and on boundary pixels."""
    ds = ProceduralFaces(resolution, ORACLE_SEED)
    hit, tot, bhit, btot = (np.zeros(NUM_CLASSES) for _ in range(4))
    for i in range(0, n, 50):
        x, m = ds.batch(TEST_START + i, min(50, n - i))
        pred = oracle(x).argmax(1)
        for k in range(len(m)):
            b = boundary(m[k])
            ok = pred[k] == m[k]
            for c in range(NUM_CLASSES):
                sel = m[k] == c
                hit[c] += (ok & sel).sum().item()
                tot[c] += sel.sum().item()
                bhit[c] += (ok & sel & b).sum().item()
                btot[c] += (sel & b).sum().item()
    return {
        "images": n,
        "recall": {CLASS_NAMES[c]: round(hit[c] / tot[c], 4) for c in range(NUM_CLASSES) if tot[c]},
        "recall_on_boundary_pixels": {CLASS_NAMES[c]: round(bhit[c] / btot[c], 4) for c in range(NUM_CLASSES) if btot[c]},
    }


def _stats(xs: list[float]) -> dict:
    a = np.asarray(xs)
    return {"n": len(a), "mean": round(float(a.mean()), 4), "p05": round(float(np.percentile(a, 5)), 4),
            "p50": round(float(np.median(a)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "min": round(float(a.min()), 4), "max": round(float(a.max()), 4)}  # fmt: skip


@torch.no_grad()
def real_edits(oracle, n: int, resolution: int) -> dict:
    """Per kind: the judge's changed-pixel accuracy and in-region agreement on really made edits, and on no-ops."""
    ds = ProceduralFaces(resolution, ORACLE_SEED)
    out = {}
    for kind, edit in REAL_EDITS.items():
        real, noop, keep, passed, noop_passed, literal = [], [], [], [], [], []
        i = 0
        while len(real) < n and i < 20 * n:
            p = ds.params(TEST_START + 50_000 + i)
            i += 1
            q = edit(p)
            if q is None:
                continue
            (a, ma), (b, mb) = render_face(p, resolution), render_face(q, resolution)
            before, after = torch.from_numpy(ma.astype(np.int64)), torch.from_numpy(mb.astype(np.int64))
            if (before != after).sum() < 3:
                continue
            roi, _ = region_of_interest(before, after, CLASS_NAMES)
            read_before = oracle(_x(a)).argmax(1)[0]
            read_after = oracle(_x(b)).argmax(1)[0]
            v = judge_masks(read_after, read_before, before, after, roi, psnr_outside=float("inf"))
            real.append(v.changed_accuracy)
            keep.append(v.kept_agreement)
            passed.append(v.success)
            literal.append(v.success_painted_only)
            nv = judge_masks(read_before, read_before, before, after, roi, float("inf"))
            noop.append(nv.changed_accuracy)
            noop_passed.append(nv.success)
        out[kind] = {"real_edit_changed_accuracy": _stats(real), "real_edit_kept_agreement": _stats(keep),
                     "noop_changed_accuracy": _stats(noop),
                     "real_edit_pass_rate": round(float(np.mean(passed)), 4),
                     # the judge without its removal rule (only the painted pixels count as changed)
                     "real_edit_pass_rate_painted_only": round(float(np.mean(literal)), 4),
                     "noop_pass_rate": round(float(np.mean(noop_passed)), 4),
                     "real_edit_share_of_changed_accuracy_at_least": {
                         f"{bar:g}": round(float(np.mean(np.asarray(real) >= bar)), 4) for bar in BARS},
                     "noop_share_of_changed_accuracy_at_least": {
                         f"{bar:g}": round(float(np.mean(np.asarray(noop) >= bar)), 4) for bar in BARS}}  # fmt: skip
    return out


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=200, help="really made edits per kind")
    ap.add_argument("--test-images", type=int, default=500, help="test images for the per-class accuracy")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "judge_calibration.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    oracle = load_oracle(args.resolution)
    result = {"bars": {"changed_accuracy_min": CHANGED_OK, "kept_agreement_min": KEPT_OK},
              "oracle_per_class": per_class_accuracy(oracle, args.test_images, args.resolution),
              "real_edits": real_edits(oracle, args.faces, args.resolution)}  # fmt: skip
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
