"""The database plumbing every store in this package shares: one write transaction retried on a transient
lock error, one read transaction, INSERT ... ON CONFLICT DO NOTHING, and the acting user's row.

VectorLibrary, its StateStore and LabelStore all go through these, so a change to the retry policy or to
how a user is looked up happens once.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Optional, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from db.engine import Database
from db.models import User
from vector_library import validation as check
from vector_library.errors import NotFound, PermissionDenied

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: OperationalError) -> bool:
    """Lock timeouts (SQLite) and deadlocks / serialization failures (PostgreSQL) are worth a retry."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in ("40001", "40P01") or "database is locked" in str(exc.orig)


def write(db: Database, retries: int, action: Callable[[Session], T]) -> T:
    """Run ``action`` in one write transaction, retrying it whole (at most ``retries`` tries, with jittered
    exponential back-off) on a transient lock error; any other error propagates at once."""
    for attempt in range(retries):
        try:
            with db.writer.begin() as session:
                return action(session)
        except OperationalError as exc:
            if not is_transient(exc) or attempt == retries - 1:
                raise
            log.warning("transient database error, retrying (%s)", exc.orig)
            time.sleep(0.05 * 2 ** attempt * (1 + random.random()))
    raise ValueError(f"retries must be at least 1, got {retries}")


def read(db: Database, action: Callable[[Session], T]) -> T:
    """Run ``action`` in one read transaction (the reader engine: a replica where one is configured)."""
    with db.reader.begin() as session:
        return action(session)


def acting_user(session: Session, username: Optional[str], refusal: str) -> User:
    """The signed-in user's row. Anonymous callers get PermissionDenied(``refusal``); an invalid name
    InvalidInput; a name never registered (the app calls ensure_user first) NotFound."""
    if username is None:
        raise PermissionDenied(refusal)
    check.username(username)
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}; the app registers users with ensure_user first")
    return user


def insert_ignore(s: Session, model: type, values: dict) -> int:
    """INSERT ... ON CONFLICT DO NOTHING; returns rows inserted (0 or 1)."""
    dialect = s.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        # RETURNING tells whether a row went in; INSERT rowcounts are not reliable across drivers.
        table = model.__table__
        stmt = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
        return len(s.execute(stmt).all())
    try:
        with s.begin_nested():
            s.add(model(**values))
        return 1
    except IntegrityError:
        return 0
