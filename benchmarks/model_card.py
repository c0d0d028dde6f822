"""Writes a model card (README.md + pictures) beside a trained generator.

    python -m benchmarks.model_card --model checkpoints/faces64 --run runs/faces64 \
        --hardware "2 CPU cores (no GPU)" --core-json benchmarks/results/core.json

The pictures: a grid of samples beside the oracle's masks of them, and the
training loss curves (drawn with PIL so no plotting library is needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.bench_core import generate
from benchmarks.oracle import load_oracle
from core.checkpoint import DEPENDENT_PARTS, load_generator
from core.data.palette import CLASS_NAMES, colorize


def sample_grid(model_dir: Path, n: int = 16, scale: int = 2) -> Image.Image:
    g = load_generator(model_dir)
    imgs = generate(g, n, seed=2024)
    with torch.no_grad():
        masks = load_oracle(g.config.resolution)(imgs).argmax(1).numpy()
    pics = ((imgs.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    cols = []
    for i in range(n):
        cols.append(np.concatenate([pics[i], colorize(masks[i])], 0))
    per_row = 8
    rows = [np.concatenate(cols[r : r + per_row], 1) for r in range(0, n, per_row)]
    grid = Image.fromarray(np.concatenate(rows, 0))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)


def loss_curves(log: list[dict], keys=("d_loss", "g_loss", "r1"), size=(720, 300)) -> Image.Image:
    colors = {"d_loss": (200, 40, 40), "g_loss": (40, 90, 200), "r1": (40, 160, 60)}
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    pad = 40
    steps = [r["step"] for r in log]
    if not steps:
        return img
    vals = [r.get(k) for r in log for k in keys if r.get(k) is not None]
    lo, hi = 0.0, float(np.percentile(vals, 99)) if vals else 1.0
    d.rectangle([pad, 10, w - 10, h - pad], outline=(0, 0, 0))
    for j, k in enumerate(keys):
        pts = [(r["step"], r[k]) for r in log if k in r]
        if len(pts) < 2:
            continue
        # moving average keeps the curve readable
        ys = np.convolve([p[1] for p in pts], np.ones(5) / 5, mode="same")
        xy = [
            (pad + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (w - pad - 10),
             h - pad - (min(y, hi) - lo) / (hi - lo + 1e-9) * (h - pad - 10))
            for (s, _), y in zip(pts, ys)
        ]  # fmt: skip
        d.line(xy, fill=colors[k], width=2)
        d.text((pad + 10 + 90 * j, 14), k, fill=colors[k])
    d.text((pad, h - pad + 5), f"step {steps[0]}", fill=(0, 0, 0))
    d.text((w - 90, h - pad + 5), f"step {steps[-1]}", fill=(0, 0, 0))
    d.text((2, 10), f"{hi:.2f}", fill=(0, 0, 0))
    d.text((2, h - pad - 10), f"{lo:.2f}", fill=(0, 0, 0))
    return img


def parts_section(model: Path, cfg: dict, joint_json: Path) -> str:
    """The encoder, segmentation branch and image reader: their configs, training and (when measured) metrics."""
    joint = json.loads(joint_json.read_text()) if joint_json.exists() else {}
    if joint.get("model_id") != cfg["model_id"]:
        joint = {}  # measured on another generator: not this model's figures
    out = ["", "## Encoder, segmentation branch and image reader", "",
           "All are stored as float16 and loaded as float32 (like the generator); the figures below were "
           "measured with the weights as shipped. The reader (few-shot U-Nets on the same labelled images as the "
           "branch) reads pixels, not the generator, so it does not depend on the generator.", ""]
    for part, file in {**DEPENDENT_PARTS, "reader": "reader.safetensors"}.items():
        if part not in cfg or not (model / file).exists():
            out.append(f"- **{part}**: not trained for this model yet.")
            continue
        training = {k: v for k, v in cfg.get(f"{part}_training", {}).items() if k != "hidden"}
        out += [f"### {part} (`{file}`)", "", f"Config: `{json.dumps(cfg[part])}`", "",
                f"Training: `{json.dumps(training)}`", ""]  # fmt: skip
    if joint:
        b, e = joint.get("branch", {}), joint.get("embedding", {})
        out += ["### Measured (benchmarks/bench_joint.py)", "", "| | |", "|---|---|",
                f"| branch mIoU vs the oracle, {b.get('samples')} samples | {b.get('branch_miou_vs_oracle')} |",
                f"| oracle architecture trained on the same {b.get('labelled_images')} labelled images | "
                f"{b.get('few_shot_oracle_arch_miou_vs_oracle')} |"]  # fmt: skip
        for kind in ("encoder", "optimised", "pivotal_tuning"):
            if kind not in e:
                continue
            k = e[kind]
            label = "optimised, then the generator tuned to each image" if kind == "pivotal_tuning" else kind
            out.append(f"| embedding, {label} ({e.get('images')} held-out images) | {k.get('psnr_mean_db')} dB, "
                       f"oracle mIoU {k.get('oracle_miou_true_vs_reconstruction')}, "
                       f"{k.get('seconds_per_image')} s/image |")  # fmt: skip
        out += [f"| perceptual loss | {e.get('perceptual_backend')} |", "",
                "![branch vs oracle](../../benchmarks/results/joint_branch_vs_oracle.png)", ""]  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--run", default="runs/faces64")
    ap.add_argument("--hardware", required=True)
    ap.add_argument("--train-time", help="wall time of all training sittings, in words")
    ap.add_argument("--core-json", default="benchmarks/results/core.json")
    ap.add_argument("--joint-json", default="benchmarks/results/joint.json")
    args = ap.parse_args(argv)
    model, run = Path(args.model), Path(args.run)
    cfg = json.loads((model / "config.json").read_text())
    train_cfg = json.loads((run / "train_config.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    sample_grid(model).save(model / "samples_with_oracle_masks.png")
    loss_curves(log).save(model / "loss_curves.png")
    core = json.loads(Path(args.core_json).read_text()) if Path(args.core_json).exists() else {}
    step = log[-1]["step"] if log else 0
    # records count the images seen and the batch (a sitting may change it); older ones only the step
    imgs_seen = next((r["images"] for r in reversed(log) if "images" in r), step * train_cfg["batch_size"])
    rates = [r["it_s"] * r.get("batch", train_cfg["batch_size"]) for r in log if "it_s" in r]
    batches = list(dict.fromkeys(r.get("batch", train_cfg["batch_size"]) for r in log)) or [train_cfg["batch_size"]]
    render = {r["resolution"]: r["images_per_s_one_process"] for r in core.get("render_speed", [])}
    card = f"""# {model.name}: StyleGAN2 on procedural faces

