"""A segmentation branch from a few masks painted over the generator's own samples (issue #23).

The user of a generator -- any domain, any class list of 2..32 names -- labels
a handful of its samples (seed + truncation -> W+; the mask painted over the
image the generator drew at that latent) and trains the branch
(:class:`core.branch.SegmentationBranch`) from them. Unlike
:mod:`core.train.branch`, which labels procedural photos and must embed them
first, the labels here sit exactly on the generator's pixels: the features at
each sample's latent are exact, and no encoder is needed.

What is reused from the face recipe, none of it face-specific:

* class-balanced pixel sampling (weight ~ class frequency ** -class_balance), so
  small parts are not drowned by the background;
* the ensemble of per-pixel MLPs, reading only the finer feature maps
  (``min_map_resolution``);
* optionally (``teacher_samples`` > 0), small U-Nets trained on the labelled
  images that label extra GAN samples, learnt as soft targets; and the same
  U-Nets as the bundle's image reader (``train_reader``).

Training runs in a caller's thread: ``progress(fraction, text)`` reports, and
``should_stop()`` is polled every step (:class:`TrainingStopped`). It is seeded:
the branch's weights are drawn from a ``torch.Generator``, never the global
random state, so the same inputs give the same weights on the CPU. The U-Nets
(:func:`core.segmenter.train_few_shot`) still seed the global state when built.

Weights travel as safetensors bytes (:func:`branch_weights_bytes`,
:func:`branch_from_bytes`): data, never a pickle. Measured on faces64:
docs/results.md, "Few-shot branch from labelled samples (#23)".
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from core.branch import BranchConfig, SegmentationBranch, sample_features
from core.checkpoint import check_state_dict, compact_state_dict
from core.config import ConfigMixin
from core.embed import inverse_frequency
from core.generator import Generator
from core.segmenter import ImageReader, ReaderConfig, UNetSegmenter, mirror_labels, train_few_shot

MAX_CLASSES = 32


@dataclass(frozen=True)
class FewShotConfig(ConfigMixin):
    # 300 steps lost 0.02-0.03 mIoU at 16 masks on faces64; with aligned labels more than 600 changed nothing
    # (docs/results.md, few-shot branch from labelled samples)
    steps: int = 600
    lr: float = 1e-3
    ensemble: int = 5
    hidden: tuple[int, ...] = (128, 32)
    images_per_step: int = 4
    pixels_per_image: int = 1024
    class_balance: float = 0.5  # pixel sampling weight ~ class frequency ** -class_balance
    layers: Optional[tuple[int, ...]] = None  # generator feature maps the branch reads; None = by min_map_resolution
    # read maps at least this wide, capped at half the generator's resolution (0 = every map): on faces64 the
    # 32 and 64 px maps alone did better than all of them with aligned labels (docs/results.md, segmentation branch)
    min_map_resolution: int = 32
    cache_budget_mb: int = 512  # keep the read maps of every training latent if they fit; else recompute per step
    # U-Nets trained on the labelled images (seeds seed, seed + 1, ...): the teachers and/or the image reader.
    # They learn with mirroring (core.segmenter.train_few_shot): leave both off for a domain without left/right symmetry
    unet_members: int = 2
    unet_steps: int = 1500
    unet_width: int = 16
    unet_affine: float = 0.1  # random similarity augmentation (core.segmenter.random_affine)
    # GAN samples the U-Nets label for the branch (0 = none, the default: not measured better; docs/results.md)
    teacher_samples: int = 0
    teacher_truncation: float = 1.0
    teacher_seed: int = 555  # latent stream of the teachers' samples
    teacher_soft: bool = True  # learn the teachers' mean probabilities, not their argmax
    teacher_min_confidence: float = 0.5  # hard labels only: skip pixels whose top class is less likely than this
    teacher_flip: bool = True  # also read each sample mirrored (left_*/right_* classes swapped back)
    train_reader: bool = False  # also train the image reader (the bundle's reader.safetensors) on the labelled images
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        positive = ("steps", "ensemble", "images_per_step", "pixels_per_image", "unet_members", "unet_steps",
                    "unet_width")  # fmt: skip
        bad = [f"{k}={getattr(self, k)}" for k in positive if int(getattr(self, k)) < 1]
        bad += [f"{k}={getattr(self, k)}" for k in ("teacher_samples", "min_map_resolution", "cache_budget_mb")
                if int(getattr(self, k)) < 0]  # fmt: skip
        if not self.lr > 0:
            bad.append(f"lr={self.lr}")
        if not self.hidden or min(self.hidden) < 1:
            bad.append(f"hidden={list(self.hidden)}")
        if bad:
            raise ValueError(f"FewShotConfig: {', '.join(bad)} out of range (counts must be >= 1, sizes >= 0, lr > 0)")


@dataclass
class FewShotResult:
    branch: SegmentationBranch
    branch_config: BranchConfig
    reader: Optional[ImageReader]
    reader_config: Optional[ReaderConfig]
    record: dict[str, Any]  # JSON-able: config, n_masks, class names, steps, wall_s, peak_rss_mb, train-set mIoU, ...


class TrainingStopped(Exception):
    """``should_stop()`` returned True; nothing was trained to the end."""


# -- checks ------------------------------------------------------------------------------------------------------


def check_labels(generator: Generator, w_plus: torch.Tensor, masks: torch.Tensor, class_names: Sequence[str]) -> None:
    """Raise ValueError naming what is wrong with the labelled samples (returns when they are usable)."""
    names = list(class_names) if not isinstance(class_names, str) else [class_names]
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"need 2 to {MAX_CLASSES} class names, got {len(names)}")
    if any(not isinstance(n, str) or not n.strip() for n in names) or len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct non-empty strings, got {names}")
    if not isinstance(w_plus, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise ValueError("w_plus and masks must be tensors")
    n_latent, w_dim, res = generator.n_latent, generator.config.style_dim, generator.config.resolution
    if w_plus.ndim != 3 or w_plus.shape[1:] != (n_latent, w_dim):
        raise ValueError(f"w_plus must be [N, {n_latent}, {w_dim}] for this generator, got {list(w_plus.shape)}")
    if w_plus.shape[0] < 2:
        raise ValueError(f"need at least 2 labelled samples, got {w_plus.shape[0]}")
    if not w_plus.is_floating_point() or not torch.isfinite(w_plus).all():
        raise ValueError("w_plus must be finite floating-point latents (found NaN/inf or an integer tensor)")
    if masks.shape != (w_plus.shape[0], res, res):
        raise ValueError(f"masks must be [{w_plus.shape[0]}, {res}, {res}] (one per latent, at the generator's "
                         f"resolution), got {list(masks.shape)}")  # fmt: skip
    if masks.is_floating_point() or masks.is_complex() or masks.dtype == torch.bool:
        raise ValueError(f"masks must hold integer class ids, got {masks.dtype}")
    lo, hi = int(masks.min()), int(masks.max())
    if lo < 0 or hi >= len(names):
        raise ValueError(f"masks hold class ids in [{lo}, {hi}], outside [0, {len(names) - 1}] "
                         f"for {len(names)} classes")


def branch_layers(generator: Generator, config: FewShotConfig) -> Optional[tuple[int, ...]]:
    """The feature maps a branch trained with ``config`` reads (None = all)."""
    if config.layers is not None:
        return config.layers
    if not config.min_map_resolution:
        return None
    floor = min(config.min_map_resolution, generator.config.resolution // 2)
    return tuple(i for i, r in enumerate(generator.feature_resolutions) if r >= floor)


# -- pieces ------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _seeded_init(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default Linear init (uniform +-1/sqrt(fan_in), weight and bias), drawn from ``gen``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.weight.shape[1])
            m.weight.uniform_(-bound, bound, generator=gen)
            m.bias.uniform_(-bound, bound, generator=gen)


def _sample_pixels(mask: torch.Tensor, n: int, balance: float, gen: torch.Generator,
                   valid: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """n pixels of ``mask`` [R, R] drawn with weight ~ freq(class) ** -balance (only where ``valid``): (ys, xs)."""
    flat = mask.flatten()
    keep = None if valid is None else valid.flatten()
    weights = inverse_frequency(flat, balance, keep)
    if keep is not None:
        weights = weights * keep
    idx = torch.multinomial(weights, n, replacement=True, generator=gen)
    return idx // mask.shape[-1], idx % mask.shape[-1]


def confusion_iou(pred: torch.Tensor, target: torch.Tensor,
                  class_names: Sequence[str]) -> tuple[float, dict[str, float]]:  # fmt: skip
    """mIoU and per-class IoU over the whole set (classes absent from prediction and truth are skipped)."""
    k = len(class_names)
    cm = torch.bincount(target.flatten().long() * k + pred.flatten().long(), minlength=k * k).view(k, k).double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    per = {class_names[i]: round(float(tp[i] / union[i]), 4) for i in range(k) if union[i] > 0}
    return (sum(per.values()) / len(per) if per else 0.0), per


class _Progress:
    """Fractions of the whole job for ``progress``: each phase has a weight, steps advance within it."""

    def __init__(self, progress: Optional[Callable[[float, str], None]], should_stop: Optional[Callable[[], bool]],
                 phases: dict[str, float]):  # fmt: skip
        self.progress, self.should_stop = progress, should_stop
        total = sum(phases.values())
        self.start, acc = {}, 0.0
        for name, weight in phases.items():
            self.start[name] = (acc / total, weight / total)
            acc += weight
        self.last = -1.0

    def step(self, phase: str, done: int, of: int, text: str) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingStopped(f"stopped during {text}")
        if self.progress is None:
            return
        base, span = self.start[phase]
        frac = min(1.0, base + span * done / max(1, of))
        if frac - self.last >= 0.005 or (done == of and frac > self.last):  # about 200 calls in all
            self.last = frac
            self.progress(frac, text)

    def finish(self, text: str) -> None:
        if self.progress is not None and self.last < 1.0:
            self.last = 1.0
            self.progress(1.0, text)


@torch.no_grad()
def _render(generator: Generator, w_plus: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """[N, 3, R, R] images in [-1, 1] of the latents."""
    return torch.cat([generator(w_plus[i : i + batch]).image.clamp(-1, 1) for i in range(0, len(w_plus), batch)])


def _train_unets(images: torch.Tensor, masks: torch.Tensor, class_names: Sequence[str], config: FewShotConfig,
                 tracker: _Progress) -> list[UNetSegmenter]:  # fmt: skip
    """``config.unet_members`` augmented U-Nets on the labelled images, polled for stopping every step."""
    members = []
    total = config.unet_members * config.unet_steps
    for k in range(config.unet_members):

        def tick(step: int, k: int = k) -> None:
            done = k * config.unet_steps + step + 1
            text = f"U-Net {k + 1}/{config.unet_members} step {step + 1}/{config.unet_steps}"
            tracker.step("unets", done, total, text)

        members.append(train_few_shot(images, masks, steps=config.unet_steps, width=config.unet_width,
                                      seed=config.seed + k, num_classes=len(class_names), class_names=class_names,
                                      affine=config.unet_affine, callback=tick))  # fmt: skip
    return members


@torch.no_grad()
def _teacher_samples(generator: Generator, teachers: Sequence[UNetSegmenter], class_names: Sequence[str],
                     config: FewShotConfig, tracker: _Progress
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """GAN samples read by the teachers: (W+ [S, L, D], mean probabilities [S, K, R, R] float16,
    confident [S, R, R])."""
    latents = generator.sample_w_plus(config.teacher_seed, config.teacher_samples, config.teacher_truncation)
    swap = mirror_labels(torch.arange(len(class_names)), list(class_names))
    probs = []
    for i in range(0, len(latents), 16):
        x = generator(latents[i : i + 16]).image.clamp(-1, 1)
        prob = torch.stack([t(x).softmax(1) for t in teachers]).mean(0)
        if config.teacher_flip:  # channel k of the mirrored reading is class swap[k] of the image
            mirrored = torch.stack([t(x.flip(-1)).softmax(1) for t in teachers]).mean(0).flip(-1)
            prob = (prob + mirrored[:, swap.to(prob.device)]) / 2
        probs.append(prob.half())
        tracker.step("teach", i + len(x), len(latents), f"teachers label sample {i + len(x)}/{len(latents)}")
    prob = torch.cat(probs)
    return latents, prob, prob.float().amax(1) > config.teacher_min_confidence


def _train_branch(generator: Generator, latents: torch.Tensor, masks: torch.Tensor, bcfg: BranchConfig,
                  config: FewShotConfig, tracker: _Progress, soft: Optional[torch.Tensor] = None,
                  valid: Optional[torch.Tensor] = None) -> tuple[SegmentationBranch, list[float], bool]:  # fmt: skip
    """The ensemble trained on class-balanced pixel samples of ``latents``' features.

    masks [N, R, R] class ids (argmax of ``soft`` where given); soft [N, K, R, R] target probabilities for the
    rows at or past ``len(masks) - len(soft)`` (the teachers' samples), one-hot labels before; valid [N, R, R]
    pixels that may be sampled (None = all). Returns (branch, per-step losses, whether the features were cached).
    """
    g, device, res = generator, latents.device, bcfg.resolution
    gen = torch.Generator().manual_seed(config.seed)
    branch = SegmentationBranch(bcfg)
    _seeded_init(branch, gen)
    branch = branch.to(device).train()
    opt = torch.optim.Adam(branch.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    used = bcfg.used_layers
    per_latent_mb = sum(g.feature_channels[i] * g.feature_resolutions[i] ** 2 for i in used) * 4 / 2**20
    cache = None
    if per_latent_mb * len(latents) <= config.cache_budget_mb:
        with torch.no_grad():
            parts = [branch.select(g.synthesis(latents[i : i + 8]).features) for i in range(0, len(latents), 8)]
            cache = [torch.cat(x) for x in zip(*parts)]
    first_soft = len(latents) - (0 if soft is None else len(soft))
    masks_cpu = masks.cpu()
    soft_cpu = None if soft is None else soft.cpu()
    valid_cpu = None if valid is None else valid.cpu()
    k = bcfg.num_classes
    losses = []
    for step in range(config.steps):
        pick_cpu = torch.randperm(len(latents), generator=gen)[: config.images_per_step]
        pick = pick_cpu.to(device)
        if cache is not None:
            feats = [f[pick] for f in cache]
        else:
            with torch.no_grad():
                feats = branch.select(g.synthesis(latents[pick]).features)
        total = 0.0
        for member in branch.members:
            bi, ys, xs = [], [], []
            for j, row in enumerate(pick_cpu.tolist()):
                y, x = _sample_pixels(masks_cpu[row], config.pixels_per_image, config.class_balance, gen,
                                      None if valid_cpu is None else valid_cpu[row])  # fmt: skip
                bi.append(torch.full_like(y, j))
                ys.append(y)
                xs.append(x)
            bi, ys, xs = torch.cat(bi), torch.cat(ys), torch.cat(xs)
            rows = pick_cpu[bi]
            target: torch.Tensor = masks_cpu[rows, ys, xs].long()
            if soft_cpu is not None:
                target = F.one_hot(target, k).float()
                taught = rows >= first_soft
                if taught.any():
                    target[taught] = soft_cpu[rows[taught] - first_soft, :, ys[taught], xs[taught]].float()
            logits = member(sample_features(feats, bi.to(device), ys.to(device), xs.to(device), res))
            total = total + F.cross_entropy(logits, target.to(device))
        loss = total / len(branch.members)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        tracker.step("branch", step + 1, config.steps, f"branch step {step + 1}/{config.steps}")
    return branch.eval(), losses, cache is not None


@torch.no_grad()
def _segment(generator: Generator, branch: SegmentationBranch, w_plus: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """W+ [N, L, D] -> the branch's class ids [N, R, R]."""
    return torch.cat([branch(generator.synthesis(w_plus[i : i + batch]).features).argmax(1)
                      for i in range(0, len(w_plus), batch)])  # fmt: skip


# -- the entry point ---------------------------------------------------------------------------------------------


def train_branch_from_labels(
    generator: Generator,
    w_plus: torch.Tensor,  # [N, n_latent, w_dim] latents of the labelled samples
    masks: torch.Tensor,  # [N, R, R] int64 class ids, R = generator resolution
    class_names: Sequence[str],
    config: FewShotConfig = FewShotConfig(),
    progress: Optional[Callable[[float, str], None]] = None,  # (fraction done in [0, 1], short text)
    should_stop: Optional[Callable[[], bool]] = None,  # polled every step; True -> TrainingStopped
    model_id: str = "",
) -> FewShotResult:
    """Train a segmentation branch (and optionally the image reader) from masks painted over generator samples.

    Runs on the generator's device; the generator is only read (no_grad), never changed.
    Raises ValueError for unusable labels before anything is trained.
    """
    check_labels(generator, w_plus, masks, class_names)
    names = tuple(class_names)
    t0 = time.time()
    g = generator  # read under no_grad only, never modified: the app's editor may share it from another thread
    device = g.w_avg.device
    w_plus = w_plus.detach().to(device, torch.float32)
    masks = masks.detach().to(device).long()
    res = g.config.resolution
    need_unets = config.teacher_samples > 0 or config.train_reader
    tracker = _Progress(progress, should_stop, {
        "unets": config.unet_members * config.unet_steps * 1.5 if need_unets else 0.0,  # a U-Net step costs more
        "teach": config.teacher_samples / 4,
        "branch": float(config.steps),
    })  # fmt: skip
    timings: dict[str, float] = {}
    unets: list[UNetSegmenter] = []
    if need_unets:
        t = time.time()
        unets = _train_unets(_render(g, w_plus), masks, names, config, tracker)
        timings["unet_seconds"] = round(time.time() - t, 1)
    latents, all_masks, soft, valid = w_plus, masks, None, None
    if config.teacher_samples > 0:
        t = time.time()
        t_lat, t_prob, t_conf = _teacher_samples(g, unets, names, config, tracker)
        latents, all_masks = torch.cat([w_plus, t_lat]), torch.cat([masks, t_prob.float().argmax(1)])
        if config.teacher_soft:
            soft = t_prob
        else:
            valid = torch.cat([torch.ones_like(masks, dtype=torch.bool), t_conf])
        timings["teacher_label_seconds"] = round(time.time() - t, 1)
    bcfg = BranchConfig(feature_channels=tuple(g.feature_channels), resolution=res, num_classes=len(names),
                        layers=branch_layers(g, config), hidden=config.hidden, ensemble=config.ensemble)  # fmt: skip
    t = time.time()
    branch, losses, cached = _train_branch(g, latents, all_masks, bcfg, config, tracker, soft, valid)
    timings["branch_seconds"] = round(time.time() - t, 1)
    train_pred = _segment(g, branch, w_plus)
    train_miou, train_per = confusion_iou(train_pred, masks, names)
    reader = ImageReader.from_members(unets).to(device) if config.train_reader else None
    head = losses[: min(20, len(losses))]
    tail = losses[-min(50, len(losses)) :]
    record = {
        "config": config.to_dict(),
        "n_masks": int(len(w_plus)),
        "class_names": list(names),
        "resolution": res,
        "steps_done": len(losses),
        "unet_steps_done": len(unets) * config.unet_steps,
        "teacher_samples": config.teacher_samples,
        "first_loss": sum(head) / len(head),
        "final_loss": sum(tail) / len(tail),
        "train_miou": round(train_miou, 4),
        "train_pixel_accuracy": round(float((train_pred == masks).float().mean()), 4),
        "train_per_class_iou": train_per,
        "feature_cache": cached,
        "reader_trained": reader is not None,
        **timings,
        "wall_s": round(time.time() - t0, 1),
        # the process's peak (in the app: the app's), KiB on Linux
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if model_id:
        record["generator_model_id"] = model_id
    tracker.finish(f"done: train-set mIoU {train_miou:.3f}")
    return FewShotResult(branch, bcfg, reader, reader.config if reader is not None else None, record)


# -- weights as bytes (what the app's database stores) -------------------------------------------------------------


def _weights_bytes(module: nn.Module) -> bytes:
    return save_safetensors(compact_state_dict(module))


def _load_bytes(module: nn.Module, data: bytes, what: str) -> nn.Module:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{what}: expected safetensors bytes, got {type(data).__name__}")
    try:
        sd = load_safetensors(bytes(data))
    except Exception as e:  # safetensors raises its own types; a pickle is not read, only refused
        raise ValueError(f"{what}: not safetensors data ({type(e).__name__}: {str(e)[:120]})") from None
    check_state_dict(module, sd, what=what)
    module.load_state_dict(sd)
    return module.eval()


def branch_weights_bytes(result: FewShotResult) -> bytes:
    """The branch's weights as safetensors bytes (float16, as model folders store them)."""
    return _weights_bytes(result.branch)


def branch_from_bytes(data: bytes, config: dict[str, Any]) -> SegmentationBranch:
    """A branch from :func:`branch_weights_bytes` and its ``BranchConfig.to_dict()``; ValueError if they do not fit."""
    return _load_bytes(SegmentationBranch(BranchConfig.from_dict(config)), data, "branch weights")


def reader_weights_bytes(result: FewShotResult) -> bytes:
    """The image reader's weights as safetensors bytes (float16); ValueError if none was trained."""
    if result.reader is None:
        raise ValueError("no image reader was trained (FewShotConfig.train_reader is False)")
    return _weights_bytes(result.reader)


def reader_from_bytes(data: bytes, config: dict[str, Any]) -> ImageReader:
    """An image reader from :func:`reader_weights_bytes` and its ``ReaderConfig.to_dict()``."""
    return _load_bytes(ImageReader(ReaderConfig.from_dict(config)), data, "reader weights")
