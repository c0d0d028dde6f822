"""Editing uploaded photos: mask edits on embedded images, with and without pivotal tuning.

    python -m benchmarks.bench_photo_edit --model checkpoints/faces64 --images 16 --tunings 0,0 10,0.3

bench_edit edits the generator's own samples; a user who uploads a photo edits
its embedding. For held-out procedural photos (bench_joint's stream) this
embeds each one as the app does (100 optimisation steps) and then tunes the
generator to it once per --tunings setting at that latent (pivotal tuning,
core.tuning, via EditGAN.tune: the tuning embed itself would run). On each
of the two bundles (as embedded, and tuned) the mask the user sees is the
branch's reading of the latent; every scripted edit kind that applies to it is
painted and run in mode 3 (30 steps). Judged as bench_edit judges
(:func:`benchmarks.edit_judge.judge` against the bundle's own render: changed
pixels read as painted, the region's other pixels as before, PSNR outside
>= 30 dB), with the same two controls beside every rate (the render left as it
was, and a random latent step of the edit's norm), plus what the user compares
with: PSNR outside the region against the photo itself. Beside it, per bundle: PSNR and
oracle mIoU of the reconstruction against the photo's true mask, and the
branch's mask (what the user paints on) against that true mask.

Writes benchmarks/results/photo_edit.json and photo_edit.png (per photo:
photo | reconstruction | painted target | edit, as embedded above and tuned (the last of --tunings) below).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_edit import _summary, random_step
from benchmarks.edit_judge import CHANGED_OK, KEPT_OK, PSNR_OK, judge
from benchmarks.bench_joint import HELDOUT_SEED, RESULTS, miou
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.data.palette import colorize
from core.edit import EditConfig, edit_by_mask, psnr_outside, region_of_interest
from core.editgan import EditGAN
from core.embed import EmbedConfig, psnr
from core.mask_edits import SCRIPTED_EDITS, apply_scripted


def bundle_name(locality: float, w_branch: float) -> str:
    """The result key of the bundle tuned with this locality weight and branch weight (EmbedConfig)."""
    return f"tuned_locality{locality:g}_branch{w_branch:g}"


def parse_tuning(text: str) -> tuple[float, float]:
    """'LOCALITY,BRANCH' -> (tune_locality, tune_w_branch), both >= 0."""
    try:
        locality, w_branch = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOCALITY,BRANCH (two numbers), got {text!r}") from None
    if not (locality >= 0 and w_branch >= 0):
        raise argparse.ArgumentTypeError(f"weights must be >= 0, got {text!r}")
    return locality, w_branch


def _target(model: EditGAN, kind: str, mask: torch.Tensor) -> Optional[torch.Tensor]:
    """The painted mask for ``kind`` on ``mask``, or None when the edit does not apply to it."""
    try:
        target = torch.from_numpy(apply_scripted(kind, mask.cpu()))
        region_of_interest(mask.cpu(), target, model.class_names)
        return target
    except ValueError:
        return None


def _tile(t: torch.Tensor) -> np.ndarray:
    return ((t[0].permute(1, 2, 0).clamp(-1, 1).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)


def run(model: EditGAN, oracle, n: int, kinds, embed_config: EmbedConfig, edit_config: EditConfig,
        tunings: tuple[tuple[float, float], ...] = ((0.0, 0.0),)) -> tuple[dict, list]:
    """Per photo: embed, tune once per (locality, branch weight) at the same latent, edit every bundle."""
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    names = ["embedded"] + [bundle_name(*t) for t in tunings]
    recs = {b: {k: [] for k in kinds} for b in names}
    noops = {b: {k: [] for k in kinds} for b in names}  # the controls: the render left alone
    rands = {b: {k: [] for k in kinds} for b in names}  # and moved by a random step of the edit's norm
    recon = {b: {"psnr": [], "oracle": [], "branch": []} for b in names}
    truth, pics, embed_s = [], [], []
    tune_s = {b: [] for b in names[1:]}
    for i in range(n):
        photo, true_mask = ds.batch(i, 1)
        truth.append(true_mask[0])
        bundles = [("embedded", model)]
        e = model.embed_tensor(photo, replace(embed_config, tune_steps=0))
        w = e.w_plus
        embed_s.append(e.seconds)
        for (locality, w_branch), name in zip(tunings, names[1:]):  # each tuning at the same latent
            r = model.tune(photo, w, replace(embed_config, tune_locality=locality, tune_w_branch=w_branch))
            tune_s[name].append(r.tune_seconds)
            bundles.append((name, model.with_tuning(r.tuning)))
        rows = []
        for name, bundle in bundles:
            render, mask = bundle.render(w), bundle.segment(w)[0]
            with torch.no_grad():
                recon[name]["oracle"].append(oracle(render).argmax(1)[0])
            recon[name]["psnr"].append(psnr(render, photo))
            recon[name]["branch"].append(mask.cpu())
            shown = None
            for kind in kinds:
                target = _target(model, kind, mask)
                if target is None:
                    continue
                e = edit_by_mask(bundle.generator, bundle.branch, w, target, bundle.class_names, edit_config,
                                 bundle.perceptual, bundle.encoder, reader=bundle.reader)  # fmt: skip
                j = judge(oracle, e.image, render, mask.cpu(), target, e.roi)
                recs[name][kind].append({**j, "photo": i, "seconds": e.seconds,
                                         "psnr_outside_vs_photo": psnr_outside(e.image, photo, e.roi)})  # fmt: skip
                noops[name][kind].append(judge(oracle, render, render, mask.cpu(), target, e.roi))
                rands[name][kind].append(judge(oracle, bundle.render(random_step(w, e.delta, i)), render, mask.cpu(),
                                               target, e.roi))  # fmt: skip
                if shown is None:
                    shown = (target, e.image)
            if i < 6 and shown is not None and name in ("embedded", names[-1]):
                rows.append(np.concatenate([_tile(photo), _tile(render), colorize(shown[0].numpy()), _tile(shown[1])], 1))
        if len(rows) == 2:
            pics.append(np.concatenate(rows, 0))
    truth_t = torch.stack(truth)
    out = {}
    for name in names:
        per_kind = {}
        for kind in kinds:
            rs = recs[name][kind]
            per_kind[kind] = {**_summary(rs, noops[name][kind], rands[name][kind]), "mean_psnr_outside_vs_photo_db": round(float(np.mean(
                [min(x["psnr_outside_vs_photo"], 99.0) for x in rs])), 3) if rs else None}  # fmt: skip
        every = [x for kind in kinds for x in recs[name][kind]]
        every_noop = [x for kind in kinds for x in noops[name][kind]]
        every_rand = [x for kind in kinds for x in rands[name][kind]]
        out[name] = {
            "reconstruction_psnr_db": round(float(np.mean(recon[name]["psnr"])), 3),
            "reconstruction_oracle_miou_vs_true_mask": round(miou(torch.stack(recon[name]["oracle"]), truth_t)[0], 4),
            "branch_mask_miou_vs_true_mask": round(miou(torch.stack(recon[name]["branch"]), truth_t)[0], 4),
            "mode3": {**_summary(every, every_noop, every_rand), "mean_psnr_outside_vs_photo_db": round(float(np.mean(
                [min(x["psnr_outside_vs_photo"], 99.0) for x in every])), 3) if every else None,
                "mean_seconds": round(float(np.mean([x["seconds"] for x in every])), 3) if every else None},
            "per_kind": per_kind,
        }  # fmt: skip
    out["seconds_per_photo"] = {"embedding": round(float(np.mean(embed_s)), 2),
                                **{f"pivotal_tuning_{b}": round(float(np.mean(t)), 2) for b, t in tune_s.items()}}
    return out, pics


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--embed-steps", type=int, default=100)
    ap.add_argument("--tune-steps", type=int, default=200)
    ap.add_argument("--tunings", type=parse_tuning, nargs="+", default=[(0.0, 0.0), (10.0, 0.3)],
                    help="LOCALITY,BRANCH pairs (EmbedConfig.tune_locality, tune_w_branch): tune once per pair and "
                         "edit each tuned bundle")  # fmt: skip
    ap.add_argument("--edit-steps", type=int, default=30)
    ap.add_argument("--kinds", nargs="+", default=list(SCRIPTED_EDITS), choices=list(SCRIPTED_EDITS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "photo_edit.json"))
    args = ap.parse_args(argv)
    if args.tune_steps < 1:
        ap.error("--tune-steps must be at least 1 (the benchmark compares tuned with untuned)")
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    embed_config = EmbedConfig(steps=args.embed_steps, tune_steps=args.tune_steps)
    edit_config = model.edit_config(steps=args.edit_steps)
    t0 = time.time()
    rows, pics = run(model, oracle, args.images, args.kinds, embed_config, edit_config, tuple(args.tunings))
    result = {"criteria": {"judge": "benchmarks.edit_judge", "changed_accuracy_min": CHANGED_OK,
                           "kept_agreement_min": KEPT_OK, "psnr_outside_min_db": PSNR_OK},
              "model": args.model, "model_id": model.model_id, "images": args.images, "heldout_seed": HELDOUT_SEED,
              "embed_config": embed_config.to_dict(), "edit_config": edit_config.to_dict(),
              "tunings": {bundle_name(*t): {"tune_locality": t[0], "tune_w_branch": t[1]} for t in args.tunings},
              "perceptual_backend": model.perceptual.backend, "image_reader": model.reader is not None,
              "torch_threads": args.threads, **rows, "wall_seconds": round(time.time() - t0, 1)}  # fmt: skip
    out = Path(args.out)
    write_result(out, result)
    if pics:
        Image.fromarray(np.concatenate(pics, 0)).save(out.with_suffix(".png"))
    print(table(result, ["embedded"] + list(result["tunings"])))
    return result


def table(result: dict, bundles: list[str]) -> str:
    """Markdown: mode-3 success with the no-op and random-step controls beside it, per kind and bundle."""
    head = "| kind | " + " | ".join(f"{b}: success | no-op | random step" for b in bundles) + " |"
    rows = [head, "|---|" + "---|---|---|" * len(bundles)]
    kinds = list(result[bundles[0]]["per_kind"]) + ["mode3"]
    for kind in kinds:
        cells = []
        for b in bundles:
            s = result[b]["mode3"] if kind == "mode3" else result[b]["per_kind"][kind]
            cells += ([f"{s['success_rate']:.2f} ({s['n']})", f"{s['noop_success_rate']:.2f}",
                       f"{s['random_step_success_rate']:.2f}"] if s.get("n") else ["-"] * 3)  # fmt: skip
        rows.append(f"| {'**overall**' if kind == 'mode3' else kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
