"""Masks in the browser: the sketch editor's value <-> class-id masks, overlays and the legend.

The editor shows the current mask (palette colours, upscaled with nearest neighbour to
``display_size``) as its background; the user paints on a layer with a fixed palette brush.
Gradio's brush is anti-aliased, so a stroke's edge has faint alpha and blended colours:

* pixels with alpha < 128 are "not painted" (the current mask stays);
* painted pixels snap to the nearest palette colour; the few that are far from every colour
  (blends where two strokes cross) count as not painted, but if more than
  ``MAX_OFF_PALETTE`` of the painted pixels are off-palette the layer was not painted with the
  legend's brush and the edit is refused;
* the display-resolution class map is reduced to the model's resolution by a vote per cell: a
  cell is painted when at least ``MIN_CELL_COVER`` of its pixels are, and takes its most painted class.
"""

from __future__ import annotations

import html
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from core.data.palette import colorize, mask_from_colors
from core.image_io import open_image, read_painted_mask

MAX_OFF_PALETTE = 0.05
MIN_CELL_COVER = 0.5
SNAP_DISTANCE = 60.0  # RGB distance within which a painted pixel counts as that palette colour


def display_size(resolution: int, target: int = 512) -> int:
    """The editor canvas side: a multiple of the model resolution near ``target`` pixels."""
    return resolution * max(1, round(target / resolution))


def upscale(a: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an [R, R] or [R, R, 3] uint8 array to ``size``."""
    k = size // a.shape[0]
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def overlay(image: np.ndarray, mask_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the palette-coloured mask over the image; both [R, R, 3] uint8."""
    return (image.astype(np.float32) * (1 - alpha) + mask_rgb.astype(np.float32) * alpha + 0.5).astype(np.uint8)


def editor_value(mask_rgb: np.ndarray, size: int) -> dict:
    """The ImageEditor value showing a mask: background only, no painted layer yet."""
    bg = upscale(mask_rgb, size)
    return {"background": bg, "layers": [], "composite": bg}


def _as_rgba(a: Any, size: int) -> Optional[np.ndarray]:
    """An editor layer (numpy, PIL or path) -> [size, size, 4] uint8, or None."""
    if a is None:
        return None
    if isinstance(a, (str, bytes)) or hasattr(a, "__fspath__"):
        a = open_image(a if isinstance(a, (str, bytes)) else str(a))  # the limits of every upload
    if isinstance(a, Image.Image):
        img = a.convert("RGBA")
    else:
        arr = np.asarray(a)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3 + [np.full_like(arr, 255)], -1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"a painted layer must be an RGBA image, got shape {list(arr.shape)}")
        if arr.shape[2] == 3:
            arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, arr.dtype)], -1)
        img = Image.fromarray(arr.astype(np.uint8), "RGBA")
    if img.size != (size, size):
        # the canvas may differ from the background's size; nearest keeps colours exact
        img = img.resize((size, size), Image.NEAREST)
    return np.asarray(img)


def painted_classes(editor: Any, resolution: int, palette: np.ndarray, size: Optional[int] = None) -> np.ndarray:
    """The editor's painted layers -> class ids [R, R] with -1 where nothing was painted."""
    if not isinstance(editor, dict):
        raise ValueError("the mask editor sent no value; paint on the mask first")
    layers = [layer for layer in (editor.get("layers") or []) if layer is not None]
    size = size or display_size(resolution)
    out = np.full((resolution, resolution), -1, np.int64)
    if not layers:
        return out
    k = size // resolution
    ids = np.full((size, size), -1, np.int64)
    for layer in layers:  # later layers paint over earlier ones
        rgba = _as_rgba(layer, size)
        alpha = rgba[..., 3]
        solid = alpha >= 128
        if not solid.any():
            continue
        cls = mask_from_colors(rgba[..., :3], palette, alpha=alpha, max_distance=float("inf"))
        dist = np.sqrt(((rgba[..., :3].astype(np.int32) - palette[np.clip(cls, 0, None)].astype(np.int32)) ** 2).sum(-1))
        off = solid & (dist > SNAP_DISTANCE)
        if off.sum() > MAX_OFF_PALETTE * solid.sum():
            y, x = np.argwhere(off)[0]
            raise ValueError(
                f"{int(off.sum())} of {int(solid.sum())} painted pixels are not legend colours "
                f"(first at x={x}, y={y}: RGB {tuple(int(c) for c in rgba[y, x, :3])}); "
                "paint with the brush colours of the legend")
        keep = solid & ~off
        ids[keep] = cls[keep]
    # vote per cell: [R, k, R, k] -> counts per class
    cells = ids.reshape(resolution, k, resolution, k).transpose(0, 2, 1, 3).reshape(resolution, resolution, k * k)
    n_classes = len(palette)
    counts = np.stack([(cells == c).sum(-1) for c in range(n_classes)], -1)  # [R, R, K]
    painted = counts.sum(-1) >= MIN_CELL_COVER * k * k
    out[painted] = counts.argmax(-1)[painted]
    return out


def target_mask(editor: Any, current: np.ndarray, palette: np.ndarray, size: Optional[int] = None) -> np.ndarray:
    """The painted target: painted cells from the editor, the current mask elsewhere. [R, R] int64."""
    painted = painted_classes(editor, current.shape[0], palette, size)
    if (painted < 0).all():
        raise ValueError("nothing is painted: choose a class colour in the brush menu and paint on the mask")
    target = np.where(painted >= 0, painted, current).astype(np.int64)
    if (target == current).all():
        raise ValueError("the painted strokes do not change the mask (they repeat the classes already there); "
                         "paint a different class over a region")
    return target


def mask_from_upload(image: Any, resolution: int, palette: np.ndarray, current: np.ndarray) -> np.ndarray:
    """An uploaded target-mask image (palette colours; transparent = unchanged) -> [R, R] class ids.

    Read by core.image_io.read_painted_mask, the same path and limits as photo uploads: unreadable,
    oversized, non-square or fully transparent files and off-palette colours are refused with a message.
    """
    painted = read_painted_mask(image, resolution, palette)
    target = np.where(painted >= 0, painted, current).astype(np.int64)
    if (target == current).all():
        raise ValueError("the target mask equals the current mask: nothing to edit")
    return target


def legend_html(class_names: Sequence[str], palette: np.ndarray) -> str:
    """Colour swatches with class names, in brush order."""
    items = []
    for name, (r, g, b) in zip(class_names, palette.tolist()):
        items.append(
            f'<span class="legend-item" data-class="{html.escape(name)}">'
            f'<span class="legend-swatch" style="background:rgb({r},{g},{b})"></span>{html.escape(name.replace("_", " "))}</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


def hex_colors(palette: np.ndarray) -> list[str]:
    return ["#{:02x}{:02x}{:02x}".format(*c) for c in palette.tolist()]


__all__ = ["colorize", "display_size", "editor_value", "hex_colors", "legend_html", "mask_from_upload",
           "overlay", "painted_classes", "target_mask", "upscale"]
