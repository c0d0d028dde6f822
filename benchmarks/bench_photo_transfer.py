"""Saved vectors applied to uploaded photos: mode 1 (the slider) and mode 2 (vector + refinement).

    python -m benchmarks.bench_photo_transfer --kinds smile open_mouth --out benchmarks/results/photo_transfer_a.json
    python -m benchmarks.bench_photo_transfer --merge benchmarks/results/photo_transfer_a.json \
        benchmarks/results/photo_transfer_b.json --out benchmarks/results/photo_transfer.json

bench_edit applies each kind's vectors to the generator's own samples; a user drags a vector's slider on a photo
they uploaded: its embedding, and by default the generator tuned to it. Here the vectors are bench_edit's
(``--sources-from``: its JSON names each kind's source seeds): each source's mode-3 edit is redone, made
transferable and calibrated as saving it does, and kept in ``--vectors-dir`` for the next run. The photos are
bench_photo_edit's held-out procedural photos, embedded and tuned as that benchmark does (the app's defaults).
On each bundle (as embedded, and tuned) every vector whose kind applies to the branch's mask of the photo is
applied at scale 1 (mode 1) and refined (mode 2, the product's steps), and judged as bench_edit judges a transfer
(:func:`benchmarks.edit_judge.judge` against the bundle's own render, the target being the same scripted edit
painted on that mask), with the two controls beside mode 1 (the render left as it was, a random latent step of the
vector's norm) and the PSNR outside the region against the photo itself.

Writes the JSON (per bundle: per kind and per source, mode 1 and mode 2) and a picture beside it (per kind, on the
first photo it applies to: photo | tuned render | mode 1 | mode 2).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_edit import _summary, random_step
from benchmarks.bench_joint import HELDOUT_SEED
from benchmarks.bench_photo_edit import _target, _tile, bundle_name, parse_tuning
from benchmarks.edit_judge import CHANGED_OK, KEPT_OK, PSNR_OK, judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.edit import EditConfig, edit_by_mask, psnr_outside, region_of_interest
from core.edit_vector import REFINE_STEPS, TransferConfig, apply_vectors, calibrated, make_transferable, refine, \
    vector_from_edit  # fmt: skip
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.mask_edits import apply_scripted
from core.vector_format import VectorFile

RESULTS = Path(__file__).resolve().parent / "results"
RATES = ("success_rate", "noop_success_rate", "random_step_success_rate")


def source_seeds(path: Path, kinds: list[str]) -> dict[str, list[int]]:
    """Each kind's vector source seeds, in order, from a bench_edit result."""
    per_kind = json.loads(Path(path).read_text())["per_kind"]
    missing = [k for k in kinds if k not in per_kind]
    if missing:
        raise SystemExit(f"{path} has no vector sources for {', '.join(missing)}")
    return {k: [s["source_edit"]["seed"] for s in per_kind[k]["vector_sources"]] for k in kinds}


def make_vector(model: EditGAN, kind: str, seed: int, cfg: EditConfig, truncation: float) -> VectorFile:
    """The vector bench_edit saves from ``kind``'s mode-3 edit of sample ``seed``: made transferable, calibrated."""
    w = model.sample(seed, truncation)
    mask = model.segment(w)[0].cpu()
    target = torch.from_numpy(apply_scripted(kind, mask))
    r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                     model.encoder, reader=model.reader)  # fmt: skip
    r = make_transferable(model.generator, model.branch, w, r, model.class_names, TransferConfig(), cfg,
                          model.perceptual, model.encoder, reader=model.reader)  # fmt: skip
    vec = vector_from_edit(r, model.model_id, name=f"{kind} (seed {seed})")
    return calibrated(vec, model.generator, model.branch, model.class_names, edit_config=cfg)


