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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from core.data.palette import CLASS_INDEX, NUM_CLASSES

HAIR_STYLES = ("none", "short", "long", "bangs", "side")
GLASSES_SHAPES = ("round", "rect", "cat")


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


# -- shape helpers ---------------------------------------------------------------------------------


class _Canvas:
    """Pixel grid in face coordinates plus the layered compositing state."""

    def __init__(self, res: int, p: FaceParams):
        self.res = res
        c = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
        gx, gy = np.meshgrid(c, c)
        # undo the pose: image coords -> face coords
        x = (gx - p.cx) / p.scale
        y = (gy - p.cy) / p.scale
        cr, sr = np.cos(p.roll), np.sin(p.roll)
        self.x = (cr * x + sr * y).astype(np.float32)
        self.y = (-sr * x + cr * y).astype(np.float32)
        self.gx, self.gy = gx, gy
        self.px = res / 2 * p.scale  # pixels per face unit
        self.image = np.zeros((res, res, 3), dtype=np.float32)
        self.mask = np.zeros((res, res), dtype=np.uint8)

    def coverage(self, f: np.ndarray) -> np.ndarray:
        """Implicit f (<0 inside) -> anti-aliased coverage in [0, 1]."""
        gy, gx = np.gradient(f)
        grad = np.sqrt(gx * gx + gy * gy) + 1e-6
        return np.clip(0.5 - f / grad, 0.0, 1.0)

    def paint(self, cov: np.ndarray, color: np.ndarray, label: Optional[int]) -> None:
        """Composite ``color`` ([H, W, 3] or [3]) with coverage; claim the label where cov > 0.5."""
        a = cov[..., None]
        self.image = self.image * (1 - a) + np.asarray(color, dtype=np.float32) * a
        if label is not None:
            self.mask[cov > 0.5] = label


def _ellipse(x, y, cx, cy, a, b, angle=0.0):
    u, v = x - cx, y - cy
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        u, v = c * u + s * v, -s * u + c * v
    return np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0


