"""Turning user images into model inputs, and results back into the user's photo.

Policy (stated once, used everywhere):

* accepted: anything PIL opens (PNG, JPEG, WebP, TIFF, ...), numpy arrays
  [H, W], [H, W, 3] or [H, W, 4] of uint8, uint16 or float in [0, 1];
* grayscale and 16-bit images are converted to 8-bit RGB; transparency is
  composited over white;
* refused with ``ValueError``: unreadable or truncated files, images with a side
  under 16 px, images over ``MAX_PIXELS`` (50 MP; checked from the header, so a
  huge file is refused before it is decoded, and PIL's decompression-bomb guard
  is set to the same limit);
* every image a user gives goes through :func:`open_image`: photos
  (:func:`load_image`) and painted target masks (:func:`read_painted_mask`,
  square, palette colours, transparent = unchanged) get the same limits and
  messages;
* the model sees a square: ``policy="crop"`` (default) takes the largest
  centred square, ``policy="pad"`` pads the short side with the edge colour;
  the square is resized to the model's resolution with Lanczos filtering.
  :class:`CropBox` remembers where the square came from so an edited result can
  be pasted back into the original (:func:`paste_back`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.data.palette import mask_from_colors

MIN_SIDE = 16
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageLike = Union[Image.Image, np.ndarray, bytes, str, Path]


@dataclass(frozen=True)
class CropBox:
    """The square (left, top, size) in original-image pixels; may extend past the edges when padded."""

    left: int
    top: int
    size: int
    original_width: int
    original_height: int


def _array_to_pil(a: np.ndarray) -> Image.Image:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"image array must be [H, W], [H, W, 3] or [H, W, 4], got shape {list(a.shape)}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image array contains NaN or Inf")
        a = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"image dtype must be uint8, uint16 or float in [0, 1], got {a.dtype}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[a.shape[2]]
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a, mode)


def open_image(source: ImageLike) -> Image.Image:
    """Open and validate an image, decoded, in its own mode (e.g. RGBA keeps its transparency)."""
    if isinstance(source, np.ndarray):
        img = _array_to_pil(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        if not isinstance(source, (bytes, str, Path)):
            raise ValueError(f"an image must be a file path, bytes, a PIL image or an array, got {type(source).__name__}")
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
        except OSError as e:
            raise ValueError(f"cannot read the image file ({type(e).__name__}: {str(e)[:120]})") from None
        if not data:
            raise ValueError("the image file is empty")
        try:
            img = Image.open(io.BytesIO(data))
            _check_size(img)  # from the header, before the pixels are decoded
            img.load()
        except Image.DecompressionBombError:
            raise ValueError(f"image is larger than the {MAX_PIXELS / 1e6:.0f} MP limit") from None
        except UnidentifiedImageError:
            raise ValueError("not a readable image: its content is in no image format this server reads (PNG, JPEG, "
                             "WebP, BMP, TIFF, GIF and the like)") from None  # fmt: skip
        except (OSError, SyntaxError, EOFError) as e:
            raise ValueError(f"not a readable image ({type(e).__name__}: {str(e)[:120]})") from None
        img = ImageOps.exif_transpose(img)
    _check_size(img)
    return img


def _check_size(img: Image.Image) -> None:
    if img.width * img.height > MAX_PIXELS:
        raise ValueError(f"image is {img.width}x{img.height} ({img.width * img.height / 1e6:.1f} MP); "
                         f"the limit is {MAX_PIXELS / 1e6:.0f} MP")  # fmt: skip
    if min(img.width, img.height) < MIN_SIDE:
        raise ValueError(f"image is {img.width}x{img.height}; both sides must be at least {MIN_SIDE} px")


def load_image(source: ImageLike) -> Image.Image:
    """Open and validate an image; returns 8-bit RGB."""
    return _to_rgb8(open_image(source))


def read_painted_mask(source: ImageLike, resolution: int, palette: np.ndarray) -> np.ndarray:
    """A painted target mask (palette colours; transparent = unchanged) -> class ids [R, R], -1 where unpainted.

    The image must be square; it is resized to ``resolution`` with nearest-neighbour sampling (colours stay
    exact), e.g. a 512 px mask from the app's editor for a 64 px model. Every opaque pixel must be a palette
    colour (core.data.palette.mask_from_colors); a mask with no opaque pixel paints nothing and is refused.
    """
    img = open_image(source)
    if img.width != img.height:
        raise ValueError(f"a target mask must be square like the model's images, got {img.width}x{img.height}")
    img = img.convert("RGBA")
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.NEAREST)
    painted = mask_from_colors(np.asarray(img), palette)
    if (painted < 0).all():
        raise ValueError("the target mask paints nothing: every pixel is transparent (transparent = unchanged)")
    return painted


def _to_rgb8(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray((np.clip(a / hi, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError("image contains NaN or Inf")
        hi = 1.0 if a.max() <= 1.0 else 255.0
        img = Image.fromarray((np.clip(a / hi, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB")


def square(img: Image.Image, policy: str = "crop") -> tuple[Image.Image, CropBox]:
    w, h = img.size
    if policy == "crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s)), CropBox(left, top, s, w, h)
    if policy == "pad":
        s = max(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        a = np.asarray(img)
        pad = ((-top, s - h + top), (-left, s - w + left), (0, 0))
        return Image.fromarray(np.pad(a, pad, mode="edge")), CropBox(left, top, s, w, h)
    raise ValueError(f"policy must be 'crop' or 'pad', got {policy!r}")


def to_model_input(source: ImageLike, resolution: int, policy: str = "crop") -> tuple[torch.Tensor, CropBox]:
    """Any accepted image -> ([1, 3, R, R] float in [-1, 1], CropBox)."""
    img, box = square(load_image(source), policy)
    img = img.resize((resolution, resolution), Image.LANCZOS, reducing_gap=3.0)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return (x / 127.5 - 1.0)[None], box


def to_pil(x: torch.Tensor) -> Image.Image:
    """[1, 3, H, W] or [3, H, W] in [-1, 1] -> PIL RGB."""
    if x.ndim == 4:
        x = x[0]
    a = ((x.detach().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(a)


def paste_back(original: ImageLike, edited: Image.Image, box: CropBox) -> Image.Image:
    """Resize the edited square to the crop's size and paste it where it came from."""
    base = load_image(original).copy()
    if base.size != (box.original_width, box.original_height):
        raise ValueError(f"original is {base.size}, the crop box was made for {(box.original_width, box.original_height)}")
    patch = edited.convert("RGB").resize((box.size, box.size), Image.LANCZOS)
    base.paste(patch, (box.left, box.top))  # PIL clips whatever falls outside (padded squares)
    return base
