"""A procedural, fully labelled face domain.

Every image comes with a pixel-exact segmentation mask (see ``palette.py`` for
the 12 classes). Faces are built from implicit shapes ``f(x, y) < 0`` evaluated
on the pixel grid. Each shape's signed distance in pixels is approximated by
``f / |grad f|``, which gives analytic anti-aliasing (coverage = 0.5 - d,
clipped) at the cost of one finite difference. The mask is the topmost shape
whose coverage exceeds one half at the pixel centre, so image and mask agree
exactly; shading, texture noise and film grain make the images not flat.

Each part is sampled independently (:func:`sample_params`), so any part can be
edited without the others, which is what the editing benchmarks rely on.
This module holds the parameters and their sampling (numpy draws, seeded per
item); the drawing is the batched torch renderer in ``render.py`` (CPU or CUDA).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Optional

import torch

import numpy as np

from core.data.palette import NUM_CLASSES

from core.data.render import GLASSES_SHAPES, HAIR_STYLES, HostBatch, RenderedFaces, prepare_batch, render_batch


@dataclass(frozen=True)
class FaceParams:
    """Everything that defines one face. Coordinates are in [-1, 1], y pointing down."""

    # pose
    cx: float = 0.0
    cy: float = 0.05
    scale: float = 1.0
    roll: float = 0.0  # radians
    yaw: float = 0.0  # shifts inner features sideways, [-1, 1]
    # face
    face_w: float = 0.52
    face_h: float = 0.66
    jaw: float = 0.3  # 0 = oval, 1 = narrow chin
    skin: tuple[float, float, float] = (0.85, 0.68, 0.55)
    neck_w: float = 0.26
    # hair
    hair_style: str = "short"
    hair_len: float = 0.5  # 0..1, how far down the sides the hair reaches
    hairline: float = -0.35  # y of the hairline at the centre
    hair_color: tuple[float, float, float] = (0.25, 0.15, 0.08)
    part: float = 0.0  # side-part offset
    # eyes
    eye_y: float = -0.06
    eye_dx: float = 0.22
    eye_w: float = 0.11
    eye_open: float = 0.55  # height / width
    iris_color: tuple[float, float, float] = (0.3, 0.45, 0.7)
    gaze: float = 0.0
    # brows
    brow_gap: float = 0.12  # above the eye centre
    brow_angle: float = 0.0  # radians, positive = outer end up
    brow_thick: float = 0.045
    brow_len: float = 0.14
    brow_curve: float = 0.8
    # nose
    nose_len: float = 0.2
    nose_w: float = 0.09
    # mouth
    mouth_y: float = 0.34
    mouth_w: float = 0.17
    smile: float = 0.0  # >0 corners up
    lip_t: float = 0.035
    mouth_open: float = 0.0  # half-height of the opening; 0 = closed
    lip_color: tuple[float, float, float] = (0.75, 0.35, 0.35)
    # glasses
    glasses: bool = False
    glasses_shape: str = "round"
    glasses_size: float = 1.0
    glasses_color: tuple[float, float, float] = (0.1, 0.1, 0.1)
    lens_tint: float = 0.25
    # background and light
    bg_a: tuple[float, float, float] = (0.4, 0.5, 0.6)
    bg_b: tuple[float, float, float] = (0.2, 0.25, 0.3)
    bg_angle: float = 0.0
    light: tuple[float, float] = (-0.4, -0.5)
    texture_seed: int = 0

    def replace(self, **changes) -> "FaceParams":
        """A copy with some fields changed (how scripted edits describe a change)."""
        return dataclasses.replace(self, **changes)


def _rand_color(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi, size=3))


def sample_params(rng: np.random.Generator) -> FaceParams:
    """Draw every part independently."""
    u = rng.uniform
    tone = u(0.0, 1.0)
    skin = (0.95 - 0.55 * tone, 0.78 - 0.5 * tone, 0.66 - 0.45 * tone)
    skin = tuple(float(np.clip(c + u(-0.04, 0.04), 0, 1)) for c in skin)
    hair_style = str(rng.choice(HAIR_STYLES, p=[0.1, 0.3, 0.3, 0.15, 0.15]))
    hair_base = rng.choice(4)
    hair_color = [
        (0.08, 0.06, 0.05),
        (0.35, 0.2, 0.1),
        (0.75, 0.6, 0.35),
        (0.6, 0.25, 0.1),
    ][hair_base]
    hair_color = tuple(float(np.clip(c * u(0.8, 1.2), 0, 1)) for c in hair_color)
    eye_w = u(0.09, 0.14)
    open_mouth = u() < 0.35
    glasses = u() < 0.3
    return FaceParams(
        cx=u(-0.06, 0.06),
        cy=u(0.0, 0.1),
        scale=u(0.92, 1.08),
        roll=u(-0.12, 0.12),
        yaw=u(-1.0, 1.0),
        face_w=u(0.46, 0.58),
        face_h=u(0.6, 0.72),
        jaw=u(0.0, 0.6),
        skin=skin,
        neck_w=u(0.2, 0.3),
        hair_style=hair_style,
        hair_len=u(0.0, 1.0),
        hairline=u(-0.46, -0.3),
        hair_color=hair_color,
        part=u(-0.2, 0.2),
        eye_y=u(-0.12, -0.02),
        eye_dx=u(0.18, 0.25),
        eye_w=eye_w,
        eye_open=u(0.25, 0.8),
        iris_color=_rand_color(rng, 0.1, 0.7),
        gaze=u(-0.3, 0.3),
        brow_gap=u(0.09, 0.15),
        brow_angle=u(-0.35, 0.35),
        brow_thick=u(0.035, 0.06),
        brow_len=u(0.11, 0.17),
        brow_curve=u(0.0, 1.5),
        nose_len=u(0.14, 0.26),
        nose_w=u(0.06, 0.12),
        mouth_y=u(0.3, 0.4),
        mouth_w=u(0.12, 0.22),
        smile=u(-0.04, 0.08),
        lip_t=u(0.025, 0.045),
        mouth_open=u(0.025, 0.07) if open_mouth else 0.0,
        lip_color=(float(u(0.55, 0.85)), float(u(0.2, 0.4)), float(u(0.25, 0.4))),
        glasses=bool(glasses),
        glasses_shape=str(rng.choice(GLASSES_SHAPES)),
        glasses_size=u(0.9, 1.2),
        glasses_color=_rand_color(rng, 0.0, 0.5),
        lens_tint=u(0.1, 0.5),
        bg_a=_rand_color(rng, 0.1, 0.9),
        bg_b=_rand_color(rng, 0.1, 0.9),
        bg_angle=u(0, 2 * np.pi),
        light=(float(u(-0.6, 0.6)), float(u(-0.8, -0.2))),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def render_face(p: FaceParams, resolution: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render one face with the torch renderer on the CPU (film grain from its ``texture_seed``).

    Returns (image uint8 [H, W, 3], mask uint8 [H, W] of class ids).
    """
    r = render_batch([p], resolution)
    return r.image[0].permute(1, 2, 0).numpy(), r.mask[0].numpy()


