"""Programmatic mask edits on the procedural face classes.

Each function takes a class-id mask ``[R, R]`` (numpy or torch) and returns a
new numpy mask with one semantic change painted in, the way a user would paint
it: bigger eyes, an open mouth, a smile, glasses, shorter hair, a smaller nose.
They raise ``ValueError`` when the part they need is not in the mask (no lips
to open, eyes hidden under glasses...). Tests, benchmarks, the CLI and users
share them through :data:`SCRIPTED_EDITS`.

:data:`HELD_OUT_EDITS` are kinds the engine was not tuned on (issue #21: does transfer generalise beyond the
six?): taking glasses off, and a change made only of context classes (the face outline moved in). They are
measured beside the six (benchmarks.bench_edit ``--kinds``) and reached through :func:`apply_scripted` too.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from core.data.palette import CLASS_NAMES

_ID = {n: i for i, n in enumerate(CLASS_NAMES)}


def _as_np(mask) -> np.ndarray:
    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W] class ids, got shape {list(m.shape)}")
    return m.astype(np.int64).copy()


def _region(m: np.ndarray, name: str, what: str) -> np.ndarray:
    r = m == _ID[name]
    if r.sum() < 2:
        raise ValueError(f"cannot {what}: the mask shows no {name.replace('_', ' ')}")
    return r


def _grid(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0 : m.shape[0], 0 : m.shape[1]].astype(np.float64)


def _scale_region(m: np.ndarray, name: str, factor: float, fill: str, over: Sequence[str], what: str) -> np.ndarray:
    r = _region(m, name, what)
    ys, xs = np.nonzero(r)
    cy, cx = ys.mean(), xs.mean()
    gy, gx = _grid(m)
    sy = np.clip(np.rint(cy + (gy - cy) / factor), 0, m.shape[0] - 1).astype(int)
    sx = np.clip(np.rint(cx + (gx - cx) / factor), 0, m.shape[1] - 1).astype(int)
    new = r[sy, sx]
    out = m.copy()
    out[r & ~new] = _ID[fill]
    paintable = np.isin(m, [_ID[o] for o in over]) | r
    out[new & paintable] = _ID[name]
    return out


def enlarge_eyes(mask, factor: float = 1.6) -> np.ndarray:
    m = _as_np(mask)
    for eye in ("left_eye", "right_eye"):
        m = _scale_region(m, eye, factor, "skin", ("skin",), "enlarge the eyes")
    return m


def shrink_nose(mask, factor: float = 0.7) -> np.ndarray:
    return _scale_region(_as_np(mask), "nose", factor, "skin", ("skin",), "shrink the nose")


def _ellipse(m: np.ndarray, cy: float, cx: float, hy: float, hx: float) -> np.ndarray:
    gy, gx = _grid(m)
    return ((gy - cy) / max(hy, 0.5)) ** 2 + ((gx - cx) / max(hx, 0.5)) ** 2 <= 1.0


def open_mouth(mask, amount: float = 0.03) -> np.ndarray:
    """Open the mouth: teeth in the middle, lips around them. ``amount`` is the opening's half-height / size."""
    m = _as_np(mask)
    lips = _region(m, "lips", "open the mouth")
    ys, xs = np.nonzero(lips | (m == _ID["teeth"]))
    cy, cx = ys.mean(), xs.mean()
    hw = (xs.max() - xs.min() + 1) / 2
    thick = max(1.0, (ys.max() - ys.min() + 1) / 2)
    open_h = max(1.5, amount * m.shape[0])
    out = m.copy()
    outer = _ellipse(m, cy, cx, open_h + thick, hw)
    out[outer & np.isin(m, [_ID["skin"], _ID["lips"], _ID["teeth"]])] = _ID["lips"]
    out[_ellipse(m, cy, cx, open_h, hw * 0.8) & outer] = _ID["teeth"]
    return out


def smile(mask, amount: float = 0.03) -> np.ndarray:
    """Curve the mouth's corners up by ``amount`` * size pixels."""
    m = _as_np(mask)
    mouth = _region(m, "lips", "make a smile") | (m == _ID["teeth"])
    ys, xs = np.nonzero(mouth)
    cx, hw = xs.mean(), max(1.0, (xs.max() - xs.min() + 1) / 2)
    lift = amount * m.shape[0]
    out = m.copy()
    out[mouth] = _ID["skin"]
    for y, x in zip(ys, xs):
        ny = int(round(y - lift * ((x - cx) / hw) ** 2))
        if 0 <= ny < m.shape[0] and out[ny, x] in (_ID["skin"], _ID["lips"], _ID["teeth"]):
            out[ny, x] = m[y, x]
    return out


def add_glasses(mask, size: float = 1.5) -> np.ndarray:
    """Lenses around both eyes (``size`` x the eye's half-width) joined by a bridge."""
    m = _as_np(mask)
    if (m == _ID["glasses"]).any():
        raise ValueError("cannot add glasses: the mask already shows glasses")
    out = m.copy()
    centres = []
    for eye in ("left_eye", "right_eye"):
        ys, xs = np.nonzero(_region(m, eye, "add glasses"))
        cy, cx, hw = ys.mean(), xs.mean(), (xs.max() - xs.min() + 1) / 2
        centres.append((cy, cx, hw))
        out[_ellipse(m, cy, cx, hw * size * 0.75, hw * size) & (m != _ID["background"])] = _ID["glasses"]
    (y1, x1, h1), (y2, x2, h2) = sorted(centres, key=lambda c: c[1])
    by = int(round((y1 + y2) / 2 - 0.3 * (h1 + h2) / 2))
    out[max(0, by - 0), int(x1 + h1 * size) : int(x2 - h2 * size) + 1] = _ID["glasses"]
    return out


