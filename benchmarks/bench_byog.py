"""Bring your own generator, timed as a scripted user lives it (issue #23): from "load a generator" to a first
successful edit, through the app's HTTP API only.

    python -m benchmarks.bench_byog                      # faces64's generator alone, 16 labels, writes results/byog.json
    python -m benchmarks.bench_byog --n 4 --train-steps 30 --edits 1 --quick   # a smoke run

1. The shipped faces64 generator is copied alone (no branch, encoder, reader or classes) and the app is
   started on it in this process (app.testing.launch_app: the real build_demo, a SQLite library).
2. A gradio_client user creates a label set with the face classes, adds N varied samples, opens each one and
   saves its mask as a painted layer (/label_sample, /label_save: what a person's saves go through). The
   masks are the oracle's reading of each sample's image (benchmarks/oracle.py: a U-Net trained with full
   supervision on the procedural domain's true masks), the stand-in for a careful human labeller; a person
   takes minutes per mask, which this does not count.
3. /label_train trains the branch in the app's background worker; wall time and the process's peak RSS
   (sampled every 50 ms) are recorded.
4. Edits (/sample, then /edit with a painted target mask: core.mask_edits' scripted edits) until the first
   one the edit judge passes (benchmarks/edit_judge.py: the oracle reads the result; never the new branch).
   The branch's mIoU against the oracle on held-out samples is reported too (benchmarks/bench_labels).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_labels import EVAL_SEED, _OracleAt, _rss_mb, evaluate, oracle_masks
from benchmarks.edit_judge import judge
from benchmarks.oracle import load_oracle
from benchmarks.results_io import write_result
from core.checkpoint import CONFIG_FILE, GENERATOR_FILE
from core.data.palette import CLASS_NAMES, PALETTE
from core.edit import region_of_interest
from core.editgan import resolve_model_path
from core.mask_edits import apply_scripted

EDIT_KINDS = ("open_mouth", "add_glasses", "shorten_hair", "smile", "enlarge_eyes", "shrink_nose")
EDIT_SEEDS = range(EVAL_SEED + 500, EVAL_SEED + 600)


def generator_alone(model: str, folder: Path) -> Path:
    """A copy of ``model``'s generator with nothing else: what a user who brings a generator has."""
    src = resolve_model_path(model)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / GENERATOR_FILE, folder / GENERATOR_FILE)
    cfg = json.loads((src / CONFIG_FILE).read_text())
    keep = {k: cfg[k] for k in ("generator", "model_id", "name") if k in cfg}
    (folder / CONFIG_FILE).write_text(json.dumps(keep, indent=2) + "\n")
    return folder


