"""How large are real edit deltas? The range that sets core.vector_format's bound on a vector's delta.

    python -m benchmarks.delta_norms --model checkpoints/faces64

A vector file whose delta is finite but enormous (all 1e30) passes a NaN/Inf check and renders a solid square.
The bound refuses such files; it must sit far above every delta a real edit makes, on any model. Measured here,
as the per-element RMS of the delta (norm / sqrt(n_latent * w_dim), so that the figure does not depend on the
latent's shape): mode-3 edits of every scripted kind on a few faces, the same edits made transferable, and
for scale the spread of the latent itself (a random face's W+ minus the mean, and two random faces' difference,
at truncation 1: the largest change that still means "another face"). Writes
benchmarks/results/delta_norms.json. About 3 minutes on a 2-core CPU with the defaults.
"""

from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np
import torch

from benchmarks.results_io import write_result
from core.edit import EditConfig, edit_by_mask
from core.edit_vector import make_transferable
from core.editgan import EditGAN
from core.mask_edits import SCRIPTED_EDITS, apply_scripted
from core.vector_format import MAX_DELTA_RMS, delta_rms


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, np.float64)
    return {"n": int(a.size), "min": round(float(a.min()), 5), "median": round(float(np.median(a)), 5),
            "max": round(float(a.max()), 5)}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--seeds", type=int, nargs="*", default=[1000, 1001])
    ap.add_argument("--steps", type=int, default=EditConfig.steps)
    ap.add_argument("--transferable", type=int, default=2, help="edits also made transferable (the first kinds)")
    ap.add_argument("--out", default="benchmarks/results/delta_norms.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model = EditGAN.load(args.model, require=("branch",))
    g = model.generator
    with torch.no_grad():
        w1 = g.sample_w_plus(7, 256, 1.0)
        w2 = g.sample_w_plus(8, 256, 1.0)
    numel = w1.shape[1] * w1.shape[2]
    spread = {
        "w_minus_mean": _stats([float(x) for x in (w1 - g.w_avg).flatten(1).norm(dim=1) / numel**0.5]),
        "two_faces_difference": _stats([float(x) for x in (w1 - w2).flatten(1).norm(dim=1) / numel**0.5]),
    }
    edits, transferable, per_kind = [], [], {}
    cfg = EditConfig(steps=args.steps)
    for i, kind in enumerate(sorted(SCRIPTED_EDITS)):
        for seed in args.seeds:
            w = model.sample(seed)
            current = model.segment(w)[0]
            try:
                target = torch.from_numpy(apply_scripted(kind, current))
            except ValueError:
                continue  # the face lacks the part this kind edits
            r = edit_by_mask(g, model.branch, w, target, model.class_names, cfg, model.perceptual, model.encoder,
                             reader=model.reader)  # fmt: skip
            rms = delta_rms(r.delta.numpy())
            edits.append(rms)
            per_kind.setdefault(kind, []).append(round(rms, 5))
            if i < args.transferable and seed == args.seeds[0]:
                t = make_transferable(g, model.branch, w, r, model.class_names, edit_config=cfg,
                                      perceptual=model.perceptual, encoder=model.encoder, reader=model.reader)  # fmt: skip
                transferable.append(delta_rms(t.delta.numpy()))
    result = {
        "model": args.model, "model_id": model.model_id, "latent_shape": list(w1.shape[1:]),
        "measure": "per-element RMS of the delta (L2 norm / sqrt(n_latent * w_dim))",
        "mode3_edits": _stats(edits), "mode3_per_kind": per_kind,
        "transferable_edits": _stats(transferable) if transferable else None,
        "latent_spread_truncation_1": spread,
        "bound_in_vector_format": MAX_DELTA_RMS,
        "bound_over_largest_edit": round(MAX_DELTA_RMS / max(edits + transferable), 1),
        "bound_over_two_faces_difference_max": round(MAX_DELTA_RMS / spread["two_faces_difference"]["max"], 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
