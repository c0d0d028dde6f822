"""Mask-driven editing by optimisation (EditGAN mode 3) and its shared pieces.

Given a W+ latent and a target mask (the user's painted segmentation), find a
change ``delta`` of W+ such that

* inside the region of interest the branch's logits match the target mask
  (cross-entropy), and
* outside it the image stays what it was (perceptual + L2 on the masked image),
* with an encoder-consistency term ``MSE(w, E(G(w)))`` that keeps the latent
  in the part of W+ the generator renders well (when an encoder is present),
* and, when the bundle has an image reader (few-shot U-Nets reading the
  rendered pixels, :class:`core.segmenter.ImageReader`), the same cross-entropy
  inside the region under that second reader: the branch reads the generator's
  features, which the edit moves directly, and can be satisfied while the image
  shows less of the change; the reader looks at the image itself.

Branch logits are computed only at the region's pixels
(:meth:`SegmentationBranch.logits_at`), not by upsampling every feature map to
the image's size as the original release does (benchmarks/edit_baseline.py keeps
that formulation, with these losses, for side-by-side measurement).

On CUDA, :func:`optimize_edit` can set TF32 and replay the whole step as a CUDA
graph (:class:`core.accel.AccelConfig`); on the CPU it runs exactly as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from core.accel import AccelConfig, optimize_graphed, precision
from core.branch import SegmentationBranch
from core.config import ConfigMixin
from core.embed import inverse_frequency, psnr
from core.encoder import Encoder
from core.generator import Generator
from core.perceptual import PerceptualLoss
from core.segmenter import ImageReader
from core.vector_format import CONTEXT_CLASSES



@dataclass(frozen=True)
class EditConfig(ConfigMixin):
    """EditGAN's defaults (Adam, lr 0.02, 30-100 steps), with the outside weights and reader term measured here."""

    steps: int = 60
    lr: float = 0.02
    w_ce: float = 1.0
    # outside the region; EditGAN uses 1 for both. The image reader pulls the image towards the painted mask,
    # and heavier outside weights keep the rest of the image clean (measured: docs/results.md, mask edits)
    w_perceptual: float = 7.0
    w_l2: float = 7.0
    w_encoder: float = 0.1
    # cross-entropy inside the region under the image reader, when the model has one: the branch alone can be
    # satisfied while the image shows less of the change (docs/results.md, mask edits)
    w_reader: float = 1.0
    # the cross-entropies inside the region weigh each pixel ~ frequency ** -class_balance of its target class
    # there (mean 1), so a thin lip or a lens counts beside the skin around it (0 = every pixel alike;
    # docs/results.md, mask edits)
    class_balance: float = 0.5
    dilation: int = 3  # pixels the region grows by
    context_classes: tuple[str, ...] = CONTEXT_CLASSES  # classes only counted where they changed
    # a painted change made only of context classes (the face outline moved) is carried to other faces in the face's
    # own frame, not on the neck and hair near it (core.mask_transfer; docs/results_edit_judge.md, transfer that
    # generalises); False: the anchors before issue #21
    context_face_frame: bool = True
    # a part the painted change removes entirely (glasses taken off) goes entirely on the faces it is carried to,
    # though theirs be larger than the source's (core.mask_transfer.transfer_change); False: as before issue #21
    complete_removal: bool = True
    # a painted change is carried as what it does to each class: a change of the parts around the face (hair) is
    # placed in the face's frame, only the classes it painted over take the painted classes on another face, and a
    # part it cuts back (hair shortened) goes wherever it reaches past the cut there (core.mask_transfer;
    # docs/results_edit_judge.md, a cut carried by what it does). False: as before 2026-12-05
    carry_by_transition: bool = True
    # inside the region, the pixels whose class the paint keeps, farther than ``dilation`` from any changed pixel,
    # keep their colour (mean squared error against the original, this weight): EditGAN leaves the region free, and
    # on faces64 a shorter cut came with other-coloured hair. 0 = EditGAN, for any generator; a model sets its own
    # in config.json's "edit_defaults" (EditGAN.edit_config), once measured: faces64 10, where 31 mode-3 edits over
    # 8 kinds passed as often as at 0 and kept 8-23 dB more of that colour (docs/results_edit_judge.md, kept
    # colour). On a generator whose every pixel moves with every other (the random test bundle) it stops edits.
    w_kept: float = 0.0
    # the share of the region's cross-entropy weight (branch and reader) that the painted change carries at least:
    # the pixels whose class the paint changes are weighed up when, after class balance, they hold less. The region
    # holds every pixel of each edited class, so a cut of a few pixels of hair is a few pixels among thousands the
    # paint keeps, and EditGAN's loss (0: every region pixel by class balance alone) barely asks for it. The same
    # share holds on each face for the change make_transferable carries (core.edit_vector)
    change_share: float = 0.0

    def __post_init__(self) -> None:
        if (self.steps < 0 or self.lr <= 0 or self.dilation < 0 or self.class_balance < 0 or self.w_kept < 0
                or not 0 <= self.change_share < 1):  # fmt: skip
            raise ValueError(f"steps >= 0, lr > 0, dilation >= 0, class_balance >= 0, w_kept >= 0 and 0 <= change_share "
                             f"< 1 are required, got {self}")  # fmt: skip
        object.__setattr__(self, "context_classes", tuple(self.context_classes))

