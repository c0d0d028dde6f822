"""Joint-model benchmarks: segmentation branch quality, embedding quality, branch training cost.

    python -m benchmarks.bench_joint --model checkpoints/faces64

Prints JSON, writes benchmarks/results/joint.json and two pictures:
joint_branch_vs_oracle.png (samples | branch mask | oracle mask) and
joint_embedding.png (original | encoder only | after optimisation | after pivotal tuning).

* branch: mIoU of the branch against the oracle on GAN samples, beside the
  oracle's own architecture trained on only the same labelled images (the
  DatasetGAN claim is that the branch beats it);
* embedding: PSNR and oracle mIoU (true mask vs the oracle's mask of the
  reconstruction) on held-out procedural images, encoder only and after
  optimisation, with time per image, and then (``--tune-steps``, 0 = off) after
  pivotal tuning of the generator to each image (core.tuning) at that latent;
* branch training: wall time and peak RSS of ``python -m core.train.branch``
  as recorded when the shipped branch was trained (or, with --retrain-cost,
  retrained in a child process), embedding the labelled images included.

``--only embedding`` measures the embedding alone and replaces that section of
an existing results file.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.oracle import (
    OracleUNet,
    confusion,
    iou_from_confusion,
    load_oracle,
)
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.data.palette import colorize
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.segmenter import train_few_shot
from core.train.branch import labelled_set

RESULTS = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 31337


def miou(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, dict]:
    ious = iou_from_confusion(confusion(pred, target))
    return float(np.mean(list(ious.values()))), {k: round(v, 4) for k, v in ious.items()}


def few_shot_oracle(images: torch.Tensor, masks: torch.Tensor, steps: int = 1500, seed: int = 0) -> OracleUNet:
    """The oracle's architecture trained on only the labelled images (the DatasetGAN baseline)."""
    return train_few_shot(images, masks, steps=steps, width=16, seed=seed)


@torch.no_grad()
def branch_and_oracle_masks(model: EditGAN, oracle, n: int, truncation: float, seed: int = 9000, batch: int = 25):
    """n GAN samples with the branch's and the oracle's masks of the *same* images: (images, branch, oracle)."""
    imgs, branch_masks = [], []
    for i in range(0, n, batch):
        w = model.generator.sample_w_plus(seed + i, min(batch, n - i), truncation=truncation)
        imgs.append(model.render(w))
        branch_masks.append(model.segment(w))
    imgs, branch_masks = torch.cat(imgs), torch.cat(branch_masks)
    oracle_masks = torch.cat([oracle(imgs[i : i + 100]).argmax(1) for i in range(0, n, 100)])
    return imgs, branch_masks, oracle_masks


@torch.no_grad()
def branch_quality(model: EditGAN, oracle, n: int, truncation: float, labelled_n: int) -> tuple[dict, list]:
    imgs, branch_masks, oracle_masks = branch_and_oracle_masks(model, oracle, n, truncation)
    b_miou, b_per = miou(branch_masks, oracle_masks)
    with torch.enable_grad():
        images, masks = labelled_set(model.resolution, labelled_n)
        t0 = time.time()
        baseline = few_shot_oracle(images, masks)
        base_s = time.time() - t0
    base_masks = torch.cat([baseline(imgs[i : i + 100]).argmax(1) for i in range(0, n, 100)])
    o_miou, o_per = miou(base_masks, oracle_masks)
    out = {
        "samples": n,
        "truncation": truncation,
        "branch_miou_vs_oracle": round(b_miou, 4),
        "branch_per_class_iou": b_per,
        "few_shot_oracle_arch_miou_vs_oracle": round(o_miou, 4),
        "few_shot_oracle_arch_per_class_iou": o_per,
        "few_shot_baseline_train_seconds": round(base_s, 1),
        "labelled_images": labelled_n,
    }
    pics = [(imgs[i], branch_masks[i], oracle_masks[i]) for i in range(8)]
    return out, pics


