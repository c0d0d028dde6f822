"""What the segmentation branch's ceiling depends on: capacity, sampling and features, by sweep.

    python -m benchmarks.branch_sweep --model checkpoints/faces64 --device cuda

``branch_recipe`` showed that 16 perfectly aligned labels (GAN samples labelled
by the oracle) give a branch mIoU of 0.737 on faces64, below the 0.80 target,
so the architecture and training recipe, not only label alignment, cap it.
This sweep trains the branch on those aligned labels with one change at a time
(more steps, more pixels per step, wider or deeper members, more members, class
balance, which feature maps are read, more labelled images, another seed) and
scores every variant against the oracle on the same GAN samples. Variants
marked ``embedded`` train on the 16 labelled images embedded the trainer's
way instead; ``teacher`` variants add (or use only) the trainer's teacher
samples (``teacher_labelled_samples``: 64 GAN samples labelled by U-Nets
trained on those same 16 images, unsure pixels skipped): aligned
pseudo-labels, no extra labels. Made for a GPU (a full sweep is hours on 2 CPU cores); ``--budget-s``
skips what does not fit. Writes benchmarks/results/branch_sweep.json after
every variant, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import torch

from benchmarks.bench_joint import (
    RESULTS,
    branch_and_oracle_masks,
    miou,
)
from benchmarks.branch_recipe import _WithBranch
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.editgan import EditGAN
from core.train.branch import (
    BranchTrainConfig,
    embed_labelled,
    labelled_set,
    one_hot_targets,
    teacher_labelled_samples,
    train_branch,
    trusted_pixels,
)

ALIGNED_SEED = 777  # the GAN samples branch_recipe labels with the oracle

# name -> (label source, BranchTrainConfig overrides); most informative first
VARIANTS: dict[str, tuple[str, dict]] = {
    "base": ("aligned", {}),
    "pixels_4096": ("aligned", {"pixels_per_image": 4096}),
    "steps_2400": ("aligned", {"steps": 2400}),
    "wide_256_128": ("aligned", {"hidden": (256, 128)}),
    "ensemble_10": ("aligned", {"ensemble": 10}),
    "class_balance_0": ("aligned", {"class_balance": 0.0}),
    "class_balance_1": ("aligned", {"class_balance": 1.0}),
    "no_maps_below_16px": ("aligned", {"min_map_resolution": 16}),
    "maps_32px_up": ("aligned", {"min_map_resolution": 32}),
    "maps_64px_only": ("aligned", {"min_map_resolution": 64}),
    "maps_32px_up_class_balance_0": ("aligned", {"min_map_resolution": 32, "class_balance": 0.0}),
    "embedded_maps_32px_up": ("embedded", {"min_map_resolution": 32}),
    # the 16 embedded labelled images plus 64 GAN samples labelled by an image-space segmenter
    # trained on the same 16 images (no extra labels): aligned pseudo-labels beside true ones
    "embedded_plus_teacher_64": ("embedded+teacher", {"min_map_resolution": 32}),
    "teacher_64_only": ("teacher", {"min_map_resolution": 32}),
    # the shipped recipe but trained on the teachers' argmax labels, or without their mirrored reading
    "embedded_plus_teacher_64_hard_labels": ("embedded+teacher", {"min_map_resolution": 32, "teacher_soft": False}),
    "embedded_plus_teacher_64_no_flip": ("embedded+teacher", {"min_map_resolution": 32, "teacher_flip": False}),
    # the teacher as it was before augmentation and ensembling (one U-Net, mirroring only)
    "teacher_64_single_mirror_only": ("teacher", {"min_map_resolution": 32, "teacher_ensemble": 1, "teacher_affine": 0.0}),
    "teacher_128_only": ("teacher", {"min_map_resolution": 32, "teacher_samples": 128}),
    "embedded_plus_teacher_128": ("embedded+teacher", {"min_map_resolution": 32, "teacher_samples": 128}),
    "labels_32": ("aligned", {"n_images": 32}),
    "seed_1": ("aligned", {"seed": 1}),
    "lr_3e-3": ("aligned", {"lr": 3e-3}),
    "deep_512_256_128": ("aligned", {"hidden": (512, 256, 128)}),
    "big": ("aligned", {"pixels_per_image": 4096, "steps": 2400, "hidden": (256, 128)}),
    "embedded_base": ("embedded", {}),
    "embedded_big": ("embedded", {"pixels_per_image": 4096, "steps": 2400, "hidden": (256, 128)}),
}


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--samples", type=int, default=200, help="GAN samples (psi = 1) every variant is scored on")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--budget-s", type=float, default=0, help="skip variants once this many seconds have passed")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every variant's steps (smoke tests)")
    ap.add_argument("--out", default=str(RESULTS / "branch_sweep.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    dev = torch.device(args.device)
    model = EditGAN.load(args.model, require=("encoder",)).to(dev)
    oracle = load_oracle(model.resolution).to(dev)
    g = model.generator
    base_cfg = BranchTrainConfig()
    result = {"model": args.model, "model_id": model.model_id, "samples": args.samples, "truncation": 1.0,
              "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "base_config": base_cfg.to_dict(), "perceptual_backend": model.perceptual.backend,
              "aligned_labels": f"GAN samples from seed {ALIGNED_SEED} (psi 1) labelled by the oracle",
              "variants": {}, "skipped": []}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    embedded, teachers = None, {}

    for name in args.variants:
        if args.budget_s and time.time() - start > args.budget_s:
            result["skipped"].append(name)
            continue
        source, over = VARIANTS[name]
        over = dict(over)
        over["steps"] = max(1, int(over.get("steps", base_cfg.steps) * args.steps_scale))
        cfg = dataclasses.replace(base_cfg, **over)
        t0 = time.time()
        soft = None
        if source == "aligned":
            latents = g.sample_w_plus(ALIGNED_SEED, cfg.n_images, 1.0)
            with torch.no_grad():
                masks = oracle(model.render(latents)).argmax(1)
            valid = None
        else:
            parts = []
            if source.startswith("embedded"):
                if embedded is None:
                    images, masks_true = labelled_set(model.resolution, base_cfg.n_images)
                    images, masks_true = images.to(dev), masks_true.to(dev)
                    te = time.time()
                    lat = embed_labelled(g, model.encoder, images, masks_true, base_cfg, model.perceptual,
                                         progress=False)  # fmt: skip
                    embedded = (lat, masks_true, trusted_pixels(g, lat, images, base_cfg.max_recon_error),
                                round(time.time() - te, 1))  # fmt: skip
                parts.append(embedded[:3])
            if "teacher" in source:
                key = tuple(getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                            if f.name.startswith("teacher_") and f.name != "teacher_soft")  # fmt: skip
                if key not in teachers:  # variants with the same teacher settings share its samples: label them once
                    images, masks_true = labelled_set(model.resolution, base_cfg.n_images)
                    teachers[key] = teacher_labelled_samples(g, images.to(dev), masks_true.to(dev), cfg)
                parts.append(teachers[key])
            if cfg.teacher_soft and "teacher" in source:  # the embedded images' own labels become one-hot targets
                parts = [p if len(p) == 4 else (*p, one_hot_targets(p[1])) for p in parts]
                latents, masks, valid, soft = (torch.cat(x) for x in zip(*parts))
            else:
                latents, masks, valid = (torch.cat(x[:3]) for x in zip(*parts))
        branch, stats = train_branch(g, latents, masks, cfg, progress=False, valid=valid, soft=soft)
        _, b, o = branch_and_oracle_masks(_WithBranch(model, branch), oracle, args.samples, 1.0)
        mi, per = miou(b, o)
        result["variants"][name] = {"labels": source, "overrides": {k: v for k, v in over.items() if k != "steps"},
                                    "steps": cfg.steps, "branch_miou_vs_oracle": round(mi, 4), "per_class_iou": per,
                                    "train_seconds": stats["train_seconds"],
                                    "seconds": round(time.time() - t0, 1)}  # fmt: skip
        if source.startswith("embedded"):
            result["variants"][name]["embed_seconds_once"] = embedded[3]
        result["elapsed_seconds"] = round(time.time() - start, 1)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({name: round(mi, 4), "s": result["variants"][name]["seconds"]}), flush=True)

    write_result(out, result, echo=False)
    print(json.dumps({k: v["branch_miou_vs_oracle"] for k, v in result["variants"].items()}, indent=2))
    return result


if __name__ == "__main__":
    main()