@dataclass
class EditResult:
    image: torch.Tensor  # [1, 3, R, R] in [-1, 1]
    mask: torch.Tensor  # [1, R, R] class ids read by the branch
    w_plus: torch.Tensor  # [1, n_latent, w_dim] edited latent
    delta: torch.Tensor  # [n_latent, w_dim]  w_plus - original
    roi: torch.Tensor  # [R, R] bool, the region of interest
    edited_classes: tuple[str, ...]
    target: Optional[torch.Tensor] = None  # [R, R] the painted mask the edit realised
    source_mask: Optional[torch.Tensor] = None  # [R, R] the branch's mask before the edit, which the user painted on
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    seconds: float = 0.0


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a bool [R, R] map by a (2r+1)^2 square."""
    if radius <= 0:
        return mask
    m = mask.float()[None, None]
    return (F.max_pool2d(m, 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0)


def check_mask(mask: torch.Tensor, resolution: int, num_classes: int, what: str = "mask") -> torch.Tensor:
    """Validate a class-id mask; returns it as long [R, R]."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{what} must be a tensor of class ids")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != (resolution, resolution):
        raise ValueError(f"{what} must be [{resolution}, {resolution}] class ids, got {list(mask.shape)}")
    if mask.dtype.is_floating_point:
        raise ValueError(f"{what} must hold integer class ids, got {mask.dtype}")
    if mask.numel() and (mask.min() < 0 or mask.max() >= num_classes):
        raise ValueError(f"{what} holds class ids outside [0, {num_classes - 1}]")
    return mask.long()