def embedding_quality(model: EditGAN, oracle, n: int, steps: int, tune_steps: int = 0) -> tuple[dict, list]:
    """Encoder only, then ``steps`` of optimisation and (``tune_steps`` > 0) pivotal tuning at the found latent.

    The tuning comes after the latent and does not move it, so one embedding gives both later rows."""
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    kinds = ("encoder", "optimised") + (("pivotal_tuning",) if tune_steps > 0 else ())
    rec = {kind: {"psnr": [], "pred": [], "sec": []} for kind in kinds}
    truth, pics = [], []
    for i in range(n):
        x, m = ds.batch(i, 1)
        truth.append(m[0])
        enc = model.embed_tensor(x, EmbedConfig(steps=0))
        opt = model.embed_tensor(x, EmbedConfig(steps=steps, tune_steps=tune_steps))
        shown = [("encoder", enc.image.clamp(-1, 1), enc.psnr, enc.seconds),
                 ("optimised", model.render(opt.w_plus), opt.psnr_untuned, opt.seconds - opt.tune_seconds)]
        if opt.tuning is not None:
            shown.append(("pivotal_tuning", opt.image.clamp(-1, 1), opt.psnr, opt.seconds))
        for name, image, p, sec in shown:
            with torch.no_grad():
                rec[name]["pred"].append(oracle(image).argmax(1)[0])
            rec[name]["psnr"].append(p)
            rec[name]["sec"].append(sec)
        if i < 6:
            pics.append(torch.cat([x[0]] + [image[0] for _, image, _, _ in shown], -1))
    truth_t = torch.stack(truth)
    cfg = EmbedConfig(steps=steps, tune_steps=tune_steps)
    out = {"images": n, "optimisation_steps": steps, "perceptual_backend": model.perceptual.backend,
           "part_balance": cfg.part_balance if model.branch is not None else 0.0,
           "image_reader_weight": cfg.w_reader if model.reader is not None else 0.0,
           "tuning": {k: v for k, v in cfg.to_dict().items() if k.startswith("tune_")}}  # fmt: skip
    for kind, d in rec.items():
        mi, per = miou(torch.stack(d["pred"]), truth_t)
        out[kind] = {
            "psnr_mean_db": round(float(np.mean(d["psnr"])), 3),
            "psnr_median_db": round(float(np.median(d["psnr"])), 3),
            "oracle_miou_true_vs_reconstruction": round(mi, 4),
            "per_class_iou": per,
            "seconds_per_image": round(float(np.mean(d["sec"])), 3),
        }
    out["pivotal_tuning_seconds_include_the_optimisation"] = tune_steps > 0
    return out, pics


def recipe_args(recorded: dict) -> list[str]:
    """The shipped branch's recorded BranchTrainConfig as trainer flags, so a retrain repeats its recipe."""
    import dataclasses

    from core.train.branch import BranchTrainConfig

    out = []
    for f in dataclasses.fields(BranchTrainConfig):
        v = recorded.get(f.name)
        if v is None:
            continue
        out += [f"--{f.name.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)]
    return out


def branch_training_cost(model_dir: Path, out_dir: Path, retrain: bool) -> dict:
    """Wall time and peak RSS of ``python -m core.train.branch`` (labelled-image embedding included).

    By default these are the figures the trainer recorded when it trained the
    shipped branch (config.json ``branch_training``). With ``retrain`` the
    trainer runs again in a child process on a scratch copy, and the child's
    own peak RSS is read from the kernel.
    """
    import shutil

    recorded = json.loads((model_dir / "config.json").read_text()).get("branch_training", {})
    if not retrain:
        if "peak_rss_mb" not in recorded:
            raise RuntimeError("the branch in this model has no recorded training cost; rerun with --retrain-cost")
        return {"source": "recorded by core.train.branch when the shipped branch was trained",
                "wall_seconds": recorded["total_seconds"], "peak_rss_mb": recorded["peak_rss_mb"],
                "trainer_stats": recorded}  # fmt: skip
    scratch = out_dir / "_branch_scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(model_dir, scratch)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "core.train.branch", "--model", str(scratch), "--threads", "2",
                           *recipe_args(recorded)], capture_output=True, text=True)  # fmt: skip
    wall = time.time() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    stats = json.loads(proc.stdout[proc.stdout.index("{") :])
    return {"source": "retrained in a child process by this benchmark", "wall_seconds": round(wall, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1), "trainer_stats": stats}  # fmt: skip


def _tile(t: torch.Tensor) -> np.ndarray:
    return ((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--embed-images", type=int, default=200)
    ap.add_argument("--embed-steps", type=int, default=100)
    ap.add_argument("--tune-steps", type=int, default=200,
                    help="pivotal tuning steps after the optimisation (0 = skip that row)")
    ap.add_argument("--only", choices=("embedding",), help="measure only this section, keep the rest of --out")
    ap.add_argument("--truncation", type=float, default=1.0)
    ap.add_argument("--retrain-cost", action="store_true", help="train the branch again to time it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "joint.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    oracle = load_oracle(model.resolution)
    labelled = json.loads((Path(model.path) / "config.json").read_text()).get("branch_training", {}).get("n_images", 16)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": str(args.model), "model_id": model.model_id}
    if args.only == "embedding":
        result = json.loads(out_path.read_text()) if out_path.exists() else result
        if result.get("model_id") != model.model_id:
            raise SystemExit(f"{out_path} holds results of model {result.get('model_id')}; measure everything")
    else:
        result["branch"], bpics = branch_quality(model, oracle, args.samples, args.truncation, labelled)
        rows = [np.concatenate([_tile(i), colorize(b.numpy()), colorize(o.numpy())], 1) for i, b, o in bpics]
        Image.fromarray(np.concatenate(rows, 0)).save(out_path.parent / "joint_branch_vs_oracle.png")
    result["embedding"], epics = embedding_quality(model, oracle, args.embed_images, args.embed_steps, args.tune_steps)
    if args.only is None:
        result["branch_training"] = branch_training_cost(Path(model.path), out_path.parent, args.retrain_cost)
    Image.fromarray(np.concatenate([_tile(e) for e in epics], 0)).save(out_path.parent / "joint_embedding.png")
    write_result(out_path, result)
    return result


if __name__ == "__main__":
    main()
