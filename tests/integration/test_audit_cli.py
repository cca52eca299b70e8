"""``escalation-hub audit verify|checkpoint|public-key`` on tampered SQLite and PostgreSQL logs,
and the scheduler's periodic signed checkpoints."""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.bootstrap import Hub
from gateway.cli import main
from gateway.runtime import Role, Runtime
from gateway.services import checkpoints
from gateway.services.checkpoints import Checkpointer
from gateway.store import audit, migrate
from gateway.store.db import transaction
from gateway.store.models import AuditCheckpoint
from security.audit import generate_checkpoint_key, public_key_from_private
from tests.conftest import fresh_pg_database
from tests.integration.test_api_helpers import make_hub

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PRIVATE = generate_checkpoint_key()[0]
SIGNING_KEY = base64.b64encode(PRIVATE).decode()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path}/hub.sqlite3"
        migrate.upgrade(database)
        yield database
        return
    with fresh_pg_database() as database:
        migrate.upgrade(database)
        yield database


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A hub on the database, and the environment the CLI will read."""
    values = {
        "EH_ENVIRONMENT": "production",
        "EH_DATABASE_URL": url,
        "EH_DATA_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "EH_DATA_KEY_ACTIVE": "k1",
        "EH_ADMIN_TOKEN": "admin-token-for-tests-only",
        "EH_PSEUDONYM_KEY": "pseudonym-key-for-tests-only",
        "EH_AUDIT_SIGNING_KEY": SIGNING_KEY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    built = make_hub(url, create_tables=False, audit_signing_key=SIGNING_KEY)
    built = dataclasses.replace(built, clock=clock)
    yield built
    built.close()


def append(hub: Hub, n: int) -> None:
    for _ in range(n):
        with transaction(hub.sessions) as session:
            audit.append(
                session,
                at=hub.clock(),
                action="decided",
                actor="router",
                escalation_id="esc-1",
                detail={"rule": "stage_two", "clause": "3.2"},
            )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out + err


def sql(hub: Hub, statement: str, **params: object) -> None:
    with hub.engine.begin() as connection:
        connection.execute(text(statement), params)


def head_hash(hub: Hub, seq: int) -> str:
    with hub.engine.connect() as connection:
        found = connection.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": seq})
        return str(found.scalar_one())


def test_verify_says_ok_with_the_count_the_head_and_the_checkpoints_that_hold(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    append(hub, 6)

    signed = run(capsys, "checkpoint")
    verified = run(capsys, "verify")

    assert signed == (0, f"checkpoint signed: seq 6, head {head_hash(hub, 6)}\n")
    assert verified[0] == 0
    assert f"audit log OK: 6 entries, head seq 6 {head_hash(hub, 6)}" in verified[1]
    assert "1 signed checkpoint(s) hold; the latest at seq 6" in verified[1]


def test_verify_names_the_first_broken_link_of_an_altered_entry(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    append(hub, 6)
    sql(hub, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")

    code, output = run(capsys, "verify")

    assert code == 1
    assert "audit log BROKEN at seq 3" in output
    assert "seq 3 does not follow from the entry before it" in output


def test_verify_reports_a_cut_off_tail_that_only_a_checkpoint_shows(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    append(hub, 6)
    assert run(capsys, "checkpoint")[0] == 0
    sql(hub, "DELETE FROM audit_log WHERE seq > 4")  # and a consistent head, as a careful
    sql(hub, "UPDATE audit_head SET seq = 4, hash = :h", h=head_hash(hub, 4))  # intruder would

    code, output = run(capsys, "verify")

    assert code == 1
    assert "audit log BROKEN at seq 5" in output
    assert "seq 6 was signed" in output
    assert "the tail was cut off" in output


def test_verify_shows_a_chain_rewritten_after_a_checkpoint(
    hub: Hub, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    append(hub, 3)
    run(capsys, "checkpoint")
    append(hub, 3)
    run(capsys, "checkpoint")
    sql(hub, "DELETE FROM audit_log WHERE seq > 4")
    sql(hub, "UPDATE audit_head SET seq = 4, hash = :h", h=head_hash(hub, 4))
    clock.now += timedelta(hours=1)
    append(hub, 2)  # a new, self-consistent ending in place of the signed one

    code, output = run(capsys, "verify")

    assert code == 1
    assert "audit log BROKEN at seq 4" in output
    assert "seq 6 differs from its signed checkpoint" in output
    assert "between seq 4 and 6" in output


def test_checkpoints_verify_only_with_the_audit_key_and_its_public_half_is_published(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    append(hub, 2)
    run(capsys, "checkpoint")
    published = run(capsys, "public-key")
    other = base64.b64encode(generate_checkpoint_key()[1]).decode()

    with_published = run(capsys, "verify", "--public-key", published[1].strip())
    with_other = run(capsys, "verify", "--public-key", other)
    with_nonsense = run(capsys, "verify", "--public-key", "not-a-key")

    assert published == (0, base64.b64encode(public_key_from_private(PRIVATE)).decode() + "\n")
    assert with_published[0] == 0
    assert with_other[0] == 1
    assert "the checkpoint at seq 2 is not signed by the audit key" in with_other[1]
    assert with_nonsense[0] == 2
    assert SIGNING_KEY not in published[1] + with_published[1] + with_other[1]


def test_the_checkpointer_signs_when_enough_entries_or_time_have_passed(
    hub: Hub, clock: Clock
) -> None:
    checkpointer = Checkpointer(hub, signing_key=PRIVATE, every_seconds=60, every_entries=3)
    assert checkpointer.tick() is None  # an empty log

    append(hub, 2)
    first = checkpointer.tick()
    append(hub, 1)
    too_soon = checkpointer.tick()
    clock.now += timedelta(seconds=61)
    by_time = checkpointer.tick()
    unchanged = checkpointer.tick()
    append(hub, 3)
    by_count = checkpointer.tick()

    assert first is not None
    assert first.seq == 2
    assert too_soon is None
    assert by_time is not None
    assert by_time.seq == 3
    assert unchanged is None
    assert by_count is not None
    assert by_count.seq == 6
    with hub.sessions() as session:
        for signed in session.query(AuditCheckpoint):
            assert audit.verify_checkpoint(
                session, signed, public_key=public_key_from_private(PRIVATE)
            )


def test_the_scheduler_role_signs_checkpoints_on_its_own(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "CHECKPOINT_POLL_SECONDS", 0.02)
    append(hub, 1)
    runtime = Runtime(hub, {Role.SCHEDULER})
    runtime.start()
    try:
        deadline = time.monotonic() + 20
        while _checkpoints(hub) == 0:
            assert time.monotonic() < deadline, "no checkpoint was signed"
            time.sleep(0.02)
    finally:
        runtime.stop()
    assert _checkpoints(hub) == 1  # and no more while the log does not grow


def _checkpoints(hub: Hub) -> int:
    with hub.sessions() as session:
        return session.query(AuditCheckpoint).count()
