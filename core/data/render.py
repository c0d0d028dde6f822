"""The batched torch renderer of the procedural faces (``faces.py``), the same code on CPU and CUDA.

It draws what the numpy renderer it replaced drew (kept as the test reference in ``faces_numpy.py``): the same
implicit shapes ``f(x, y) < 0`` in the same order, coverage ``clip(0.5 - f / |grad f|, 0, 1)`` with
``np.gradient``'s finite differences, and the mask is the topmost labelled shape whose coverage exceeds one half
at the pixel centre, so image and mask agree exactly. The parameters come from :func:`faces.sample_params`
(numpy draws, unchanged), and so does the texture noise: the value-noise grids are drawn from each face's
``texture_seed`` exactly as before. With ``grain=None`` the film grain is too, so an image equals the numpy
renderer's up to float32 rounding; with a ``torch.Generator`` the grain (the one per-pixel draw) is drawn on the
device instead, the same N(0, 0.015) per pixel, which is what training uses: nothing per pixel crosses from
the host.

The host's share (gathering the parameters, drawing the noise grids) is :func:`prepare_batch`, a
:class:`HostBatch` that can be made ahead, in another thread, while the device draws the previous batch: training's
device path does so (``core/data/prefetch.py``, docs/results_train.md).

Per-face branches (hair style, glasses, open mouth) are known on the host from the parameters, so they are
handled by index sets built on the host: no device sync. Shapes: per-pixel fields are ``[B, 1, H, W]``,
colours ``[B, 3, 1, 1]``, images ``[B, 3, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from core.data.palette import CLASS_INDEX

HAIR_STYLES = ("none", "short", "long", "bangs", "side")
GLASSES_SHAPES = ("round", "rect", "cat")
GRAIN_STD = 0.015
# a CPU batch is drawn in chunks of this many pixels, which stay in the cache (docs/results_train.md)
CPU_CHUNK_PIXELS = 64 * 64 * 64

# scalar fields of FaceParams carried to the device, in this order
_SCALARS = ("cx", "cy", "scale", "roll", "yaw", "face_w", "face_h", "jaw", "neck_w", "hair_len", "hairline", "part",
            "eye_y", "eye_dx", "eye_w", "eye_open", "gaze", "brow_gap", "brow_angle", "brow_thick", "brow_len",
            "brow_curve", "nose_len", "nose_w", "mouth_y", "mouth_w", "smile", "lip_t", "mouth_open",
            "glasses_size", "lens_tint", "bg_angle")  # fmt: skip
_COLOURS = ("skin", "hair_color", "iris_color", "lip_color", "glasses_color", "bg_a", "bg_b", "light")


@dataclass
class RenderedFaces:
    """``image`` uint8 [B, 3, H, W] and ``mask`` uint8 [B, H, W] of class ids, on the rendering device."""

    image: torch.Tensor
    mask: torch.Tensor

    def model_input(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images float [B, 3, H, W] in [-1, 1] and masks int64 [B, H, W] (what models and losses take)."""
        return self.image.float().div_(127.5).sub_(1.0), self.mask.long()


@dataclass
class HostBatch:
    """A batch's parameters gathered on the host, ready to cross to the device (:func:`prepare_batch`).

    ``values`` float32 [B, K]: the ``_SCALARS`` then the ``_COLOURS``; ``grids`` float32 [B, 7, 7], [B, 17, 17] and
    [B, s + 1, s + 1]: each face's value-noise grids from its ``texture_seed``; ``grain_states``: each texture
    generator's state after its grids (where the film grain is drawn from when ``grain`` is None). All of it is host
    work, so it can be done ahead, in another thread, while the device draws the previous batch.
    """

    params: list
    resolution: int
    values: torch.Tensor
    grids: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    grain_states: list[dict]

    def __len__(self) -> int:
        return len(self.params)

    def part(self, i: int, j: int) -> "HostBatch":
        """Faces ``i .. j - 1`` (a CPU chunk)."""
        return HostBatch(self.params[i:j], self.resolution, self.values[i:j], tuple(g[i:j] for g in self.grids),
                         self.grain_states[i:j])  # fmt: skip


