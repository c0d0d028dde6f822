"""Mode 2's free region: may refinement change what a vector changed outside its carried change?

    python -m benchmarks.refine_free --model checkpoints/faces64 --kinds shorten_hair slim_face smile

EditGAN's mode 2 refines a vector's result with the region of the vector's edited classes free (before and after
it was applied) and the original image kept outside. Where the vector carries its painted change, that change
carried onto the face is the target (core.edit_vector.carried_target) and its region joins the free one. On
faces64, half of bench_edit's mode-2 shorten_hair results lost the 30 dB bar outside the judged region: what
the vector changed beyond the carried cut stayed changed. ``free="carried"`` frees only the carried region, so
that refinement pulls the rest back to the original. Each setting also runs with the vector's delta scaled by
the scale :func:`core.edit_vector.pick_scale` picks for it on held-out faces (``*_picked``; mode 1 beside them).

For each kind, one vector is made as bench_edit makes its vectors (the best of ``--candidates`` mode-3 edits,
made transferable, with the model's edit defaults) and refined on bench_edit's transfer faces under each
setting, judged like bench_edit (benchmarks.edit_judge) against the face's own scripted edit, with the no-op
control. Writes benchmarks/results/refine_free.json after each kind (``partial`` until the last).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from benchmarks.bench_edit import RESULTS, _cases, _summary
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from benchmarks.transfer_scale import _vector
from core.edit import region_of_interest
from core.edit_vector import REFINE_STEPS, apply_vectors, pick_scale, refine
from core.editgan import EditGAN

# (name, free region, vector scaled by its picked scale)
SETTINGS = (("edited", "edited", False), ("carried", "carried", False), ("edited_picked", "edited", True),
            ("carried_picked", "carried", True))  # fmt: skip


def paired(a: list[dict], b: list[dict]) -> dict:
    """Edits that pass under ``b`` and not under ``a`` (gained), and the reverse (lost)."""
    return {"gained": sum(y["success"] and not x["success"] for x, y in zip(a, b)),
            "lost": sum(x["success"] and not y["success"] for x, y in zip(a, b))}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="+", default=["shorten_hair", "slim_face", "smile", "remove_glasses"])
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=4, help="mode-3 edits the vector's source is picked from")
    ap.add_argument("--steps", type=int, default=REFINE_STEPS, help="refinement steps (mode 2)")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "refine_free.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    cfg = model.edit_config()
    head = {"model": args.model, "model_id": model.model_id, "faces": args.faces, "steps": args.steps,
            "truncation": args.truncation, "perceptual_backend": model.perceptual.backend, "edit_config": cfg.to_dict()}
    per_kind = {}
    for kind in args.kinds:
        t0 = time.time()
        src, vec = _vector(model, oracle, kind, args.candidates, args.truncation, cfg)
        scale, calibration = pick_scale(model.generator, model.branch, vec.delta, vec.change, model.class_names,
                                        edit_config=cfg)
        picked = vec if scale is None else replace(vec, delta=(np.array(vec.delta) * scale).astype(np.float32))
        names = [name for name, _, _ in SETTINGS]
        judged: dict[str, list[dict]] = {name: [] for name in names + ["mode1", "mode1_picked"]}
        noop = []
        for _, w, mask, target in _cases(model, kind, args.faces, 5000, args.truncation):
            original = model.render(w)
            roi = region_of_interest(mask, target, model.class_names, cfg.dilation)[0]
            noop.append(judge(oracle, original, original, mask, target, roi))
            for key, v in (("mode1", vec), ("mode1_picked", picked)):
                a = apply_vectors(model.generator, w, [(v, 1.0)], model.model_id)
                judged[key].append(judge(oracle, a.image, original, mask, target, roi))
            for name, free, scaled in SETTINGS:
                r = refine(model.generator, model.branch, w, [(picked if scaled else vec, 1.0)], model.model_id,
                           model.class_names, args.steps, cfg, model.perceptual, model.encoder, reader=model.reader,
                           free=free)  # fmt: skip
                judged[name].append(judge(oracle, r.image, original, mask, target, roi))
        per_kind[kind] = {"source_edit": src, "picked_scale": scale, "calibration": calibration,
                          **{k: _summary(v, noop) for k, v in judged.items()},
                          "paired_against_edited": {k: paired(judged["edited"], judged[k]) for k in names[1:]},
                          "seconds": round(time.time() - t0, 1)}  # fmt: skip
        print(kind, scale, {k: per_kind[kind][k]["success_rate"] for k in judged},
              per_kind[kind]["paired_against_edited"], flush=True)  # fmt: skip
        write_result(args.out, {**head, "partial": f"{len(per_kind)} of {len(args.kinds)} kinds",
                                "per_kind": per_kind}, echo=False)  # fmt: skip
    keys = [name for name, _, _ in SETTINGS] + ["mode1", "mode1_picked"]
    n = {k: sum(v[k]["n"] for v in per_kind.values()) for k in keys}
    overall = {k: round(sum(v[k]["success_rate"] * v[k]["n"] for v in per_kind.values()) / n[k], 4) if n[k] else None
               for k in keys}  # fmt: skip
    result = {**head, "overall_success_rate": overall, "per_kind": per_kind}
    write_result(args.out, result, echo=False)
    return result


if __name__ == "__main__":
    main()
