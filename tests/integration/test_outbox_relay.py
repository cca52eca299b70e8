# (kombu leaves most functions unannotated; see gateway/bus/topology.py)
"""The outbox relay against real SQLite files and PostgreSQL, publishing on the memory bus."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.bus import (
    BusUnavailable,
    Publisher,
    Relay,
    Topology,
    broker_connection,
    partition_for,
    pending_count,
    relay_once,
)
from gateway.store.db import make_engine, make_sessionmaker, transaction
from gateway.store.models import Base, OutboxMessage

MEMORY = "memory://"
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"
FAST_FAIL = {"max_retries": 1, "interval_start": 0.01, "interval_step": 0.01, "interval_max": 0.01}
Sessions = sessionmaker[Session]


def wait_until(predicate: Callable[[], bool], *, guard: float = 10.0) -> None:
    """Wait for a condition; the guard only stops a broken test from hanging."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the hang guard")
        time.sleep(0.005)


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[Sessions]:
    engine = make_engine(sqlite_url)
    Base.metadata.create_all(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def topology(bus_prefix: str) -> Topology:
    return Topology(bus_prefix, 4)


@pytest.fixture
def publisher(topology: Topology) -> Iterator[Publisher]:
    publisher = Publisher(lambda: broker_connection(MEMORY, timeout=5), topology)
    yield publisher
    publisher.close()


def unreachable(topology: Topology) -> Publisher:
    url = UNREACHABLE
    return Publisher(
        lambda: broker_connection(url, timeout=2, retry_policy=FAST_FAIL),
        topology,
        timeout=2,
        retry_policy=FAST_FAIL,
    )


def add(sessions: Sessions, *rows: tuple[str, str, str]) -> None:
    """Outbox rows (message_id, topic, routing_key) in the order given."""
    with transaction(sessions) as session:
        for message_id, topic, key in rows:
            session.add(
                OutboxMessage(
                    message_id=message_id,
                    topic=topic,
                    routing_key=key,
                    payload={"id": message_id},
                    created_at=datetime.now(UTC),
                )
            )


def unpublished(sessions: Sessions) -> list[str]:
    with transaction(sessions) as session:
        rows = session.scalars(
            select(OutboxMessage.message_id)
            .where(OutboxMessage.published_at.is_(None))
            .order_by(OutboxMessage.pk)
        )
        return list(rows)


def on_bus(topology: Topology, queue_name: str) -> list[str]:
    """The message ids now in a memory queue, in order, removed from it."""
    queue = next(q for q in topology.all_queues() if q.name == queue_name)
    ids = []
    with broker_connection(MEMORY, timeout=5) as connection:
        bound = queue.bind(connection.default_channel)
        bound.declare()
        while (message := bound.get(no_ack=True)) is not None:
            ids.append(message.properties["message_id"])
    return ids


def deliveries(n: int, start: int = 0) -> list[tuple[str, str, str]]:
    return [(f"d{i}", "deliver", "deliver") for i in range(start, start + n)]


class FailingAt(Publisher):
    """A real publisher that fails at the n-th publish with the given error."""

    def __init__(self, *args: Any, at: int, error: Exception, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.at, self.error = 0, at, error

    def publish(
        self, topic: str, *, message_id: str, routing_hint: str, payload: dict[str, Any]
    ) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        super().publish(topic, message_id=message_id, routing_hint=routing_hint, payload=payload)


def test_the_relay_publishes_in_primary_key_order_and_marks_every_row(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    add(sessions, *deliveries(5))

    assert relay_once(sessions, publisher) == 5

    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1", "d2", "d3", "d4"]
    assert unpublished(sessions) == []
    assert relay_once(sessions, publisher) == 0
    assert on_bus(topology, f"{topology.prefix}.deliver") == []


def test_decide_rows_go_to_the_partition_of_their_escalation(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    by_id = [(f"e{i}", "decide", f"esc-{i}") for i in range(8)]
    by_partition = [(f"p{i}", "decide", str(partition_for(f"esc-{i}", 4))) for i in range(8)]
    add(sessions, *by_id, *by_partition)

    relay_once(sessions, publisher)

    for n in range(4):
        mine = [i for i in range(8) if partition_for(f"esc-{i}", 4) == n]
        expected = [f"e{i}" for i in mine] + [f"p{i}" for i in mine]
        assert on_bus(topology, f"{topology.prefix}.decide.{n}") == expected


def add_with(sessions: Sessions, *rows: tuple[str, str, str, dict[str, Any]]) -> None:
    """Outbox rows (message_id, topic, routing_key, payload) in the order given."""
    with transaction(sessions) as session:
        for message_id, topic, key, payload in rows:
            session.add(
                OutboxMessage(
                    message_id=message_id,
                    topic=topic,
                    routing_key=key,
                    payload=payload,
                    created_at=datetime.now(UTC),
                )
            )


def test_a_batch_publishes_only_the_newest_poke_per_escalation_and_per_lane(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    key = str(partition_for("esc-a", 4))
    add_with(
        sessions,
        ("decide:esc-a:1", "decide", key, {"escalation_id": "esc-a"}),
        ("deliver:1", "deliver", "deliver", {"delivery_id": "u1:c1", "lane": "connector:c1"}),
        ("decide:esc-a:2", "decide", key, {"escalation_id": "esc-a"}),
        ("deliver:2", "deliver", "deliver", {"delivery_id": "u1:c2", "lane": "connector:c2"}),
        ("deliver:3", "deliver", "deliver", {"delivery_id": "u2:c1", "lane": "connector:c1"}),
        ("deliver:4", "deliver", "deliver", {"delivery_id": "u3"}),  # no lane: never merged
        ("decide:esc-a:3", "decide", key, {"escalation_id": "esc-a"}),
    )

    assert relay_once(sessions, publisher) == 7

    assert unpublished(sessions) == []
    assert on_bus(topology, f"{topology.prefix}.decide.{key}") == ["decide:esc-a:3"]
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["deliver:2", "deliver:3", "deliver:4"]


def test_a_poke_stood_in_for_stays_covered_when_the_batch_fails_before_the_newest(
    sessions: Sessions, topology: Topology, publisher: Publisher
) -> None:
    key = str(partition_for("esc-b", 4))
    add_with(
        sessions,
        ("decide:esc-b:1", "decide", key, {"escalation_id": "esc-b"}),
        ("deliver:9", "deliver", "deliver", {"delivery_id": "u9"}),
        ("decide:esc-b:2", "decide", key, {"escalation_id": "esc-b"}),
    )
    failing = FailingAt(
        lambda: broker_connection(MEMORY, timeout=5), topology, at=2, error=BusUnavailable("down")
    )

    with pytest.raises(BusUnavailable):
        relay_once(sessions, failing)

    assert unpublished(sessions) == ["decide:esc-b:2"], "the newest still owes the escalation"
    assert relay_once(sessions, publisher) == 1
    assert on_bus(topology, f"{topology.prefix}.decide.{key}") == ["decide:esc-b:2"]


def test_batches_are_taken_oldest_first(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    add(sessions, *deliveries(5))

    assert relay_once(sessions, publisher, batch=2) == 2

    assert unpublished(sessions) == ["d2", "d3", "d4"]
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1"]


def test_rows_stay_unpublished_while_the_broker_is_unreachable_and_go_out_after_recovery(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    add(sessions, *deliveries(3))

    with pytest.raises(BusUnavailable, match="stays unpublished"):
        relay_once(sessions, unreachable(topology))

    assert unpublished(sessions) == ["d0", "d1", "d2"]
    assert relay_once(sessions, publisher) == 3
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1", "d2"]


def test_a_failure_mid_batch_marks_only_what_the_broker_confirmed_and_keeps_the_order(
    sessions: Sessions, topology: Topology, publisher: Publisher
) -> None:
    add(sessions, *deliveries(5))
    failing = FailingAt(
        lambda: broker_connection(MEMORY, timeout=5), topology, at=3, error=BusUnavailable("down")
    )

    with pytest.raises(BusUnavailable):
        relay_once(sessions, failing)

    assert unpublished(sessions) == ["d2", "d3", "d4"]
    assert relay_once(sessions, publisher) == 3
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1", "d2", "d3", "d4"]


def test_a_crash_before_the_marks_commit_publishes_again_rather_than_losing(
    sessions: Sessions, topology: Topology, publisher: Publisher
) -> None:
    add(sessions, *deliveries(4))
    crashing = FailingAt(
        lambda: broker_connection(MEMORY, timeout=5), topology, at=3, error=RuntimeError("killed")
    )

    with pytest.raises(RuntimeError):
        relay_once(sessions, crashing)

    assert unpublished(sessions) == ["d0", "d1", "d2", "d3"]
    relay_once(sessions, publisher)
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1", "d0", "d1", "d2", "d3"]


def test_a_row_with_a_topic_the_bus_does_not_route_waits_without_blocking_the_others(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    add(sessions, ("x0", "gossip", "k"), *deliveries(2))

    assert relay_once(sessions, publisher) == 2

    assert unpublished(sessions) == ["x0"]
    assert pending_count(sessions) == 1


def test_the_relay_thread_publishes_right_after_a_notify(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    relay = Relay(sessions=sessions, publisher=publisher, interval=3600)
    thread = relay.start()
    try:
        time.sleep(0.05)  # let the first pass find nothing and start its hour-long wait
        add(sessions, *deliveries(2))
        relay.notify()
        wait_until(lambda: unpublished(sessions) == [])
    finally:
        relay.stop()
    assert not thread.is_alive()
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1"]


class FlakyStore:
    """A sessionmaker whose database is away while ``down`` is set."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions, self.down, self.failures = sessions, True, 0

    def __call__(self) -> Session:
        if self.down:
            self.failures += 1
            raise OperationalError("SELECT 1", {}, Exception("the database is away"))
        return self.sessions()


def test_a_notify_after_a_database_outage_ends_the_back_off_at_once(
    sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    store = FlakyStore(sessions)
    relay = Relay(
        sessions=cast(Sessions, store), publisher=publisher, interval=0.05, backoff_max=3600
    )
    thread = relay.start()
    try:
        wait_until(lambda: store.failures >= 7)  # backing off: 0.05 s doubling, now 6.4 s
        store.down = False
        add(sessions, *deliveries(1))  # a commit: the database is back
        relay.notify()
        wait_until(lambda: unpublished(sessions) == [], guard=3.0)
    finally:
        relay.stop()
    assert not thread.is_alive()
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0"]


def test_a_broker_outage_is_logged_once_and_its_rows_go_out_after_recovery(
    sessions: Sessions,
    publisher: Publisher,
    topology: Topology,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.bus")
    add(sessions, *deliveries(2))
    relay = Relay(sessions=sessions, publisher=unreachable(topology), interval=0.1, backoff_max=5)

    delays = [relay.tick() for _ in range(3)]
    relay.publisher = publisher
    after = relay.tick()

    assert delays == sorted(delays)
    assert delays[0] < delays[-1] <= 5
    assert [r.getMessage() for r in caplog.records].count("relay.outage") == 1
    assert "relay.recovered" in [r.getMessage() for r in caplog.records]
    assert after == 0.1
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1"]


# PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_sessions(pg_url: str) -> Iterator[Sessions]:
    """The hub's tables in a schema of their own, dropped afterwards."""
    schema = f"relay_{uuid.uuid4().hex[:10]}"
    admin: Engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"})
    Base.metadata.create_all(engine)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class MeetingPublisher(Publisher):
    """Holds each relay's first publish until both relays hold a claimed batch at once."""

    def __init__(self, *args: Any, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.barrier, self.met = barrier, set[int]()

    def publish(
        self, topic: str, *, message_id: str, routing_hint: str, payload: dict[str, Any]
    ) -> None:
        if threading.get_ident() not in self.met:
            self.met.add(threading.get_ident())
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=10)
        super().publish(topic, message_id=message_id, routing_hint=routing_hint, payload=payload)


@pytest.mark.postgres
def test_the_relay_on_postgresql_publishes_in_order_and_marks_every_row(
    pg_sessions: Sessions, publisher: Publisher, topology: Topology
) -> None:
    add(pg_sessions, *deliveries(4))

    assert relay_once(pg_sessions, publisher) == 4

    assert unpublished(pg_sessions) == []
    assert on_bus(topology, f"{topology.prefix}.deliver") == ["d0", "d1", "d2", "d3"]


@pytest.mark.postgres
def test_two_relays_on_postgresql_claim_different_rows_at_the_same_time(
    pg_sessions: Sessions, topology: Topology
) -> None:
    add(pg_sessions, *deliveries(10))
    shared = MeetingPublisher(
        lambda: broker_connection(MEMORY, timeout=5), topology, barrier=threading.Barrier(2)
    )
    counts: list[int] = []

    def relay() -> None:
        counts.append(relay_once(pg_sessions, shared, batch=5))

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    published = on_bus(topology, f"{topology.prefix}.deliver")
    assert counts == [5, 5]
    assert not shared.barrier.broken, "one relay waited for the other's rows instead of skipping"
    assert sorted(published) == sorted(f"d{i}" for i in range(10))
    assert unpublished(pg_sessions) == []
    shared.close()
