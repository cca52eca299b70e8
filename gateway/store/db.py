"""Engines and sessions for SQLite (embedded, WAL) and PostgreSQL.

On SQLite every transaction that may write begins ``IMMEDIATE`` (it takes the one write lock
at once, so writers queue instead of failing to upgrade). A transaction that only reads
runs on ``reader(engine)`` and begins ``DEFERRED``: in WAL mode it reads a snapshot beside
the writer and never waits for, nor holds up, the write lock. Use readers for reads only:
a deferred transaction that writes may fail to take the lock (SQLITE_BUSY) under load.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "READ_ONLY",
    "insert_or_nothing",
    "make_engine",
    "make_sessionmaker",
    "reader",
    "transaction",
]

READ_ONLY = "eh_read_only"  # execution option of connections that only read


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the hub: WAL and a busy timeout on SQLite, pre-ping on servers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a 202 means durably stored
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """Writers take the write lock at BEGIN (they queue instead of deadlocking); readers
    begin deferred and read a snapshot without the lock."""
    statement = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
    # Straight to the driver: every transaction begins here, and exec_driver_sql's execution
    # context costs more than the BEGIN itself. (Nothing to log or observe in a BEGIN.)
    conn.connection.dbapi_connection.execute(statement)


def reader(engine: Engine) -> Engine:
    """The same engine and pool, for transactions that only read (see the module doc)."""
    return engine.execution_options(**{READ_ONLY: True})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


@functools.lru_cache(maxsize=64)
def insert_or_nothing(
    model: Any, dialect: str, *, key: tuple[str, ...] = (), returning: tuple[Any, ...] = ()
) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING [RETURNING ...]`` of ``model`` for the store's
    dialect (both stores speak it; SQLAlchemy spells it per dialect). Built once per
    arguments: some run for every request, and building a statement costs about as much as
    running it on SQLite. Values are given when it is executed (or with ``.values()``)."""
    if dialect == "postgresql":
        statement: Any = postgresql.insert(model)
    elif dialect == "sqlite":
        statement = sqlite.insert(model)
    else:
        raise NotImplementedError(f"the hub's store is SQLite or PostgreSQL, not {dialect}")
    statement = statement.on_conflict_do_nothing(index_elements=list(key) or None)
    return statement.returning(*returning) if returning else statement
