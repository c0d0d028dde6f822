"""The semantic classes of the procedural face domain and their paint colours.

This is the one place the classes and the palette are defined: the renderer,
the segmentation branch, the mask editor and the brush legend all read it.
"left"/"right" are as seen in the image (``left_eye`` is the eye on the
image's left), which is what a user painting on the picture expects.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "neck",
    "hair",
    "left_eye",
    "right_eye",
    "left_brow",
    "right_brow",
    "nose",
    "lips",
    "teeth",
    "glasses",
)

# Distinct, saturated colours so a painted stroke snaps unambiguously to one class.
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # background
        (255, 200, 150),  # skin
        (180, 120, 80),  # neck
        (120, 60, 20),  # hair
        (0, 120, 255),  # left_eye
        (0, 220, 255),  # right_eye
        (160, 0, 200),  # left_brow
        (255, 0, 220),  # right_brow
        (255, 140, 0),  # nose
        (220, 0, 40),  # lips
        (255, 255, 255),  # teeth
        (0, 200, 60),  # glasses
    ],
    dtype=np.uint8,
)

NUM_CLASSES = len(CLASS_NAMES)
CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
assert PALETTE.shape == (NUM_CLASSES, 3)
assert len({tuple(c) for c in PALETTE.tolist()}) == NUM_CLASSES, "palette colours must be unique"


def class_index(name: str) -> int:
    try:
        return CLASS_INDEX[name]
    except KeyError:
        raise ValueError(f"unknown class {name!r}; known classes are {list(CLASS_NAMES)}") from None


def colorize(mask: np.ndarray, palette: np.ndarray = PALETTE) -> np.ndarray:
    """Class-index mask [H, W] -> RGB uint8 [H, W, 3]."""
    mask = np.asarray(mask)
    if mask.size and (mask.min() < 0 or mask.max() >= len(palette)):
        raise ValueError(f"mask holds class ids outside [0, {len(palette) - 1}]")
    return palette[mask.astype(np.int64)]


def mask_from_colors(
    rgb: np.ndarray, palette: np.ndarray = PALETTE, alpha: np.ndarray | None = None, max_distance: float = 60.0
) -> np.ndarray:
    """A painted RGB image [H, W, 3] -> class ids [H, W], snapping each pixel to the nearest palette colour.

    Anti-aliased brush edges blend two palette colours; the nearest one wins. Pixels
    farther than ``max_distance`` (RGB Euclidean) from every palette colour are an
    error, not a guess. Where ``alpha`` is given, pixels with alpha < 128 are
    reported as -1 ("not painted") for the caller to fill from the current mask.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"painted mask must be [H, W, 3] or [H, W, 4], got shape {list(rgb.shape)}")
    if rgb.shape[2] == 4 and alpha is None:
        alpha = rgb[..., 3]
    colors = rgb[..., :3].astype(np.int32)
    d = ((colors[:, :, None, :] - palette[None, None].astype(np.int32)) ** 2).sum(-1)  # [H, W, K]
    ids = d.argmin(-1)
    dist = np.sqrt(d.min(-1))
    painted = np.ones(ids.shape, bool) if alpha is None else np.asarray(alpha) >= 128
    bad = painted & (dist > max_distance)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise ValueError(
            f"{int(bad.sum())} painted pixels have colours that are not in the class palette "
            f"(first at x={x}, y={y}: RGB {tuple(int(c) for c in colors[y, x])}); paint with the legend's colours"
        )
    out = ids.astype(np.int64)
    out[~painted] = -1
    return out
