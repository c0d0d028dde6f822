"""The oracle segmenter: a judge for benchmarks, never part of the editor.

A small U-Net trained with full supervision on procedural faces (pixel-exact
masks). Later benchmarks use it to read the mask of any image -- a GAN sample,
an edit result -- independently of the generator's own segmentation branch.

    python -m benchmarks.oracle train --resolution 64 --train-images 20000
    python -m benchmarks.oracle eval  --resolution 64

The checkpoint lives in ``benchmarks/oracle/`` (safetensors + JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from benchmarks.results_io import write_result
from core.data.faces import ProceduralFaces
from core.data.palette import CLASS_NAMES, NUM_CLASSES
from core.segmenter import UNetConfig, UNetSegmenter, mirror_labels

ORACLE_DIR = Path(__file__).resolve().parent / "oracle"
# Disjoint index ranges of the procedural stream (seed ORACLE_SEED).
ORACLE_SEED = 1001
TEST_START = 10_000_000


# The oracle is the core U-Net trained with full supervision (the names stay for the checkpoints' sake).
OracleConfig = UNetConfig
OracleUNet = UNetSegmenter


def render_set(resolution: int, start: int, n: int, progress: bool = True,
               device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """uint8 images [n, R, R, 3] and masks [n, R, R] of the oracle's stream, on the CPU (drawn on ``device``)."""
    ds = ProceduralFaces(resolution, ORACLE_SEED)
    imgs = np.empty((n, resolution, resolution, 3), np.uint8)
    masks = np.empty((n, resolution, resolution), np.uint8)
    for i in tqdm(range(0, n, 64), desc="render", disable=not progress):  # the torch renderer draws batches
        r = ds.render(start + i, min(64, n - i), device=device)
        imgs[i : i + 64], masks[i : i + 64] = r.image.permute(0, 2, 3, 1).cpu().numpy(), r.mask.cpu().numpy()
    return torch.from_numpy(imgs), torch.from_numpy(masks)


def to_input(imgs_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1]."""
    return imgs_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def confusion(pred: torch.Tensor, target: torch.Tensor, k: int = NUM_CLASSES) -> torch.Tensor:
    idx = target.flatten().long() * k + pred.flatten().long()
    return torch.bincount(idx, minlength=k * k).view(k, k)


def iou_from_confusion(cm: torch.Tensor) -> dict[str, float]:
    """Per-class IoU over the whole set (classes absent from both prediction and truth are skipped)."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return {CLASS_NAMES[i]: float(tp[i] / union[i]) for i in range(len(tp)) if union[i] > 0}


def mean_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    ious = iou_from_confusion(confusion(pred, target))
    return float(np.mean(list(ious.values())))


@torch.no_grad()
def predict(model: OracleUNet, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """images float [B, 3, H, W] in [-1, 1] -> class ids [B, H, W]."""
    model.eval()
    out = [model(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)]
    return torch.cat(out)


def save_oracle(model: OracleUNet, meta: dict, folder: Path = ORACLE_DIR) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    res = model.config.resolution
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / f"oracle{res}.safetensors"))
    (folder / f"oracle{res}.json").write_text(json.dumps({"config": model.config.to_dict(), **meta}, indent=2) + "\n")


