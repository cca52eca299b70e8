"""Migrations build exactly the models' schema on SQLite and PostgreSQL, once and only once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from gateway.cli import main
from gateway.store import migrate
from gateway.store.db import make_engine
from gateway.store.models import Base


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A fresh schema in the session's PostgreSQL database, first on the search path."""
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield str(make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_builds_a_fresh_sqlite_file_exactly_like_the_models(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)

    assert _differences(sqlite_url) == []
    assert _tables(sqlite_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert migrate.current(sqlite_url) == migrate.head()


@pytest.mark.postgres
def test_upgrade_builds_a_fresh_postgresql_database_exactly_like_the_models(
    pg_schema_url: str,
) -> None:
    migrate.upgrade(pg_schema_url)

    assert _differences(pg_schema_url) == []
    assert _tables(pg_schema_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert migrate.current(pg_schema_url) == migrate.head()


def test_the_comparison_notices_a_schema_that_drifted_from_the_models(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_deadlines_due"))
    engine.dispose()

    assert [diff[0] for diff in _differences(sqlite_url)] == ["add_index"]


def test_a_database_never_migrated_is_pending_and_its_file_is_not_created(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/absent/hub.sqlite3"

    assert migrate.current(url) is None
    assert migrate.pending(url)
    assert not (tmp_path / "absent").exists()


def test_upgrading_sqlite_again_changes_nothing_and_keeps_the_data(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )
    engine.dispose()

    migrate.upgrade(sqlite_url)

    assert not migrate.pending(sqlite_url)
    assert _differences(sqlite_url) == []
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 1
    engine.dispose()


@pytest.mark.postgres
def test_upgrading_postgresql_again_changes_nothing(pg_schema_url: str) -> None:
    migrate.upgrade(pg_schema_url)
    migrate.upgrade(pg_schema_url)

    assert not migrate.pending(pg_schema_url)
    assert _differences(pg_schema_url) == []


@pytest.mark.postgres
def test_two_processes_upgrading_postgresql_at_once_both_succeed(pg_schema_url: str) -> None:
    code = "import sys; from gateway.store.migrate import upgrade; upgrade(sys.argv[1])"
    runs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", code, pg_schema_url], stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [(run.wait(timeout=60), run.stderr.read() if run.stderr else b"") for run in runs]
    for run in runs:
        if run.stderr:
            run.stderr.close()

    assert [code for code, _ in results] == [0, 0], [err.decode()[-400:] for _, err in results]
    assert _differences(pg_schema_url) == []


def test_downgrade_to_base_removes_every_table(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)

    command.downgrade(migrate.alembic_config(sqlite_url), "base")

    assert _tables(sqlite_url) == {"alembic_version"}
    assert migrate.current(sqlite_url) is None


def test_db_command_upgrades_and_prints_from_and_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EH_DATABASE_URL", raising=False)

    assert main(["db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    second = capsys.readouterr().out
    assert main(["db", "current"]) == 0
    shown = capsys.readouterr().out

    assert f"from (empty) to {migrate.head()}" in first
    assert f"already at {migrate.head()}" in second
    assert f"current {migrate.head()}; shipped head {migrate.head()}" in shown
    assert (tmp_path / "escalation-hub.sqlite3").exists()


def test_db_command_names_bad_settings_without_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EH_ENVIRONMENT", "production")
    monkeypatch.setenv("EH_ADMIN_TOKEN", "s3cret-admin-token-value")
    monkeypatch.setenv("EH_PORT", "s3cret-port-value")

    assert main(["db", "current"]) == 2

    err = capsys.readouterr().err
    assert "EH_PORT" in err
    assert "s3cret" not in err


def test_db_command_reports_an_unreachable_database_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EH_DATABASE_URL", "postgresql://hub:pa55word@127.0.0.1:1/hub")

    assert main(["db", "upgrade"]) == 1

    err = capsys.readouterr().err
    assert "cannot upgrade the database postgresql://hub:***@127.0.0.1:1/hub" in err
    assert "pa55word" not in err