def prepare_batch(params: Sequence, resolution: int, pin: bool = False) -> HostBatch:
    """The host's share of rendering ``params`` (``FaceParams``): gather them and draw their noise grids.
    ``pin``: in pinned memory, so that the copy to a CUDA device does not wait for the host."""
    vals = [[getattr(p, k) for k in _SCALARS] for p in params]
    cols = [[c for k in _COLOURS for c in (getattr(p, k) if k != "light" else (*p.light, 0.0))] for p in params]
    values = torch.cat([torch.tensor(vals, dtype=torch.float32), torch.tensor(cols, dtype=torch.float32)], 1)
    grids, rngs = _noise_grids(params, int(resolution))
    grids = tuple(torch.from_numpy(g.astype(np.float32)) for g in grids)
    if pin:
        values, grids = values.pin_memory(), tuple(g.pin_memory() for g in grids)
    return HostBatch(list(params), int(resolution), values, grids, [r.bit_generator.state for r in rngs])


class _P:
    """The batch's parameters as device tensors: scalars [B, 1, 1, 1], colours [B, 3, 1, 1]."""

    def __init__(self, hb: HostBatch, device: torch.device):
        host = hb.values
        dev = host.to(device, non_blocking=True)[:, :, None, None]  # [B, K, 1, 1]
        for i, k in enumerate(_SCALARS):
            setattr(self, k, dev[:, i : i + 1])
        o = len(_SCALARS)
        for j, k in enumerate(_COLOURS):
            setattr(self, k, dev[:, o + 3 * j : o + 3 * j + 3])
        self.lx, self.ly = self.light[:, 0:1], self.light[:, 1:2]
        self.host = {k: host[:, i].double().numpy() for i, k in enumerate(_SCALARS)}  # [B] each, for row bands


def _coverage(f: torch.Tensor) -> torch.Tensor:
    """Implicit f [B, 1, H, W] (<0 inside) -> anti-aliased coverage in [0, 1] (``np.gradient``'s differences)."""
    gy = torch.empty_like(f)
    gy[..., 1:-1, :] = (f[..., 2:, :] - f[..., :-2, :]) / 2.0
    gy[..., 0, :] = f[..., 1, :] - f[..., 0, :]
    gy[..., -1, :] = f[..., -1, :] - f[..., -2, :]
    gx = torch.empty_like(f)
    gx[..., 1:-1] = (f[..., 2:] - f[..., :-2]) / 2.0
    gx[..., 0] = f[..., 1] - f[..., 0]
    gx[..., -1] = f[..., -1] - f[..., -2]
    grad = torch.sqrt(gx * gx + gy * gy) + 1e-6
    return torch.clamp(0.5 - f / grad, 0.0, 1.0)


def _ellipse(x, y, cx, cy, a, b, angle: Optional[float] = None):
    u, v = x - cx, y - cy
    if angle:
        c, s = float(np.cos(angle)), float(np.sin(angle))
        u, v = c * u + s * v, -s * u + c * v
    return torch.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0


