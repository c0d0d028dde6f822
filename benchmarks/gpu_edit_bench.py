"""Issue #25's GPU measurement, one process: our edit step against the faithful baseline, and the default model.

    python -m benchmarks.gpu_edit_bench --device cuda --out $OUT/gpu_edit_bench.json     # scripts/gpu_edit_bench.sh
    python -m benchmarks.gpu_edit_bench --device cpu --dry-run --out /tmp/dry.json       # tiny sizes, a few steps

At scale (512 px config-f generator with random weights, a 32-class branch over its 16 maps / 6,016 channels,
10 members, LPIPS-VGG's network with an untrained backbone when lpips is installed, else the substitute), for
the 28,224-pixel region and the whole image, in fp32 (TF32 off for matmuls and convolutions) and TF32:

* ``ours``: :func:`core.edit.optimize_edit`, eager, and with the step replayed as a CUDA graph (core/accel.py);
* ``baseline``: the released loop (benchmarks/edit_baseline.py), eager, same losses.

Each is a whole 30-step edit as the product runs it (Adam, one loss read per step), after an untimed short
edit that lets cuDNN/cuBLAS pick their kernels: wall time, the median step, and the peak of
``torch.cuda.max_memory_allocated`` (the models' weights included). The graph's losses are compared with the
eager loop's at the same precision. Then the default model (checkpoints/faces64) through :class:`EditGAN` on
the device: a 30-step mask edit (eager and graph) and applying a vector.

A time guard (``--budget-s``) skips what would not finish and the JSON is rewritten after every measurement,
so a run cut short still leaves what it measured. bf16 autocast is not measured: on the H100 it was slower than
fp32 for this launch-bound step (62 against 43 ms, docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from benchmarks.edit_baseline import baseline_terms
from core.accel import AccelConfig, precision
from core.branch import BranchConfig, SegmentationBranch
from core.device import device_spec_from_env, resolve_device
from core.edit import EditConfig, EditObjective, edit_by_mask, optimize_edit, region_of_interest
from core.edit_vector import apply_vectors, vector_from_edit
from core.editgan import EditGAN
from core.generator import Generator, GeneratorConfig
from core.mask_edits import SCRIPTED_EDITS, apply_scripted
from core.perceptual import PerceptualLoss

AT_SCALE = dict(generator=GeneratorConfig(resolution=512, channel_multiplier=2), classes=32, hidden=(128, 32),
                ensemble=10, box=(150, 318, 172, 340))  # 168 x 168 = 28,224 pixels, as benchmarks/bench_edit.py
DRY = dict(generator=GeneratorConfig(resolution=32, style_dim=64, n_mlp=2, channel_base=512, channel_max=32,
                                     channel_multiplier=1), classes=32, hidden=(16, 8), ensemble=2, box=(9, 20, 10, 21))  # fmt: skip


class Bench:
    """The measurements so far, written to ``out`` after each one, and the time guard."""

    def __init__(self, out: Path, budget_s: float, device: torch.device, meta: dict):
        self.out, self.budget_s, self.device, self.t0 = out, budget_s, device, time.perf_counter()
        self.result = {**meta, "measurements": {}, "skipped": {}}
        self.write()

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def write(self) -> None:
        self.result["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=2) + "\n")
        tmp.replace(self.out)

    def run(self, name: str, need_s: float, fn: Callable[[], dict]) -> Optional[dict]:
        """Measure ``fn`` unless less than ``need_s`` of the budget is left; errors are recorded, not raised."""
        if self.left() < need_s:
            self.result["skipped"][name] = f"time guard: {self.left():.0f} s left, about {need_s:.0f} s needed"
            print(f"skip {name}: time guard", flush=True)
            self.write()
            return None
        try:
            rec = fn()
        except Exception as e:  # one failed measurement (out of memory, say) must not lose the others
            rec = {"error": f"{type(e).__name__}: {e}"[:500]}
        self.result["measurements"][name] = rec
        print(name, json.dumps(rec), flush=True)
        self.write()
        return rec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> Optional[float]:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def optimize_baseline(obj: EditObjective, w_start: torch.Tensor, steps: int,
                      callback: Optional[Callable[[int, float, torch.Tensor], None]] = None) -> list[float]:  # fmt: skip
    """The released loop: Adam on W+, the baseline's loss, one loss read per step (returns the losses)."""
    w = w_start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=obj.config.lr)
    losses = []
    for step in range(steps):
        loss, img, _ = baseline_terms(obj, w)
        losses.append(loss.item())
        if callback:
            callback(step, losses[-1], img)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return losses


