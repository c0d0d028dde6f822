"""GAN training throughput, the old data path against the new one, in the same run (#26).

* old: the numpy renderer (``core/data/faces_numpy.py``, what every model so far was trained on) in DataLoader
  worker processes, each batch handed to the training process and moved to the device;
* loader: the torch renderer in the same DataLoader workers (``--data loader``);
* new: the torch renderer drawing each batch on the training device inside the loop (``--data device``), no
  loader.

Both feed the same ``GANTrainer.train_step`` (the body of ``fit``'s loop; checkpoints and logging left out) with
the shipped faces64 recipe at each resolution. Also measured: the renderers alone, per core (one thread, the
numpy one per item as the old loader ran it, the torch one in batches), and each path's data alone::

    python -m benchmarks.bench_train                                  # CPU: 64 and 128 px, batch 32 64 256
    python -m benchmarks.bench_train --device cuda --steps 20 --warmup 5 --out benchmarks/results/bench_train_cuda.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.results_io import write_result
from core.data import faces_numpy
from core.data.faces import ProceduralFaces
from core.generator import GeneratorConfig
from core.train.gan import FaceBatches, GANTrainer, TrainConfig, device_batches

# the shipped faces64 recipe (checkpoints/faces64/training/state.json); at 128 px its last layers have 16 channels
RECIPE = TrainConfig(
    generator=GeneratorConfig(resolution=64, style_dim=256, n_mlp=4, channel_multiplier=1, channel_base=2048,
                              channel_max=256),  # fmt: skip
    r1_gamma=0.5, ema_half_life_kimg=5.0, d_reg_every=16, num_workers=1, sample_every=0, log_every=10**9,
    ckpt_every=10**9,
)  # fmt: skip


class NumpyFaceBatches(FaceBatches):
    """The old data path: :class:`FaceBatches` drawing with the numpy reference renderer, item by item."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in _numpy_batches(self.faces, self.batch_size, self.start_batch):
            yield batch