def _noise_grids(params: Sequence, resolution: int) -> tuple[list[np.ndarray], list[np.random.Generator]]:
    """The value-noise grids each face's ``texture_seed`` gives (the numpy renderer's draws, in its order)."""
    strands = max(8, resolution // 3)
    low, mid, st, rngs = [], [], [], []
    for p in params:
        rng = np.random.default_rng(p.texture_seed)
        low.append(rng.uniform(-1, 1, size=(7, 7)))
        mid.append(rng.uniform(-1, 1, size=(17, 17)))
        st.append(rng.uniform(-1, 1, size=(strands + 1, strands + 1)))
        rngs.append(rng)
    return [np.stack(low), np.stack(mid), np.stack(st)], rngs


def _generator(state: dict) -> np.random.Generator:
    """A numpy generator in ``state`` (a HostBatch renders alike however often it is rendered)."""
    bg = np.random.PCG64(0)
    bg.state = state
    return np.random.Generator(bg)


def _upsample(grid: torch.Tensor, res: int) -> torch.Tensor:
    """Value noise: grids [B, c+1, c+1] bilinearly (smoothstep) upsampled to [B, 1, res, res]."""
    cells = grid.shape[-1] - 1
    t = torch.linspace(0, cells, res, dtype=torch.float32, device=grid.device)
    i0 = torch.clamp(t.long(), max=cells - 1)
    f = t - i0
    f = f * f * (3 - 2 * f)
    rows = grid[:, i0] * (1 - f)[:, None] + grid[:, i0 + 1] * f[:, None]  # [B, res, c+1]
    return (rows[:, :, i0] * (1 - f) + rows[:, :, i0 + 1] * f)[:, None]


class _Canvas:
    """The pixel grid in face coordinates (per face) plus the compositing state."""

    def __init__(self, res: int, P: _P, device):
        c = (torch.arange(res, dtype=torch.float32, device=device) + 0.5) / res * 2 - 1
        self.gx, self.gy = c[None, None, None, :], c[None, None, :, None]  # [1, 1, 1, W], [1, 1, H, 1]
        x = (self.gx - P.cx) / P.scale
        y = (self.gy - P.cy) / P.scale
        cr, sr = torch.cos(P.roll), torch.sin(P.roll)
        self.x, self.y = cr * x + sr * y, -sr * x + cr * y  # [B, 1, H, W]
        self.image: torch.Tensor = torch.empty(0)
        self.mask: torch.Tensor = torch.empty(0)

    def rows(self, r: slice) -> "_Canvas":
        """A canvas over rows ``r`` only (features confined to a band of rows need not be drawn elsewhere)."""
        sub = _Canvas.__new__(_Canvas)
        sub.x, sub.y = self.x[..., r, :], self.y[..., r, :]
        sub.image, sub.mask = self.image[..., r, :].clone(), self.mask[..., r, :].clone()
        return sub

    def put(self, sub: "_Canvas", r: slice) -> None:
        self.image[..., r, :] = sub.image
        self.mask[..., r, :] = sub.mask

    def paint(self, cov, color, label: Optional[int], idx: Optional[torch.Tensor] = None) -> None:
        """Composite ``color`` with coverage; claim ``label`` where cov > 0.5. ``idx``: only those faces."""
        if idx is None:
            self.image = self.image * (1 - cov) + color * cov
            if label is not None:
                self.mask = torch.where(cov > 0.5, label, self.mask)
        else:
            self.image[idx] = self.image[idx] * (1 - cov) + color * cov
            if label is not None:
                self.mask[idx] = torch.where(cov > 0.5, label, self.mask[idx])


def _band(P: _P, res: int, lo: np.ndarray, hi: np.ndarray, xmax: np.ndarray, margin: int = 3) -> slice:
    """The image rows that can hold a feature lying within face y in [lo, hi] and |x| <= xmax (each [B]), for
    every face of the batch, plus ``margin`` pixels: beyond them its coverage is 0 however the gradient at the
    band's edge is taken (coverage needs a signed distance under half a pixel), so the image is as if drawn
    everywhere. Image y = cy + scale * (sin(roll) x + cos(roll) y)."""
    h = P.host
    c, s = np.cos(h["roll"]), np.abs(np.sin(h["roll"]))
    if (c <= 0.5).any() or (h["scale"] <= 0).any():  # far outside the sampled poses: draw the whole frame
        return slice(0, res)
    top = h["cy"] + h["scale"] * (c * lo - s * np.abs(xmax))
    bottom = h["cy"] + h["scale"] * (c * hi + s * np.abs(xmax))
    r0 = int(np.floor((top.min() + 1) * res / 2 - 0.5)) - margin
    r1 = int(np.ceil((bottom.max() + 1) * res / 2 - 0.5)) + margin + 1
    return slice(max(0, r0), max(min(res, r1), max(0, r0) + 2))


def _index(flags: list[bool], device) -> Optional[torch.Tensor]:
    """Host-known face indices (None when empty)."""
    ids = [i for i, f in enumerate(flags) if f]
    return torch.tensor(ids, dtype=torch.long).to(device, non_blocking=True) if ids else None


def render_batch(params: Sequence | HostBatch, resolution: int, device: torch.device | str = "cpu",
                 grain: Optional[torch.Generator] = None) -> RenderedFaces:  # fmt: skip
    """Render faces (``FaceParams``, or a :class:`HostBatch` of them prepared ahead) at ``resolution`` on ``device``.

    ``grain``: None draws the film grain from each face's ``texture_seed`` (exactly the numpy renderer's draws,
    on the host); a ``torch.Generator`` on ``device`` draws it there (same distribution, nothing per pixel
    from the host).
    """
    if resolution < 16:
        raise ValueError(f"resolution must be >= 16, got {resolution}")
    if len(params) == 0:
        raise ValueError("render_batch needs at least one FaceParams")
    if isinstance(params, HostBatch) and params.resolution != resolution:
        raise ValueError(f"a HostBatch prepared at {params.resolution} px cannot be rendered at {resolution} px")
    device = torch.device(device)
    hb = params if isinstance(params, HostBatch) else prepare_batch(params, resolution)
    chunk = max(1, CPU_CHUNK_PIXELS // (resolution * resolution))
    if device.type == "cpu" and len(hb) > chunk:  # in chunks that stay in the cache (bench_train, results_train.md)
        parts = [_render(hb.part(i, i + chunk), device, grain) for i in range(0, len(hb), chunk)]
        return RenderedFaces(torch.cat([r.image for r in parts]), torch.cat([r.mask for r in parts]))
    return _render(hb, device, grain)


def _render(hb: HostBatch, device: torch.device, grain: Optional[torch.Generator]) -> RenderedFaces:
    params, res, n = hb.params, hb.resolution, len(hb)
    P = _P(hb, device)
    low, mid, strands = (_upsample(g.to(device, non_blocking=True), res) for g in hb.grids)
    cv = _Canvas(res, P, device)
    x, y = cv.x, cv.y
    lx, ly = P.lx, P.ly
    ax = x.abs()

    # background: two-colour gradient with soft blobs
    d = torch.cos(P.bg_angle) * cv.gx + torch.sin(P.bg_angle) * cv.gy
    t = torch.clamp(d * 0.5 + 0.5, 0, 1)
    cv.image = (P.bg_a * (1 - t) + P.bg_b * t) * (1 + 0.12 * low)
    cv.mask = torch.full((n, 1, res, res), CLASS_INDEX["background"], dtype=torch.uint8, device=device)

    hair_tex = P.hair_color * (1 + 0.25 * strands + 0.1 * mid)
    styles = [p.hair_style for p in params]

    # long hair behind the head and shoulders
    back = _index([s in ("long", "side") and p.hair_len > 0.3 for s, p in zip(styles, params)], device)
    if back is not None:
        xs, ys, fw, fh = x[back], y[back], P.face_w[back], P.face_h[back]
        f_back = torch.maximum(xs.abs() - fw * 1.25, ys - (0.2 + 0.9 * P.hair_len[back]))
        top = _ellipse(xs, ys, 0, -0.1, fw * 1.25, fh * 1.05)
        f_back = torch.minimum(torch.maximum(f_back, -ys - 0.1), top)
        shade = 0.75 + 0.15 * torch.clamp(-ys, -1, 1)
        cv.paint(_coverage(f_back), hair_tex[back] * shade, CLASS_INDEX["hair"], back)

    # neck (with a flare into the shoulders)
    flare = torch.clamp(y - 0.75, min=0) * 0.9
    f_neck = torch.maximum(ax - (P.neck_w + flare), 0.3 - y)
    cv.paint(_coverage(f_neck), P.skin * (0.78 + 0.08 * low), CLASS_INDEX["neck"])

    # ears (skin)
    for side in (-1, 1):
        f_ear = _ellipse(x, y, side * P.face_w * 0.98, -0.02, 0.07, 0.13)
        cv.paint(_coverage(f_ear), P.skin * 0.88, CLASS_INDEX["skin"])

    # face: an ellipse whose lower half narrows towards the chin
    narrow = 1.0 - P.jaw * 0.35 * torch.clamp(y / P.face_h, 0, 1) ** 2
    f_face = torch.sqrt((x / (P.face_w * narrow)) ** 2 + (y / P.face_h) ** 2) - 1.0
    nz = torch.sqrt(torch.clamp(1 - (x / P.face_w) ** 2 - (y / P.face_h) ** 2, 0, 1))
    lambert = torch.clamp(0.55 + 0.45 * (-(lx * x / P.face_w) - ly * (y / P.face_h) * 0.5 + nz * 0.6), 0.35, 1.1)
    cv.paint(_coverage(f_face), P.skin * (lambert * (1 + 0.05 * mid)), CLASS_INDEX["skin"])

    # hair on top of the head, one index set per style
    for style in HAIR_STYLES[1:]:
        ids = _index([s == style for s in styles], device)
        if ids is None:
            continue
        xs, ys, fw, fh, hl = x[ids], y[ids], P.face_w[ids], P.face_h[ids], P.hairline[ids]
        outer = _ellipse(xs, ys, 0, -0.08, fw * 1.12, fh * 1.08)
        line = hl + 0.12 + 0.03 * torch.cos(xs * 40) if style == "bangs" else hl
        part = P.part[ids]
        curve = line + 0.9 * (xs - (part if style == "side" else 0)) ** 2
        if style == "side":
            curve = curve - 0.12 * torch.tanh((xs - part) * 8)
        f_top = torch.maximum(outer, ys - curve)
        axs = xs.abs()
        if style in ("long", "side"):
            # locks that fall beside the face
            lock = torch.maximum(axs - fw * 1.12, ys - (-0.1 + 0.8 * P.hair_len[ids]))
            lock = torch.maximum(lock, fw * 0.82 - axs)
            lock = torch.maximum(lock, hl - 0.05 - ys)
            f_top = torch.minimum(f_top, lock)
        elif style == "short":
            sd = torch.maximum(axs - fw * 1.06, ys + 0.05 - 0.25 * P.hair_len[ids])
            sd = torch.maximum(torch.maximum(sd, fw * 0.9 - axs), hl - 0.05 - ys)
            f_top = torch.minimum(f_top, sd)
        shade = 0.85 + 0.25 * torch.clamp(-(lx[ids] * xs + ly[ids] * ys), -1, 1)
        cv.paint(_coverage(f_top), hair_tex[ids] * shade, CLASS_INDEX["hair"], ids)

    # inner features move sideways with yaw; each group is drawn in the band of rows that can hold it
    fx = P.yaw * 0.06
    dark = P.skin * 0.55
    h = P.host
    hfx = np.abs(h["yaw"] * 0.06)
    brow_reach = h["brow_len"] + h["brow_thick"] + 2 * np.abs(h["brow_curve"]) * h["brow_len"] ** 2
    brow_y = h["eye_y"] - h["brow_gap"] - 0.03
    lens = h["eye_w"] * 1.63 * np.abs(h["glasses_size"])
    # eyes with their sockets, brows, lenses (a cat-eye lens is 1.05 * 1.55 eye widths), bridge and temples
    top = np.minimum.reduce([h["eye_y"] - h["eye_w"] * 0.75, brow_y - brow_reach, h["eye_y"] - 0.01 - lens,
                             h["eye_y"] - h["eye_w"] * 0.6 - 0.02])  # fmt: skip
    bottom = np.maximum.reduce([h["eye_y"] + h["eye_w"] * 0.75, brow_y + brow_reach, h["eye_y"] + lens])
    xmax = np.maximum(hfx + h["eye_dx"] + np.maximum.reduce([h["eye_w"] * 1.35, brow_reach, lens]), h["face_w"] * 1.02)
    eye_rows = _band(P, res, top, bottom, xmax)
    sub = cv.rows(eye_rows)
    x, y = sub.x, sub.y

    # eyes: almond shapes (intersection of two circles) with sclera, iris and pupil
    white = torch.tensor([0.95, 0.93, 0.9], dtype=torch.float32, device=device)[None, :, None, None]
    for side, label in zip((-1, 1), (CLASS_INDEX["left_eye"], CLASS_INDEX["right_eye"])):
        ex, ey = fx + side * P.eye_dx, P.eye_y
        a, b = P.eye_w, P.eye_w * P.eye_open * 0.5
        # almond: two circular arcs through the corners (ex +- a, ey) with sagitta b
        r = (a * a + b * b) / (2 * b)
        dx2 = (x - ex) ** 2
        f_up = torch.sqrt(dx2 + (y - (ey - b + r)) ** 2) - r
        f_eye = torch.maximum(f_up, torch.sqrt(dx2 + (y - (ey + b - r)) ** 2) - r)
        cov = _coverage(f_eye)
        # eye socket shadow around it (skin, no label change)
        sub.paint(_coverage(_ellipse(x, y, ex, ey, a * 1.35, a * 0.75)) * 0.25, dark, None)
        ix = ex + P.gaze * a * 0.5
        iris = _coverage(_ellipse(x, y, ix, ey, a * 0.45, a * 0.45))
        pupil = _coverage(_ellipse(x, y, ix, ey, a * 0.2, a * 0.2))
        col = white * (1 - iris) + P.iris_color * iris
        col = col * (1 - pupil) + 0.03 * pupil
        # upper lid shadow
        col = col * (0.75 + 0.25 * torch.clamp((y - (ey - b)) / (2 * b + 1e-6), 0, 1))
        sub.paint(cov, col, label)

    # brows: curved bars above the eyes
    no_hair = torch.tensor([s == "none" for s in styles]).to(device, non_blocking=True)[:, None, None, None]
    brow_col = torch.where(no_hair, dark * 0.6, hair_tex[..., eye_rows, :] * 0.8)
    for side, label in zip((-1, 1), (CLASS_INDEX["left_brow"], CLASS_INDEX["right_brow"])):
        bx, by = fx + side * P.eye_dx, P.eye_y - P.brow_gap - 0.03
        ang = -side * P.brow_angle
        c, s = torch.cos(ang), torch.sin(ang)
        u, v = c * (x - bx) + s * (y - by), -s * (x - bx) + c * (y - by)
        v = v + P.brow_curve * (u * u) * 2.0
        f_brow = torch.sqrt((u / P.brow_len) ** 2 + (v / (P.brow_thick * 0.5)) ** 2) - 1.0
        sub.paint(_coverage(f_brow), brow_col, label)

    cv.put(sub, eye_rows)

    nose_top = h["eye_y"] + 0.02
    rows = _band(P, res, nose_top, nose_top + np.maximum(h["nose_len"], 0) + np.abs(h["nose_w"]) * 0.6,
                 hfx * 1.3 + np.abs(h["nose_w"]) * 1.05)
    sub = cv.rows(rows)
    x, y = sub.x, sub.y
    # nose: a rounded wedge with nostrils and a highlight
    ny0 = P.eye_y + 0.02
    nx = fx * 1.3
    tip_y = ny0 + P.nose_len
    t_n = torch.clamp((y - ny0) / torch.clamp(P.nose_len, min=1e-3), 0, 1)
    half_w = P.nose_w * (0.35 + 0.65 * t_n**1.5)
    f_nose = torch.maximum(torch.maximum((x - nx).abs() - half_w, ny0 - y), y - tip_y)
    f_nose = torch.minimum(f_nose, _ellipse(x, y, nx, tip_y - 0.01, P.nose_w * 1.05, P.nose_w * 0.55))
    ncol = P.skin * (0.8 + 0.25 * torch.clamp(-(x - nx) * lx * 8, -1, 1) * 0.5)
    for side in (-1, 1):
        nos = _coverage(_ellipse(x, y, nx + side * P.nose_w * 0.45, tip_y, P.nose_w * 0.28, P.nose_w * 0.17))
        ncol = ncol * (1 - 0.7 * nos)
    sub.paint(_coverage(f_nose), ncol, CLASS_INDEX["nose"])

    cv.put(sub, rows)

    reach = 1.55 * np.abs(h["smile"]) + np.abs(h["lip_t"]) + np.abs(h["mouth_open"]) + 0.01
    rows = _band(P, res, h["mouth_y"] - reach, h["mouth_y"] + reach, hfx * 1.2 + np.abs(h["mouth_w"]) * 1.5)
    sub = cv.rows(rows)
    x, y = sub.x, sub.y
    # mouth: lips around a centre line that curves up at the corners when smiling
    mx, my = fx * 1.2, P.mouth_y
    xn = torch.clamp((x - mx) / P.mouth_w, -1.5, 1.5)
    env = torch.sqrt(torch.clamp(1 - xn**2, 0, 1))
    dist = y - (my + P.smile * (1 - xn**2) - P.smile * 0.3)
    outer_half = P.lip_t * (0.35 + 0.65 * env) + P.mouth_open * env
    f_lips = torch.maximum(dist.abs() - outer_half, xn.abs() - 1)
    lip_col = P.lip_color * (0.85 + 0.2 * torch.clamp(-dist / (P.lip_t + 1e-3), -1, 1))
    sub.paint(_coverage(f_lips), lip_col, CLASS_INDEX["lips"])
    ids = _index([p.mouth_open > 0 for p in params], device)
    if ids is not None:
        mo, di, en, xni = P.mouth_open[ids], dist[ids], env[ids], xn[ids]
        f_open = torch.maximum(di.abs() - mo * en * 0.9, xni.abs() - 0.85)
        gap = torch.exp(-(((di - mo * 0.15) / (mo * 0.25 + 1e-3)) ** 2))
        tooth = torch.tensor([0.95, 0.93, 0.86], dtype=torch.float32, device=device)[None, :, None, None]
        teeth = tooth * (1 - 0.75 * gap) * (0.7 + 0.3 * en)
        sub.paint(_coverage(f_open), teeth, CLASS_INDEX["teeth"], ids)

    cv.put(sub, rows)

    # glasses: frames + tinted lenses (both labelled glasses), bridge and temples, over the nose and mouth
    if any(p.glasses for p in params):
        sub = cv.rows(eye_rows)
        _glasses(sub, P, params, fx, device)
        cv.put(sub, eye_rows)

    # film grain and clipping
    img = cv.image
    if grain is None:
        noise = np.stack([_generator(st).normal(0, GRAIN_STD, size=(res, res, 3)).astype(np.float32)
                          for st in hb.grain_states])  # fmt: skip
        img = img + torch.from_numpy(noise).to(device, non_blocking=True).permute(0, 3, 1, 2)
    else:
        img = img + torch.randn(img.shape, generator=grain, device=device) * GRAIN_STD
    image = (torch.clamp(img, 0, 1) * 255 + 0.5).to(torch.uint8)
    return RenderedFaces(image=image, mask=cv.mask[:, 0])


def _glasses(cv: _Canvas, P: _P, params: Sequence, fx: torch.Tensor, device) -> None:
    """Lenses, frames, bridge and temples on the faces that wear glasses (one index set per shape)."""
    for shape in GLASSES_SHAPES:
        ids = _index([p.glasses and p.glasses_shape == shape for p in params], device)
        if ids is None:
            continue
        x, y, fxs, ew, edx, eyy = cv.x[ids], cv.y[ids], fx[ids], P.eye_w[ids], P.eye_dx[ids], P.eye_y[ids]
        size = P.glasses_size[ids]
        lens_f = []
        for side in (-1, 1):
            ex, ey = fxs + side * edx, eyy
            rw, rh = ew * 1.55 * size, ew * 1.15 * size
            if shape == "round":
                f = _ellipse(x, y, ex, ey, rw, rh)
            elif shape == "rect":
                q = 4.0
                f = (((x - ex) / rw).abs() ** q + ((y - ey) / rh).abs() ** q) ** (1 / q) - 1
            else:  # cat-eye: wider and lifted at the outer side
                f = _ellipse(x, y, ex, ey - 0.01, rw * 1.05, rh * 0.85, angle=-side * 0.25)
            lens_f.append(f)
        lens = torch.minimum(*lens_f)
        frame_t = 0.18
        lens_cov = _coverage(lens)
        gcol = P.glasses_color[ids]
        tint = gcol * 0.5 + 0.5
        lt = P.lens_tint[ids]
        image = cv.image[ids] * (1 - lt * lens_cov) + tint * lt * lens_cov
        # frame ring: |f| small, in the shape's own units
        frame = (lens + frame_t * 0.5).abs() - frame_t * 0.5
        bridge_y = eyy - ew * 0.3
        bridge = torch.maximum((x - fxs).abs() - edx * 0.6, (y - bridge_y).abs() - 0.018)
        temples = torch.maximum((y - (eyy - ew * 0.6)).abs() - 0.016, edx + ew * 1.5 - (x - fxs).abs())
        temples = torch.maximum(temples, x.abs() - P.face_w[ids] * 1.02)
        cov_frames = torch.maximum(_coverage(frame), torch.maximum(_coverage(bridge), _coverage(temples)))
        cv.image[ids] = image * (1 - cov_frames) + gcol * cov_frames
        cv.mask[ids] = torch.where(torch.maximum(lens_cov, cov_frames) > 0.5, CLASS_INDEX["glasses"], cv.mask[ids])