def _smooth_noise(rng: np.random.Generator, res: int, cells: int) -> np.ndarray:
    """Value noise: a random grid bilinearly upsampled to res x res, in [-1, 1]."""
    grid = rng.uniform(-1, 1, size=(cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, res, dtype=np.float32)
    i0 = np.minimum(t.astype(np.int64), cells - 1)
    f = t - i0
    f = f * f * (3 - 2 * f)
    rows = grid[i0] * (1 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def render_face(p: FaceParams, resolution: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render one face.

    Returns (image uint8 [H, W, 3], mask uint8 [H, W] of class ids).
    """
    if resolution < 16:
        raise ValueError(f"resolution must be >= 16, got {resolution}")
    cv = _Canvas(resolution, p)
    rng = np.random.default_rng(p.texture_seed)
    x, y, res = cv.x, cv.y, resolution
    low = _smooth_noise(rng, res, 6)
    mid = _smooth_noise(rng, res, 16)
    lx, ly = p.light

    # background: two-colour gradient with soft blobs
    d = np.cos(p.bg_angle) * cv.gx + np.sin(p.bg_angle) * cv.gy
    t = np.clip(d * 0.5 + 0.5, 0, 1)[..., None]
    bg = np.asarray(p.bg_a) * (1 - t) + np.asarray(p.bg_b) * t
    bg = bg * (1 + 0.12 * low[..., None])
    cv.paint(np.ones((res, res), np.float32), bg, CLASS_INDEX["background"])

    hair = np.asarray(p.hair_color, dtype=np.float32)
    strands = _smooth_noise(rng, res, max(8, res // 3))
    hair_tex = hair * (1 + 0.25 * strands[..., None] + 0.1 * mid[..., None])

    # long hair behind the head and shoulders
    if p.hair_style in ("long", "side") and p.hair_len > 0.3:
        bottom = 0.2 + 0.9 * p.hair_len
        w = p.face_w * 1.25
        f_back = np.maximum(np.abs(x) - w, y - bottom) / 1.0
        top = _ellipse(x, y, 0, -0.1, p.face_w * 1.25, p.face_h * 1.05)
        f_back = np.minimum(np.maximum(f_back, -y - 0.1), top)
        shade = (0.75 + 0.15 * np.clip(-y, -1, 1))[..., None]
        cv.paint(cv.coverage(f_back), hair_tex * shade, CLASS_INDEX["hair"])

    # neck (with a flare into the shoulders)
    flare = np.clip(y - 0.75, 0, None) * 0.9
    f_neck = np.maximum(np.abs(x) - (p.neck_w + flare), 0.3 - y)
    neck_col = np.asarray(p.skin) * (0.78 + 0.08 * low[..., None])
    cv.paint(cv.coverage(f_neck), neck_col, CLASS_INDEX["neck"])

    # ears (skin)
    for side in (-1, 1):
        f_ear = _ellipse(x, y, side * p.face_w * 0.98, -0.02, 0.07, 0.13)
        cv.paint(cv.coverage(f_ear), np.asarray(p.skin) * 0.88, CLASS_INDEX["skin"])

    # face: an ellipse whose lower half narrows towards the chin
    narrow = 1.0 - p.jaw * 0.35 * np.clip(y / p.face_h, 0, 1) ** 2
    f_face = np.sqrt((x / (p.face_w * narrow)) ** 2 + (y / p.face_h) ** 2) - 1.0
    nz = np.sqrt(np.clip(1 - (x / p.face_w) ** 2 - (y / p.face_h) ** 2, 0, 1))
    lambert = np.clip(0.55 + 0.45 * (-(lx * x / p.face_w) - ly * (y / p.face_h) * 0.5 + nz * 0.6), 0.35, 1.1)
    skin = np.asarray(p.skin, np.float32) * (lambert * (1 + 0.05 * mid))[..., None]
    cv.paint(cv.coverage(f_face), skin, CLASS_INDEX["skin"])

    # hair on top of the head
    if p.hair_style != "none":
        outer = _ellipse(x, y, 0, -0.08, p.face_w * 1.12, p.face_h * 1.08)
        line = p.hairline
        if p.hair_style == "bangs":
            line = p.hairline + 0.12 + 0.03 * np.cos(x * 40)
        curve = line + 0.9 * (x - (p.part if p.hair_style == "side" else 0)) ** 2
        if p.hair_style == "side":
            curve = curve - 0.12 * np.tanh((x - p.part) * 8)
        f_top = np.maximum(outer, y - curve)
        if p.hair_style in ("long", "side"):
            # locks that fall beside the face
            reach = -0.1 + 0.8 * p.hair_len
            lock = np.maximum(np.abs(x) - p.face_w * 1.12, y - reach)
            lock = np.maximum(lock, p.face_w * 0.82 - np.abs(x))
            lock = np.maximum(lock, p.hairline - 0.05 - y)
            f_top = np.minimum(f_top, lock)
        elif p.hair_style == "short":
            side = np.maximum(np.abs(x) - p.face_w * 1.06, y + 0.05 - 0.25 * p.hair_len)
            side = np.maximum(np.maximum(side, p.face_w * 0.9 - np.abs(x)), p.hairline - 0.05 - y)
            f_top = np.minimum(f_top, side)
        shade = (0.85 + 0.25 * np.clip(-(lx * x + ly * y), -1, 1))[..., None]
        cv.paint(cv.coverage(f_top), hair_tex * shade, CLASS_INDEX["hair"])

    # inner features move sideways with yaw
    fx = p.yaw * 0.06
    dark = np.asarray(p.skin, np.float32) * 0.55

    # eyes: almond shapes (intersection of two circles) with sclera, iris and pupil
    eye_labels = (CLASS_INDEX["left_eye"], CLASS_INDEX["right_eye"])
    for side, label in zip((-1, 1), eye_labels):
        ex, ey = fx + side * p.eye_dx, p.eye_y
        a, b = p.eye_w, p.eye_w * p.eye_open * 0.5
        # almond: two circular arcs through the corners (ex +- a, ey) with sagitta b
        r = (a * a + b * b) / (2 * b)
        f_up = np.sqrt((x - ex) ** 2 + (y - (ey - b + r)) ** 2) - r
        f_lo = np.sqrt((x - ex) ** 2 + (y - (ey + b - r)) ** 2) - r
        f_eye = np.maximum(f_up, f_lo)
        cov = cv.coverage(f_eye)
        # eye socket shadow around it (skin, no label change)
        sock = cv.coverage(_ellipse(x, y, ex, ey, a * 1.35, a * 0.75))
        cv.paint(sock * 0.25, dark, None)
        ix = ex + p.gaze * a * 0.5
        iris = cv.coverage(_ellipse(x, y, ix, ey, a * 0.45, a * 0.45))
        pupil = cv.coverage(_ellipse(x, y, ix, ey, a * 0.2, a * 0.2))
        col = np.array([0.95, 0.93, 0.9], np.float32) * (1 - iris[..., None]) + np.asarray(p.iris_color) * iris[..., None]
        col = col * (1 - pupil[..., None]) + 0.03 * pupil[..., None]
        # upper lid shadow
        col = col * (0.75 + 0.25 * np.clip((y - (ey - b)) / (2 * b + 1e-6), 0, 1))[..., None]
        cv.paint(cov, col, label)

    # brows: curved bars above the eyes
    brow_labels = (CLASS_INDEX["left_brow"], CLASS_INDEX["right_brow"])
    for side, label in zip((-1, 1), brow_labels):
        bx, by = fx + side * p.eye_dx, p.eye_y - p.brow_gap - 0.03
        ang = -side * p.brow_angle
        c, s = np.cos(ang), np.sin(ang)
        u, v = c * (x - bx) + s * (y - by), -s * (x - bx) + c * (y - by)
        v = v + p.brow_curve * (u * u) * 2.0
        f_brow = np.sqrt((u / p.brow_len) ** 2 + (v / (p.brow_thick * 0.5)) ** 2 * (1 + 0 * u)) - 1.0
        cv.paint(cv.coverage(f_brow), hair_tex * 0.8 if p.hair_style != "none" else dark * 0.6, label)

    # nose: a rounded wedge with nostrils and a highlight
    ny0 = p.eye_y + 0.02
    nx = fx * 1.3
    tip_y = ny0 + p.nose_len
    t_n = np.clip((y - ny0) / max(p.nose_len, 1e-3), 0, 1)
    half_w = p.nose_w * (0.35 + 0.65 * t_n**1.5)
    f_nose = np.maximum(np.maximum(np.abs(x - nx) - half_w, ny0 - y), y - tip_y)
    f_nose = np.minimum(f_nose, _ellipse(x, y, nx, tip_y - 0.01, p.nose_w * 1.05, p.nose_w * 0.55))
    ncol = np.asarray(p.skin, np.float32) * (0.8 + 0.25 * np.clip(-(x - nx) * lx * 8, -1, 1) * 0.5)[..., None]
    for side in (-1, 1):
        nos = cv.coverage(_ellipse(x, y, nx + side * p.nose_w * 0.45, tip_y, p.nose_w * 0.28, p.nose_w * 0.17))
        ncol = ncol * (1 - 0.7 * nos[..., None])
    cv.paint(cv.coverage(f_nose), ncol, CLASS_INDEX["nose"])

    # mouth: lips around a centre line that curves up at the corners when smiling
    mx, my = fx * 1.2, p.mouth_y
    xn = np.clip((x - mx) / p.mouth_w, -1.5, 1.5)
    env = np.sqrt(np.clip(1 - xn**2, 0, 1))
    centre = my + p.smile * (1 - xn**2) - p.smile * 0.3
    dist = y - centre
    outer_half = p.lip_t * (0.35 + 0.65 * env) + p.mouth_open * env
    f_lips = np.maximum(np.abs(dist) - outer_half, np.abs(xn) - 1)
    lip_col = np.asarray(p.lip_color, np.float32) * (0.85 + 0.2 * np.clip(-dist / (p.lip_t + 1e-3), -1, 1))[..., None]
    cv.paint(cv.coverage(f_lips), lip_col, CLASS_INDEX["lips"])
    if p.mouth_open > 0:
        f_open = np.maximum(np.abs(dist) - p.mouth_open * env * 0.9, np.abs(xn) - 0.85)
        gap = np.exp(-(((dist - p.mouth_open * 0.15) / (p.mouth_open * 0.25 + 1e-3)) ** 2))
        teeth = np.array([0.95, 0.93, 0.86], np.float32) * (1 - 0.75 * gap)[..., None]
        teeth = teeth * (0.7 + 0.3 * env)[..., None]
        cv.paint(cv.coverage(f_open), teeth, CLASS_INDEX["teeth"])

    # glasses: frames + tinted lenses (both labelled glasses), bridge and temples
    if p.glasses:
        gcol = np.asarray(p.glasses_color, np.float32)
        lens_f = []
        for side in (-1, 1):
            ex, ey = fx + side * p.eye_dx, p.eye_y
            rw, rh = p.eye_w * 1.55 * p.glasses_size, p.eye_w * 1.15 * p.glasses_size
            if p.glasses_shape == "round":
                f = _ellipse(x, y, ex, ey, rw, rh)
            elif p.glasses_shape == "rect":
                q = 4.0
                f = (np.abs((x - ex) / rw) ** q + np.abs((y - ey) / rh) ** q) ** (1 / q) - 1
            else:  # cat-eye: wider and lifted at the outer side
                f = _ellipse(x, y, ex, ey - 0.01, rw * 1.05, rh * 0.85, angle=-side * 0.25)
            lens_f.append(f)
        lens = np.minimum(*lens_f)
        frame_t = 0.18
        lens_cov = cv.coverage(lens)
        tint = np.asarray(p.glasses_color, np.float32) * 0.5 + 0.5
        cv.image = cv.image * (1 - p.lens_tint * lens_cov[..., None]) + tint * p.lens_tint * lens_cov[..., None]
        # frame ring: |f| small, in the shape's own units
        frame = np.abs(lens + frame_t * 0.5) - frame_t * 0.5
        bridge_y = p.eye_y - p.eye_w * 0.3
        bridge = np.maximum(np.abs(x - fx) - p.eye_dx * 0.6, np.abs(y - bridge_y) - 0.018)
        temples = np.maximum(np.abs(y - (p.eye_y - p.eye_w * 0.6)) - 0.016, p.eye_dx + p.eye_w * 1.5 - np.abs(x - fx))
        temples = np.maximum(temples, np.abs(x) - p.face_w * 1.02)
        cov_frames = np.maximum(cv.coverage(frame), np.maximum(cv.coverage(bridge), cv.coverage(temples)))
        cv.paint(cov_frames, gcol, None)
        cv.mask[np.maximum(lens_cov, cov_frames) > 0.5] = CLASS_INDEX["glasses"]

    # film grain and clipping
    img = cv.image + rng.normal(0, 0.015, size=cv.image.shape).astype(np.float32)
    img = np.clip(img, 0, 1)
    return (img * 255 + 0.5).astype(np.uint8), cv.mask


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

    def batch(self, start: int, n: int):
        """Images [n, 3, H, W] float in [-1, 1] and masks [n, H, W] int64, as torch tensors."""
        import torch

        imgs, masks = zip(*(self[i] for i in range(start, start + n)))
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        m = torch.from_numpy(np.stack(masks).astype(np.int64))
        return x, m

    def iter_batches(self, batch_size: int, start: int = 0) -> Iterator:
        i = start
        while True:
            yield self.batch(i, batch_size)
            i += batch_size


assert NUM_CLASSES == 12
