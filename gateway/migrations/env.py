"""Alembic environment: the hub's own engine (SQLite pragmas), one locked transaction per run.

The URL arrives in ``config.attributes["url"]`` (see gateway.store.migrate), never in an ini
file, and no logging is configured here: the caller owns logging.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from gateway.store.db import make_engine
from gateway.store.models import Base

# An arbitrary constant: PostgreSQL advisory lock key shared by every migrating process.
_PG_MIGRATION_LOCK = 7_262_001_864_221_051


def _url() -> str:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database URL for the migrations: call gateway.store.migrate.upgrade(url)"
        )
    return str(url)


def _run(connection: Connection) -> None:
    """Run every pending migration in one transaction; concurrent runners queue on a lock."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,  # SQLite too: the whole upgrade commits or none of it
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


def _run_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
