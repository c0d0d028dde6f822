"""Migrations and engine settings on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from db import Base, Database, DatabaseConfig, default_data_dir, default_database_url
from db.migrate import current_revision, downgrade, head_revision, include_object
from db.testing import sqlite_url

TABLES = {"users", "models", "vector_blobs", "edit_vectors", "vector_versions", "vector_tags",
          "vector_classes", "likes", "compositions", "composition_items", "share_states", "kept_files",
          "label_sets", "label_set_members", "label_samples", "label_masks", "branch_versions", "training_locks"}
REPO = Path(__file__).resolve().parents[2]


def schema_diff(db: Database) -> list:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_creates_the_models_schema_exactly(empty_database):
    db = empty_database
    assert current_revision(db.engine) is None
    db.upgrade()
    assert current_revision(db.engine) == head_revision() == "0005"
    assert TABLES <= set(inspect(db.engine).get_table_names())
    assert schema_diff(db) == []  # the migration and the models agree, column by column


def test_search_structures_per_dialect(empty_database):
    db = empty_database
    db.upgrade()
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'edit_vectors_fts'"))
            assert "fts5" in sql and "content='edit_vectors'" in sql
            triggers = set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
            assert triggers == {"edit_vectors_fts_ai", "edit_vectors_fts_ad", "edit_vectors_fts_au"}
        else:
            cols = {c["name"] for c in inspect(conn).get_columns("edit_vectors")}
            assert "search_tsv" in cols
            assert "ix_edit_vectors_search_tsv" in {i["name"] for i in inspect(conn).get_indexes("edit_vectors")}


def test_downgrade_and_upgrade_again(empty_database):
    db = empty_database
    db.upgrade()
    downgrade(db.engine, "base")
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
    assert current_revision(db.engine) is None
    db.upgrade()
    db.upgrade()  # a second upgrade on start is a no-op
    assert current_revision(db.engine) == "0005" and schema_diff(db) == []


def test_concurrent_upgrades_on_start_are_safe(empty_database):
    """Several app workers starting at once each call upgrade(); one migrates, none fails."""
    errors = []

    def start() -> None:
        try:
            empty_database.upgrade()
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(empty_database.engine) == "0005"


def test_sqlite_connection_settings(tmp_path):
    db = Database.open(sqlite_url(tmp_path / "s.sqlite3"), busy_timeout_ms=1234)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_sqlite_writers_take_the_lock_at_begin_and_readers_do_not_wait(tmp_path):
    url = sqlite_url(tmp_path / "lock.sqlite3")
    first = Database.open(url)
    second = Database(DatabaseConfig(url=url, busy_timeout_ms=100))
    with first.writer.begin() as s:
        s.execute(text("SELECT 1"))  # BEGIN IMMEDIATE already holds the write lock
        with second.reader.begin() as r:  # WAL: readers go on
            assert r.execute(text("SELECT count(*) FROM users")).scalar() == 0
        with pytest.raises(OperationalError, match="database is locked"):
            with second.writer.begin() as w:
                w.execute(text("SELECT 1"))
    with second.writer.begin() as w:  # free again after the first commits
        w.execute(text("INSERT INTO users (username, display_name, created_at) VALUES ('u', 'u', '2026-01-01')"))
    first.dispose()
    second.dispose()


def test_in_memory_sqlite_works_for_quick_scripts():
    db = Database.open("sqlite://")
    assert TABLES <= set(inspect(db.engine).get_table_names())
    db.dispose()


def test_default_locations_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("EDITGAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("EDITGAN_DATA_DIR", str(tmp_path / "store"))
    assert default_data_dir() == tmp_path / "store"
    assert default_database_url() == f"sqlite:///{(tmp_path / 'store' / 'library.sqlite3').resolve()}"
    monkeypatch.setenv("EDITGAN_DATABASE_URL", "postgresql+psycopg://u:p@db/x")
    assert default_database_url() == "postgresql+psycopg://u:p@db/x"
    assert DatabaseConfig.from_env().to_dict()["url"] == "postgresql+psycopg://u:***@db/x"


def test_alembic_command_line_uses_the_repo_config(tmp_path):
    env = dict(os.environ, EDITGAN_DATABASE_URL=sqlite_url(tmp_path / "cli.sqlite3"))
    run = subprocess.run([sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    db = Database(DatabaseConfig(url=env["EDITGAN_DATABASE_URL"]))
    assert current_revision(db.engine) == "0005" and schema_diff(db) == []
    db.dispose()


LABEL_TABLES = {"label_sets", "label_set_members", "label_samples", "label_masks", "branch_versions", "training_locks"}


def test_label_tables_downgrade_to_0002_and_upgrade_again(empty_database):
    db = empty_database
    db.upgrade()
    downgrade(db.engine, "0002")
    assert current_revision(db.engine) == "0002"
    names = set(inspect(db.engine).get_table_names())
    assert not names & LABEL_TABLES and TABLES - LABEL_TABLES <= names
    db.upgrade()
    assert current_revision(db.engine) == "0005" and schema_diff(db) == []
