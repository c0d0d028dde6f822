"""The faithful baseline: the released EditGAN editing step, written by us, for side-by-side measurement.

EditGAN (Ling et al., NeurIPS 2021) and its release (nv-tlabs/editGAN_release) optimise a W+ change with,
at every step:

1. the generator's synthesis, keeping every feature map;
2. every map the branch reads upsampled once to the output resolution with bilinear interpolation
   (``nn.Upsample(mode="bilinear")``, i.e. ``align_corners=False``) and concatenated: [1, sum(C_i), R, R];
3. the per-pixel vectors of the region of interest picked out of that stack, and the MLP ensemble (each
   member's Linear-ReLU-BatchNorm blocks as they are, the logits averaged) run on those pixels only;
4. cross-entropy inside the region, perceptual + L2 outside it, the encoder term.

The losses and their weights are ours (:class:`core.edit.EditObjective`: class-balanced cross-entropy, the
outside weights, the image reader's term when the bundle has one), so for the same latent, region and
target this step computes the same loss *value* as ours; only the computation strategy differs. Ours never
builds the upsampled stack: it projects each map to the ensemble's first hidden layer at its own resolution
and interpolates only the region's bounding box (:meth:`core.branch.SegmentationBranch.logits_at`).

This replaces the earlier "upsampled" comparison (``edit_loss_upsampled``), which classified every pixel of
the image and was about ten times slower than the released loop it stood for (issue #25).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.edit import EditObjective


def upsampled_region_features(obj: EditObjective, features: list[torch.Tensor]) -> torch.Tensor:
    """Every map the branch reads, bilinearly upsampled to R x R and concatenated, at the region's pixels.

    Returns [n_region, sum(C_i)]. The full [1, sum(C_i), R, R] stack is built, as in the release.
    """
    feats = obj.branch.select(features)
    r = obj.branch.config.resolution
    up = torch.cat([F.interpolate(f, size=(r, r), mode="bilinear", align_corners=False) for f in feats], 1)
    return up[obj.bi, :, obj.ys, obj.xs]  # [n_region, sum(C_i)]


def baseline_terms(obj: EditObjective, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The released step's loss on ``w`` [1, n_latent, w_dim]: (loss, image [1, 3, R, R], each term as a tensor)."""
    c = obj.config
    out = obj.generator.synthesis(w)
    img = out.image
    logits = obj.branch.classify(upsampled_region_features(obj, out.features))  # each member as it is, averaged
    parts = {"ce": obj.region_ce(logits, log_probs=False)}
    outside = obj.outside[None, None].to(img.dtype)
    a, b = img * outside, obj.original_image * outside
    parts["l2_outside"] = (a - b).pow(2).sum() / (3 * obj.n_outside)
    parts["perceptual_outside"] = obj.perceptual(a, b).mean()
    loss = c.w_ce * parts["ce"] + c.w_l2 * parts["l2_outside"] + c.w_perceptual * parts["perceptual_outside"]
    if obj.kept is not None:  # the region's kept pixels keep their colour (EditConfig.w_kept)
        kept = obj.kept[None, None].to(img.dtype)
        parts["l2_kept"] = ((img - obj.original_image) * kept).pow(2).sum() / (3 * obj.n_kept)
        loss = loss + c.w_kept * parts["l2_kept"]
    if obj.encoder is not None and c.w_encoder > 0:
        parts["encoder"] = F.mse_loss(obj.encoder(img), w)
        loss = loss + c.w_encoder * parts["encoder"]
    if obj.reader is not None and c.w_reader > 0:
        parts["reader_ce"] = obj.reader_ce(img)
        loss = loss + c.w_reader * parts["reader_ce"]
    return loss, img, parts


def baseline_loss(obj: EditObjective, w: torch.Tensor) -> torch.Tensor:
    """The released step's scalar loss (see :func:`baseline_terms`)."""
    return baseline_terms(obj, w)[0]