Model id (content hash of the weights): `{cfg["model_id"]}`

| | |
|---|---|
| resolution | {cfg["generator"]["resolution"]} x {cfg["generator"]["resolution"]} |
| W+ shape | [{2 * int(np.log2(cfg["generator"]["resolution"])) - 2}, {cfg["generator"]["style_dim"]}] |
| classes | {", ".join(CLASS_NAMES)} |
| training data | `core.data.faces.ProceduralFaces(resolution, seed={train_cfg["data_seed"]})`, an infinite stream; {imgs_seen:,} images seen |
| iterations | {step:,} at batch {" then ".join(map(str, batches))} |
| training time | {args.train_time or "see the note"} |
| hardware | {args.hardware} |
| data throughput | training consumed {np.median(rates) if rates else float("nan"):.1f} images/s (median); one process renders {render.get(cfg["generator"]["resolution"], float("nan"))} images/s, so rendering is not the bottleneck |
| loss | non-saturating logistic, lazy R1 (gamma {train_cfg["r1_gamma"]} every {train_cfg["d_reg_every"]}), style mixing {train_cfg["mixing_prob"]}, EMA half-life {train_cfg["ema_half_life_kimg"]} kimg |

Generator config: `{json.dumps(cfg["generator"])}`

## Metrics (benchmarks/bench_core.py, judged by the oracle segmenter)

```json
{json.dumps(core.get("gan_quality", {}), indent=2)}
```

Truncation 0.7:

```json
{json.dumps(core.get("gan_quality_truncation_0.7", {}), indent=2)}
```

## Samples and their oracle masks

![samples](samples_with_oracle_masks.png)

## Training losses

![losses](loss_curves.png)

Reproduce: `python -m core.train.gan --config {run}/train_config.json --out {run} --export {model}` (resumes).
{parts_section(model, cfg, Path(args.joint_json))}"""
    (model / "README.md").write_text(card)
    print(f"wrote {model / 'README.md'}")


if __name__ == "__main__":
    main()
