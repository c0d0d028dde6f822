"""Does a vector's strength picked on the photo itself rescue the slider (mode 1) on uploaded photos?

    python -m benchmarks.photo_strength --kinds smile open_mouth shorten_hair remove_glasses --out A.json
    python -m benchmarks.photo_strength --kinds add_glasses shrink_nose enlarge_eyes slim_face --out B.json

bench_photo_transfer found mode 1 at scale 1 succeeding on 0.44 of the transfers onto embedded photos against 0.63
on samples, mostly because the change falls short. A vector's strength is set when it is saved, on 8 sampled faces
(core.edit_vector.pick_scale). Here the same rule runs on the photo's own latent: for each scale, the painted change
carried onto the photo's mask, and the photo counts the change made there when the reading (the image reader, or the
branch) reads at least half of the carried change's changed pixels as carried with PSNR >= 30 dB outside the
carried region; the made scale nearest 1 wins, and 1 stays when none is. The oracle then judges each transfer at
scale 1, at the picked scale, and at every scale (the best of them is a ceiling no pick beats). Same vectors
(bench_edit's sources, kept in --vectors-dir), same 16 held-out photos, embedded as the app does (no tuning).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_joint import HELDOUT_SEED
from benchmarks.bench_photo_edit import _target
from benchmarks.bench_photo_transfer import RESULTS, source_seeds, vectors
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.edit import EditConfig, psnr_outside, region_of_interest
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.mask_transfer import describe_change, transfer_change

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def readings(model: EditGAN, w: torch.Tensor, vec, cfg: EditConfig) -> dict:
    """Per scale, what the image reader and the branch read of the vector's painted change carried onto this
    latent: the share of the carried change's changed pixels read as carried, and the PSNR outside the carried
    region against the latent's own render. Empty when the change does not carry onto it."""
    before, after = torch.from_numpy(vec.change.astype(np.int64))
    roi, _ = region_of_interest(before, after, model.class_names, cfg.dilation, cfg.context_classes)
    change = describe_change(before, after, roi, model.class_names, cfg.context_classes, cfg.context_face_frame,
                             cfg.carry_by_transition)  # fmt: skip
    orig = model.generator.synthesis(w, return_features=True)
    mask = model.branch(orig.features).argmax(1)[0]
    carried = transfer_change(change, mask, 0, cfg.complete_removal, cfg.carry_by_transition)
    if carried is None:
        return {}
    target, region, _ = carried
    changed = region & (target != mask)
    if not changed.any():
        return {}
    delta = torch.from_numpy(np.array(vec.delta))
    out = {}
    for s in SCALES:
        img = model.generator.synthesis(w + s * delta[None], return_features=True)
        by_reader = model.reader(img.image).argmax(1)[0]
        by_branch = model.branch(img.features).argmax(1)[0]
        out[f"{s:g}"] = {"reader": float((by_reader[changed] == target[changed]).float().mean()),
                         "branch": float((by_branch[changed] == target[changed]).float().mean()),
                         "psnr": float(psnr_outside(img.image, orig.image, region))}  # fmt: skip
    return out


def pick(read: dict, reading: str, rule: str, changed_ok: float = 0.5, psnr_ok: float = 30.0) -> float:
    """A scale from ``readings``: "nearest" (pick_scale's rule on one face: the made scale nearest 1, else 1),
    "strict" (the same with 0.7 of the changed pixels), "most" (the kept scale read most changed, nearest 1 among
    equals; 1 when none is kept)."""
    if not read:
        return 1.0
    kept = [s for s in SCALES if read[f"{s:g}"]["psnr"] >= psnr_ok]
    if rule in ("nearest", "strict"):
        bar = changed_ok if rule == "nearest" else 0.7
        ok = [s for s in kept if read[f"{s:g}"][reading] >= bar]
        return min(ok, key=lambda s: (abs(s - 1.0), s)) if ok else 1.0
    if not kept:
        return 1.0
    return max(kept, key=lambda s: (read[f"{s:g}"][reading], -abs(s - 1.0)))


RULES = tuple(f"{reading}_{rule}" for reading in ("reader", "branch") for rule in ("nearest", "strict", "most"))


@torch.no_grad()
def run(model: EditGAN, oracle, n: int, vecs: dict, embed_config: EmbedConfig, cfg: EditConfig) -> dict:
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    rec = {k: [] for k in vecs}
    for i in range(n):
        photo, _ = ds.batch(i, 1)
        with torch.enable_grad():
            w = model.embed_tensor(photo, replace(embed_config, tune_steps=0)).w_plus
        render, mask = model.render(w), model.segment(w)[0].cpu()
        for kind in vecs:
            target = _target(model, kind, mask)
            if target is None:
                continue
            roi = region_of_interest(mask, target, model.class_names, cfg.dilation)[0]
            for seed, vec in vecs[kind]:
                delta = torch.from_numpy(np.array(vec.delta))
                ok = {s: bool(judge(oracle, model.render(w + s * delta[None]), render, mask, target, roi)["success"])
                      for s in SCALES}  # fmt: skip
                read = readings(model, w, vec, cfg)
                row = {"photo": i, "seed": seed, "at_1": ok[1.0], "best": any(ok.values()),
                       "per_scale": {f"{s:g}": ok[s] for s in SCALES}, "readings": read}
                for name in RULES:
                    row[f"{name}_scale"] = pick(read, *name.split("_"))
                    row[name] = ok[row[f"{name}_scale"]]
                rec[kind].append(row)
        print(f"photo {i + 1}/{n} done", flush=True)
    return rec


def summary(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    out = {"n": len(rows)}
    for key in ("at_1", "best", *RULES):
        out[key] = round(float(np.mean([r[key] for r in rows])), 4)
    for s in SCALES:
        out[f"at_{s:g}"] = round(float(np.mean([r["per_scale"][f"{s:g}"] for r in rows])), 4)
    for name in RULES:
        out[f"{name}_moved"] = round(float(np.mean([r[f"{name}_scale"] != 1.0 for r in rows])), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--sources-from", default=str(RESULTS / "edit.json"))
    ap.add_argument("--kinds", nargs="+", required=True)
    ap.add_argument("--vectors-dir", default="runs/photo_transfer_vectors")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--embed-steps", type=int, default=100)
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    cfg = model.edit_config()
    vecs = vectors(model, source_seeds(Path(args.sources_from), args.kinds), cfg, Path(args.vectors_dir),
                   args.truncation)  # fmt: skip
    embed_config = EmbedConfig(steps=args.embed_steps)
    rec = run(model, load_oracle(model.resolution), args.images, vecs, embed_config, cfg)
    per_kind = {k: summary(v) for k, v in rec.items()}
    write_result(args.out, {"benchmark": "photo_strength", "model": args.model, "images": args.images,
                            "perceptual_backend": model.perceptual.backend,
                            "scales": list(SCALES), "per_kind": per_kind,
                            "all": summary([r for v in rec.values() for r in v]), "records": rec,
                            "wall_seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip


if __name__ == "__main__":
    main()
