"""The numpy renderer of the procedural faces, kept as the reference the torch renderer is tested against.

This is the renderer every shipped model's training data came from until the torch renderer
(``render.py``) replaced it (#26). Nothing in core/ or app/ uses it: ``tests/core/test_render.py`` compares the
torch renderer with it (pixel agreement for the same parameters, per-class statistics over thousands of faces),
and ``benchmarks/bench_train.py`` times it as the old training data path. Keep it unchanged: it defines the
distribution the torch renderer must reproduce.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from core.data.faces import FaceParams
from core.data.palette import CLASS_INDEX


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
