"""Schema migrations with Alembic, run from code so the app upgrades the schema on start.

``upgrade(engine)`` is safe to call from several processes starting at once: on SQLite the
migration runs inside a ``BEGIN IMMEDIATE`` transaction (one process migrates, the others wait
for the lock, then find the schema current); on PostgreSQL a transaction-scoped advisory lock
does the same. The command line works too: ``alembic upgrade head`` from the repository root
(alembic.ini), using ``$EDITGAN_DATABASE_URL`` or the default SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x6564_6974_67  # arbitrary constant: "editg"


# Dialect-specific search structures exist only in the migrations, not in the models.
SEARCH_OBJECTS = {"search_tsv", "ix_edit_vectors_search_tsv"}


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic autogenerate filter: ignore the full-text structures (FTS5 tables, tsvector)."""
    return not (name in SEARCH_OBJECTS or (name or "").startswith("edit_vectors_fts"))


def alembic_config(connection: Optional[Connection] = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> Optional[str]:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(engine: Engine, action, revision: str) -> None:
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        action(alembic_config(conn), revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)
