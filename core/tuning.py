"""Pivotal tuning: after the latent, nudge the generator itself towards one photo.

A latent can only reach what the generator draws. The 64 px default model does
not draw the procedural photos' exact eyes, lips or glasses: its own samples
embed back far better than photos do (``benchmarks/embed_ceiling.py``;
docs/results.md, embedding a photo).
Pivotal tuning (Roich et al., "Pivotal Tuning for Latent-based Editing of Real
Images", 2022) keeps the embedded latent as a pivot and fine-tunes the
synthesis layers a little so that, at that pivot, the generator draws the photo.
Edits then move the latent as usual on the tuned generator: nearby latents still
draw faces, now this person's.

The tuning is stored as a *delta* per tuned parameter (tuned minus original),
only for the layers at or above ``min_resolution`` px (at 16 px, 812k of the
default model's 2.9M synthesis weights: 1.6 MB as float16), small enough to
keep beside a session or share as a file; tuning from 16 px up did as well as
tuning every layer. Everything here is plain tensors;
:meth:`core.editgan.EditGAN.with_tuning` gives a bundle that edits with it.

Two terms beyond PTI's image loss (both set in :class:`core.embed.EmbedConfig`):
*locality* (``tune_locality``), which asks the tuned generator to change its
image as the original does when the latent moves away from the pivot, so
edits still take; and, in :func:`core.embed.embed_tensor`, the *branch* term
(``tune_w_branch``), which asks the segmentation branch on the tuned features
to read the photo as the image reader does, so the mask the user paints on is
the photo's. Measured in ``benchmarks/bench_photo_edit.py``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load, save

from core.generator import Generator, GeneratorOutput

TUNING_FORMAT = "editgan-tuning/1"
_CONV_RE = re.compile(r"convs\.(\d+)\.")
_RGB_RE = re.compile(r"to_rgbs\.(\d+)\.")

Tuning = dict[str, torch.Tensor]  # parameter name -> delta (tuned minus original), same shape as the parameter


def layer_resolution(name: str) -> Optional[int]:
    """The output resolution of the synthesis layer a parameter belongs to; None for the mapping network."""
    if name.startswith(("input.", "conv1.", "to_rgb1.")):
        return 4
    m = _CONV_RE.match(name)
    if m:
        return 2 ** (3 + int(m.group(1)) // 2)
    m = _RGB_RE.match(name)
    if m:
        return 2 ** (3 + int(m.group(1)))
    return None


def tunable_names(generator: Generator, min_resolution: int) -> list[str]:
    """Synthesis parameters of the layers at ``min_resolution`` px and above (noise strengths excluded); a
    generator smaller than that has its last layers tuned."""
    floor = min(int(min_resolution), generator.config.resolution)
    return [n for n, _ in generator.named_parameters()
            if (layer_resolution(n) or 0) >= floor and not n.endswith("noise.weight")]  # fmt: skip


def pivotal_tune(
    generator: Generator,
    w_plus: torch.Tensor,  # [1, n_latent, w_dim] the pivot
    loss_fn: Callable[[GeneratorOutput], torch.Tensor],  # the pivot's synthesis -> scalar loss against the photo
    steps: int,
    lr: float,
    min_resolution: int,
    callback: Optional[Callable[[int, float], None]] = None,
    locality: float = 0.0,
    locality_reach: float = 0.25,
    seed: int = 0,
    features: bool = False,
) -> tuple[Tuning, torch.Tensor, list[float]]:
    """Adam on the fine layers' weights at a fixed latent; returns (best delta, the image it draws, losses).

    The generator itself is not modified (the tuned weights live in a
    functional call). ``loss_fn`` gets the pivot's image, and its feature maps
    when ``features`` (a branch term). Step 0's loss is the untuned
    generator's; ``losses`` and the choice of the best weights count
    ``loss_fn`` only.

    ``locality`` > 0 keeps the tuned generator *responding* to latent moves
    as the original does: each step one neighbour of the pivot,
    ``locality_reach`` of the way towards a random face (seeded by ``seed``
    and the step), must change the tuned image as it changes the original's,
    MSE(G_t(n) - G_t(pivot), G(n) - G(pivot)) weighted by ``locality``.
    Edits move the latent away from the pivot; a tuning that only learnt to
    draw the photo at the pivot resists them more.
    """
    names = tunable_names(generator, min_resolution)
    base = dict(generator.named_parameters())
    params = {n: base[n].detach().clone().requires_grad_(True) for n in names}
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    w = w_plus.detach()
    if locality > 0:
        with torch.no_grad():
            pivot_image = generator(w).image
    best, losses = float("inf"), []
    best_params, best_image = {n: p.detach().clone() for n, p in params.items()}, None
    for step in range(steps):
        near = None
        if locality > 0:
            near = w + locality_reach * (generator.sample_w_plus(seed * 100_003 + step, truncation=0.7).to(w) - w)
        out = torch.func.functional_call(generator, params, (w if near is None else torch.cat([w, near]),),
                                         {"return_features": features})  # fmt: skip
        pivot = GeneratorOutput(out.image[:1], [f[:1] for f in out.features])
        total = loss = loss_fn(pivot)
        if near is not None:
            with torch.no_grad():
                moved = generator(near).image - pivot_image
            total = loss + locality * F.mse_loss(out.image[1:] - pivot.image, moved)
        value = loss.item()
        losses.append(value)
        if value < best:  # the loss belongs to the weights before this step's update
            best, best_image = value, pivot.image.detach().clone()
            best_params = {n: p.detach().clone() for n, p in params.items()}
        if callback:
            callback(step, value)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    if best_image is None:  # no steps: the untuned generator's image
        with torch.no_grad():
            best_image = generator(w).image
    return {n: best_params[n] - base[n].detach() for n in names}, best_image, losses


def check_tuning(generator: Generator, tuning: Tuning) -> None:
    """A tuning must name synthesis parameters of this generator, with their shapes, and be finite."""
    if not isinstance(tuning, dict) or not tuning:
        raise ValueError("a tuning is a non-empty dict of parameter name -> delta tensor")
    params = dict(generator.named_parameters())
    for name, delta in tuning.items():
        if name not in params or layer_resolution(name) is None:
            raise ValueError(f"tuning names {str(name)[:80]!r}, which is not a synthesis parameter of this generator")
        if not isinstance(delta, torch.Tensor) or tuple(delta.shape) != tuple(params[name].shape):
            shape = list(delta.shape) if isinstance(delta, torch.Tensor) else type(delta).__name__
            raise ValueError(f"tuning of {name} has shape {shape}, the generator's parameter is "
                             f"{list(params[name].shape)}")  # fmt: skip
        if not torch.isfinite(delta).all():
            raise ValueError(f"tuning of {name} holds NaN or Inf values")


@torch.no_grad()
def tuned_generator(generator: Generator, tuning: Tuning) -> Generator:
    """A copy of ``generator`` with the tuning's deltas added (the original is left as it is)."""
    check_tuning(generator, tuning)
    tuned = copy.deepcopy(generator)
    params = dict(tuned.named_parameters())
    for name, delta in tuning.items():
        params[name].add_(delta.to(params[name].device, params[name].dtype))
    return tuned.eval()


