"""Alembic environment: uses the caller's connection (db.migrate) or opens one from the URL."""

from __future__ import annotations

from alembic import context

from db.engine import DatabaseConfig, default_database_url, make_engine
from db.migrate import include_object
from db.models import Base

config = context.config
target_metadata = Base.metadata

def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or default_database_url(),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or default_database_url()
    engine = make_engine(DatabaseConfig(url=url))
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
