"""Engine and session factory: SQLite file by default, PostgreSQL by URL.

SQLite is tuned for a web app with a few concurrent users on one machine: WAL journal (readers
never block the writer), a busy timeout (writers queue instead of failing), foreign keys on, and
write transactions opened with ``BEGIN IMMEDIATE``. The last point matters: Python's sqlite3
opens transactions lazily as DEFERRED, and a deferred transaction that read first and then writes
gets SQLITE_BUSY at once when another connection committed in between, without waiting for the
busy timeout. Taking the write lock up front makes writers queue politely. This is the recipe of
SQLAlchemy's SQLite dialect docs ("Serializable isolation / Savepoints / Transactional DDL").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

ENV_DATABASE_URL = "EDITGAN_DATABASE_URL"
ENV_DATA_DIR = "EDITGAN_DATA_DIR"
SPACE_DATA_DIR = Path("/data")  # a Hugging Face Space's persistent storage, when attached
SQLITE_FILENAME = "library.sqlite3"


def default_data_dir() -> Path:
    """``$EDITGAN_DATA_DIR``, else ``/data`` when it is a writable directory (Space storage), else ./data."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    if SPACE_DATA_DIR.is_dir() and os.access(SPACE_DATA_DIR, os.W_OK):
        return SPACE_DATA_DIR
    return Path("data")


def default_database_url(data_dir: Optional[Path] = None) -> str:
    """``$EDITGAN_DATABASE_URL``, else a SQLite file in ``data_dir`` (default: :func:`default_data_dir`)."""
    env = os.environ.get(ENV_DATABASE_URL)
    if env:
        return env
    return f"sqlite:///{(Path(data_dir or default_data_dir()) / SQLITE_FILENAME).resolve()}"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    busy_timeout_ms: int = 30_000  # SQLite: how long a writer waits for the lock
    pool_size: int = 10            # PostgreSQL connection pool
    max_overflow: int = 10
    echo: bool = False

    @classmethod
    def from_env(cls) -> "DatabaseConfig":
        return cls(url=default_database_url())

    def to_dict(self) -> dict:
        return {"url": make_url(self.url).render_as_string(hide_password=True),
                "busy_timeout_ms": self.busy_timeout_ms, "pool_size": self.pool_size,
                "max_overflow": self.max_overflow, "echo": self.echo}


def make_engine(config: DatabaseConfig) -> Engine:
    url = make_url(config.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(config)
    return create_engine(url, echo=config.echo, pool_pre_ping=True,
                         pool_size=config.pool_size, max_overflow=config.max_overflow)


def _sqlite_engine(config: DatabaseConfig) -> Engine:
    url = make_url(config.url)
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict = {"connect_args": {"timeout": config.busy_timeout_ms / 1000, "check_same_thread": False}}
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own empty DB
    engine = create_engine(url, echo=config.echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: durable at checkpoint
        cur.execute(f"PRAGMA busy_timeout={int(config.busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        immediate = conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE"
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The engine and two session factories, created once per process.

    ``reader`` opens ordinary transactions; ``writer`` opens transactions that take the write
    lock at BEGIN on SQLite (no difference on PostgreSQL). Use one ``with db.writer.begin() as s:``
    per user action that changes anything.
    """

    def __init__(self, config: DatabaseConfig, engine: Optional[Engine] = None) -> None:
        self.config = config
        self.engine = engine if engine is not None else make_engine(config)
        self.reader: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.writer: sessionmaker[Session] = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)

    @classmethod
    def open(cls, url: Optional[str] = None, *, upgrade: bool = True, **config_kwargs) -> "Database":
        """Connect to ``url`` (default: from the environment) and, by default, upgrade the schema."""
        db = cls(DatabaseConfig(url=url or default_database_url(), **config_kwargs))
        if upgrade:
            db.upgrade()
        return db

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self, revision: str = "head") -> None:
        from db.migrate import upgrade
        upgrade(self.engine, revision)

    def dispose(self) -> None:
        self.engine.dispose()
