"""The few-shot branch from N labelled generator samples (issue #23): mIoU against the oracle, time, memory.

    python -m benchmarks.bench_labels --model checkpoints/faces64 --n 4 8 16 32 --eval-samples 64
    python -m benchmarks.bench_labels --quick          # a tiny smoke run (few steps, few samples)

For each N, N samples of the generator (seeds LABEL_SEED, LABEL_SEED + 1, ...,
truncation 0.7) are labelled, the branch is trained from them with
:func:`core.train.fewshot.train_branch_from_labels` (the default FewShotConfig
unless overridden), and scored against the oracle on held-out samples of the
same stream the shipped branch's "0.746 vs the oracle" is measured on
(:func:`benchmarks.bench_joint.branch_and_oracle_masks`, seed 9000, same
confusion-matrix mIoU over the oracle's classes), beside the shipped branch on
the same samples.

The labels are the oracle's reading of each sample's image
(:func:`labels_from_oracle`): a U-Net trained with full supervision on the
procedural domain's true masks, the stand-in for a careful human labeller. The
label source is a plain function returning (W+, masks); the training call does
not know where they came from.
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from benchmarks.bench_joint import branch_and_oracle_masks, miou
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.editgan import EditGAN
from core.train.fewshot import FewShotConfig, train_branch_from_labels

RESULTS = Path(__file__).resolve().parent / "results"
LABEL_SEED = 100  # labelled samples: seeds 100, 101, ... (one sample each); held-out: bench_joint's seed-9000 batches
LABEL_TRUNCATION = 0.7
EVAL_SEED = 9000
LABEL_SOURCE = ("oracle: a U-Net trained with full supervision on the procedural domain's true masks "
                "(benchmarks/oracle.py), reading each sample's image; "
                "the stand-in for a careful human labeller")  # fmt: skip
# the --quick smoke run: enough to exercise every path, not to measure anything
QUICK = FewShotConfig(steps=20, ensemble=2, pixels_per_image=256)


@torch.no_grad()
def oracle_masks(oracle, images: torch.Tensor) -> torch.Tensor:
    """The oracle's class ids [B, R, R] of images [B, 3, R, R]; read at the oracle's resolution when it differs."""
    res, own = images.shape[-1], oracle.config.resolution
    x = images if res == own else F.interpolate(images, size=(own, own), mode="bilinear", align_corners=False)
    out = torch.cat([oracle(x[i : i + 100]) for i in range(0, len(x), 100)])
    if res != own:
        out = F.interpolate(out, size=(res, res), mode="bilinear", align_corners=False)
    return out.argmax(1)


def labels_from_oracle(model: EditGAN, seeds: Sequence[int], truncation: float = LABEL_TRUNCATION,
                       oracle=None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """W+ [N, n_latent, w_dim] of one sample per seed and the oracle's masks of their images [N, R, R]."""
    oracle = oracle if oracle is not None else load_oracle(64)
    w = torch.cat([model.sample(int(s), truncation) for s in seeds])
    return w, oracle_masks(oracle, model.render(w))


def through_label_store(model: EditGAN, seeds: Sequence[int], truncation: float, masks: torch.Tensor,
                        class_names: Sequence[str]) -> torch.Tensor:  # fmt: skip
    """The masks saved and read back the way a user's saves go (vector_library.LabelStore on a temporary SQLite
    library: one label set, one sample per seed, one saved mask each). Returns [N, R, R] int64 in seed order."""
    import tempfile

    from core.data.palette import PALETTE
    from db import Database
    from vector_library import LabelStore, ModelSpec, VectorLibrary

    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(f"sqlite:///{tmp}/labels.sqlite3")
        try:
            lib = VectorLibrary(db)
            lib.ensure_user("labeller")
            lib.register_model(ModelSpec(model.model_id, "bench", model.resolution, *model.latent_shape,
                                         tuple(class_names)))  # fmt: skip
            store = LabelStore(db)
            colours = [tuple(int(c) for c in PALETTE[i % len(PALETTE)]) for i in range(len(class_names))]
            info = store.create_set(model.model_id, "bench labels", "labeller", list(zip(class_names, colours)),
                                    model.resolution)  # fmt: skip
            samples = store.add_samples(info.id, "labeller", [int(s) for s in seeds], truncation)
            for smp, m in zip(samples, masks):
                store.save_mask(smp.id, "labeller", m.cpu().numpy().astype("uint8"), 0)
            by_seed = {s.seed: m for s, m in store.training_masks(info.id)}
        finally:
            db.dispose()
    return torch.stack([torch.from_numpy(by_seed[int(s)].astype("int64")) for s in seeds])


class _WithBranch:
    """The loaded model with another branch swapped in (for branch_and_oracle_masks)."""

    def __init__(self, model: EditGAN, branch):
        self.generator, self.render, self._branch = model.generator, model.render, branch

    @torch.no_grad()
    def segment(self, w: torch.Tensor) -> torch.Tensor:
        return self._branch(self.generator.synthesis(w).features).argmax(1)


class _OracleAt:
    """The oracle as branch_and_oracle_masks calls it (logits), resampled to the model's resolution if needed."""

    def __init__(self, oracle):
        self.oracle = oracle

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return F.one_hot(oracle_masks(self.oracle, images), self.oracle.config.num_classes).permute(0, 3, 1, 2).float()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_during(fn: Callable[[], object]) -> tuple[object, float, float]:
    """Run ``fn``; return (its result, the process's RSS before it, the highest RSS sampled while it ran) in MB."""
    before, peak, done = _rss_mb(), [_rss_mb()], threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return out, before, max(peak[0], _rss_mb())


