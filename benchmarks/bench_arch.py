"""Which generator architecture can a CPU-only Space edit with? Side by side, random weights, shipped part sizes.

A model's cost in the editor does not depend on its training: the same shapes cost the same whether the weights
are trained or random. So before a faces128 model is trained (issue #26: on a lent GPU), each candidate
architecture is built here with random weights and the *shipped* sizes of every other part (the branch of
checkpoints/faces64: hidden 128-32, 5 members, maps of 32 px and more; its encoder and its two-member image
reader), and timed on this CPU doing what the app does:

* **vector apply** (mode 1): ``apply_vectors``, one face, ``--reps`` times: p50 and p95, as the app's slider renders
  (image only, app/library_handlers.py). Target: p95 < 150 ms. Beside it, the same pass with the branch's mask
  (what showing a new sample or an edit's result costs: app/runtime.py ``render``).
* **a 30-step edit** (mode 3): ``optimize_edit`` on ``EditObjective`` with the encoder and reader terms, as
  ``edit_by_mask`` runs it, on a real region: the procedural renderer's exact mask of a face at the model's
  resolution with the scripted ``open_mouth`` painted on it (a random branch's own mask would give a meaningless
  region). One untimed edit first, then the median of ``--runs``. Target: < 10 s.
* a 10-step refinement's worth of steps is the same step, so it is not timed separately;
* the generator's forward pass alone (batch 1), its parameter count and its safetensors size.

    python -m benchmarks.bench_arch                                     # faces64 beside the faces128 candidates
    python -m benchmarks.bench_arch --archs faces128 --runs 1 --reps 5  # one, quickly

Writes benchmarks/results/arch_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.edit import EditConfig, EditObjective, optimize_edit, region_of_interest
from core.edit_vector import apply_vectors
from core.editgan import EditGAN
from core.generator import GeneratorConfig
from core.mask_edits import apply_scripted
from core.testing import make_tiny_bundle
from core.train.recipes import ARCHITECTURES
from core.vector_format import VectorFile

RESULTS = Path(__file__).resolve().parent / "results"


def make_bundle(config: GeneratorConfig, folder: Path, min_map_resolution: int = 32, seed: int = 0) -> Path:
    """A model folder of random weights: ``config``'s generator, every other part at faces64's shipped size."""
    return make_tiny_bundle(folder, seed=seed, config=config, parts="shipped", min_map_resolution=min_map_resolution,
                            name="random-" + folder.name, note="random weights, for timing only")  # fmt: skip


def _real_region(resolution: int, kind: str = "open_mouth") -> tuple[torch.Tensor, torch.Tensor]:
    """(original mask, painted target) [R, R]: the first procedural face the scripted edit applies to."""
    faces = ProceduralFaces(resolution, seed=0)
    for i in range(64):
        mask = faces.batch(i, 1)[1][0]
        try:
            return mask.long(), torch.from_numpy(apply_scripted(kind, mask.numpy())).long()
        except ValueError:
            continue
    raise RuntimeError(f"no procedural face at {resolution} px takes {kind}")


def measure(name: str, config: GeneratorConfig, work: Path, runs: int, reps: int, steps: int) -> dict:
    bundle = make_bundle(config, work / name)
    model = EditGAN.load(bundle)
    g = model.generator
    w = g.sample_w_plus(1)
    with torch.no_grad():
        g.synthesis(w)
        fwd = []
        for _ in range(max(reps // 2, 3)):
            t = time.perf_counter()
            g.synthesis(w, return_features=False)
            fwd.append(time.perf_counter() - t)
    vec = VectorFile(delta=(0.05 * torch.randn(g.n_latent, g.config.style_dim)).numpy().astype(np.float32),
                     model_id=model.model_id, edited_classes=("lips",), name="timing")  # fmt: skip
    with torch.no_grad():
        applies, masked = [], []
        for branch, times in ((None, applies), (model.branch, masked)):
            apply_vectors(g, w, [(vec, 1.0)], model.model_id, branch)
            for s in np.linspace(-1.0, 1.5, reps):
                t = time.perf_counter()
                apply_vectors(g, w, [(vec, float(s))], model.model_id, branch)
                times.append(time.perf_counter() - t)
    original, target = _real_region(config.resolution)
    cfg = EditConfig(steps=steps)
    roi, _ = region_of_interest(original, target, model.class_names, cfg.dilation, cfg.context_classes)
    edits = []
    for _ in range(runs + 1):
        with torch.no_grad():
            image = g.synthesis(w).image
        obj = EditObjective(g, model.branch, model.encoder, model.perceptual, image, target, roi, cfg, model.reader)
        t = time.perf_counter()
        optimize_edit(obj, w, steps)
        edits.append(time.perf_counter() - t)
    return {
        "generator": config.to_dict(),
        "feature_channels": list(g.feature_channels),
        "feature_resolutions": list(g.feature_resolutions),
        "branch_layers": list(model.branch.config.used_layers),
        "generator_params": sum(p.numel() for p in g.parameters()),
        "generator_mib_fp16": round(2 * sum(p.numel() for p in g.parameters()) / 2**20, 2),
        "forward_ms_p50": round(1e3 * statistics.median(fwd), 1),
        "vector_apply_ms_p50": round(1e3 * float(np.median(applies)), 1),
        "vector_apply_ms_p95": round(1e3 * float(np.percentile(applies, 95)), 1),
        "render_with_mask_ms_p50": round(1e3 * float(np.median(masked)), 1),
        "render_with_mask_ms_p95": round(1e3 * float(np.percentile(masked, 95)), 1),
        f"edit_{steps}_steps_seconds": round(statistics.median(edits[1:]), 2),
        f"edit_{steps}_steps_seconds_first": round(edits[0], 2),
        "region_pixels": int(roi.sum()),
        # the edit target is for 30 steps; other step counts are timed but not judged
        "meets_targets": bool(np.percentile(applies, 95) < 0.150 and statistics.median(edits[1:]) < 10.0)
        if steps == 30 else None,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", nargs="*", default=list(ARCHITECTURES), help=f"from {list(ARCHITECTURES)}")
    ap.add_argument("--runs", type=int, default=2, help="timed edits per architecture (after one untimed)")
    ap.add_argument("--reps", type=int, default=30, help="timed vector applies per architecture")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 (the default) is what one request gets on a 2-core Space under load")
    ap.add_argument("--out", default=str(RESULTS / "arch_cpu.json"))
    args = ap.parse_args(argv)
    unknown = [a for a in args.archs if a not in ARCHITECTURES]
    if unknown:
        raise SystemExit(f"unknown architectures {unknown}; known: {list(ARCHITECTURES)}")
    torch.set_num_threads(args.threads)
    result = {
        "command": "python -m benchmarks.bench_arch " + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_at_start": list(os.getloadavg())},
        "targets": {"vector_apply_ms_p95": 150, "edit_30_steps_seconds": 10},
        "note": "random weights; every part but the generator at faces64's shipped size (see the docstring)",
        "archs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-arch-") as tmp:
        for name in args.archs:
            row = measure(name, ARCHITECTURES[name], Path(tmp), args.runs, args.reps, args.steps)
            result["archs"][name] = row
            print(name, {k: v for k, v in row.items() if k not in ("generator",)}, flush=True)
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
