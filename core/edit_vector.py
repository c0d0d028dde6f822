"""Edit vectors: saving an edit's latent change and applying it elsewhere (EditGAN modes 1 and 2).

A vector is the ``delta`` of an optimisation edit plus what is needed to use it
safely: the model id it belongs to, the W+ shape, the edited classes, a scale
range and the metrics of the edit that made it (file format:
:mod:`core.vector_format`). Applying vectors is one generator pass (mode 1);
mode 2 follows with a few optimisation steps whose target inside the edited
classes' region is the mask the vectors produced and whose target outside it is
the original image, which removes the artifacts a vector leaves on an image it
was not learned on. Before a delta is saved, :func:`make_transferable` can
optimise it on the source edit and on random faces together, so that it leaves
other faces alone outside their edited parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from core.branch import SegmentationBranch
from core.config import ConfigMixin
from core.edit import EditConfig, EditObjective, EditResult, edited_region, optimize_edit, psnr_outside, region_iou
from core.encoder import Encoder
from core.generator import Generator
from core.perceptual import PerceptualLoss
from core.segmenter import ImageReader
from core.vector_format import VectorFile, VectorFormatError

DEFAULT_SCALE_RANGE = (-1.5, 2.0)


def vector_from_edit(
    result: EditResult,
    model_id: str,
    name: str = "",
    description: str = "",
    preview: Optional[np.ndarray] = None,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
) -> VectorFile:
    """Package an edit's delta as a vector (validated; raises VectorFormatError on bad fields)."""
    metrics = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
    if preview is None:
        preview = thumbnail(result.image)
    return VectorFile(delta=result.delta.detach().cpu().numpy().astype(np.float32), model_id=model_id,
                      edited_classes=result.edited_classes, default_scale=1.0, scale_min=scale_range[0],
                      scale_max=scale_range[1], metrics=metrics, name=name, description=description,
                      preview=preview)  # fmt: skip


@dataclass(frozen=True)
class TransferConfig(ConfigMixin):
    """How an edit's delta is made to transfer before it is saved as a vector (:func:`make_transferable`)."""

    samples: int = 16  # random faces the delta must leave alone outside their edited parts
    steps: int = 60
    lr: float = 0.02
    weight: float = 3.0  # their outside loss (L2 + perceptual), against the source edit's own loss
    truncation: float = 0.7
    seed: int = 0  # which random faces

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 0 or self.lr <= 0 or self.weight < 0 or not 0 < self.truncation <= 1:
            raise ValueError(f"samples >= 1, steps >= 0, lr > 0, weight >= 0 and 0 < truncation <= 1 are required, got {self}")


def _mean_psnr_outside(images: torch.Tensor, originals: torch.Tensor, regions: torch.Tensor) -> float:
    return float(np.mean([min(psnr_outside(images[i : i + 1], originals[i : i + 1], regions[i]), 99.0)
                          for i in range(len(images))]))  # fmt: skip


