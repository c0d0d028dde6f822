"""Fixtures of the db suite: fresh SQLite files, and a private schema on the PostgreSQL server
of $EDITGAN_TEST_PG_URL (skipped, with the reason, when it is unset or down)."""

from __future__ import annotations

import pytest

from db import Database, DatabaseConfig
from db.testing import postgres_url, private_schema, sqlite_url


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
    with private_schema(url) as schema_url:
        db = Database(DatabaseConfig(url=schema_url))
        yield db
        db.dispose()
