"""Putting an image into W+: encoder initialisation, then a short optimisation.

As in EditGAN: the encoder gives a first latent; Adam then refines it with a
perceptual + L2 reconstruction loss and an encoder-consistency term
``MSE(w, E(G(w)))`` that keeps the latent where the encoder (and so the
generator's well-trained region) expects it. The best latent seen is kept.

When the bundle has an image reader (:class:`core.segmenter.ImageReader`, the
few-shot U-Nets that read masks off pixels), the reconstruction must also read
as the photo reads: cross-entropy between the reader on the reconstruction and
the reader's mask of the photo (or the photo's known mask), weighted towards the
small parts. Pixel losses barely notice an eye a pixel too small or a brow in
the wrong row; the mask the user then edits does.

Optionally (``EmbedConfig.tune_steps``) the generator's fine layers are then
tuned to the photo at the found latent (pivotal tuning, :mod:`core.tuning`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from core.branch import SegmentationBranch
from core.config import ConfigMixin
from core.encoder import Encoder
from core.generator import Generator, GeneratorOutput
from core.image_io import CropBox, ImageLike, to_model_input
from core.perceptual import PerceptualLoss
from core.segmenter import ImageReader
from core.tuning import Tuning, pivotal_tune


@dataclass(frozen=True)
class EmbedConfig(ConfigMixin):
    steps: int = 100
    lr: float = 0.1  # 0.01 kept eyes and brows poorly at 64 px (docs/results.md, embedding)
    w_perceptual: float = 1.0
    w_l2: float = 1.0
    w_encoder: float = 0.1
    early_stop_patience: Optional[int] = None  # stop after this many steps without improvement
    # given a segmenter (the bundle's branch), the L2 term weighs each pixel ~ frequency ** -part_balance of
    # its class in the encoder's guess, so eyes and brows count beside the background (0 = plain L2;
    # docs/results.md, embedding)
    part_balance: float = 0.5
    # cross-entropy of the image reader on the reconstruction against its reading of the photo, when the bundle
    # has a reader; pixels weighted like part_balance: pixel losses alone keep the layout but not the exact
    # eyes and brows (docs/results.md, embedding)
    w_reader: float = 0.1
    policy: str = "crop"  # how a non-square image becomes square (see core.image_io)
    # pivotal tuning (core.tuning) after the latent: this many Adam steps on the generator's layers at
    # tune_min_resolution px and above, the latent fixed, with the same image terms (the reader's at tune_w_reader);
    # the result then carries the deltas (EmbedResult.tuning) and edits use EditGAN.with_tuning. 0 = off
    tune_steps: int = 0
    tune_lr: float = 1e-3
    tune_min_resolution: int = 16
    tune_w_reader: float = 0.3
    # locality of the tuning (core.tuning.pivotal_tune): the tuned generator must change its image as the original
    # does when the latent moves tune_locality_reach of the way towards a random face (an edit's delta is ~0.25 of
    # it), weighted by tune_locality: plainly tuned, the generator resisted edits (docs/results.md, editing
    # uploaded photos)
    tune_locality: float = 10.0
    tune_locality_reach: float = 0.25
    # given the bundle's branch and image reader, the tuning also asks the branch, on the tuned generator's
    # features, to read the photo as the reader reads it (cross-entropy, pixels weighted like part_balance), so the
    # mask the user paints on is the photo's (docs/results.md, editing uploaded photos)
    tune_w_branch: float = 0.3

    def __post_init__(self) -> None:
        weights = (self.w_perceptual, self.w_l2, self.w_encoder, self.part_balance, self.w_reader, self.tune_w_reader,
                   self.tune_locality, self.tune_locality_reach, self.tune_w_branch)
        if self.steps < 0 or self.tune_steps < 0 or not (self.lr > 0 and self.tune_lr > 0) or not all(w >= 0 for w in weights):
            raise ValueError(f"steps >= 0, learning rates > 0 and non-negative weights are required, got {self}")
        if not 0 < self.tune_locality_reach <= 1:
            raise ValueError(f"tune_locality_reach is a fraction of the way to a random face, in (0, 1]; got "
                             f"{self.tune_locality_reach}")  # fmt: skip
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise ValueError(f"early_stop_patience must be at least 1 (or None), got {self.early_stop_patience}")
        if self.policy not in ("crop", "pad"):
            raise ValueError(f"policy must be 'crop' or 'pad', got {self.policy!r}")

@dataclass
class EmbedResult:
    w_plus: torch.Tensor  # [1, n_latent, w_dim]
    image: torch.Tensor  # reconstruction [1, 3, R, R]
    target: torch.Tensor  # the preprocessed input [1, 3, R, R]
    crop: Optional[CropBox]
    losses: list[float] = field(default_factory=list)
    best_step: int = 0
    psnr_encoder: float = float("nan")  # of the starting latent: the encoder's, or the ``start`` given
    psnr: float = float("nan")
    seconds: float = 0.0
    perceptual_backend: str = ""
    part_weighted: bool = False  # whether the L2 term was weighted by the segmenter's parts (EmbedConfig.part_balance)
    reader_guided: bool = False  # whether the image reader's cross-entropy was part of the loss (EmbedConfig.w_reader)
    # pivotal tuning (EmbedConfig.tune_steps): the generator deltas that draw ``image`` at ``w_plus``; ``psnr`` is then
    # the tuned reconstruction's and ``psnr_untuned`` the latent's alone
    tuning: Optional[Tuning] = None
    psnr_untuned: float = float("nan")
    tune_losses: list[float] = field(default_factory=list)
    tune_seconds: float = 0.0  # of ``seconds``
    tune_branch_guided: bool = False  # whether the tuning held the branch to the reader's reading (tune_w_branch)


def inverse_frequency(flat: torch.Tensor, balance: float, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-pixel freq(class) ** -balance for flat class ids, frequencies counted over the ``keep`` pixels."""
    counts = torch.bincount(flat if keep is None else flat[keep], minlength=int(flat.max()) + 1).float().clamp(min=1)
    return counts[flat] ** (-balance)