def _layer(mask: np.ndarray, path: Path) -> dict:
    """An editor value with one layer painting ``mask`` in the palette's colours at the painter's size."""
    from gradio_client import handle_file

    from app import masks as M

    size = M.display_size(mask.shape[0])
    rgba = np.concatenate([M.upscale(PALETTE[mask], size), np.full((size, size, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(path)
    return {"background": None, "layers": [handle_file(str(path))], "composite": None}


def _to_tensor(path: str) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"), np.float32)
    return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1


class _PeakRss:
    def __init__(self) -> None:
        self.peak, self._done = _rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> "_PeakRss":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._t.join()


def run(model: str, n: int, train_steps: Optional[int], edits: int, edit_steps: int, eval_samples: int,
        work: Path) -> dict:  # fmt: skip
    from gradio_client import Client

    from app.testing import launch_app

    oracle = load_oracle(64)
    t_start = time.time()
    folder = generator_alone(model, work / "generator")
    extra = {"branch_train_steps": train_steps} if train_steps else {}
    app = launch_app(folder, work / "data", **extra)
    rt = app.runtime
    out: dict = {"n_labels": n, "label_source": "oracle reading each sample (benchmarks/oracle.py)",
                 "train_config": rt.trainer.config.to_dict()}  # fmt: skip
    try:
        c = Client(app.url, verbose=False, download_files=str(work / "downloads"))
        out["load_s"] = round(time.time() - t_start, 1)
        t = time.time()
        classes = "\n".join(f"{name} #{r:02x}{g:02x}{b:02x}" for name, (r, g, b) in zip(CLASS_NAMES, PALETTE.tolist()))
        choice, _ = c.predict("faces", classes, api_name="/label_create")
        choice = choice["value"] if isinstance(choice, dict) else choice
        c.predict(choice, n, api_name="/label_add_samples")
        set_id = int(choice.split(":")[0])
        for i, s in enumerate(rt.labels.samples(set_id)):
            c.predict(choice, s.id, api_name="/label_sample")
            image = rt.bundle().render(rt.bundle().sample(s.seed, s.truncation))
            mask = oracle_masks(oracle, image)[0].numpy().astype(np.uint8)
            c.predict(_layer(mask, work / f"layer{i}.png"), False, "oracle", api_name="/label_save")
        out["label_s"] = round(time.time() - t, 1)
        out["rss_before_training_mb"] = round(_rss_mb(), 1)
        t = time.time()
        with _PeakRss() as rss:
            message = c.predict(choice, api_name="/label_train")
        out["train_s"] = round(time.time() - t, 1)
        out["peak_rss_during_training_mb"] = round(rss.peak, 1)
        out["train_message"] = message
        version = rt.labels.branch_versions(rt.base_model.model_id)[0]
        out["train_record"] = {k: version.record.get(k) for k in ("wall_s", "train_miou", "steps_done", "peak_rss_mb")}
        branch = rt.model.branch
        out["branch_vs_oracle"] = evaluate(rt.model, branch, oracle, eval_samples, 1.0)
        # edits until the judge passes one
        attempts, first_ok = [], None
        t = time.time()
        for k in range(edits):
            seed, kind = EDIT_SEEDS[k], EDIT_KINDS[k % len(EDIT_KINDS)]
            c.predict(seed, api_name="/sample")
            w = rt.sample(seed)
            before = torch.from_numpy(rt.render(w).mask.astype(np.int64))
            try:
                target = torch.from_numpy(apply_scripted(kind, before.numpy()).astype(np.int64))
            except ValueError as e:  # the face lacks the part the edit needs
                attempts.append({"seed": seed, "kind": kind, "skipped": str(e)[:100]})
                continue
            paint = np.zeros((*target.shape, 4), np.uint8)
            changed = (target != before).numpy()
            paint[changed, :3], paint[changed, 3] = PALETTE[target.numpy()[changed]], 255
            Image.fromarray(paint, "RGBA").save(work / "target.png")
            from gradio_client import handle_file

            res = c.predict(None, handle_file(str(work / "target.png")), "optimization", edit_steps, api_name="/edit")
            roi, _ = region_of_interest(before, target, rt.model.class_names)
            verdict = judge(_OracleAt(oracle), _to_tensor(res[1]), _to_tensor(res[0]), before, target, roi)
            attempts.append({"seed": seed, "kind": kind, "elapsed_s": round(time.time() - t, 1), **verdict})
            if verdict["success"] and first_ok is None:
                first_ok = time.time() - t_start
                break
        out["edits"] = attempts
        out["time_to_first_successful_edit_s"] = round(first_ok, 1) if first_ok is not None else None
        out["total_s"] = round(time.time() - t_start, 1)
    finally:
        app.demo.close()
    return out


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="faces64")
    ap.add_argument("--n", type=int, default=16, help="labelled samples")
    ap.add_argument("--train-steps", type=int, default=None, help="branch steps (default: the app's)")
    ap.add_argument("--edits", type=int, default=12, help="at most this many edits, until the judge passes one")
    ap.add_argument("--edit-steps", type=int, default=40, help="steps per edit (the app's default slider value)")
    ap.add_argument("--eval-samples", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="a smoke run: write nothing under benchmarks/results")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "byog.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.model, args.n, args.train_steps, args.edits, args.edit_steps, args.eval_samples, Path(tmp))
    result["command"] = "python -m benchmarks.bench_byog " + " ".join(argv if argv is not None else [])
    print(json.dumps({k: v for k, v in result.items() if k != "edits"}, indent=1))
    if not args.quick:
        write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
