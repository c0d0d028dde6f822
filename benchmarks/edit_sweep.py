"""Mode-3 edits of the same faces under several edit settings, judged side by side.

    python -m benchmarks.edit_sweep --model checkpoints/faces64 --n 4        # step size / CE weight (the first use)
    python -m benchmarks.edit_sweep --n 8 --kinds shorten_hair smile \\
        --settings '{"change_share": 0}' '{"change_share": 0.25}' --out benchmarks/results/change_share.json

Each setting is a JSON object of EditConfig fields laid over the model's own edit defaults
(``EditGAN.edit_config``: faces64's ``w_kept`` included). Every setting edits the same faces (bench_edit's first
mode-3 seeds per kind), and each edit is judged like bench_edit (benchmarks.edit_judge: changed pixels read as
painted, the region's other pixels kept, PSNR outside it), so rows compare pair by pair: the JSON keeps every
edit's verdict with its seed, and ``paired`` counts per setting the edits that pass where the first setting's fail
and the reverse (with ``--reference``, the first setting of an earlier run on the same faces). Writes the JSON
(default benchmarks/results/edit_sweep.json) and, beside it, a picture of ``--picture-kind``: the original, then
each setting's result, one face per row. bench_edit is the measurement of record; this is the guide for choosing
a default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_edit import RESULTS, _cases, _summary
from benchmarks.bench_kept_colour import _img
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.edit import EditConfig, edit_by_mask
from core.editgan import EditGAN

SETTINGS = ({"lr": 0.02, "w_ce": 1.0}, {"lr": 0.05, "w_ce": 1.0}, {"lr": 0.05, "w_ce": 3.0}, {"lr": 0.1, "w_ce": 3.0})
KINDS = ("enlarge_eyes", "open_mouth", "shrink_nose")


def _setting(text: str) -> dict:
    """A JSON object of EditConfig fields; a clear error for anything else."""
    try:
        over = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"a setting must be a JSON object of EditConfig fields, got {text!r}: {e}")
    if not isinstance(over, dict):
        raise argparse.ArgumentTypeError(f"a setting must be a JSON object of EditConfig fields, got {text!r}")
    unknown = sorted(set(over) - set(EditConfig.__dataclass_fields__))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown EditConfig field(s) {unknown} in {text!r}")
    return over


def _paired(first: list[dict], other: list[dict]) -> dict:
    """Edits (same kind, same seed) that pass under ``other`` and not under ``first``, and the reverse."""
    a = {(e["kind"], e["seed"]): e["success"] for e in first}
    b = {(e["kind"], e["seed"]): e["success"] for e in other}
    both = sorted(set(a) & set(b))
    return {"edits": len(both), "gained": sum(b[k] and not a[k] for k in both),
            "lost": sum(a[k] and not b[k] for k in both)}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--n", type=int, default=4, help="mode-3 faces per kind")
    ap.add_argument("--settings", nargs="+", type=_setting, default=[dict(s) for s in SETTINGS],
                    help="JSON objects of EditConfig fields over the model's edit defaults; the first is the reference")
    ap.add_argument("--steps", type=int, default=None, help="edit steps (default: the model's)")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--picture-kind", default=None, help="the kind pictured (default: the first)")
    ap.add_argument("--reference", default=None,
                    help="an earlier sweep's JSON (same model and faces) whose first setting every setting here is "
                         "paired with, instead of this run's first")  # fmt: skip
    ap.add_argument("--out", default=str(RESULTS / "edit_sweep.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    configs = [model.edit_config(**({"steps": args.steps} if args.steps else {}), **s) for s in args.settings]
    oracle = load_oracle(model.resolution)
    cases = {k: _cases(model, k, args.n, 1000, args.truncation) for k in args.kinds}
    picture_kind = args.picture_kind or args.kinds[0]
    rows, pics = [], {}
    for over, cfg in zip(args.settings, configs):
        t0, per_kind, everything = time.time(), {}, []
        for kind, kc in cases.items():
            recs = []
            for seed, w, mask, target in kc:
                r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                                 model.encoder, reader=model.reader)  # fmt: skip
                orig = model.render(w)
                recs.append({**judge(oracle, r.image, orig, mask, target, r.roi), "kind": kind, "seed": seed})
                if kind == picture_kind:
                    pics.setdefault(seed, [_img(orig)]).append(_img(r.image))
            per_kind[kind] = _summary(recs)
            everything += recs
        rows.append({"setting": over, "edit_config": cfg.to_dict(), "all": _summary(everything), "per_kind": per_kind,
                     "seconds_per_edit": round((time.time() - t0) / max(1, len(everything)), 2), "edits": everything})  # fmt: skip
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("edits", "edit_config")}), flush=True)
    reference = rows[0]
    if args.reference:
        ref = json.loads(Path(args.reference).read_text())
        if ref.get("model_id") != model.model_id:
            raise SystemExit(f"--reference {args.reference} was made with another model ({ref.get('model_id')})")
        reference = ref["settings"][0]
    for row in rows if args.reference else rows[1:]:
        row["paired"] = {"with": reference["setting"], **_paired(reference["edits"], row["edits"])}
    out = Path(args.out)
    picture = None
    if pics:
        picture = out.with_suffix(".png")
        grid = np.concatenate([np.concatenate(r, 1) for r in pics.values()], 0)
        Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(picture)
    result = {"model": args.model, "model_id": model.model_id, "samples_per_kind": args.n, "truncation": args.truncation,
              "perceptual_backend": model.perceptual.backend, "torch_threads": args.threads,
              "picture": None if picture is None else f"{picture_kind}: the original, then each setting's result",
              "reference": args.reference, "settings": rows}  # fmt: skip
    write_result(out, result, echo=False)
    print(json.dumps({k: v for k, v in result.items() if k != "settings"}, indent=2))
    return result


if __name__ == "__main__":
    main()
