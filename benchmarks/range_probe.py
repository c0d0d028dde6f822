"""How much of the procedural domain can a generator draw? Its photos embedded without an encoder.

    python -m benchmarks.range_probe --models checkpoints/faces64 runs/sitting_export

Compares generators (e.g. the shipped one and one trained further) on equal terms, without the encoder each
would need: held-out procedural photos are embedded from the mean latent with ``steps`` of L2 + perceptual
(core.embed, no encoder, reader or part weighting), then scored by PSNR and by the oracle's reading of the
reconstruction against each photo's true mask. Each row also states how many images its generator was trained
on (from its folder's training log). About 2.5 minutes per generator on a 2-core CPU at the defaults.
Writes benchmarks/results/range_probe.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from benchmarks.bench_edit import RESULTS
from benchmarks.bench_joint import HELDOUT_SEED, miou
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.checkpoint import load_generator
from core.data.faces import ProceduralFaces
from core.embed import EmbedConfig, embed_tensor
from core.perceptual import PerceptualLoss


def images_seen(folder: Path) -> Optional[int]:
    """Images the generator was trained on, from its training log (None when the folder has none)."""
    log = folder / "training" / "log.jsonl"
    state = folder / "training" / "state.json"
    if not log.is_file() or not state.is_file():
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    counted = [r["images"] for r in records if "images" in r]
    if counted:
        return int(counted[-1])
    saved = json.loads(state.read_text())
    return int(saved["step"]) * int(saved["train_config"]["batch_size"])


def probe(folder: Path, oracle, perceptual: PerceptualLoss, photos: int, steps: int) -> dict:
    g = load_generator(folder).eval()
    if g.config.resolution != 64:
        raise SystemExit(f"{folder}: the oracle reads 64 px images only")
    with torch.no_grad():
        start = g.to_w_plus(g.w_avg[None])  # the mean latent every exported generator stores
    faces = ProceduralFaces(g.config.resolution, HELDOUT_SEED)
    cfg = EmbedConfig(steps=steps, w_encoder=0.0, part_balance=0.0, w_reader=0.0)
    t0, psnrs, preds, truth = time.time(), [], [], []
    for i in range(photos):
        x, mask = faces.batch(i, 1)
        r = embed_tensor(g, None, x, cfg, perceptual, start=start)
        psnrs.append(r.psnr)
        with torch.no_grad():
            preds.append(oracle(r.image.clamp(-1, 1)).argmax(1)[0])
        truth.append(mask[0])
    mi, per_class = miou(torch.stack(preds), torch.stack(truth))
    config = json.loads((folder / "config.json").read_text())
    return {"model": str(folder), "model_id": config.get("model_id"), "images_seen": images_seen(folder),
            "psnr_mean_db": round(float(np.mean(psnrs)), 3), "oracle_miou_true_vs_reconstruction": round(mi, 4),
            "per_class_iou": per_class, "seconds": round(time.time() - t0, 1)}  # fmt: skip


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["checkpoints/faces64"])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "range_probe.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    perceptual = PerceptualLoss()
    oracle = load_oracle(64)
    rows = []
    for folder in map(Path, args.models):
        rows.append(probe(folder, oracle, perceptual, args.photos, args.steps))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_class_iou"}), flush=True)
    result = {"photos": args.photos, "heldout_seed": HELDOUT_SEED, "steps": args.steps, "start": "mean latent",
              "perceptual_backend": perceptual.backend, "generators": rows}  # fmt: skip
    write_result(args.out, result, echo=False)
    return result


if __name__ == "__main__":
    main()