def vectors(model: EditGAN, seeds: dict[str, list[int]], cfg: EditConfig, folder: Path, truncation: float
            ) -> dict[str, list[tuple[int, VectorFile]]]:  # fmt: skip
    """Each kind's vectors, made once and kept in ``folder`` (named by model, kind and seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, ss in seeds.items():
        out[kind] = []
        for seed in ss:
            path = folder / f"{model.model_id[:12]}_{kind}_{seed}.safetensors"
            if path.exists():
                vec = VectorFile.load(path)
            else:
                t0 = time.perf_counter()
                vec = make_vector(model, kind, seed, cfg, truncation)
                vec.save(path)
                print(f"vector {kind} seed {seed}: {time.perf_counter() - t0:.0f} s, "
                      f"scale {vec.metrics.get('calibrated_scale')}", flush=True)  # fmt: skip
            out[kind].append((seed, vec))
    return out


def run(model: EditGAN, oracle, n: int, vecs: dict, embed_config: EmbedConfig, cfg: EditConfig,
        tuning: tuple[float, float], refine_steps: int) -> tuple[dict, list]:  # fmt: skip
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    names = ["embedded", bundle_name(*tuning)]
    kinds = list(vecs)
    # [bundle][kind][source index] -> lists of verdicts
    rec = {b: {k: [{"m1": [], "m2": [], "noop": [], "rand": []} for _ in vecs[k]] for k in kinds} for b in names}
    pics: dict[str, np.ndarray] = {}
    for i in range(n):
        photo, _ = ds.batch(i, 1)
        w = model.embed_tensor(photo, replace(embed_config, tune_steps=0)).w_plus
        t = model.tune(photo, w, replace(embed_config, tune_locality=tuning[0], tune_w_branch=tuning[1]))
        for name, bundle in (("embedded", model), (names[1], model.with_tuning(t.tuning))):
            render, mask = bundle.render(w), bundle.segment(w)[0].cpu()
            for kind in kinds:
                target = _target(model, kind, mask)
                if target is None:
                    continue
                roi = region_of_interest(mask, target, model.class_names, cfg.dilation)[0]
                for j, (seed, vec) in enumerate(vecs[kind]):
                    a = apply_vectors(bundle.generator, w, [(vec, 1.0)], model.model_id)
                    b = refine(bundle.generator, bundle.branch, w, [(vec, 1.0)], model.model_id, model.class_names,
                               refine_steps, cfg, bundle.perceptual, bundle.encoder, reader=bundle.reader)  # fmt: skip
                    r = rec[name][kind][j]
                    for key, img in (("m1", a.image), ("m2", b.image)):
                        r[key].append({**judge(oracle, img, render, mask, target, roi), "photo": i,
                                       "psnr_outside_vs_photo": psnr_outside(img, photo, roi)})  # fmt: skip
                    r["noop"].append(judge(oracle, render, render, mask, target, roi))
                    r["rand"].append(judge(oracle, bundle.render(random_step(w, a.w_plus - w, i)), render, mask,
                                           target, roi))  # fmt: skip
                    if name == names[1] and j == 0 and kind not in pics:
                        pics[kind] = np.concatenate([_tile(photo), _tile(render), _tile(a.image), _tile(b.image)], 1)
        print(f"photo {i + 1}/{n} done", flush=True)
    out = {}
    for name in names:
        per_kind = {}
        for kind in kinds:
            srcs = rec[name][kind]
            pool = {key: [x for s in srcs for x in s[key]] for key in ("m1", "m2", "noop", "rand")}
            per_kind[kind] = {
                "mode1": {**_summary(pool["m1"], pool["noop"], pool["rand"]), **_vs_photo(pool["m1"])},
                "mode2": {**_summary(pool["m2"], pool["noop"]), **_vs_photo(pool["m2"])},
                "per_source": [{"seed": seed, "calibrated_scale": vec.metrics.get("calibrated_scale"),
                                "mode1_success_rate": _summary(s["m1"]).get("success_rate"),
                                "mode2_success_rate": _summary(s["m2"]).get("success_rate"), "n": len(s["m1"])}
                               for (seed, vec), s in zip(vecs[kind], srcs)],
            }  # fmt: skip
        out[name] = {"per_kind": per_kind, **overall(per_kind)}
    return out, [pics[k] for k in kinds if k in pics]


def _vs_photo(records: list[dict]) -> dict:
    if not records:
        return {}
    return {"mean_psnr_outside_vs_photo_db": round(float(np.mean([min(r["psnr_outside_vs_photo"], 99.0)
                                                                  for r in records])), 3)}  # fmt: skip


def overall(per_kind: dict) -> dict:
    """The pooled rates over the kinds (weighted by each kind's count, so exact for rates)."""
    out = {}
    for mode in ("mode1", "mode2"):
        rows = [s[mode] for s in per_kind.values() if s[mode].get("n")]
        n = sum(s["n"] for s in rows)
        out[f"overall_{mode}"] = {"n": n, **{r: round(sum(s[r] * s["n"] for s in rows) / n, 4)
                                             for r in RATES if n and all(s.get(r) is not None for s in rows)}}  # fmt: skip
    return out


def merge(parts: list[str], out: Path) -> dict:
    """Runs of the same settings over different kinds, as one result."""
    results = [json.loads(Path(p).read_text()) for p in parts]
    first = results[0]
    same = ("model_id", "images", "embed_config", "edit_config", "tuning", "refine_steps", "sources_from")
    for p, r in zip(parts[1:], results[1:]):
        diff = [k for k in same if r.get(k) != first.get(k)]
        if diff:
            raise SystemExit(f"{p} differs from {parts[0]} in {', '.join(diff)}: not the same settings")
    merged = {k: v for k, v in first.items() if k not in first["bundles"]}
    merged["kinds"] = [k for r in results for k in r["kinds"]]
    merged["vector_sources"] = {k: v for r in results for k, v in r["vector_sources"].items()}
    merged["merged_from"] = [str(p) for p in parts]
    merged["wall_seconds"] = [r["wall_seconds"] for r in results]
    for name in first["bundles"]:
        per_kind = {k: v for r in results for k, v in r[name]["per_kind"].items()}
        merged[name] = {"per_kind": per_kind, **overall(per_kind)}
    write_result(out, merged)
    pics = [Image.open(Path(p).with_suffix(".png")) for p in parts if Path(p).with_suffix(".png").exists()]
    if pics:
        Image.fromarray(np.concatenate([np.asarray(p) for p in pics], 0)).save(out.with_suffix(".png"))
    print(table(merged))
    return merged


def table(result: dict) -> str:
    """Markdown: mode 1 (with its no-op and random-step controls) and mode 2 per kind and bundle."""
    bundles = result["bundles"]
    rows = ["| kind | " + " | ".join(f"{b}: mode 1 (no-op, random) | mode 2" for b in bundles) + " |",
            "|---|" + "---|---|" * len(bundles)]  # fmt: skip
    for kind in list(result[bundles[0]]["per_kind"]) + ["overall"]:
        cells = []
        for b in bundles:
            if kind == "overall":
                m1, m2 = result[b]["overall_mode1"], result[b]["overall_mode2"]
            else:
                m1, m2 = result[b]["per_kind"][kind]["mode1"], result[b]["per_kind"][kind]["mode2"]
            if not m1.get("n"):
                cells += ["-", "-"]
                continue
            cells += [f"{m1['success_rate']:.2f} ({m1.get('noop_success_rate', 0):.2f}, "
                      f"{m1.get('random_step_success_rate', 0):.2f}; n={m1['n']})", f"{m2['success_rate']:.2f}"]  # fmt: skip
        rows.append(f"| {'**overall**' if kind == 'overall' else kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--sources-from", default=str(RESULTS / "edit.json"),
                    help="a bench_edit result: each kind's vector source seeds")
    ap.add_argument("--kinds", nargs="+", help="default: every kind in --sources-from")
    ap.add_argument("--vectors-dir", default="runs/photo_transfer_vectors", help="the vectors, made once, kept here")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--embed-steps", type=int, default=100)
    ap.add_argument("--tune-steps", type=int, default=200)
    ap.add_argument("--tuning", type=parse_tuning, default=(10.0, 0.3),
                    help="LOCALITY,BRANCH: EmbedConfig.tune_locality and tune_w_branch (the app's defaults)")
    ap.add_argument("--refine-steps", type=int, default=REFINE_STEPS, help="mode 2's steps (the product default)")
    ap.add_argument("--truncation", type=float, default=0.7, help="of the vectors' source samples (bench_edit's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS / "photo_transfer.json"))
    ap.add_argument("--merge", nargs="+", metavar="RESULT", help="combine runs over different kinds into --out")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out))
    if args.images < 1 or args.tune_steps < 1 or args.refine_steps < 1:
        ap.error("--images, --tune-steps and --refine-steps must be at least 1")
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    if args.kinds is None:
        args.kinds = list(json.loads(Path(args.sources_from).read_text())["per_kind"])
    seeds = source_seeds(Path(args.sources_from), args.kinds)
    cfg = model.edit_config()
    embed_config = EmbedConfig(steps=args.embed_steps, tune_steps=args.tune_steps)
    t0 = time.time()
    vecs = vectors(model, seeds, cfg, Path(args.vectors_dir), args.truncation)
    rows, pics = run(model, oracle, args.images, vecs, embed_config, cfg, args.tuning, args.refine_steps)
    result = {"criteria": {"judge": "benchmarks.edit_judge", "changed_accuracy_min": CHANGED_OK,
                           "kept_agreement_min": KEPT_OK, "psnr_outside_min_db": PSNR_OK},
              "model": args.model, "model_id": model.model_id, "images": args.images, "heldout_seed": HELDOUT_SEED,
              "sources_from": str(Path(args.sources_from).name), "kinds": args.kinds,
              "vector_sources": {k: [{"seed": s, **{m: v.metrics.get(m) for m in ("calibrated_scale",
                                                                                   "calibration_made")}}
                                     for s, v in vs] for k, vs in vecs.items()},
              "embed_config": embed_config.to_dict(), "edit_config": cfg.to_dict(),
              "tuning": {"tune_locality": args.tuning[0], "tune_w_branch": args.tuning[1]},
              "refine_steps": args.refine_steps, "perceptual_backend": model.perceptual.backend,
              "torch_threads": args.threads, "bundles": list(rows), **rows,
              "wall_seconds": round(time.time() - t0, 1)}  # fmt: skip
    out = Path(args.out)
    write_result(out, result, echo=False)
    if pics:
        Image.fromarray(np.concatenate(pics, 0)).save(out.with_suffix(".png"))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
