"""Edit vectors: saving an edit's latent change and applying it elsewhere (EditGAN modes 1 and 2).

A vector is the ``delta`` of an optimisation edit plus what is needed to use it
safely: the model id it belongs to, the W+ shape, the edited classes, a scale
range and the metrics of the edit that made it (file format:
:mod:`core.vector_format`). Applying vectors is one generator pass (mode 1);
mode 2 follows with a few optimisation steps whose target inside the edited
classes' region is the mask the vectors produced and whose target outside it is
the original image, which removes the artifacts a vector leaves on an image it
was not learned on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from core.branch import SegmentationBranch
from core.edit import EditConfig, EditObjective, EditResult, dilate, optimize_edit, psnr_outside, region_iou
from core.encoder import Encoder
from core.generator import Generator
from core.perceptual import PerceptualLoss
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
) -> ApplyResult:
    """Mode 2: apply the vectors, then ``steps`` of self-supervised refinement (see module docstring)."""
    t0 = time.perf_counter()
    first = apply_vectors(generator, w_plus, vectors, model_id, branch)
    with torch.no_grad():
        orig = generator.synthesis(w_plus)
        orig_mask = branch(orig.features).argmax(1)[0]
    vec_mask = first.mask[0]
    names = set().union(*(v.edited_classes for v, _ in vectors)) if vectors else set()
    ids = [i for i, n in enumerate(class_names) if n in names and n not in config.context_classes]
    region = torch.zeros_like(orig_mask, dtype=torch.bool)
    for i in ids:
        region |= (orig_mask == i) | (vec_mask == i)
    region |= (orig_mask != vec_mask) & (torch.isin(orig_mask, torch.tensor(ids)) | torch.isin(vec_mask, torch.tensor(ids)))
    roi = dilate(region, config.dilation)
    if not roi.any() or steps <= 0:
        first.seconds = time.perf_counter() - t0
        return first
    obj = EditObjective(generator, branch, encoder, perceptual or PerceptualLoss(), orig.image.detach(), vec_mask, roi, config)
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
