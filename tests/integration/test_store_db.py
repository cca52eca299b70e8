"""The store's engines: on SQLite, readers never wait for the write lock."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select

from gateway.store.db import make_engine, make_sessionmaker, reader, transaction
from gateway.store.models import Base, OutboxMessage


def _row(message_id: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=message_id,
        topic="deliver",
        routing_key="deliver",
        payload={},
        created_at=datetime.now(UTC),
    )


def test_a_reader_sees_the_last_commit_while_a_writer_holds_the_lock(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    Base.metadata.create_all(engine)
    writes, reads = make_sessionmaker(engine), make_sessionmaker(reader(engine))
    with transaction(writes) as session:
        session.add(_row("committed"))
    with transaction(writes) as holding:  # BEGIN IMMEDIATE: the write lock is ours until exit
        holding.add(_row("uncommitted"))
        holding.flush()
        started = time.monotonic()
        with reads() as session:
            seen = list(session.scalars(select(OutboxMessage.message_id)))
        waited = time.monotonic() - started
    engine.dispose()
    assert seen == ["committed"]
    assert waited < 5, "a read must not queue behind the writer (busy timeout is 30 s)"
