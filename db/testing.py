"""Real databases for tests and benchmarks: a migrated SQLite file per test (copied from a
template, so migrations run once), and the PostgreSQL server named by $EDITGAN_TEST_PG_URL
(migrated once, emptied between tests). Nothing here is mocked."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Optional

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.engine import Database, DatabaseConfig
from db.models import Base

ENV_TEST_PG_URL = "EDITGAN_TEST_PG_URL"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_sqlite_template(path: Path) -> Path:
    """Create a migrated SQLite file at ``path`` to copy for each test."""
    db = Database.open(sqlite_url(path))
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def fresh_sqlite(template: Path, path: Path) -> Database:
    shutil.copyfile(template, path)
    return Database(DatabaseConfig(url=sqlite_url(path)))


@functools.lru_cache(maxsize=None)
def postgres_url() -> tuple[Optional[str], str]:
    """(url, "") when $EDITGAN_TEST_PG_URL names a reachable server, else (None, why not).
    Checked once per process, so an unreachable server costs one timeout, not one per test."""
    url = os.environ.get(ENV_TEST_PG_URL)
    if not url:
        return None, f"PostgreSQL tests skipped: ${ENV_TEST_PG_URL} is not set (.ci/run sets it)"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return None, f"PostgreSQL tests skipped: cannot connect to ${ENV_TEST_PG_URL} ({type(exc).__name__}: {exc})"
    return url, ""


def truncate_all(db: Database) -> None:
    """Empty every table of a PostgreSQL database and restart its id sequences."""
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@contextlib.contextmanager
def private_schema(url: str, prefix: str = "test") -> Iterator[str]:
    """A new, empty schema on the PostgreSQL server at ``url``, yielded as a URL whose connections use it
    (``search_path``; what app processes and ``Database`` take alike), dropped with its contents afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False)  # fmt: skip
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()