def timed_edit(obj: EditObjective, w: torch.Tensor, steps: int, warm_steps: int, side: str, tf32: bool,
               graphs: bool = False) -> dict:  # fmt: skip
    """One untimed ``warm_steps`` edit, then a timed ``steps`` edit: wall time, median step, peak memory, losses."""
    dev = w.device
    accel = AccelConfig(tf32=tf32, cuda_graphs=graphs)

    def edit(n: int, callback=None) -> list[float]:
        if side == "baseline":
            with precision(dev, tf32):
                return optimize_baseline(obj, w, n, callback)
        return optimize_edit(obj, w, n, callback, accel=accel)[1]

    edit(warm_steps)
    _reset_peak(dev)
    marks = []
    t = time.perf_counter()
    losses = edit(steps, lambda s, v, img: marks.append(time.perf_counter()))
    _sync(dev)
    wall = time.perf_counter() - t
    step_s = [b - a for a, b in zip(marks, marks[1:])]
    rec = {"edit_seconds": round(wall, 4), "steps": steps, "median_step_ms": round(1000 * statistics.median(step_s), 2)
           if step_s else None, "peak_gpu_memory_gb": _peak_gb(dev), "losses": [round(v, 6) for v in losses]}  # fmt: skip
    if graphs and steps > AccelConfig().graph_warmup:  # the steady state: replayed steps only
        rec["median_replayed_step_ms"] = round(1000 * statistics.median(step_s[AccelConfig().graph_warmup:]), 2)
    return rec