def _numpy_batches(faces: ProceduralFaces, batch_size: int, start_batch: int) -> Iterator[torch.Tensor]:
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info else (0, 1)
    k = start_batch + wid
    while True:
        imgs = [faces_numpy.render_face(faces.params(i), faces.resolution)[0]
                for i in range(k * batch_size, (k + 1) * batch_size)]  # fmt: skip
        yield torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        k += nw


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render_speed(resolution: int, n: int, batch: int) -> dict:
    """Images/s of each renderer on one thread (per core), the same faces, in this run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = ProceduralFaces(resolution, seed=5)
        ds.render(0, 2)  # warm-up
        out: dict[str, float] = {}
        for rep in range(2):  # interleaved, best of two: the machine may be shared
            t = time.perf_counter()
            for i in range(n):
                faces_numpy.render_face(ds.params(i), resolution)
            out["numpy_per_item"] = max(out.get("numpy_per_item", 0.0), n / (time.perf_counter() - t))
            t = time.perf_counter()
            for i in range(0, n, batch):
                ds.render(i, min(batch, n - i))
            out["torch_batched"] = max(out.get("torch_batched", 0.0), n / (time.perf_counter() - t))
        return {"resolution": resolution, "images": n, "torch_batch": batch, "threads": 1,
                **{f"{k}_images_per_s": round(v, 1) for k, v in out.items()},
                "torch_over_numpy": round(out["torch_batched"] / out["numpy_per_item"], 2)}  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def oracle_check(n: int, resolution: int = 64) -> dict:
    """The oracle on the training path's images (torch renderer, grain drawn by torch) against the numpy renderer's.

    Area ranges come from the oracle's masks of n numpy-rendered faces (as bench_core's real reference); then the
    glasses-aware plausibility and the oracle's mIoU against the true masks on n further faces drawn by numpy and
    the same n faces drawn by the torch training path (paired: only the film grain differs), and on n other faces
    drawn by torch (independent).
    """
    from benchmarks.bench_core import REAL_START, area_ranges, part_areas, plausible
    from benchmarks.oracle import ORACLE_SEED, load_oracle, mean_iou, predict

    oracle = load_oracle(resolution)
    ds = ProceduralFaces(resolution, ORACLE_SEED)

    def numpy_set(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [faces_numpy.render_face(ds.params(i), resolution) for i in range(start, start + n)]
        imgs = torch.from_numpy(np.stack([a for a, _ in pairs])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        return imgs, torch.from_numpy(np.stack([m for _, m in pairs])).long()

    def torch_set(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        return ds.batch(start, n, grain=torch.Generator().manual_seed(start))

    lo, hi = area_ranges(part_areas(predict(oracle, numpy_set(REAL_START)[0])))
    out = {"resolution": resolution, "images": n}
    sets = {"numpy": numpy_set(REAL_START + n), "torch_same_faces": torch_set(REAL_START + n),
            "torch_other_faces": torch_set(REAL_START + 2 * n)}  # fmt: skip
    for name, (imgs, masks) in sets.items():
        pred = predict(oracle, imgs)
        strict, aware = plausible(part_areas(pred), lo, hi)
        out[name] = {"plausibility": round(float(aware.mean()), 4),
                     "plausibility_strict": round(float(strict.mean()), 4),
                     "oracle_miou": round(mean_iou(pred, masks), 4)}  # fmt: skip
    print(out, flush=True)
    return out


def _streams(cfg: TrainConfig, device: torch.device, host_workers: int = 0) -> dict[str, Iterator[torch.Tensor]]:
    res, b = cfg.generator.resolution, cfg.batch_size
    old = DataLoader(NumpyFaceBatches(res, cfg.data_seed, b, 0, 0, 1), batch_size=None, num_workers=cfg.num_workers,
                     generator=torch.Generator().manual_seed(0), pin_memory=device.type == "cuda")  # fmt: skip
    loader = DataLoader(FaceBatches(res, cfg.data_seed, b, 0, 0, 1), batch_size=None, num_workers=cfg.num_workers,
                        generator=torch.Generator().manual_seed(0), pin_memory=device.type == "cuda")  # fmt: skip
    return {"old": iter(old), "loader": iter(loader), "new": device_batches(res, cfg.data_seed, b, 0, 0, 1, device,
                                                                         host_workers=host_workers)}


def measure(resolution: int, batch: int, steps: int, warmup: int, device: torch.device, workers: int,
            host_workers: int = 0) -> dict:  # fmt: skip
    cfg = dataclasses.replace(RECIPE, generator=dataclasses.replace(RECIPE.generator, resolution=resolution),
                              batch_size=batch, num_workers=workers, device=str(device))  # fmt: skip
    row: dict = {"resolution": resolution, "batch": batch, "steps": steps, "warmup": warmup,
                 "new_host_workers": host_workers}
    for path, data in _streams(cfg, device, host_workers).items():
        # the data alone: batches as the training loop would receive them, on the device
        n_data = max(2, steps)
        next(data)
        t = time.perf_counter()
        for _ in range(n_data):
            x = next(data).to(device, non_blocking=True)
        _sync(device)
        row[f"{path}_data_images_per_s"] = round(n_data * batch / (time.perf_counter() - t), 1)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = GANTrainer(cfg, tmp)
            for _ in range(warmup):  # step 0 (lazy R1) among them: the timed steps have R1 once per 16 at most
                trainer.train_step(next(data))
                trainer.state.step += 1
            _sync(device)
            t = time.perf_counter()
            for _ in range(steps):
                stats = trainer.train_step(next(data))
                trainer.state.step += 1
            _sync(device)
            dt = time.perf_counter() - t
            assert all(np.isfinite(float(v)) for v in stats.values()), stats
        row[f"{path}_train_images_per_s"] = round(steps * batch / dt, 2)
        del x
    for path in ("loader", "new"):
        row[f"{path}_over_old"] = round(row[f"{path}_train_images_per_s"] / row["old_train_images_per_s"], 3)
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128", help="resolutions, comma separated")
    ap.add_argument("--batches", default="32,64,256", help="batch sizes, comma separated")
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per path and setting")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first R1 step among them)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1, help="loader workers of the old path (the recipe's 1)")
    ap.add_argument("--threads", type=int, help="torch CPU threads for training (default: torch's)")
    ap.add_argument("--host-workers", type=int, default=0,
                    help="the new path's host share in this many processes (0: one thread; device_batches)")
    ap.add_argument("--render-images", type=int, default=192, help="faces per renderer in the per-core comparison")
    ap.add_argument("--max-batch-128", type=int, default=256, help="skip larger batches at 128 px or more")
    ap.add_argument("--oracle-images", type=int, default=1000, help="faces per set in the oracle check (0: skip)")
    ap.add_argument("--out", default="benchmarks/results/bench_train_cpu.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the recipe as it is; TF32 and friends are point 2's
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",") if b]
    result = {
        "command": "python -m benchmarks.bench_train " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "machine": {"device": str(device), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                    "load_avg_at_start": list(os.getloadavg())},  # fmt: skip
        "recipe": dataclasses.replace(RECIPE, device=str(device)).to_dict(),
        "render_per_core": [render_speed(r, args.render_images, 64) for r in sizes],
    }
    print(result["render_per_core"], flush=True)
    if args.oracle_images:
        result["oracle_64px"] = oracle_check(args.oracle_images)
    rows = []
    settings = sorted(((r, b) for r in sizes for b in batches if r < 128 or b <= args.max_batch_128),
                      key=lambda rb: rb[0] ** 2 * rb[1])  # the cheapest first  # fmt: skip
    for res, b in settings:
        rows.append(measure(res, b, args.steps, args.warmup, device, args.workers, args.host_workers))
        result["train"] = rows
        result["machine"]["load_avg_at_end"] = list(os.getloadavg())
        write_result(args.out, result, echo=False)  # after every row: a long run killed keeps what it measured
    result["train"] = rows
    write_result(args.out, result)


if __name__ == "__main__":
    main()
