"""Bulk writers for seeding: SQLite ``executemany`` and PostgreSQL binary ``COPY``.

Both drop the seeded tables' secondary indexes first and build them again at the end (the
definitions are read back from the database, so they stay exactly the migration's), and
commit once per batch. Primary keys and unique constraints stay in force throughout. The
SQLite writer turns off ``synchronous`` for its own connection only (seeding is outside the
measured window; the hub's engine opens with its own pragmas); the PostgreSQL writer skips
foreign-key triggers when it may (superuser), and runs ``ANALYZE`` at the end, as autovacuum
would in a running installation.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import psycopg
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

__all__ = ["COLUMNS", "Rows", "Writer", "libpq_url", "writer_for"]

Rows = dict[str, list[tuple[Any, ...]]]
Stamp = Callable[[datetime], Any]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "escalations": (
        "id", "partnership", "procedure_id", "procedure_version", "status", "stage", "tier",
        "child_pseudonym", "state_sealed", "next_seq", "applied_seq", "opened_at", "updated_at",
    ),
    "parties": ("escalation_id", "agency_id", "case_reference"),
    "inbound_events": (
        "source", "event_id", "event_type", "escalation_id", "seq", "connector_id", "agency_id",
        "body_sealed", "received_at", "decided_at", "outcome",
    ),
    "deadlines": ("escalation_id", "deadline_id", "due", "notice_at", "state", "calendar_version"),
    "deliveries": (
        "id", "escalation_id", "connector_id", "channel", "target", "document_sealed", "status",
        "attempts", "last_status", "last_error", "created_at", "finished_at", "seq",
    ),
}  # fmt: skip
#: Columns a schema may not have yet (the last of the table's tuple; dropped when missing).
OPTIONAL: Final = {"deliveries": "seq"}


def _columns(table: str, present: set[str]) -> tuple[str, ...]:
    optional = OPTIONAL.get(table)
    if optional is not None and optional not in present:
        return COLUMNS[table][:-1]
    return COLUMNS[table]


class Writer(Protocol):
    """Writes batches of rows (table -> tuples in ``COLUMNS`` order)."""

    backend: str
    phases: dict[str, float]

    def stamp(self, moment: datetime) -> Any:
        """``moment`` (aware) as this backend stores it."""
        ...

    def write(self, rows: Rows) -> None: ...

    def finish(self) -> None: ...


@contextmanager
def writer_for(url: str) -> Iterator[Writer]:
    """The writer for a SQLAlchemy URL (SQLite file or PostgreSQL), closed afterwards."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise ValueError("seeding SQLite needs a database file, e.g. sqlite:///var/b.db")
        sqlite_writer = _SqliteWriter(parsed.database)
        try:
            yield sqlite_writer
        finally:
            sqlite_writer.close()
        return
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"cannot seed a {parsed.get_backend_name()} database: SQLite or PostgreSQL"
        )
    pg_writer = _PostgresWriter(libpq_url(url))
    try:
        yield pg_writer
    finally:
        pg_writer.close()


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq understands it (no ``+driver``)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


_SQLITE_TIME = DateTime(timezone=True).dialect_impl(sqlite_dialect.dialect())


