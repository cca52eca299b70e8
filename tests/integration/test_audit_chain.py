"""The audit log is one linear hash chain on SQLite and PostgreSQL, and shows tampering."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gateway.store import audit
from gateway.store.db import make_engine, make_sessionmaker, transaction
from gateway.store.migrate import upgrade
from gateway.store.models import AuditCheckpoint, AuditEntry
from security.audit import GENESIS, generate_checkpoint_key

T0 = datetime(2024, 11, 22, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A fresh schema first on the search path; the session reads times in London time."""
    schema = f"aud_{uuid.uuid4().hex[:10]}"
    options = f"-csearch_path={schema} -ctimezone=Europe/London"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield str(make_url(pg_url).update_query_dict({"options": options}))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sessions(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated database of each kind."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def _append(session: Session, n: int, *, actor: str = "router") -> AuditEntry:
    return audit.append(
        session,
        at=T0 + timedelta(minutes=n),
        action="decided",
        actor=actor,
        escalation_id=f"esc-{n % 3}",
        detail={"rule": "stage_two_notifies_iro", "clauses": ["4.2", "4.3"], "n": n},
    )


def _fill(sessions: sessionmaker[Session], count: int) -> None:
    for n in range(count):
        with transaction(sessions) as session:
            _append(session, n)


def _verify(sessions: sessionmaker[Session], *, batch_size: int = 1000) -> int | None:
    with transaction(sessions) as session:
        return audit.verify(session, batch_size=batch_size)


def _tamper(sessions: sessionmaker[Session], sql: str) -> None:
    with transaction(sessions) as session:
        session.execute(text(sql))


def test_appended_entries_form_a_chain_that_verify_accepts(
    sessions: sessionmaker[Session],
) -> None:
    _fill(sessions, 4)
    with transaction(sessions) as session:  # several in one transaction, one in London time
        _append(session, 4)
        audit.append(
            session,
            at=datetime(2024, 7, 1, 10, 0, tzinfo=ZoneInfo("Europe/London")),
            action="delivered",
            actor="delivery",
            escalation_id=None,
            detail={},
        )

    with transaction(sessions) as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert [row.seq for row in rows] == [1, 2, 3, 4, 5, 6]
        assert rows[0].prev_hash == GENESIS
        assert all(row.prev_hash == before.hash for before, row in pairwise(rows))
    assert _verify(sessions) is None


def test_editing_one_entrys_detail_makes_verify_name_that_seq(
    sessions: sessionmaker[Session],
) -> None:
    _fill(sessions, 5)

    _tamper(sessions, """UPDATE audit_log SET detail = '{"rule": "tampered"}' WHERE seq = 3""")

    assert _verify(sessions) == 3


def test_verify_finds_tampering_past_a_batch_boundary(sessions: sessionmaker[Session]) -> None:
    _fill(sessions, 7)
    assert _verify(sessions, batch_size=2) is None

    _tamper(sessions, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 6")

    assert _verify(sessions, batch_size=2) == 6


def test_deleting_an_entry_makes_verify_name_the_missing_seq(
    sessions: sessionmaker[Session],
) -> None:
    _fill(sessions, 5)

    _tamper(sessions, "DELETE FROM audit_log WHERE seq = 2")

    assert _verify(sessions) == 2


def test_cutting_off_the_tail_is_noticed_against_the_head(
    sessions: sessionmaker[Session],
) -> None:
    _fill(sessions, 5)

    _tamper(sessions, "DELETE FROM audit_log WHERE seq >= 4")

    assert _verify(sessions) == 4


def test_an_empty_log_verifies(sessions: sessionmaker[Session]) -> None:
    assert _verify(sessions) is None


@pytest.mark.postgres
def test_two_threads_appending_on_postgresql_keep_one_unbroken_chain(
    pg_schema_url: str,
) -> None:
    upgrade(pg_schema_url)
    engine = make_engine(pg_schema_url)
    sessions = make_sessionmaker(engine)
    start = threading.Barrier(2)

    def appender(actor: str) -> None:
        start.wait(timeout=10)
        with sessions() as session:  # one session per thread, a transaction per entry
            for n in range(25):
                with session.begin():
                    _append(session, n, actor=actor)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(appender, actor) for actor in ("a", "b")]:
                done.result(timeout=60)  # re-raises whatever the thread raised
        with transaction(sessions) as session:
            seqs = session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
            actors = session.scalars(select(AuditEntry.actor)).all()
        assert seqs == list(range(1, 51))
        assert sorted(actors) == ["a"] * 25 + ["b"] * 25
        assert _verify(sessions) is None
    finally:
        engine.dispose()


def test_a_session_reused_after_others_appended_continues_the_chain(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as first, sessions() as second:
        with first.begin():
            _append(first, 0)
        with second.begin():
            _append(second, 1)
        with first.begin():
            entry = _append(first, 2)

    assert entry.seq == 3
    assert _verify(sessions) is None


def test_append_refuses_narratives_and_naive_times_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        with pytest.raises(ValueError, match="never narratives"):
            audit.append(
                session,
                at=T0,
                action="decided",
                actor="router",
                escalation_id="esc-1",
                detail={"note": "x" * 300},
            )
        with pytest.raises(ValueError, match="timezone-aware"):
            audit.append(
                session,
                at=T0.replace(tzinfo=None),
                action="decided",
                actor="router",
                escalation_id="esc-1",
                detail={},
            )
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_a_checkpoint_verifies_with_the_public_key_and_fails_after_tampering(
    sessions: sessionmaker[Session],
) -> None:
    private_key, public_key = generate_checkpoint_key()
    _fill(sessions, 3)
    with transaction(sessions) as session:
        signed = audit.checkpoint(session, signing_key=private_key, at=T0)
        again = audit.checkpoint(session, signing_key=private_key, at=T0 + timedelta(hours=1))
        assert (signed.seq, again.signature) == (3, signed.signature)
        assert audit.verify_checkpoint(session, signed, public_key=public_key)
        assert not audit.verify_checkpoint(session, signed, public_key=generate_checkpoint_key()[1])

    _tamper(sessions, f"UPDATE audit_checkpoints SET head_hash = '{'f' * 64}' WHERE seq = 3")
    with transaction(sessions) as session:
        stored = session.execute(
            select(AuditCheckpoint).execution_options(populate_existing=True)
        ).scalar_one()
        assert not audit.verify_checkpoint(session, stored, public_key=public_key)


def test_a_checkpoint_fails_when_the_entry_it_signed_was_rewritten(
    sessions: sessionmaker[Session],
) -> None:
    private_key, public_key = generate_checkpoint_key()
    _fill(sessions, 2)
    with transaction(sessions) as session:
        signed = audit.checkpoint(session, signing_key=private_key, at=T0)

    _tamper(sessions, f"UPDATE audit_log SET hash = '{'e' * 64}' WHERE seq = 2")

    with transaction(sessions) as session:
        assert not audit.verify_checkpoint(session, signed, public_key=public_key)
