"""Seconds per photo for pivotal tuning, plain and with its locality and branch terms, on an idle machine.

    python -m benchmarks.tuning_time --model checkpoints/faces64 --images 3

bench_photo_edit times its tunings in the middle of a long run; this times
only the embedding of a few held-out photos and their tuning, once per setting
at the same latent, one after the other in one process (run it with nothing else on the CPU).
Writes benchmarks/results/tuning_time.json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from benchmarks.bench_joint import HELDOUT_SEED, RESULTS
from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.editgan import EditGAN
from core.embed import EmbedConfig

SETTINGS = {  # name -> EmbedConfig changes
    "plain_200": {"tune_steps": 200, "tune_locality": 0.0, "tune_w_branch": 0.0},
    "locality_branch_200": {"tune_steps": 200},
    "locality_branch_100": {"tune_steps": 100},
}


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "tuning_time.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EditGAN.load(args.model, require=("branch", "encoder"))
    ds = ProceduralFaces(model.resolution, HELDOUT_SEED)
    times = {name: [] for name in SETTINGS}
    embed_s = []
    for i in range(args.images):
        photo, _ = ds.batch(i, 1)
        t0 = time.perf_counter()
        w = model.embed_tensor(photo).w_plus
        embed_s.append(time.perf_counter() - t0)
        for name, change in SETTINGS.items():  # each setting tunes at the same latent (EditGAN.tune)
            times[name].append(model.tune(photo, w, replace(EmbedConfig(), **change)).tune_seconds)
    result = {"model": args.model, "model_id": model.model_id, "images": args.images, "torch_threads": args.threads,
              "settings": {n: {**replace(EmbedConfig(), **c).to_dict(),
                               "tune_seconds_mean": round(float(np.mean(times[n])), 2),
                               "tune_seconds_each": [round(x, 2) for x in times[n]]} for n, c in SETTINGS.items()},
              "embedding_seconds_mean": round(float(np.mean(embed_s)), 2)}  # fmt: skip
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