class _SqliteWriter:
    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self.phases: dict[str, float] = {}
        self._db = sqlite3.connect(path, isolation_level=None)
        pragmas = ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY")
        for pragma in pragmas:
            self._db.execute(f"PRAGMA {pragma}")
        self._cols = {
            table: _columns(
                table, {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            )
            for table in COLUMNS
        }
        self._sql = {
            table: f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"  # noqa: S608 - our constant names
            for table, cols in self._cols.items()
        }
        started = time.perf_counter()
        tables = ",".join(f"'{t}'" for t in COLUMNS)
        query = f"SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN ({tables})"  # noqa: S608
        self._indexes = [(n, s) for n, s in self._db.execute(query) if s is not None]
        for name, _sql in self._indexes:
            self._db.execute(f'DROP INDEX "{name}"')
        self.phases["drop_indexes"] = time.perf_counter() - started
        self._check_stamp()

    @staticmethod
    def stamp(moment: datetime) -> str:
        """SQLAlchemy's SQLite DATETIME text for the UTC instant (checked in ``__init__``)."""
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def _check_stamp(self) -> None:
        convert = _SQLITE_TIME.bind_processor(sqlite_dialect.dialect())
        probe = datetime(2026, 3, 2, 9, 30, 0, 1, tzinfo=UTC)
        if convert is None or convert(probe) != self.stamp(probe):
            raise RuntimeError("SQLAlchemy stores SQLite datetimes differently: update stamp()")

    def write(self, rows: Rows) -> None:
        started = time.perf_counter()
        self._db.execute("BEGIN")
        for table, values in rows.items():
            width = len(self._cols[table])
            self._db.executemany(self._sql[table], [v[:width] for v in values])
        self._db.execute("COMMIT")
        self.phases["insert"] = self.phases.get("insert", 0.0) + time.perf_counter() - started

    def finish(self) -> None:
        started = time.perf_counter()
        self._rebuild()
        self.phases["build_indexes"] = time.perf_counter() - started
        self._db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._rebuild()  # a failed seeding still leaves the schema whole
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.close()

    def _rebuild(self) -> None:
        for _name, sql in self._indexes:
            self._db.execute(
                re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX IF NOT EXISTS ", sql)
            )
        self._indexes = []


_PG_INDEXES: Final = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""
_PG_TYPES: Final = """
SELECT column_name, udt_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %s
"""


class _PostgresWriter:
    backend = "postgresql"

    def __init__(self, url: str) -> None:
        self.phases: dict[str, float] = {}
        self._db = psycopg.connect(url)
        started = time.perf_counter()
        try:
            self._db.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            self._db.rollback()  # not a superuser: foreign keys are checked, only slower
        self._cols: dict[str, tuple[str, ...]] = {}
        self._types = {table: self._column_types(table) for table in COLUMNS}
        self._indexes = list(self._db.execute(_PG_INDEXES, (list(COLUMNS),)))
        for name, _sql in self._indexes:
            self._db.execute(f'DROP INDEX "{name}"')
        self._db.commit()
        self.phases["drop_indexes"] = time.perf_counter() - started

    def _column_types(self, table: str) -> list[str]:
        found: dict[str, str] = {
            str(name): str(udt) for name, udt in self._db.execute(_PG_TYPES, (table,)).fetchall()
        }
        columns = self._cols[table] = _columns(table, set(found))
        missing = [c for c in columns if c not in found]
        if missing:
            raise RuntimeError(
                f"table {table} lacks columns {missing}: run 'escalation-hub db upgrade' first"
            )
        return [str(found[c]) for c in columns]

    @staticmethod
    def stamp(moment: datetime) -> datetime:
        return moment

    def write(self, rows: Rows) -> None:
        started = time.perf_counter()
        with self._db.cursor() as cursor:
            for table, values in rows.items():
                columns, width = ",".join(self._cols[table]), len(self._cols[table])
                copy_sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
                with cursor.copy(copy_sql) as copy:
                    copy.set_types(self._types[table])
                    for row in values:
                        copy.write_row(row[:width])
        self._db.commit()
        self.phases["insert"] = self.phases.get("insert", 0.0) + time.perf_counter() - started

    def finish(self) -> None:
        started = time.perf_counter()
        self._rebuild()
        self.phases["build_indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        if "seq" in self._cols["deliveries"]:  # later deliveries number on from the seeded
            self._db.execute(
                "SELECT setval('deliveries_seq', max(seq)) FROM deliveries HAVING count(*) > 0"
            )
            self._db.commit()
        self._db.autocommit = True
        self._db.execute("ANALYZE " + ", ".join(COLUMNS))
        self.phases["analyze"] = time.perf_counter() - started

    def _rebuild(self) -> None:
        for _name, sql in self._indexes:
            self._db.execute(sql)
        self._db.commit()
        self._indexes = []

    def close(self) -> None:
        if self._indexes and not self._db.closed:
            self._db.rollback()
            self._rebuild()
        self._db.close()