class ProceduralFaces:
    """An infinite, seeded stream of (image, mask) pairs.

    Item ``i`` is a pure function of (seed, i, resolution), so any image can be
    regenerated exactly and disjoint index ranges give disjoint sets.
    """

    def __init__(self, resolution: int = 64, seed: int = 0):
        self.resolution = int(resolution)
        self.seed = int(seed)

    def params(self, index: int) -> FaceParams:
        return sample_params(np.random.default_rng([self.seed, int(index)]))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return render_face(self.params(index), self.resolution)

    def host_batch(self, start: int, n: int, pin: bool = False) -> HostBatch:
        """Items ``start .. start + n - 1`` sampled and gathered on the host (:func:`render.prepare_batch`), ready
        for :meth:`render` elsewhere or later."""
        return prepare_batch([self.params(i) for i in range(start, start + n)], self.resolution, pin)

    def render(self, start: int, n: int, device: torch.device | str = "cpu",
               grain: Optional[torch.Generator] = None) -> RenderedFaces:  # fmt: skip
        """Items ``start .. start + n - 1`` rendered together on ``device`` (see :func:`render.render_batch`:
        ``grain=None`` reproduces ``self[i]`` exactly, a generator draws the film grain on the device)."""
        return render_batch(self.host_batch(start, n), self.resolution, device, grain)

    def batch(self, start: int, n: int, device: torch.device | str = "cpu",
              grain: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Images [n, 3, H, W] float in [-1, 1] and masks [n, H, W] int64, as torch tensors on ``device``."""
        return self.render(start, n, device, grain).model_input()

    def iter_batches(self, batch_size: int, start: int = 0) -> Iterator:
        i = start
        while True:
            yield self.batch(i, batch_size)
            i += batch_size


assert NUM_CLASSES == 12