def build_scale(bench: Bench, spec: dict, device: torch.device) -> dict:
    """The at-scale generator, branch, perceptual network, latent, target and image, built once."""
    torch.manual_seed(0)
    g = Generator(spec["generator"]).to(device).eval()
    g.compute_w_avg(256)
    r = spec["generator"].resolution
    br = SegmentationBranch(BranchConfig(feature_channels=tuple(g.feature_channels), resolution=r,
                                         num_classes=spec["classes"], hidden=spec["hidden"],
                                         ensemble=spec["ensemble"])).to(device).eval()  # fmt: skip
    g.requires_grad_(False)
    br.requires_grad_(False)
    try:
        perceptual = PerceptualLoss(random_backbone=True).to(device)  # LPIPS-VGG's cost, untrained weights
    except ImportError:
        perceptual = PerceptualLoss().to(device)
    w = g.sample_w_plus(0).to(device)
    target = torch.randint(0, spec["classes"], (r, r), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        img = g(w).image
    bench.result["at_scale"] = {
        "config": f"{r} px generator (random weights, {sum(g.feature_channels)} channels over "
                  f"{len(g.feature_channels)} maps), {spec['classes']}-class branch, {spec['ensemble']} members",
        "perceptual_backend": perceptual.backend}  # fmt: skip
    return {"g": g, "br": br, "perceptual": perceptual, "w": w, "target": target, "img": img, "r": r,
            "box": spec["box"]}  # fmt: skip


def at_scale(bench: Bench, scale: dict, region: str, steps: int, warm_steps: int, device: torch.device) -> None:
    """Ours (eager, graph) and the baseline, fp32 and TF32, on one region ("box" or "full")."""
    r, (y0, y1, x0, x1), w = scale["r"], scale["box"], scale["w"]
    roi = torch.zeros(r, r, dtype=torch.bool, device=device)
    if region == "full":
        roi[:] = True
    else:
        roi[y0:y1, x0:x1] = True
    obj = EditObjective(scale["g"], scale["br"], None, scale["perceptual"], scale["img"], scale["target"], roi,
                        EditConfig())  # fmt: skip
    bench.result["at_scale"][f"{region}_region_pixels"] = int(roi.sum())
    full = region == "full"
    # (name, side, tf32, graphs, seconds the guard wants left): most wanted first
    plan = [("ours_tf32", "ours", True, False, 15), ("ours_tf32_graph", "ours", True, True, 15),
            ("baseline_tf32", "baseline", True, False, 60 if full else 20),
            ("ours_fp32", "ours", False, False, 15), ("baseline_fp32", "baseline", False, False, 60 if full else 20),
            ("ours_fp32_graph", "ours", False, True, 15)]  # fmt: skip
    for name, side, tf32, graphs, need in plan:
        bench.run(f"{region}/{name}", need, lambda: timed_edit(obj, w, steps, warm_steps, side, tf32, graphs))
    _compare(bench, region)
    del obj
    _reset_peak(device)


def _compare(bench: Bench, region: str) -> None:
    """Ratios baseline / ours, and how far the graph's losses are from the eager loop's."""
    m = bench.result["measurements"]
    summary = {}
    for prec in ("tf32", "fp32"):
        ours, base, graph = (m.get(f"{region}/{k}", {}) for k in (f"ours_{prec}", f"baseline_{prec}", f"ours_{prec}_graph"))
        if ours.get("edit_seconds") and base.get("edit_seconds"):
            summary[f"speedup_{prec}_eager"] = round(base["edit_seconds"] / ours["edit_seconds"], 2)
        if graph.get("edit_seconds") and base.get("edit_seconds"):
            summary[f"speedup_{prec}_graph"] = round(base["edit_seconds"] / graph["edit_seconds"], 2)
        if ours.get("losses") and graph.get("losses"):
            summary[f"graph_vs_eager_{prec}_max_abs_loss_diff"] = max(abs(a - b) for a, b in zip(ours["losses"], graph["losses"]))
        if ours.get("losses") and base.get("losses"):  # the same loss, two strategies: the curves should agree
            summary[f"baseline_vs_ours_{prec}_first_loss_diff"] = abs(ours["losses"][0] - base["losses"][0])
    bench.result.setdefault("summary", {})[region] = summary
    bench.write()


def default_model(bench: Bench, model_name: str, steps: int, warm_steps: int, device: torch.device,
                  reps: int) -> None:  # fmt: skip
    model = EditGAN.load(model_name, device=device, require=("branch",))
    w = model.sample(3)
    mask = model.segment(w)[0]
    kind = next(k for k in SCRIPTED_EDITS if _applies(k, mask))  # as bench_edit.speed picks it
    target = torch.from_numpy(apply_scripted(kind, mask))
    bench.result["default_model"] = {"model": model_name, "model_id": model.model_id, "edit_kind": kind,
                                     "perceptual_backend": model.perceptual.backend,
                                     "image_reader": model.reader is not None}  # fmt: skip
    last = {}

    def edit(graphs: bool) -> dict:
        def once(n):
            return edit_by_mask(model.generator, model.branch, w, target, model.class_names, model.edit_config(steps=n),
                                model.perceptual, model.encoder, reader=model.reader,
                                accel=AccelConfig(cuda_graphs=graphs))  # fmt: skip

        once(warm_steps)
        _reset_peak(device)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            r = once(steps)
            _sync(device)
            times.append(time.perf_counter() - t)
        last["result"] = r
        return {"edit_seconds_median": round(statistics.median(times), 4), "edit_seconds_each": [round(x, 4) for x in times],
                "steps": steps, "region_pixels": int(r.roi.sum()), "peak_gpu_memory_gb": _peak_gb(device),
                "final_loss": round(r.losses[-1], 6)}  # fmt: skip

    bench.run("default_model/edit_eager", 10, lambda: edit(False))
    bench.run("default_model/edit_graph", 10, lambda: edit(True))

    def vector_apply() -> dict:
        vec = vector_from_edit(last["result"], model.model_id, name=kind)
        w2 = model.sample(4)
        times = []
        for i in range(20 + 3):
            t = time.perf_counter()
            out = apply_vectors(model.generator, w2, [(vec, 1.0)], model.model_id)
            _ = out.image.sum().item()  # the image is ready
            if i >= 3:
                times.append(time.perf_counter() - t)
        times.sort()
        return {"vector_apply_ms_p50": round(1000 * statistics.median(times), 3),
                "vector_apply_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 3), "reps": len(times)}

    if "result" in last:
        bench.run("default_model/vector_apply", 5, vector_apply)


def _applies(kind: str, mask) -> bool:
    try:
        apply_scripted(kind, mask)
        return True
    except ValueError:
        return False


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=device_spec_from_env(),
                    help="cuda (the measurement) or cpu (with --dry-run); default $EDITGAN_DEVICE, else auto")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes and few steps: checks the script, measures nothing")
    ap.add_argument("--out", default="benchmarks/results/gpu/gpu_edit_bench.json")
    ap.add_argument("--budget-s", type=float, default=200.0, help="skip what would not finish within this")
    ap.add_argument("--steps", type=int, help="steps of each timed edit (default 30; 3 with --dry-run)")
    ap.add_argument("--model", default="faces64", help="the default model, timed through EditGAN")
    ap.add_argument("--regions", nargs="*", default=["box", "full"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    steps = args.steps or (3 if args.dry_run else 30)
    warm = 2 if args.dry_run else AccelConfig().graph_warmup + 3  # a graphed warm-up edit captures once too
    meta = {"issue": 25, "dry_run": args.dry_run, "device": str(device), "torch": torch.__version__,
            "python": platform.python_version(), "budget_s": args.budget_s,
            "precisions": {"fp32": "TF32 off for matmuls and cuDNN convolutions", "tf32": "TF32 on for both"}}  # fmt: skip
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
    bench = Bench(Path(args.out), args.budget_s, device, meta)
    scale = build_scale(bench, DRY if args.dry_run else AT_SCALE, device)
    if "box" in args.regions:
        at_scale(bench, scale, "box", steps, warm, device)
    default_model(bench, args.model, steps, warm, device, reps=1 if args.dry_run else 3)
    if "full" in args.regions:
        at_scale(bench, scale, "full", steps, warm, device)
    bench.result["done"] = True
    bench.write()
    return bench.result


if __name__ == "__main__":
    main()