class ResampledOracle(torch.nn.Module):
    """An oracle of one resolution reading images of another: the image is resized to the oracle's resolution
    (area averaging when shrinking, bilinear when enlarging), read, and the class scores are resized back
    bilinearly, so the classes come out at the image's own resolution. ``features`` (the pooled features the
    Fréchet distance uses) reads the resized image. How well this reads 128 px faces with the 64 px oracle:
    ``python -m benchmarks.oracle eval --resolution 128`` (results/oracle128.json)."""

    def __init__(self, inner: OracleUNet, resolution: int) -> None:
        super().__init__()
        self.inner = inner
        self.config = dataclasses.replace(inner.config, resolution=resolution)
        self.description = f"oracle{inner.config.resolution} resampled to {resolution} px"

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        r = self.inner.config.resolution
        if x.shape[-1] == r:
            return x
        return F.interpolate(x, size=(r, r), mode="area" if x.shape[-1] > r else "bilinear", align_corners=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(self._in(x))
        return F.interpolate(logits, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.features(self._in(x))


def load_oracle(resolution: int = 64, folder: Path = ORACLE_DIR, resample: bool = True) -> torch.nn.Module:
    """The oracle for ``resolution`` px images: the one trained at that resolution, or else (``resample``) the
    trained one of the nearest lower resolution applied through :class:`ResampledOracle`. Its ``description``
    (where present) says which; no usable oracle is a FileNotFoundError naming how to train one."""
    meta_path = folder / f"oracle{resolution}.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        model = OracleUNet(OracleConfig(**meta["config"]))
        model.load_state_dict(load_file(str(folder / f"oracle{resolution}.safetensors")))
        model.description = f"oracle{resolution}"
        return model.eval()
    trained = sorted((int(p.stem[len("oracle"):]) for p in folder.glob("oracle*.json")
                      if p.stem[len("oracle"):].isdigit()), reverse=True)  # fmt: skip
    lower = [r for r in trained if r < resolution]
    if resample and lower:
        return ResampledOracle(load_oracle(lower[0], folder, resample=False), resolution).eval()
    raise FileNotFoundError(f"no oracle for {resolution} px in {folder} (trained: {trained or 'none'}); train one "
                            f"with python -m benchmarks.oracle train --resolution {resolution}")


def train(config: OracleConfig, n_train: int, epochs: int, batch: int, lr: float, seed: int = 0,
          device: str = "cpu") -> tuple[OracleUNet, dict]:  # fmt: skip
    """Fully supervised training on ``n_train`` rendered faces (drawn and trained on ``device``; returned on the CPU)."""
    torch.manual_seed(seed)
    t0 = time.time()
    imgs, masks = render_set(config.resolution, 0, n_train, device=device)
    imgs, masks = imgs.to(device), masks.to(device)
    render_s = time.time() - t0
    model = OracleUNet(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (n_train // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps, desc="oracle")
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        for i in range(n_train // batch):
            idx = perm[i * batch : (i + 1) * batch].to(device)
            x, y = to_input(imgs[idx]), masks[idx].long()
            if torch.rand((), generator=gen) < 0.5:  # mirror, swapping left/right classes
                x, y = x.flip(-1), mirror_labels(y.flip(-1))
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
            bar.update(1)
            if len(losses) % 50 == 0:  # reading the loss waits for the device: every 50 steps only
                bar.set_postfix(loss=f"{float(torch.stack(losses[-50:]).mean()):.4f}")
    bar.close()
    meta = {
        "train_images": n_train,
        "epochs": epochs,
        "batch": batch,
        "lr": lr,
        "render_seconds": round(render_s, 1),
        "train_seconds": round(time.time() - t0 - render_s, 1),
        "final_loss": float(torch.stack(losses[-100:]).mean()),
        "device": str(device),
        "data_seed": ORACLE_SEED,
    }
    return model.cpu(), meta




def evaluate(model: OracleUNet, n_test: int = 1000) -> dict:
    imgs, masks = render_set(model.config.resolution, TEST_START, n_test, progress=False)
    pred = predict(model, to_input(imgs))
    ious = iou_from_confusion(confusion(pred, masks))
    return {
        "test_images": n_test,
        "test_index_start": TEST_START,
        "pixel_accuracy": float((pred == masks).float().mean()),
        "miou": float(np.mean(list(ious.values()))),
        "per_class_iou": {k: round(v, 4) for k, v in ious.items()},
    }


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["train", "eval"])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--train-images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="cpu", help="where train draws and trains (cuda on a lent GPU)")
    ap.add_argument("--folder", type=Path, default=ORACLE_DIR, help="where the oracle is saved (train) or read (eval)")
    ap.add_argument("--out", type=Path, help="the result JSON (default: benchmarks/results/oracle<resolution>.json)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "train":
        cfg = OracleConfig(resolution=args.resolution, width=args.width)
        if args.resolution % 8 or args.resolution < 16:
            raise SystemExit(f"--resolution must be a multiple of 8 and at least 16, got {args.resolution}")
        model, meta = train(cfg, args.train_images, args.epochs, args.batch, args.lr, device=args.device)
        meta["eval"] = evaluate(model, args.test_images)
        save_oracle(model, meta, args.folder)
    else:
        model = load_oracle(args.resolution, args.folder)
        meta = {"oracle": model.description, "eval": evaluate(model, args.test_images)}
    write_result(args.out or Path(__file__).resolve().parent / "results" / f"oracle{args.resolution}.json", meta)


if __name__ == "__main__":
    main()
