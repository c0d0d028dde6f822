"""Editor states behind share links, and the files an app keeps for later requests, in the library's database.

Several app replicas on one database (PostgreSQL) then agree on them: a share link made on one replica opens on
every other, and a photo kept or tuned on one is found by the others and after a restart. Rules, as they were
when these lived in each process's data directory:

  * a share state is named by a hash of its content (saving the same state twice gives the same token); it has
    no owner and no expiry: whoever has the link may open it, and every vector it applies is checked for
    visibility by the opener (the app does, with ``VectorLibrary.get``);
  * its latent has exactly the registered model's [n_latent, w_dim] and is finite; at most
    MAX_SHARE_VECTORS vectors, each scale finite; a tuning is named by a token, never carried inline;
  * kept files (a photo with its embedding, a generator tuning) are opaque bytes of at most MAX_KEPT_BYTES,
    named by a token the caller derives from their content; only the newest ``keep`` of each kind stay, the
    oldest go first (their sessions and links then say to upload the photo again).

Tokens are 20 lowercase hex characters everywhere; anything else is refused before any query.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import KeptFile, ShareState, utcnow
from vector_library import transactions as tx
from vector_library import validation as check
from vector_library.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from vector_library.service import VectorLibrary

MAX_SHARE_VECTORS = check.MAX_COMPOSITION_ITEMS
MAX_KEPT_BYTES = 64 * 1024 * 1024  # a faces64 tuning is 1.6 MB; 64 MB leaves room for larger generators
KEPT_KINDS = ("photo", "tuning")
_TOKEN_RE = re.compile(r"[0-9a-f]{20}")


def token(value: object, what: str) -> str:
    """A content token (20 lowercase hex characters), or InvalidInput naming ``what``."""
    if not isinstance(value, str) or _TOKEN_RE.fullmatch(value) is None:
        raise InvalidInput(f"this {what} is malformed (the token must be 20 hex characters)")
    return value


@dataclass(frozen=True)
class SharedState:
    token: str
    model_id: str
    w: np.ndarray  # [n_latent, w_dim] float32
    vectors: tuple[tuple[int, float], ...]  # (vector id, scale), in the order applied
    tuning: Optional[str]  # token of a kept "tuning" file, or None
    created_at: datetime


@dataclass(frozen=True)
class KeptFileInfo:
    kind: str
    token: str
    model_id: str
    data: bytes
    created_at: datetime


class StateStore:
    """Share states and kept files of one VectorLibrary's database (``library.states``); one transaction each."""

    def __init__(self, library: "VectorLibrary") -> None:
        self._lib = library

    # ------------------------------------------------------------------ share states
    def save_share(self, model_id: str, w: np.ndarray, vectors: Sequence[tuple[int, float]] = (),
                   tuning: Optional[str] = None) -> str:  # fmt: skip
        """Store an editor state for a share link; returns its token (the same state gives the same token)."""
        check.model_id(model_id)
        w = np.asarray(w)
        if w.ndim != 2 or w.dtype.kind != "f":
            raise InvalidInput(f"a shared latent is a 2-d float array [n_latent, w_dim]; got {w.dtype} {list(w.shape)}")
        w = np.ascontiguousarray(w, dtype="<f4")
        if not np.isfinite(w).all():
            raise InvalidInput("a shared latent must be finite")
        if isinstance(vectors, (str, bytes)) or len(vectors) > MAX_SHARE_VECTORS:
            raise InvalidInput(f"a shared state applies at most {MAX_SHARE_VECTORS} vectors, as (id, scale) pairs")
        items = [[check.record_id(v, "vector id"), check.scale(s, f"scale of vector {v}")] for v, s in vectors]
        if tuning is not None:
            token(tuning, "tuning")
        content = json.dumps({"model_id": model_id, "shape": list(w.shape), "vectors": items, "tuning": tuning},
                             sort_keys=True).encode() + w.tobytes()  # fmt: skip
        name = hashlib.sha256(content).hexdigest()[:20]

        def action(s: Session) -> str:
            model = self._lib._model(s, model_id)
            if w.shape != (model.n_latent, model.w_dim):
                raise InvalidInput(f"a latent of model {model.name!r} is [{model.n_latent}, {model.w_dim}]; "
                                   f"got {list(w.shape)}")  # fmt: skip
            if s.get(ShareState, name) is None:
                tx.insert_ignore(s, ShareState, {"token": name, "model_id": model_id, "n_latent": w.shape[0],
                                               "w_dim": w.shape[1], "latent": w.tobytes(), "vectors": items,
                                               "tuning": tuning, "created_at": utcnow()})  # fmt: skip
            return name

        return self._lib._write(action)

    def load_share(self, share_token: str) -> SharedState:
        """The state a share link names, or NotFound; a damaged row is reported, never half-read."""
        token(share_token, "share link")

        def action(s: Session) -> SharedState:
            row = s.get(ShareState, share_token)
            if row is None:
                raise NotFound("this share link points to nothing in this library (mistyped, or made on a server "
                               "with another database)")  # fmt: skip
            try:
                w = np.frombuffer(row.latent, dtype="<f4").reshape(row.n_latent, row.w_dim).astype(np.float32)
                items = tuple((int(v), float(sc)) for v, sc in row.vectors)
            except (ValueError, TypeError) as e:
                raise InvalidInput(f"this share link's state is damaged ({type(e).__name__})") from None
            return SharedState(row.token, row.model_id, w, items, row.tuning, row.created_at)

        return self._lib._read(action)

    # ------------------------------------------------------------------ kept files
    def keep_file(self, kind: str, file_token: str, model_id: str, data: bytes, keep: int) -> str:
        """Store ``data`` as the ``kind`` file ``file_token`` (once: a second call with the token changes nothing),
        then drop the oldest files of that kind beyond the newest ``keep``. Returns the token."""
        kind = _kind(kind)
        token(file_token, kind)
        check.model_id(model_id)
        if not isinstance(data, (bytes, bytearray)) or not 0 < len(data) <= MAX_KEPT_BYTES:
            raise InvalidInput(f"a kept {kind} is 1 byte to {MAX_KEPT_BYTES} bytes of data")
        keep = check.positive_int(keep, "how many files to keep")

        def action(s: Session) -> str:
            self._lib._model(s, model_id)
            if s.get(KeptFile, (kind, file_token)) is None:
                tx.insert_ignore(s, KeptFile, {"kind": kind, "token": file_token, "model_id": model_id,
                                             "data": bytes(data), "size": len(data), "created_at": utcnow()})  # fmt: skip
                newest = (select(KeptFile.token).where(KeptFile.kind == kind)
                          .order_by(KeptFile.created_at.desc(), KeptFile.token).limit(keep))  # fmt: skip
                s.execute(delete(KeptFile).where(KeptFile.kind == kind, KeptFile.token != file_token,
                                                 KeptFile.token.not_in(newest.scalar_subquery())))  # fmt: skip
            return file_token

        return self._lib._write(action)

    def kept_file(self, kind: str, file_token: str) -> Optional[KeptFileInfo]:
        """A kept file, or None when it is not (or no longer) kept."""
        kind = _kind(kind)
        token(file_token, kind)

        def action(s: Session) -> Optional[KeptFileInfo]:
            row = s.get(KeptFile, (kind, file_token))
            if row is None:
                return None
            return KeptFileInfo(row.kind, row.token, row.model_id, bytes(row.data), row.created_at)

        return self._lib._read(action)


def _kind(kind: object) -> str:
    if kind not in KEPT_KINDS:
        raise InvalidInput(f"a kept file's kind is one of {list(KEPT_KINDS)}; got {kind!r}")
    return kind  # type: ignore[return-value]