def class_weight_map(mask: torch.Tensor, balance: float) -> torch.Tensor:
    """[R, R] class ids -> [1, 1, R, R] per-pixel weights ~ freq(class) ** -balance, mean 1."""
    w = inverse_frequency(mask.flatten(), balance).view_as(mask)
    return (w / w.mean())[None, None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1)).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def embed_tensor(
    generator: Generator,
    encoder: Optional[Encoder],  # needed unless ``start`` is given and no latent step uses its consistency term
    target: torch.Tensor,  # [1, 3, R, R] in [-1, 1]
    config: EmbedConfig = EmbedConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    crop: Optional[CropBox] = None,
    callback: Optional[Callable[[int, float], None]] = None,
    pixel_weight: Optional[torch.Tensor] = None,  # [1, 1, R, R] weights of the L2 term (mean ~1), e.g. from a known mask
    segment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,  # W+ -> [1, R, R] class ids (see part_balance)
    reader: Optional[ImageReader] = None,  # adds the reader term (EmbedConfig.w_reader)
    target_mask: Optional[torch.Tensor] = None,  # [R, R] the image's known mask: the reader term's target
    branch: Optional[SegmentationBranch] = None,  # adds the branch term to the tuning (EmbedConfig.tune_w_branch)
    start: Optional[torch.Tensor] = None,  # [1, n_latent, w_dim] a latent to start from instead of the encoder's guess
) -> EmbedResult:
    """``target`` -> W+ (and, with ``config.tune_steps``, a pivotal tuning at it).

    With ``start`` (e.g. an earlier embedding of the same photo) the encoder
    is skipped; with ``config.steps = 0`` as well, the latent stays ``start``
    and only the tuning runs (:meth:`core.editgan.EditGAN.tune`). The L2
    term weighs pixels by the parts (``config.part_balance``) of the
    encoder's guess, or of ``start`` when there is no encoder.
    """
    res = generator.config.resolution
    if target.shape != (1, 3, res, res):
        raise ValueError(f"target must be [1, 3, {res}, {res}], got {list(target.shape)}")
    if pixel_weight is not None and (
        pixel_weight.shape != (1, 1, res, res) or not torch.isfinite(pixel_weight).all() or (pixel_weight < 0).any()
    ):
        raise ValueError(f"pixel_weight must be finite, non-negative and [1, 1, {res}, {res}], got {list(pixel_weight.shape)}")
    if target_mask is not None and (target_mask.shape != (res, res) or target_mask.dtype.is_floating_point):
        raise ValueError(f"target_mask must be [{res}, {res}] class ids, got {list(target_mask.shape)} {target_mask.dtype}")
    n_latent, w_dim = generator.n_latent, generator.config.style_dim
    if start is not None and (start.shape != (1, n_latent, w_dim) or not torch.isfinite(start).all()):
        raise ValueError(f"start must be a finite [1, {n_latent}, {w_dim}] W+ latent, got {list(start.shape)}")
    if encoder is None and (start is None or (config.steps > 0 and config.w_encoder > 0)):
        raise ValueError("an encoder is needed for the first guess (no start given) and for the w_encoder term")
    perceptual = perceptual or PerceptualLoss()
    t0 = time.perf_counter()
    for module in (generator, encoder, reader, branch):
        if module is not None:
            module.requires_grad_(False)
    with torch.no_grad():
        w0 = encoder(target) if start is None else start.detach().to(target.device, target.dtype).clone()
        img0 = generator(w0).image
    result = EmbedResult(w_plus=w0, image=img0, target=target, crop=crop, psnr_encoder=psnr(img0, target),
                         perceptual_backend=perceptual.backend)  # fmt: skip
    if config.steps <= 0 and config.tune_steps <= 0:
        result.psnr = result.psnr_untuned = result.psnr_encoder
        result.seconds = time.perf_counter() - t0
        return result
    if pixel_weight is None and segment is not None and config.part_balance > 0:
        with torch.no_grad():  # the encoder's guess, also when starting elsewhere: tune() then equals embed's tuning
            parts = segment(w0 if encoder is None or start is None else encoder(target))
        if parts.shape != (1, res, res):
            raise ValueError(f"segment must return [1, {res}, {res}] class ids, got {list(parts.shape)}")
        pixel_weight, result.part_weighted = class_weight_map(parts[0], config.part_balance), True
    read_target = read_weight = None
    # the branch term follows the reader's reading, so it needs the reader too
    tune_branch = branch is not None and reader is not None and config.tune_steps > 0 and config.tune_w_branch > 0
    if reader is not None and (config.w_reader > 0 or (config.tune_steps > 0 and config.tune_w_reader > 0) or tune_branch):
        with torch.no_grad():
            reading = reader(target)[0]  # [K, R, R]
        read_target = (reading.argmax(0) if target_mask is None else target_mask.to(target.device)).long()
        if read_target.min() < 0 or read_target.max() >= reading.shape[0]:
            raise ValueError(f"target_mask holds class ids outside [0, {reading.shape[0] - 1}]")
        read_weight = class_weight_map(read_target, config.part_balance)[0, 0]
        result.reader_guided = config.w_reader > 0

    def image_loss(img: torch.Tensor, w_reader: float) -> torch.Tensor:
        l2 = F.mse_loss(img, target) if pixel_weight is None else ((img - target) ** 2 * pixel_weight).mean()
        loss = config.w_perceptual * perceptual(img, target).mean() + config.w_l2 * l2
        if read_target is not None and w_reader > 0:
            nll = F.nll_loss(reader(img), read_target[None], reduction="none")[0]
            loss = loss + w_reader * (nll * read_weight).mean()
        return loss

    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=config.lr)
    best, since_best = float("inf"), 0
    for step in range(config.steps):
        img = generator(w).image
        loss = image_loss(img, config.w_reader)
        if config.w_encoder > 0:  # the encoder is there: checked above
            loss = loss + config.w_encoder * F.mse_loss(encoder(img), w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.item()
        result.losses.append(value)
        if value < best:  # the loss belongs to w before this step's update
            best, since_best = value, 0
            result.w_plus, result.best_step = w.detach().clone(), step
        else:
            since_best += 1
        if callback:
            callback(step, value)
        if config.early_stop_patience is not None and since_best >= config.early_stop_patience:
            break
        opt.step()
    with torch.no_grad():
        result.image = generator(result.w_plus).image
    result.psnr = result.psnr_untuned = psnr(result.image, target)
    if config.tune_steps > 0:
        t_tune = time.perf_counter()

        def tune_callback(step: int, value: float) -> None:
            if callback:
                callback(len(result.losses) + step, value)

        def tune_loss(out: GeneratorOutput) -> torch.Tensor:
            loss = image_loss(out.image, config.tune_w_reader)
            if tune_branch:
                ce = F.cross_entropy(branch(out.features), read_target[None], reduction="none")[0]
                loss = loss + config.tune_w_branch * (ce * read_weight).mean()
            return loss

        result.tuning, result.image, result.tune_losses = pivotal_tune(
            generator, result.w_plus, tune_loss, config.tune_steps, config.tune_lr, config.tune_min_resolution,
            tune_callback, config.tune_locality, config.tune_locality_reach, features=tune_branch)  # fmt: skip
        result.tune_branch_guided = tune_branch
        result.psnr = psnr(result.image, target)
        result.tune_seconds = time.perf_counter() - t_tune
    result.seconds = time.perf_counter() - t0
    return result


def embed(
    generator: Generator,
    encoder: Encoder,
    image: ImageLike,
    config: EmbedConfig = EmbedConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    callback: Optional[Callable[[int, float], None]] = None,
    segment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    reader: Optional[ImageReader] = None,
    branch: Optional[SegmentationBranch] = None,
    start: Optional[torch.Tensor] = None,
) -> EmbedResult:
    """Any accepted image (see core.image_io) -> EmbedResult with the crop box for pasting back."""
    device = next(generator.parameters()).device
    target, box = to_model_input(image, generator.config.resolution, config.policy)
    return embed_tensor(generator, encoder, target.to(device), config, perceptual, box, callback, segment=segment,
                        reader=reader, branch=branch, start=start)  # fmt: skip
