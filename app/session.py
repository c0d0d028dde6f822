"""Per-session state (kept in gr.State, so small: latents and ids, never images or models) and
shared-state links.

A session has a *base* latent with an undo/redo history, and *applied* library vectors with their
scales: a live preview on top of the base until the user keeps (bakes) them. The displayed image
is always ``render(base + sum(scale * delta))``.

Share links open the same state for someone else: ``?seed=3&v=12:1.0,15:-0.5`` when the base is a
plain sample, else ``?s=<token>`` naming a row of the library database's ``share_states`` (the latent,
float32, plus the vectors), so every app replica on that database opens it. A photo's pixels are never
shared, only its embedding and, when the generator was tuned to it (pivotal tuning), the token of that
tuning (kept in the same database, ``kept_files``).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from vector_library.errors import NotFound

if TYPE_CHECKING:
    from vector_library.states import StateStore

MAX_HISTORY = 20
MAX_APPLIED = 8
_TOKEN_RE = re.compile(r"[0-9a-f]{20}")
_VEC_RE = re.compile(r"(\d{1,12}):([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")


@dataclass
class EditSession:
    w: Optional[np.ndarray] = None  # [n_latent, w_dim] float32, the base latent
    source: dict = field(default_factory=dict)  # {"kind": "seed", "seed": 3} | {"kind": "photo", ...} | {"kind": "shared"}
    history: list = field(default_factory=list)  # [(label, w)] states before each change
    redo: list = field(default_factory=list)
    applied: list = field(default_factory=list)  # [(vector_id, scale)] previewed on top of w
    # {"delta", "classes", "metrics", "preview", "label"}; a mask edit adds "start_w" and "result" (its EditResult),
    # from which saving makes a transferable version once ("transferable": {"delta", "metrics", "preview"})
    last_edit: Optional[dict] = None
    # a photo's pivotal tuning (core.tuning): the token of its file, which app.runtime.Runtime.bundle turns into the
    # tuned model every render and edit of this image uses; None for plain samples
    tuning: Optional[str] = None

    def start(self, w: np.ndarray, source: dict, tuning: Optional[str] = None) -> None:
        """A new image: history, applied vectors and the last edit are cleared."""
        self.w, self.source, self.tuning = w.astype(np.float32), source, tuning
        self.history, self.redo, self.applied, self.last_edit = [], [], [], None

    def change(self, w: np.ndarray, label: str) -> None:
        """Replace the base latent by an edited one (undoable)."""
        self.history.append((label, self.w))
        del self.history[:-MAX_HISTORY]
        self.redo = []
        self.w = w.astype(np.float32)

    def undo(self) -> str:
        if not self.history:
            raise ValueError("nothing to undo")
        label, w = self.history.pop()
        self.redo.append((label, self.w))
        self.w = w
        return label

    def redo_step(self) -> str:
        if not self.redo:
            raise ValueError("nothing to redo")
        label, w = self.redo.pop()
        self.history.append((label, self.w))
        self.w = w
        return label

    @property
    def pristine(self) -> bool:
        """The base is exactly its source (nothing baked in, or everything undone)."""
        return not self.history

    def describe(self) -> str:
        if self.w is None:
            return "No image yet: pick a seed, an example or upload a photo."
        src = self.source
        photo = "your uploaded photo (embedded" + (", generator tuned to it)" if self.tuning else ")")
        shared = "a shared state" + (" (its generator tuned to a photo)" if self.tuning else "")
        what = {"seed": f"sample of seed {src.get('seed')}", "photo": photo,
                "shared": shared}.get(src.get("kind"), "an image")  # fmt: skip
        edits = f"{len(self.history)} change(s) you can undo" if self.history else "no changes yet"
        parts = [f"Editing {what}; {edits}."]
        if self.applied:
            parts.append("Applied (preview): " + ", ".join(f"#{i} ×{s:g}" for i, s in self.applied) + ".")
        return " ".join(parts)


def check_token(token: object, what: str) -> str:
    """A content token (20 lowercase hex characters), or a ValueError naming ``what``."""
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise ValueError(f"this {what} is malformed (the token must be 20 hex characters)")
    return token


def parse_vectors(text: str) -> list[tuple[int, float]]:
    """'12:1.0,15:-0.5' -> [(12, 1.0), (15, -0.5)]; ValueError on anything else."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        m = _VEC_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"vector entry {part[:40]!r} is not 'id:scale'")
        vid, scale = int(m.group(1)), float(m.group(2))
        if not np.isfinite(scale):
            raise ValueError(f"scale {m.group(2)!r} is not finite")
        out.append((vid, scale))
    if len(out) > MAX_APPLIED:
        raise ValueError(f"at most {MAX_APPLIED} vectors can be applied at once")
    return out


def format_vectors(items: list[tuple[int, float]]) -> str:
    return ",".join(f"{int(i)}:{float(s):g}" for i, s in items)


class ShareStore:
    """Shared states in the library's database (``vector_library.states``), named by the hash of their content,
    so a link made on one app replica opens on every other one on the same database."""

    def __init__(self, states: "StateStore", legacy_folder: Optional[Path] = None) -> None:
        self.states = states
        self.legacy_folder = legacy_folder  # <data dir>/shares/: links made before states moved to the database

    def save(self, model_id: str, w: np.ndarray, applied: list[tuple[int, float]], tuning: Optional[str] = None) -> str:
        if tuning is not None:
            check_token(tuning, "tuning")
        return self.states.save_share(model_id, np.asarray(w, dtype=np.float32), list(applied), tuning)

    def load(self, token: str, model_id: str, shape: tuple[int, int]
             ) -> tuple[np.ndarray, list[tuple[int, float]], Optional[str]]:  # fmt: skip
        """(latent, applied vectors, tuning token or None) of a shared state made for this model."""
        check_token(token, "share link")
        try:
            st = self.states.load_share(token)
            made_with, w, vectors, tuning = st.model_id, st.w, list(st.vectors), st.tuning
        except NotFound:
            legacy = self._legacy(token)
            if legacy is None:
                raise ValueError("this share link points to nothing on this server (mistyped, or made on a server "
                                 "with another library database)") from None  # fmt: skip
            made_with, w, vectors, tuning = legacy
        if made_with != model_id:
            raise ValueError(f"this link was made with model {made_with}, but this server runs {model_id}")
        if tuple(w.shape) != tuple(shape) or not np.isfinite(w).all():
            raise ValueError("this share link's latent does not fit the loaded model")
        if len(vectors) > MAX_APPLIED:
            raise ValueError(f"at most {MAX_APPLIED} vectors can be applied at once")
        return w, vectors, None if tuning is None else check_token(tuning, "tuning")

    def _legacy(self, token: str) -> Optional[tuple[str, np.ndarray, list[tuple[int, float]], Optional[str]]]:
        """A state saved as ``<data dir>/shares/<token>.json`` by this process before the database kept them
        (read only; new links go to the database), or None."""
        path = None if self.legacy_folder is None else Path(self.legacy_folder) / f"{token}.json"
        if path is None or not path.is_file():
            return None
        try:
            payload = json.loads(path.read_text())
            w = np.frombuffer(base64.b64decode(payload["w"]), dtype=np.float32).reshape(payload["shape"]).copy()
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise ValueError(f"this share link's state is damaged ({type(e).__name__})") from None
        return payload.get("model_id"), w, parse_vectors(payload.get("vectors", "")), payload.get("tuning")