def evaluate(model: EditGAN, branch, oracle, n: int, truncation: float) -> dict:
    """mIoU and per-class IoU of ``branch`` against the oracle on n held-out samples (bench_joint's stream)."""
    _, b, o = branch_and_oracle_masks(_WithBranch(model, branch), _OracleAt(oracle), n, truncation, seed=EVAL_SEED)
    mi, per = miou(b, o)
    return {"miou_vs_oracle": round(mi, 4), "per_class_iou": per}


def run(model: EditGAN, oracle, ns: Sequence[int], eval_samples: int, eval_truncations: Sequence[float],
        config: FewShotConfig, label_truncation: float = LABEL_TRUNCATION, progress: bool = True,
        on_row: Optional[Callable[[dict], None]] = None) -> dict:  # fmt: skip
    """Train and score one branch per N; the shipped branch (if any) scored on the same held-out samples.

    ``on_row(results so far)`` runs after each N (the benchmark writes its JSON then: a long run keeps what it did).
    """
    results: dict = {"shipped_branch": None, "per_n": {}}
    if model.branch is not None:
        results["shipped_branch"] = {f"truncation_{t}": evaluate(model, model.branch, oracle, eval_samples, t)
                                     for t in eval_truncations}  # fmt: skip
    for n in ns:
        seeds = range(LABEL_SEED, LABEL_SEED + n)
        w, masks = labels_from_oracle(model, seeds, label_truncation, oracle)
        masks = through_label_store(model, seeds, label_truncation, masks, model.class_names)
        last = [0.0]

        def report(frac: float, text: str) -> None:
            if progress and (frac - last[0] >= 0.25 or frac == 1.0):
                last[0] = frac
                print(f"  N={n}: {frac:.0%} {text}", flush=True)

        t0 = time.time()
        result, rss_before, rss_peak = _peak_rss_during(
            lambda: train_branch_from_labels(model.generator, w, masks, model.class_names, config,
                                             progress=report, model_id=model.model_id))  # fmt: skip
        wall = time.time() - t0
        rec = result.record
        row = {"n_masks": n, "train_wall_s": round(wall, 1), "rss_before_mb": round(rss_before, 1),
               "peak_rss_during_training_mb": round(rss_peak, 1), "ru_maxrss_mb": rec["peak_rss_mb"],
               "train_miou": rec["train_miou"], "final_loss": round(rec["final_loss"], 4),
               "feature_cache": rec["feature_cache"]}  # fmt: skip
        for t in eval_truncations:
            row[f"truncation_{t}"] = evaluate(model, result.branch, oracle, eval_samples, t)
        results["per_n"][str(n)] = row
        if on_row is not None:
            on_row(results)
        print(json.dumps({f"N={n}": {k: v["miou_vs_oracle"] if isinstance(v, dict) else v for k, v in row.items()
                                     if k != "per_class_iou"}}), flush=True)  # fmt: skip
    return results


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="faces64", help="a name under checkpoints/ or a model folder")
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8, 16, 32], help="numbers of labelled samples")
    ap.add_argument("--eval-samples", type=int, default=64, help="held-out samples each branch is scored on")
    ap.add_argument("--eval-truncation", type=float, nargs="+", default=[1.0, 0.7],
                    help="truncations of the held-out samples (1.0: the shipped branch's 0.746 setting)")
    ap.add_argument("--label-truncation", type=float, default=LABEL_TRUNCATION)
    ap.add_argument("--config", help="JSON of FewShotConfig fields overriding the defaults")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: N 2 4, 8 held-out samples, 20 steps")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", default=str(RESULTS / "labels_miou.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = QUICK if args.quick else FewShotConfig()
    if args.config:
        config = FewShotConfig.from_dict({**config.to_dict(), **json.loads(args.config)})
    ns = [2, 4] if args.quick and args.n == ap.get_default("n") else args.n
    eval_samples = min(args.eval_samples, 8) if args.quick else args.eval_samples
    model = EditGAN.load(args.model)
    oracle = load_oracle(64)
    t0 = time.time()

    def record(res: dict) -> dict:
        result = {
            "model": args.model, "model_id": model.model_id, "quick": args.quick,
            "label_source": LABEL_SOURCE, "label_seeds": f"{LABEL_SEED}, {LABEL_SEED} + 1, ... (one sample per seed)",
            "label_truncation": args.label_truncation,
            "eval_samples": eval_samples, "eval_seed": EVAL_SEED, "eval_truncations": args.eval_truncation,
            "metric": "mIoU over the oracle's classes, one confusion matrix over all held-out pixels "
                      "(benchmarks.bench_joint.miou, as the shipped branch's 0.746)",
            "config": config.to_dict(), "torch_threads": torch.get_num_threads(),
            "total_seconds": round(time.time() - t0, 1), **res,
        }  # fmt: skip
        write_result(args.out, result, echo=False)
        return result

    res = run(model, oracle, ns, eval_samples, args.eval_truncation, config, args.label_truncation, on_row=record)
    result = record(res)
    shipped = res["shipped_branch"] and {k: v["miou_vs_oracle"] for k, v in res["shipped_branch"].items()}
    print(json.dumps({"shipped": shipped,
                      **{f"N={n}": {k: v["miou_vs_oracle"] for k, v in row.items() if k.startswith("truncation_")}
                         for n, row in res["per_n"].items()}}, indent=2))  # fmt: skip
    return result


if __name__ == "__main__":
    main()
