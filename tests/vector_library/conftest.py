"""Fixtures of the vector-library suite: every test runs on a real SQLite file and on the real
PostgreSQL server of $EDITGAN_TEST_PG_URL (skipped, with the reason, when it is unset or down)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from sqlalchemy import select

from core.vector_format import VectorFile
from db import Base, Database
from db.testing import fresh_sqlite, make_sqlite_template, postgres_url, truncate_all
from vector_library import VectorLibrary, VectorMetadata
from vector_library.testing import CARS, FACES, random_vector


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> object:
    return make_sqlite_template(tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3")


@pytest.fixture(scope="session")
def pg_database():
    url, why = postgres_url()
    if url is None:
        pytest.skip(why)
    db = Database.open(url)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        db = fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "library.sqlite3")
        yield db
        db.dispose()
    else:
        db = request.getfixturevalue("pg_database")
        truncate_all(db)
        yield db


@pytest.fixture
def library(database) -> VectorLibrary:
    lib = VectorLibrary(database)
    for name in ("alice", "bob", "carol"):
        lib.ensure_user(name)
    lib.register_model(FACES)
    lib.register_model(CARS)
    return lib


@pytest.fixture
def make_vector() -> Callable[..., VectorFile]:
    """Factory of valid VectorFiles for FACES; every call gives a different delta.
    make_vector(spec=CARS), make_vector(shape=(5, 8)), make_vector(model_id=...), make_vector(name=...)."""
    rng = np.random.default_rng(1234)

    def make(spec=FACES, **kwargs) -> VectorFile:
        return random_vector(rng, spec, **kwargs)

    return make


@pytest.fixture
def publish(library, make_vector) -> Callable:
    """Publish a fresh vector: publish(user="alice", name=..., tags=..., visibility=..., **file_fields)."""

    def do(user: str = "alice", name: str = "smile", *, tags=(), visibility="public", description="",
           **file_fields):
        meta = VectorMetadata(name=name, description=description, tags=tuple(tags), visibility=visibility)
        return library.publish(user, make_vector(**file_fields), meta)

    return do


@pytest.fixture
def snapshot(database) -> Callable[[], dict]:
    """Every row of every table, to assert that a refused action changed nothing."""

    def take() -> dict:
        out = {}
        with database.reader() as s:
            for table in Base.metadata.sorted_tables:
                rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
                out[table.name] = [tuple(r) for r in rows]
        return out

    return take
