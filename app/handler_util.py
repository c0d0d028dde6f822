"""Input parsing, messages and files shared by the handlers (app/handlers.py, app/library_handlers.py)."""

from __future__ import annotations

import hashlib
import os
import html
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
from PIL import Image

from app.text import md_text

MODES = ("optimization", "vector", "vector + refinement")
SORT_CHOICES = ("relevance", "recent", "likes", "downloads")
COMPOSE_SLOTS = 4
MAX_SEED = 2**31 - 1


class StopFlags:
    """Stop requests per browser session: the Stop button sets the running edit's flag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}

    def begin(self, key: str) -> threading.Event:
        ev = threading.Event()
        with self._lock:
            self._running[key] = ev
        return ev

    def end(self, key: str, ev: threading.Event) -> None:
        with self._lock:
            if self._running.get(key) is ev:
                del self._running[key]

    def stop(self, key: str) -> bool:
        with self._lock:
            ev = self._running.get(key)
        if ev is None:
            return False
        ev.set()
        return True


def toast_text(message: str) -> str:
    """Gradio renders a toast's (gr.Error, gr.Warning) message as HTML; refusals quote what the user typed, so
    it is escaped to show as typed."""
    return html.escape(message, quote=False)


def readable(e: Exception) -> gr.Error:
    """A readable message for an expected refusal."""
    return gr.Error(toast_text(str(e) or type(e).__name__), print_exception=False)


def session_key(request: Optional[gr.Request]) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def is_empty(value: Any) -> bool:
    """An input left blank: nothing sent (an emptied number box), or only spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def whole_number(value: Any, what: str, lo: int, hi: int) -> int:
    if is_empty(value):
        raise ValueError(f"{what} is empty: give a whole number from {lo} to {hi}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None
    if not np.isfinite(v) or v != int(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a whole number in [{lo}, {hi}], got {value!r}")
    return int(v)


def scale_number(value: Any, what: str, lo: float, hi: float, clamp: bool = False) -> float:
    """A vector's scale: a finite number in its vector's range [lo, hi], or a refusal that names the scale
    (``what``, e.g. "scale of #12") and the range. With ``clamp``, a number outside the range is brought to its
    nearest end, as a slider's number box shows it."""
    if is_empty(value):
        raise ValueError(f"{what} is empty: give a number from {lo:g} to {hi:g}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number from {lo:g} to {hi:g}, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{what} must be a number from {lo:g} to {hi:g}, got {value!r}")
    if clamp:
        return min(max(v, lo), hi)
    if not lo <= v <= hi:
        raise ValueError(f"{what} is {v:g}, outside this vector's range [{lo:g}, {hi:g}]")
    return v


PAINT_HELP = ("**Paint the mask.** Pick a class colour with the palette button of the editor (legend), paint where "
              "that class should be, then press **Run edit**. The eraser removes paint.")
NO_BRANCH_HELP = ("**Mask editing is disabled**: the model has no segmentation branch yet (see the banner; the "
                  "**Label** tab trains one). Library vectors still work: Library and Compose tabs.")
TAGS_HELP = "comma separated, e.g. mouth, open mouth: letters, digits, - and _ (spaces become -)"


def parse_tags(text: str) -> tuple[str, ...]:
    """'Mouth, open  mouth' -> ('mouth', 'open-mouth'): lowercased, inner spaces as '-' (the field says so);
    anything else the library does not accept is refused by it with a message."""
    return tuple("-".join(t.lower().split()) for t in (text or "").replace(";", ",").split(",") if t.strip())


def vector_id_of(value: Any, what: str = "vector") -> int:
    """A record id (vector by default) from a number, '12' or a dropdown label '#12 name'."""
    if is_empty(value):
        hint = ": search the library and click a result, or type its id" if what == "vector" else ""
        raise ValueError(f"choose a {what} first{hint}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return whole_number(value, f"{what} id", 1, 2**62)
    head = str(value).strip().split(" ", 1)[0].lstrip("#")
    if not head.isdigit():
        raise ValueError(f"{str(value)[:40]!r} is not a {what} id")
    return int(head)


TMP_ROOT = Path(tempfile.gettempdir()) / "editgan-app"
TMP_MAX_AGE_S = 3600
# library previews as PNG files named by the hash of their pixels; never rewritten, so not pruned by age (a
# preview is at most 192 KiB and there is one per vector version shown)
THUMB_ROOT = Path(tempfile.gettempdir()) / "editgan-thumbs"


def image_file(image: np.ndarray) -> str:
    """The path of a PNG of ``image`` ([H, W, 3] uint8), written once under the hash of its pixels.

    Handed a numpy array, Gradio encodes it and rewrites the file of that content in its cache on every request,
    so two identical searches at once could rewrite a thumbnail while the other response streamed it
    ("Too little data for declared Content-Length", issue #24). Handed this path, Gradio copies the file into its
    cache once (under the hash of its bytes, through a temporary name) and serves that copy; the file here is
    made under a temporary name too and renamed into place, so no reader ever sees it change."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    path = THUMB_ROOT / f"{hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:32]}.png"
    if not path.is_file():
        THUMB_ROOT.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=THUMB_ROOT, prefix="part-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(a).save(f, format="PNG")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return str(path)


def tmp_file(name: str) -> Path:
    """A fresh path for a file handed to Gradio (which copies it into its cache); folders older than an
    hour are removed on the way, so downloads do not pile up."""
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in TMP_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > TMP_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # removed by a concurrent request
    return Path(tempfile.mkdtemp(dir=TMP_ROOT)) / name


def fmt_metrics(metrics: dict) -> str:
    labels = {
        "target_iou_in_region": "target IoU in the region",
        "psnr_outside_region": "PSNR outside the region (dB, higher = less change)",
        "mean_abs_change_outside": "mean change outside the region (0-255)",
        "region_pixels": "region pixels",
        "steps_run": "steps run",
        "vector_mask_iou_in_region": "IoU with the vectors' mask in the region",
        "psnr_outside_region_before_refinement": "PSNR outside before refinement (dB)",
        "seconds": "seconds",
    }
    if not metrics:
        return ""
    def show(v) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e12 else f"{v:.3f}"

    rows = [f"| {labels[k] if k in labels else md_text(k)} | {show(v)} |" for k, v in metrics.items()]
    return "| metric | value |\n|---|---|\n" + "\n".join(rows)