def region_of_interest(
    original: torch.Tensor,  # [R, R] class ids
    target: torch.Tensor,  # [R, R]
    class_names: Sequence[str],
    dilation: int = 3,
    context_classes: Sequence[str] = CONTEXT_CLASSES,
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The pixels an edit may change, and the edited classes.

    Edited classes are those appearing on either side of a changed pixel, the
    class on most changed pixels first (then class id; the order of
    :func:`core.vector_format.subject_classes`), the context classes after the
    others: painting glasses over the eyes names glasses, then the eyes and
    brows it covers, then skin. The region is the changed pixels, plus every pixel of an edited class
    in the original or target mask, dilated. Context classes (background, skin)
    join only where they changed, so painting hair over the background does not
    make the whole background editable.
    """
    changed = original != target
    if not changed.any():
        raise ValueError("the target mask is identical to the current mask: paint a change first")
    n = len(class_names)
    on = torch.bincount(torch.cat([original[changed], target[changed]]), minlength=n)  # changed pixels per class
    ids = sorted(torch.nonzero(on).flatten().tolist(),
                 key=lambda i: (class_names[i] in context_classes, -int(on[i]), i))  # fmt: skip
    edited = tuple(class_names[i] for i in ids)
    roi = changed.clone()
    for i in ids:
        if class_names[i] not in context_classes:
            roi |= (original == i) | (target == i)
    return dilate(roi, dilation), edited


def edited_region(
    before: torch.Tensor,  # [..., R, R] class ids
    after: torch.Tensor,  # [..., R, R]
    edited_classes: Sequence[str],
    class_names: Sequence[str],
    dilation: int = 3,
    context_classes: Sequence[str] = CONTEXT_CLASSES,
) -> torch.Tensor:
    """Where a vector's edit may act on an image it was not learned on: bool [..., R, R].

    The pixels of the edited classes before or after the change (which holds
    every pixel that changed to or from one of them), dilated. Context classes
    (background, skin) do not count: they cover most of any face.
    """
    ids = torch.tensor([i for i, n in enumerate(class_names) if n in edited_classes and n not in context_classes],
                       dtype=torch.long, device=before.device)  # fmt: skip
    region = torch.isin(before, ids) | torch.isin(after, ids)
    flat = region.reshape(-1, *region.shape[-2:])
    return torch.stack([dilate(m, dilation) for m in flat]).reshape(region.shape) if flat.shape[0] else region


def kept_pixels(source: torch.Tensor, target: torch.Tensor, roi: torch.Tensor, band: int) -> torch.Tensor:
    """bool [R, R]: the region's pixels whose class the paint keeps, farther than ``band`` from any it changes."""
    changed = source != target
    return roi & ~changed & ~dilate(changed, band)


def balanced_weights(target: torch.Tensor, balance: float) -> Optional[torch.Tensor]:
    """Per-pixel weights ~ frequency ** -balance of each flat class id's class, mean 1; None (unweighted) when
    ``balance`` is 0 or there are no pixels."""
    if balance <= 0 or not len(target):
        return None
    w = inverse_frequency(target, balance)
    return w / w.mean()


def change_weighted(weight: Optional[torch.Tensor], changed: torch.Tensor, share: float,
                    group: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Per-pixel weights in which the ``changed`` pixels (bool [N]) carry at least ``share`` of the total weight of
    their ``group`` (long [N], e.g. the face of each pixel; one group when None). ``weight`` [N] (None: all 1) is
    scaled up on the changed pixels of a group where they carry less, and the group's total is kept, so the mean
    weight does not move. Groups with no changed pixel, or nothing else, are left as they are."""
    if share <= 0 or not len(changed) or not changed.any():
        return weight
    w = (weight if weight is not None else torch.ones(len(changed), device=changed.device)).clone()
    ch = changed.to(w.dtype)
    groups = [None] if group is None else torch.unique(group).tolist()
    for g in groups:
        on = slice(None) if g is None else group == g
        total, part = w[on].sum(), (w * ch)[on].sum()
        s = float(part / total)
        if 0 < s < share:  # share < 1 (EditConfig checks it), so the rest of the group keeps some weight
            f = share * (1 - s) / (s * (1 - share))
            boosted = w[on] * (1 + (f - 1) * ch[on])
            w[on] = boosted * (total / boosted.sum())
    return w


def weighted_ce(scores: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor], log_probs: bool
                ) -> torch.Tensor:  # fmt: skip
    """Mean cross-entropy of [N, K] logits (or log-probabilities) against [N] class ids, pixels weighted."""
    loss = F.nll_loss(scores if log_probs else F.log_softmax(scores, 1), target, reduction="none")
    return (loss * weight).mean() if weight is not None else loss.mean()


def _masked_outside(img: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    return img * outside[None, None].to(img.dtype)


@dataclass
class EditObjective:
    """Everything fixed during one edit's optimisation."""

    generator: Generator
    branch: SegmentationBranch
    encoder: Optional[Encoder]
    perceptual: PerceptualLoss
    original_image: torch.Tensor  # [1, 3, R, R]
    target: torch.Tensor  # [R, R]
    roi: torch.Tensor  # [R, R] bool
    config: EditConfig
    reader: Optional[ImageReader] = None
    # [R, R] the mask the paint was made on; with config.w_kept > 0 the region's pixels it keeps keep their colour
    source_mask: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        ys, xs = torch.nonzero(self.roi, as_tuple=True)
        self.ys, self.xs = ys, xs
        # the region's bounding box, read once here: reading it every step would stop a CUDA graph's capture
        self.box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1) if len(ys) else None
        self.bi = torch.zeros_like(ys)
        self.roi_target = self.target[ys, xs]
        self.pixel_weight = balanced_weights(self.roi_target, self.config.class_balance)  # per region pixel
        if self.config.change_share > 0 and self.source_mask is not None:
            changed = self.source_mask.to(self.target.device)[ys, xs] != self.roi_target
            self.pixel_weight = change_weighted(self.pixel_weight, changed, self.config.change_share)
        self.outside = ~self.roi
        self.n_outside = max(1, int(self.outside.sum()))
        self.kept = None
        if self.config.w_kept > 0 and self.source_mask is not None:
            kept = kept_pixels(self.source_mask.to(self.target.device), self.target, self.roi, self.config.dilation)
            if kept.any():
                self.kept, self.n_kept = kept, int(kept.sum())

    def __call__(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        loss, img, parts = self.terms(w)
        return loss, img, {k: v.item() for k, v in parts.items()}

    def terms(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, image [1, 3, R, R], each term as a tensor): no host synchronisation, so a CUDA graph can hold it."""
        c = self.config
        out = self.generator.synthesis(w)
        img = out.image
        logits = self.branch.logits_at(out.features, self.bi, self.ys, self.xs, self.box)  # [n_region, K]
        parts = {"ce": self.region_ce(logits, log_probs=False)}
        a, b = _masked_outside(img, self.outside), _masked_outside(self.original_image, self.outside)
        parts["l2_outside"] = (a - b).pow(2).sum() / (3 * self.n_outside)
        parts["perceptual_outside"] = self.perceptual(a, b).mean()
        loss = c.w_ce * parts["ce"] + c.w_l2 * parts["l2_outside"] + c.w_perceptual * parts["perceptual_outside"]
        if self.kept is not None:
            d = _masked_outside(img - self.original_image, self.kept)
            parts["l2_kept"] = d.pow(2).sum() / (3 * self.n_kept)
            loss = loss + c.w_kept * parts["l2_kept"]
        if self.encoder is not None and c.w_encoder > 0:
            parts["encoder"] = F.mse_loss(self.encoder(img), w)
            loss = loss + c.w_encoder * parts["encoder"]
        if self.reader is not None and c.w_reader > 0:
            parts["reader_ce"] = self.reader_ce(img)
            loss = loss + c.w_reader * parts["reader_ce"]
        return loss, img, parts

    def region_ce(self, scores: torch.Tensor, log_probs: bool) -> torch.Tensor:
        """Cross-entropy of [n_region, K] logits (or log-probabilities) against the target, class-balanced."""
        return weighted_ce(scores, self.roi_target, self.pixel_weight, log_probs)

    def reader_ce(self, image: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the image reader's reading against the target, inside the region."""
        return self.region_ce(self.reader(image)[0][:, self.ys, self.xs].t(), log_probs=True)


def region_iou(pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor) -> float:
    """Mean IoU over the classes present in the region (prediction or target), inside the region."""
    p, t = pred[roi], target[roi]
    ious = []
    for c in torch.unique(torch.cat([p, t])).tolist():
        inter = ((p == c) & (t == c)).sum().item()
        union = ((p == c) | (t == c)).sum().item()
        ious.append(inter / union)
    return float(sum(ious) / len(ious)) if ious else 1.0


def psnr_outside(a: torch.Tensor, b: torch.Tensor, roi: torch.Tensor) -> float:
    out = ~roi
    if not out.any():
        return float("inf")
    return psnr(a[..., out], b[..., out])


def optimize_edit(
    obj: EditObjective,
    w_start: torch.Tensor,  # [1, n_latent, w_dim] where the optimisation starts
    steps: int,
    callback: Optional[Callable[[int, float, torch.Tensor], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    accel: Optional[AccelConfig] = None,
) -> tuple[torch.Tensor, list[float], int]:
    """Adam on W+ from ``w_start``; returns (best latent, losses, best step).

    On CUDA, ``accel`` (default :class:`AccelConfig`: TF32 on, graphs off) sets TF32 and can replay the step
    as a CUDA graph (:mod:`core.accel`, unmeasured on a GPU); on the CPU it is ignored.
    """
    for m in (obj.generator, obj.branch, obj.encoder, obj.reader):
        if m is not None:
            m.requires_grad_(False)
    if w_start.is_cuda:
        accel = accel or AccelConfig()
        with precision(w_start.device, accel.tf32):
            if accel.cuda_graphs and isinstance(obj, EditObjective):
                return optimize_graphed(obj.terms, w_start, steps, obj.config.lr, accel.graph_warmup, callback,
                                        should_stop)[:3]  # fmt: skip
            return _optimize_eager(obj, w_start, steps, callback, should_stop)
    return _optimize_eager(obj, w_start, steps, callback, should_stop)


def _optimize_eager(obj: EditObjective, w_start: torch.Tensor, steps: int,
                    callback: Optional[Callable[[int, float, torch.Tensor], None]],
                    should_stop: Optional[Callable[[], bool]]) -> tuple[torch.Tensor, list[float], int]:  # fmt: skip
    w = w_start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=obj.config.lr)
    best_w, best, best_step, losses = w_start.detach().clone(), float("inf"), 0, []
    for step in range(steps):
        loss, img, _ = obj(w)
        value = loss.item()
        losses.append(value)
        if value < best:
            best, best_w, best_step = value, w.detach().clone(), step
        if callback:
            callback(step, value, img.detach())
        if should_stop and should_stop():
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return best_w, losses, best_step


def edit_by_mask(
    generator: Generator,
    branch: SegmentationBranch,
    w_plus: torch.Tensor,  # [1, n_latent, w_dim]
    target_mask: torch.Tensor,  # [R, R] class ids
    class_names: Sequence[str],
    config: EditConfig = EditConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    encoder: Optional[Encoder] = None,
    callback: Optional[Callable[[int, float, torch.Tensor], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    reader: Optional[ImageReader] = None,
    accel: Optional[AccelConfig] = None,
) -> EditResult:
    """Mode 3: optimise a W+ change that realises ``target_mask``; see the module docstring (``accel``: CUDA only,
    :func:`optimize_edit`)."""
    t0 = time.perf_counter()
    res = generator.config.resolution
    if w_plus.ndim != 3 or w_plus.shape[0] != 1:
        raise ValueError(f"w_plus must be [1, n_latent, w_dim], got {list(w_plus.shape)}")
    target = check_mask(target_mask.to(w_plus.device), res, len(class_names), "target mask")
    with torch.no_grad():
        out = generator.synthesis(w_plus)
        original_mask = branch(out.features).argmax(1)[0]
    roi, edited = region_of_interest(original_mask, target, class_names, config.dilation, config.context_classes)
    obj = EditObjective(generator, branch, encoder, perceptual or PerceptualLoss(), out.image.detach(), target, roi, config,
                        reader, source_mask=original_mask)  # fmt: skip
    best_w, losses, best_step = optimize_edit(obj, w_plus, config.steps, callback, should_stop, accel)
    with torch.no_grad():
        new = generator.synthesis(best_w)
        new_mask = branch(new.features).argmax(1)[0]
    metrics = {
        "target_iou_in_region": region_iou(new_mask, target, roi),
        "psnr_outside_region": psnr_outside(new.image, out.image, roi),
        "region_pixels": int(roi.sum()),
        "steps_run": len(losses),
        # the painted change as the branch reads the result: the share of the pixels whose class the paint changed
        # that now read as painted (the app warns when it is low)
        "painted_change_reached": float((new_mask == target)[original_mask != target].float().mean()),
    }
    return EditResult(image=new.image, mask=new_mask[None], w_plus=best_w, delta=(best_w - w_plus)[0].detach(),
                      roi=roi, edited_classes=edited, target=target, source_mask=original_mask, losses=losses,
                      metrics=metrics, best_step=best_step, seconds=time.perf_counter() - t0)  # fmt: skip