class _TransferObjective:
    """make_transferable's loss as a function of the delta: the source edit's objective at ``w_plus + delta``,
    plus ``weight`` x (L2 + perceptual) change outside ``keep`` on the faces ``ws + delta``."""

    def __init__(self, source: EditObjective, w_plus: torch.Tensor, ws: torch.Tensor, images: torch.Tensor,
                 keep: torch.Tensor, weight: float, others: Generator):  # fmt: skip
        self.source, self.w_plus, self.ws, self.weight, self.others = source, w_plus, ws, weight, others
        # what optimize_edit reads: the parts it freezes, and the step size
        self.generator, self.branch, self.config = source.generator, source.branch, source.config
        self.encoder, self.reader = source.encoder, source.reader
        self.outside = keep[:, None].to(images.dtype)
        self.n_outside = self.outside.sum().clamp(min=1)
        self.kept = images * self.outside

    def __call__(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        loss, img, parts = self.source(self.w_plus + delta[None])
        others = self.others.synthesis(self.ws + delta[None], return_features=False).image * self.outside
        spill = ((others - self.kept).pow(2).sum() / (3 * self.n_outside)
                 + self.source.perceptual(others, self.kept).mean())  # fmt: skip
        return loss + self.weight * spill, img, {**parts, "outside_on_other_faces": spill.item()}


def make_transferable(
    generator: Generator,
    branch: SegmentationBranch,
    w_plus: torch.Tensor,  # [1, n_latent, w_dim] the latent the edit started from
    result: EditResult,
    class_names: Sequence[str],
    config: TransferConfig = TransferConfig(),
    edit_config: EditConfig = EditConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    encoder: Optional[Encoder] = None,
    callback: Optional[Callable[[int, float, torch.Tensor], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    reader: Optional[ImageReader] = None,
    other_generator: Optional[Generator] = None,
) -> EditResult:
    """Optimise an edit's delta further so that, as a vector, it changes other faces only where it should.

    A delta found on one image is free to change anything on other faces that
    happens not to show on that image, and it does: on faces64, vectors straight
    from mode 3 left 50 other faces at 25-33 dB PSNR outside the region (mean
    per edit kind; 31-37 dB once made transferable). Here
    the delta minimises the source edit's own loss (cross-entropy inside its
    region, L2 + perceptual outside, encoder and reader terms) plus
    ``config.weight`` times the L2 + perceptual change outside the edited classes' region (see
    :func:`core.edit.edited_region`: their pixels before and after the starting
    delta, dilated) on ``config.samples`` random faces; the lowest total keeps.
    Returns a new result on the source image; ``metrics`` gain
    ``transfer_psnr_outside_before`` / ``_after`` (mean over those faces) and
    ``transfer_samples``. When ``generator`` is tuned to the source photo
    (core.tuning), ``other_generator`` (the untuned model) draws the other faces.
    """
    if result.target is None:
        raise ValueError("this edit result carries no target mask; make it with core.edit.edit_by_mask")
    t0 = time.perf_counter()
    perceptual = perceptual or PerceptualLoss()
    dev = w_plus.device
    others = (other_generator if other_generator is not None else generator).requires_grad_(False)
    ws = others.sample_w_plus(config.seed, config.samples, config.truncation).to(dev)
    delta0 = result.delta.detach().to(dev)
    with torch.no_grad():
        src = generator.synthesis(w_plus)
        orig = others.synthesis(ws)
        before = branch(orig.features).argmax(1)
        moved = others.synthesis(ws + delta0[None])
        after = branch(moved.features).argmax(1)
    regions = edited_region(before, after, result.edited_classes, class_names, edit_config.dilation,
                            edit_config.context_classes)  # fmt: skip
    source = EditObjective(generator, branch, encoder, perceptual, src.image.detach(), result.target.to(dev),
                           result.roi.to(dev), replace(edit_config, lr=config.lr), reader)  # fmt: skip
    obj = _TransferObjective(source, w_plus, ws, orig.image, ~regions, config.weight, others)
    best_delta, _, _ = optimize_edit(obj, delta0, config.steps, callback, should_stop)
    with torch.no_grad():
        new = generator.synthesis(w_plus + best_delta[None])
        new_mask = branch(new.features).argmax(1)[0]
        transferred = others.synthesis(ws + best_delta[None], return_features=False).image
    metrics = {
        **result.metrics,
        "target_iou_in_region": region_iou(new_mask, source.target, source.roi),
        "psnr_outside_region": psnr_outside(new.image, src.image, source.roi),
        "transfer_psnr_outside_before": _mean_psnr_outside(moved.image, orig.image, regions),
        "transfer_psnr_outside_after": _mean_psnr_outside(transferred, orig.image, regions),
        "transfer_samples": config.samples,
    }
    return replace(result, image=new.image, mask=new_mask[None], w_plus=w_plus + best_delta[None], delta=best_delta,
                   metrics=metrics, seconds=result.seconds + time.perf_counter() - t0)  # fmt: skip


def thumbnail(image: torch.Tensor, size: int = 64) -> np.ndarray:
    """[1, 3, R, R] in [-1, 1] -> uint8 [s, s, 3] with s = min(R, size)."""
    x = image[0:1].detach().cpu().clamp(-1, 1)
    if x.shape[-1] > size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    return ((x[0].permute(1, 2, 0) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()


def check_vector(vector: VectorFile, model_id: str, latent_shape: tuple[int, int]) -> None:
    """Refuse a vector of another model or shape, or with non-finite values, with a clear error."""
    if vector.model_id != model_id:
        raise VectorFormatError(
            f"vector {vector.name or vector.content_hash()[:12]!r} belongs to model {vector.model_id}, "
            f"not to the loaded model {model_id}"
        )
    if tuple(vector.delta.shape) != tuple(latent_shape):
        raise VectorFormatError(f"vector has shape {list(vector.delta.shape)}, the model's W+ is {list(latent_shape)}")
    if not np.isfinite(vector.delta).all():
        raise VectorFormatError("vector contains NaN or Inf values")


def combined_delta(
    vectors: Sequence[tuple[VectorFile, float]], model_id: str, latent_shape: tuple[int, int]
) -> torch.Tensor:
    """Sum of scale * delta over the vectors -> [n_latent, w_dim] (all checked first)."""
    total = torch.zeros(latent_shape)
    for v, s in vectors:
        check_vector(v, model_id, latent_shape)
        if not np.isfinite(s):
            raise ValueError(f"scale must be finite, got {s}")
        total += float(s) * torch.from_numpy(np.array(v.delta))
    return total


def interference(vectors: Sequence[tuple[VectorFile, float]], corr_threshold: float = 0.5) -> list[str]:
    """Human-readable warnings for vectors that are likely to interfere when composed."""
    warnings = []
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            (a, sa), (b, sb) = vectors[i], vectors[j]
            na, nb = a.name or f"vector {i + 1}", b.name or f"vector {j + 1}"
            shared = sorted(set(a.edited_classes) & set(b.edited_classes) - {"background", "skin"})
            if shared and sa != 0 and sb != 0:
                warnings.append(f"{na!r} and {nb!r} both edit {', '.join(shared)}: their changes overlap there")
            da, db = np.asarray(a.delta).ravel(), np.asarray(b.delta).ravel()
            denom = float(np.linalg.norm(da) * np.linalg.norm(db))
            corr = float(da @ db) / denom if denom > 0 else 0.0
            if abs(corr) >= corr_threshold:
                how = "reinforce" if corr * np.sign(sa * sb) > 0 else "cancel"
                warnings.append(f"{na!r} and {nb!r} are strongly correlated (cosine {corr:+.2f}): at these scales they {how} each other")
    return warnings


@dataclass
class ApplyResult:
    image: torch.Tensor  # [1, 3, R, R]
    mask: Optional[torch.Tensor]  # [1, R, R] when a branch is given
    w_plus: torch.Tensor  # [1, n_latent, w_dim]
    warnings: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@torch.no_grad()
def apply_vectors(
    generator: Generator,
    w_plus: torch.Tensor,
    vectors: Sequence[tuple[VectorFile, float]],
    model_id: str,
    branch: Optional[SegmentationBranch] = None,
) -> ApplyResult:
    """Mode 1: w + sum(scale * delta), one generator pass (plus the branch, if given)."""
    t0 = time.perf_counter()
    shape = (generator.n_latent, generator.config.style_dim)
    delta = combined_delta(vectors, model_id, shape).to(w_plus.device, w_plus.dtype)
    w = w_plus + delta[None]
    out = generator.synthesis(w, return_features=branch is not None)
    mask = branch(out.features).argmax(1) if branch is not None else None
    return ApplyResult(image=out.image, mask=mask, w_plus=w, warnings=interference(vectors),
                       seconds=time.perf_counter() - t0)  # fmt: skip


def refine(
    generator: Generator,
    branch: SegmentationBranch,
    w_plus: torch.Tensor,  # the image's own latent [1, n_latent, w_dim]
    vectors: Sequence[tuple[VectorFile, float]],
    model_id: str,
    class_names: Sequence[str],
    steps: int = 10,
    config: EditConfig = EditConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    encoder: Optional[Encoder] = None,
    callback=None,
    should_stop=None,
    reader: Optional[ImageReader] = None,
) -> ApplyResult:
    """Mode 2: apply the vectors, then ``steps`` of self-supervised refinement (see module docstring)."""
    t0 = time.perf_counter()
    first = apply_vectors(generator, w_plus, vectors, model_id, branch)
    with torch.no_grad():
        orig = generator.synthesis(w_plus)
        orig_mask = branch(orig.features).argmax(1)[0]
    vec_mask = first.mask[0]
    names = set().union(*(v.edited_classes for v, _ in vectors)) if vectors else set()
    roi = edited_region(orig_mask, vec_mask, names, class_names, config.dilation, config.context_classes)
    if not roi.any() or steps <= 0:
        first.seconds = time.perf_counter() - t0
        return first
    obj = EditObjective(generator, branch, encoder, perceptual or PerceptualLoss(), orig.image.detach(), vec_mask, roi, config,
                        reader)  # fmt: skip
    best_w, losses, _ = optimize_edit(obj, first.w_plus, steps, callback, should_stop)
    with torch.no_grad():
        out = generator.synthesis(best_w)
        mask = branch(out.features).argmax(1)
    metrics = {
        "vector_mask_iou_in_region": region_iou(mask[0], vec_mask, roi),
        "psnr_outside_region": psnr_outside(out.image, orig.image, roi),
        "psnr_outside_region_before_refinement": psnr_outside(first.image, orig.image, roi),
    }
    return ApplyResult(image=out.image, mask=mask, w_plus=best_w, warnings=first.warnings, losses=losses,
                       metrics=metrics, seconds=time.perf_counter() - t0)  # fmt: skip