def shorten_hair(mask, level: float = 0.0) -> np.ndarray:
    """Remove hair below the eyes' row (+ ``level`` x size); the freed pixels become background."""
    m = _as_np(mask)
    hair = _region(m, "hair", "shorten the hair")
    eyes = np.isin(m, [_ID["left_eye"], _ID["right_eye"], _ID["glasses"]])
    cut = (np.nonzero(eyes)[0].mean() if eyes.any() else m.shape[0] * 0.45) + level * m.shape[0]
    gy, _ = _grid(m)
    below = hair & (gy > cut)
    if not below.any():
        raise ValueError("cannot shorten the hair: no hair below the cut line")
    out = m.copy()
    out[below] = _ID["background"]
    return out


def remove_glasses(mask, eye_share: float = 0.45) -> np.ndarray:
    """Take the glasses off: their pixels become skin, with an eye redrawn under each lens (the renderer draws the
    lenses over the eyes, so the mask shows none): an ellipse at the lens's centre, ``eye_share`` x its half-width
    wide and a third of that high (the eyes' proportions on faces64, whose lenses are 1.55-1.9 x the eye's
    half-width)."""
    m = _as_np(mask)
    glasses = _region(m, "glasses", "remove the glasses")
    xs = np.nonzero(glasses)[1]
    mid = (xs.min() + xs.max()) / 2
    _, gx = _grid(m)
    out = m.copy()
    out[glasses] = _ID["skin"]
    for eye, side in (("left_eye", gx < mid), ("right_eye", gx >= mid)):
        lens = glasses & side
        if lens.sum() < 3:
            raise ValueError("cannot remove the glasses: the mask shows no lens on one side")
        ys, xs = np.nonzero(lens)
        hx = eye_share * (xs.max() - xs.min() + 1) / 2
        out[_ellipse(m, ys.mean(), xs.mean(), max(1.0, hx / 3), hx) & glasses] = _ID[eye]
    return out


_FACE_OUTSIDE = ("background", "hair", "neck")  # what is not the face (core.mask_transfer.FACE_FRAME_EXCLUDED)


def slim_face(mask, factor: float = 0.85) -> np.ndarray:
    """Move the face's outline in at the cheeks: below the eyes, each row's face (every class but background, hair
    and neck) is narrowed to ``factor`` x its half-width about the face's centre line, and the skin it gives up
    becomes background where the row meets the background on that side (rows that meet the hair are left as they
    are). A change made only of context classes (skin -> background)."""
    m = _as_np(mask)
    skin = _region(m, "skin", "slim the face")
    face = ~np.isin(m, [_ID[n] for n in _FACE_OUTSIDE])
    eyes = np.isin(m, [_ID["left_eye"], _ID["right_eye"], _ID["glasses"]])
    if not eyes.any():
        raise ValueError("cannot slim the face: the mask shows no eyes to place the cheeks by")
    top = int(np.ceil(np.nonzero(eyes)[0].mean()))
    cx = np.nonzero(face)[1].mean()
    out = m.copy()
    for y in range(top, m.shape[0]):
        xs = np.nonzero(face[y])[0]
        if len(xs) < 4:
            continue
        for edge, step in ((xs.min(), -1), (xs.max(), 1)):
            beyond = edge + step
            if not 0 <= beyond < m.shape[1] or m[y, beyond] != _ID["background"]:
                continue
            new_edge = cx + factor * (edge - cx)
            cut = (np.arange(m.shape[1]) - new_edge) * step > 0
            out[y, cut & skin[y]] = _ID["background"]
    if (out == m).all():
        raise ValueError("cannot slim the face: no cheek meets the background")
    return out


SCRIPTED_EDITS: dict[str, Callable[..., np.ndarray]] = {
    "enlarge_eyes": enlarge_eyes,
    "open_mouth": open_mouth,
    "smile": smile,
    "add_glasses": add_glasses,
    "shorten_hair": shorten_hair,
    "shrink_nose": shrink_nose,
}


# kinds the engine was not tuned on, kept apart so that the six above stay the benchmark's default set
HELD_OUT_EDITS: dict[str, Callable[..., np.ndarray]] = {
    "remove_glasses": remove_glasses,
    "slim_face": slim_face,
}


def apply_scripted(name: str, mask, **kwargs) -> np.ndarray:
    """The scripted edit ``name`` (one of :data:`SCRIPTED_EDITS` or :data:`HELD_OUT_EDITS`) painted on ``mask``."""
    fn = SCRIPTED_EDITS.get(name) or HELD_OUT_EDITS.get(name)
    if fn is None:
        raise ValueError(f"unknown edit {name!r}; known edits: {sorted(SCRIPTED_EDITS)}, held out: "
                         f"{sorted(HELD_OUT_EDITS)}")  # fmt: skip
    return fn(mask, **kwargs)
