"""What the device path's loop waits for each batch's host share (parameters, noise grids, grain seed), done in the
loop (prefetch 0), by the background thread (prefetch 2) or by N worker processes (``--host-workers N``), on this CPU
(#26, docs/results_train.md)::

    python -m benchmarks.bench_prefetch --batch 64 --steps 4 --main train     # render + faces64 train_step
    python -m benchmarks.bench_prefetch --batch 64 --steps 20 --main sleep12.8  # a 12.8 ms device step

``--main``: what the loop does with each batch: ``render`` (the torch renderer on the CPU), ``train`` (render and
the faces64 recipe's ``train_step``) or ``sleepMS`` (a device step of MS milliseconds: the loop waits without the
GIL). Medians per batch, the first batch left out, best of two interleaved runs per setting; prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from typing import Iterator

import numpy as np
import torch

import benchmarks.bench_train as bt
from core.data.faces import ProceduralFaces
from core.data.prefetch import Prefetcher
from core.data.render import HostBatch, render_batch
from core.train.gan import GANTrainer


def _host(faces: ProceduralFaces, batch: int) -> Iterator[tuple[HostBatch, int]]:
    k = 0
    while True:  # what device_batches' thread does
        yield faces.host_batch(k * batch, batch), int(np.random.SeedSequence([0, k]).generate_state(1)[0])
        k += 1


def _workers(resolution: int, batch: int, n: int):
    """What device_batches(host_workers=n) reads: n DataLoader processes making (HostBatch, grain seed) in turn."""
    from torch.utils.data import DataLoader

    from core.train.gan import HostBatches

    loader = DataLoader(HostBatches(resolution, 0, batch, 0, 0, 1), batch_size=None, num_workers=n, prefetch_factor=2)
    return iter(loader)


def measure(resolution: int, batch: int, steps: int, main: str, host_workers: int = 0) -> dict:
    faces = ProceduralFaces(resolution, 0)
    cfg = dataclasses.replace(bt.RECIPE, generator=dataclasses.replace(bt.RECIPE.generator, resolution=resolution),
                              batch_size=batch, device="cpu")  # fmt: skip
    out: dict = {"resolution": resolution, "batch": batch, "steps": steps, "main": main,
                 "torch_threads": torch.get_num_threads()}  # fmt: skip
    settings = ["prefetch0", "prefetch2"] + ([f"workers{host_workers}"] if host_workers else [])
    for setting in settings * 2:
        if setting.startswith("workers"):
            src = _workers(resolution, batch, host_workers)
            next(src)  # the workers' start is not a batch's wait
        else:
            prefetch = int(setting[len("prefetch"):])
            src = Prefetcher(_host(faces, batch), prefetch) if prefetch else _host(faces, batch)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = GANTrainer(cfg, tmp) if main == "train" else None
            waits, total = [], []
            for s in range(steps + 1):
                t0 = time.perf_counter()
                hb, grain_seed = next(src)
                t1 = time.perf_counter()
                if main.startswith("sleep"):
                    time.sleep(float(main[5:]) / 1e3)
                else:
                    x = render_batch(hb, resolution, "cpu", torch.Generator().manual_seed(grain_seed)).model_input()[0]
                    if trainer is not None:
                        trainer.train_step(x)
                        trainer.state.step += 1
                if s:  # the first batch has nothing to overlap with
                    waits.append(t1 - t0)
                    total.append(time.perf_counter() - t0)
        if isinstance(src, Prefetcher):
            src.close()
        elif setting.startswith("workers"):
            src._shutdown_workers()
        row = {"wait_ms_per_batch": round(1e3 * float(np.median(waits)), 2),
               "step_ms": round(1e3 * float(np.median(total)), 1)}  # fmt: skip
        prev = out.get(setting)
        out[setting] = row if prev is None or prev["step_ms"] > row["step_ms"] else prev
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--main", default="render", help="render, train or sleepMS")
    ap.add_argument("--host-workers", type=int, default=0,
                    help="also measure device_batches(host_workers=N): N processes making the host share")
    ap.add_argument("--out", default=None, help="also add the result to this JSON file (a list, one entry per run), "
                                                "e.g. benchmarks/results/prefetch.json")
    args = ap.parse_args()
    result = measure(args.resolution, args.batch, args.steps, args.main, args.host_workers)
    print(json.dumps(result), flush=True)
    if args.out:
        from pathlib import Path

        from benchmarks.results_io import write_result

        runs = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else []
        write_result(args.out, [*runs, {"args": vars(args), **result}], echo=False)


if __name__ == "__main__":
    main()
