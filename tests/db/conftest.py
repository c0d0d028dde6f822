"""Fixtures of the db suite: fresh SQLite files, and a private schema on the PostgreSQL server
of $EDITGAN_TEST_PG_URL (skipped, with the reason, when it is unset or down)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from db import Database, DatabaseConfig
from db.testing import postgres_url, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """An empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        db = Database(DatabaseConfig(url=sqlite_url(tmp_path / "empty.sqlite3")))
        yield db
        db.dispose()
        return
    url, why = postgres_url()
    if url is None:
        pytest.skip(why)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    db = Database(DatabaseConfig(url=url), engine=engine)
    yield db
    db.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
