"""Variants of the default FewShotConfig at one N on faces64 (how the defaults were chosen; issue #23).

    python -m benchmarks.labels_tuning --n 16 --eval-samples 64 \
        --variant default '{}' --variant steps300 '{"steps": 300}' --variant maps16 '{"min_map_resolution": 16}'

Each variant is trained from the same oracle labels as benchmarks/bench_labels.py and scored on the same
held-out samples; writes benchmarks/results/labels_tuning.json (variants already there are kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from benchmarks.bench_labels import RESULTS, run
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.editgan import EditGAN
from core.train.fewshot import FewShotConfig


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="faces64")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--eval-samples", type=int, default=64)
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True,
                    help="a name and the FewShotConfig fields it changes")
    ap.add_argument("--out", default=str(RESULTS / "labels_tuning.json"))
    args = ap.parse_args(argv)
    model, oracle = EditGAN.load(args.model), load_oracle(64)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {"model": args.model, "variants": {}}
    for name, over in args.variant:
        cfg = FewShotConfig.from_dict({**FewShotConfig().to_dict(), **json.loads(over)})
        row = run(model, oracle, [args.n], args.eval_samples, [1.0, 0.7], cfg, progress=False)["per_n"][str(args.n)]
        result["variants"][name] = {"changes": json.loads(over), "n_masks": args.n, "eval_samples": args.eval_samples,
                                    **row}  # fmt: skip
        write_result(out, result, echo=False)
    cols = ("truncation_1.0", "truncation_0.7")
    print(json.dumps({k: {t: v[t]["miou_vs_oracle"] for t in cols} | {"train_wall_s": v["train_wall_s"]}
                      for k, v in result["variants"].items()}, indent=1))
    return result


if __name__ == "__main__":
    main()
