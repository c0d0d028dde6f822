"""Content-addressed tensor payloads stored in the database.

A payload is the safetensors bytes of ``delta`` (and ``preview`` and ``change`` when present) without metadata;
metadata lives in columns so that editing a name never rewrites tensors. The key is the sha256 of
the bytes, so identical versions (a re-upload, an import of one's own export) share one row, and a
payload read back is checked against its key.

Why the database and not a file store: a version row and its tensors commit or roll back together
(imports are all-or-nothing, deletes leave no orphans behind, crashes leave no half-written
files); a deployment on PostgreSQL needs no shared disk between app replicas; and payloads are
small (18 x 512 float32 = 36 KiB, plus an optional <= 192 KiB thumbnail), well inside what both
databases store comfortably. Search never reads this table.
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import EditVector, VectorBlob, VectorVersion
from vector_library.errors import LibraryError


def encode_payload(delta: np.ndarray, preview: Optional[np.ndarray], change: Optional[np.ndarray] = None
                   ) -> tuple[bytes, str]:  # fmt: skip
    """Return (bytes, sha256 hex) of the tensor payload; delta [n_latent, w_dim] f32, preview [H, W, 3] u8,
    change [2, R, R] u8 (the painted change the vector was made from)."""
    tensors = {"delta": np.ascontiguousarray(delta)}
    for name, value in (("preview", preview), ("change", change)):
        if value is not None:
            tensors[name] = np.ascontiguousarray(value)
    data = st_save(tensors)  # no metadata: the header is deterministic
    return data, hashlib.sha256(data).hexdigest()


def decode_payload(data: bytes, sha256: str) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """(delta, preview or None, change or None) of a stored payload, checked against its key."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise LibraryError(f"stored tensors {sha256[:12]}... fail their checksum; the database is damaged")
    tensors = st_load(data)
    return tensors["delta"], tensors.get("preview"), tensors.get("change")


def ensure_blob(session: Session, data: bytes, sha256: str) -> None:
    """Insert the payload unless a row with this key exists (safe against concurrent inserts)."""
    dialect = session.get_bind().dialect.name
    values = {"sha256": sha256, "data": data, "size": len(data)}
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        session.execute(insert(VectorBlob).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    elif session.get(VectorBlob, sha256) is None:
        session.add(VectorBlob(**values))
        session.flush()


def load_blob(session: Session, sha256: str) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    data = session.scalar(select(VectorBlob.data).where(VectorBlob.sha256 == sha256))
    if data is None:
        raise LibraryError(f"stored tensors {sha256[:12]}... are missing; the database is damaged")
    return decode_payload(bytes(data), sha256)


def delete_unreferenced(session: Session, sha256s: set[str]) -> int:
    """Delete payloads no version or vector refers to any more; return how many went.

    Runs in a savepoint: if a concurrent transaction (PostgreSQL) has just referenced one of them,
    the foreign key refuses the delete, the savepoint rolls back and the payload simply stays.
    """
    removed = 0
    for sha in sorted(sha256s):
        unreferenced = ~exists().where(VectorVersion.blob_sha256 == sha) & \
            ~exists().where(EditVector.blob_sha256 == sha)
        try:
            with session.begin_nested():
                removed += session.execute(
                    delete(VectorBlob).where(VectorBlob.sha256 == sha, unreferenced)).rowcount
        except IntegrityError:
            pass
    return removed