def tuning_bytes(tuning: Tuning, model_id: str, info: Optional[dict] = None) -> bytes:
    """A tuning as safetensors bytes (float16 deltas) with its model id in the header."""
    meta = {"format": TUNING_FORMAT, "model_id": model_id, "info": json.dumps(info or {}, sort_keys=True)}
    return save({n: d.detach().to("cpu", torch.float16).contiguous() for n, d in tuning.items()}, metadata=meta)


def save_tuning(path: str | Path, tuning: Tuning, model_id: str, info: Optional[dict] = None) -> Path:
    """Write a tuning as a safetensors file (:func:`tuning_bytes`), under a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{time.monotonic_ns()}.tmp")
    tmp.write_bytes(tuning_bytes(tuning, model_id, info))
    tmp.replace(path)
    return path


def read_safetensors(data: bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header metadata, tensors) of safetensors bytes; ValueError when they are not readable."""
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not 0 < n <= len(data) - 8:
        raise ValueError("truncated or not safetensors")
    try:
        header = json.loads(data[8:8 + n])
        return (header.get("__metadata__") or {}), load(data)
    except (SafetensorError, ValueError, AttributeError) as e:
        raise ValueError(str(e)) from None


def load_tuning(path: str | Path, generator: Generator, model_id: str) -> Tuning:
    """Read a tuning written by :func:`save_tuning` for this model; a clear ValueError on anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path.name}: not a readable tuning file ({e})") from None
    return tuning_from_bytes(data, generator, model_id, path.name)


def tuning_from_bytes(data: bytes, generator: Generator, model_id: str, name: str = "tuning") -> Tuning:
    """A tuning from :func:`tuning_bytes` for this model; a clear ValueError naming ``name`` on anything else."""
    try:
        meta, tensors = read_safetensors(data)
    except ValueError as e:
        raise ValueError(f"{name}: not a readable tuning file ({e})") from None
    if meta.get("format") != TUNING_FORMAT:
        raise ValueError(f"{name}: not a generator tuning (format {meta.get('format')!r})")
    if meta.get("model_id") != model_id:
        raise ValueError(f"{name} tunes model {meta.get('model_id')}, not the loaded model {model_id}")
    tuning = {n: t.float() for n, t in tensors.items()}
    check_tuning(generator, tuning)
    return tuning
