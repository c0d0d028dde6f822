"""How the mask edit's step size and cross-entropy weight trade the change inside the region against the rest.

    python -m benchmarks.edit_sweep --model checkpoints/faces64 --n 4

Mode-3 edits (optimisation from scratch) for a few samples of a few edit kinds,
judged like bench_edit (benchmarks.edit_judge: changed pixels read as painted,
the region's others kept, PSNR outside it), once per (lr, w_ce) setting. Writes
benchmarks/results/edit_sweep.json. A quick guide for choosing EditConfig's
defaults; bench_edit is the measurement of record.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Optional

import torch

from benchmarks.bench_edit import RESULTS, _cases, _summary
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.edit import EditConfig, edit_by_mask
from core.editgan import EditGAN

SETTINGS = ((0.02, 1.0), (0.05, 1.0), (0.05, 3.0), (0.1, 3.0))  # (lr, w_ce)
KINDS = ("enlarge_eyes", "open_mouth", "shrink_nose")


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--n", type=int, default=4, help="samples per kind")
    ap.add_argument("--steps", type=int, default=EditConfig.steps)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "edit_sweep.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    cases = {k: _cases(model, k, args.n, 1000, args.truncation) for k in args.kinds}
    rows = []
    for lr, w_ce in SETTINGS:
        cfg = EditConfig(steps=args.steps, lr=lr, w_ce=w_ce)
        t0, per_kind, everything = time.time(), {}, []
        for kind, kc in cases.items():
            recs = []
            for _, w, mask, target in kc:
                r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                                 model.encoder, reader=model.reader)  # fmt: skip
                recs.append(judge(oracle, r.image, model.render(w), mask, target, r.roi))
            per_kind[kind] = _summary(recs)
            everything += recs
        rows.append({"lr": lr, "w_ce": w_ce, "steps": args.steps, "all": _summary(everything), "per_kind": per_kind,
                     "seconds_per_edit": round((time.time() - t0) / max(1, len(everything)), 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    result = {"model": args.model, "model_id": model.model_id, "samples_per_kind": args.n, "truncation": args.truncation,
              "perceptual_backend": model.perceptual.backend, "torch_threads": args.threads, "settings": rows}  # fmt: skip
    write_result(args.out, result, echo=False)
    print(json.dumps({k: v for k, v in result.items() if k != "settings"}, indent=2))
    return result


if __name__ == "__main__":
    main()
