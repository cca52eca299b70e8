"""Delivery lanes across processes: two dispatchers on one database, as two delivery processes.

Each dispatcher has its own Hub (its own engine and connection pool) on the same database, as
two ``serve --role delivery`` processes would; a real HTTP receiver on 127.0.0.1 counts what
arrives. Lease expiry is driven by an injected clock, never by waiting.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub, build_hub
from gateway.services import deadletters
from gateway.services.delivery import Dispatcher
from gateway.services.lanes import LaneLeases
from gateway.services.rendering import render_common
from gateway.store import migrate
from gateway.store.db import make_engine, transaction
from gateway.store.models import Base, Delivery, DeliveryLane
from tests.conftest import fresh_pg_database
from tests.integration.test_delivery import (
    Party,
    Receiver,
    _settings,
    add_delivery,
    add_party,
    delivery,
    eventually,
    running_receiver,
    stage_update,
)

UNUSED_SMTP_PORT = 9  # these tests send no e-mail


class Clock:
    """A lease clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database of this test's own: recover() takes every pending lane it finds."""
    if request.param == "postgres":
        with fresh_pg_database() as url:
            yield url
        return
    yield f"sqlite:///{tmp_path}/lanes.sqlite3"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def hubs(database_url: str) -> Iterator[tuple[Hub, Hub]]:
    """Two hubs on one database: the same settings, separate engines (two processes)."""
    settings = _settings(database_url, UNUSED_SMTP_PORT)
    first, second = build_hub(settings), build_hub(settings)
    Base.metadata.create_all(first.engine)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def dispatchers(hubs: tuple[Hub, Hub]) -> Iterator[Callable[..., Dispatcher]]:
    """Builds dispatchers (closed afterwards), each with its own holder id."""
    made: list[Dispatcher] = []

    def make(hub: Hub, **options: Any) -> Dispatcher:
        made.append(Dispatcher(hub, **options))
        return made[-1]

    yield make
    for dispatcher in made:
        dispatcher.close()


def webhook_ids(receiver: Receiver, path: str) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.on(path)]


def lane_of(party: Party) -> str:
    return f"connector:{party.connector_id}"


def hold(hub: Hub, party: Party, *, holder: str, until: datetime) -> None:
    """Write a lease as another process (perhaps dead by now) left it."""
    with transaction(hub.sessions) as session:
        session.merge(DeliveryLane(target=lane_of(party), holder=holder, lease_until=until))


def test_deliveries_stored_together_are_numbered_in_the_order_they_were_added(
    hubs: tuple[Hub, Hub], receiver: Receiver
) -> None:
    hub, _ = hubs
    party = add_party(hub, receiver.url("/n"))
    with transaction(hub.sessions) as session:
        rows = [
            Delivery(
                id=f"batch-{n}-{uuid.uuid4().hex[:6]}",
                escalation_id="esc-1",
                connector_id=party.connector_id,
                channel="webhook",
                target=receiver.url("/n"),
                document_sealed=b"-",
                status="succeeded",
                created_at=datetime.now(UTC),
            )
            for n in range(4)
        ]
        session.add_all(rows)  # one flush: one multi-row INSERT
    later = add_delivery(hub, stage_update(party), party=party)

    numbers = [r.seq for r in rows] + [delivery(hub, later).seq]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)


def test_two_dispatchers_poked_in_random_order_send_one_lane_in_seq_order_once(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    party = add_party(hubs[0], receiver.url("/lane"))
    first, second = dispatchers(hubs[0]), dispatchers(hubs[1])
    stored: list[str] = []
    randomly = random.Random(5)

    def poke_some(seed: int, known: list[str]) -> None:
        mine = random.Random(seed)
        for delivery_id in mine.sample(known, k=min(4, len(known))):
            mine.choice((first, second)).submit(delivery_id)

    with ThreadPoolExecutor(max_workers=4) as pokers:
        for n in range(1, 31):  # stored as the router would, poked as the bus would
            stored.append(add_delivery(hubs[n % 2], stage_update(party, n), party=party))
            pokers.submit(poke_some, n, list(stored))
    for delivery_id in stored:
        randomly.choice((first, second)).submit(delivery_id)
    eventually(lambda: all(delivery(hubs[0], d).status == "succeeded" for d in stored))
    assert first.wait_idle(timeout=30)
    assert second.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/lane") == stored  # each once, in the order stored


def test_a_poke_for_a_lane_leased_elsewhere_is_dropped_and_the_holder_sends_it(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    party = add_party(hubs[0], receiver.url("/held"))
    receiver.gates["/held"] = threading.Event()
    holder, other = dispatchers(hubs[0]), dispatchers(hubs[1])
    first = add_delivery(hubs[0], stage_update(party, 1), party=party)
    holder.submit(first)
    eventually(lambda: len(receiver.on("/held")) == 1)  # the holder is mid-send

    second = add_delivery(hubs[1], stage_update(party, 2), party=party)
    other.submit(second)
    assert other.wait_idle(timeout=5)  # dropped at once: it does not work the lane
    receiver.gates["/held"].set()
    assert holder.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/held") == [first, second]
    assert delivery(hubs[0], second).status == "succeeded"


class SlipInOnRelease(LaneLeases):
    """Leases whose next release first runs ``slip_in``: where a poke can meet a lane that is
    empty but not yet given back."""

    def __init__(self, hub: Hub, slip_in: Callable[[], None]) -> None:
        super().__init__(hub.engine, holder="first", seconds=30, clock=lambda: datetime.now(UTC))
        self.slip_in: Callable[[], None] | None = slip_in

    def release(self, lanes: Collection[str]) -> None:
        hook, self.slip_in = self.slip_in, None
        if hook is not None:
            hook()
        super().release(lanes)


def test_a_delivery_poked_elsewhere_while_the_holder_gives_the_lane_back_is_not_stranded(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    party = add_party(hubs[0], receiver.url("/late"))
    other = dispatchers(hubs[1])
    late: list[str] = []

    def store_and_poke_elsewhere() -> None:
        late.append(add_delivery(hubs[1], stage_update(party, 2), party=party))
        other.submit(late[0])  # dropped: the lane is still leased to the first dispatcher

    holder = dispatchers(hubs[0], leases=SlipInOnRelease(hubs[0], store_and_poke_elsewhere))
    first = add_delivery(hubs[0], stage_update(party, 1), party=party)
    holder.submit(first)
    assert holder.wait_idle(timeout=30)
    assert other.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/late") == [first, *late]  # no recover() needed


def test_a_lease_left_by_a_dead_holder_is_taken_over_after_it_expires(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    hub = hubs[0]
    clock = Clock()
    party = add_party(hub, receiver.url("/orphan"))
    hold(hub, party, holder="killed-process", until=clock.now + timedelta(seconds=30))
    waiting = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2)]
    survivor = dispatchers(hubs[1], clock=clock)

    survivor.submit(waiting[0])
    assert survivor.recover() == 0  # the lease is still live
    assert survivor.wait_idle(timeout=5)
    assert receiver.on("/orphan") == []

    clock.now += timedelta(seconds=31)
    assert survivor.recover() == 2
    assert survivor.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/orphan") == waiting
    with hub.sessions() as session:
        lane = session.get(DeliveryLane, lane_of(party))
        assert lane is not None
        assert (lane.holder, lane.lease_until) == (None, None)  # given back once empty


def test_a_live_holder_keeps_its_lease_while_a_slow_receiver_holds_it_up(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    party = add_party(hubs[0], receiver.url("/slow"))
    receiver.gates["/slow"] = threading.Event()
    holder = dispatchers(hubs[0], lease_seconds=0.5, renew_every=0.05)
    other = dispatchers(hubs[1])
    delivery_id = add_delivery(hubs[0], stage_update(party), party=party)
    holder.submit(delivery_id)
    eventually(lambda: len(receiver.on("/slow")) == 1)

    stop_at = time.monotonic() + 2.0  # four lease lengths
    taken = 0
    while time.monotonic() < stop_at:
        taken += other.recover()
        other.submit(delivery_id)
        time.sleep(0.05)
    receiver.gates["/slow"].set()
    assert holder.wait_idle(timeout=30)
    assert other.wait_idle(timeout=30)

    assert taken == 0
    assert webhook_ids(receiver, "/slow") == [delivery_id]


def test_recover_in_two_processes_at_once_sends_every_delivery_once_in_order(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    parties = [add_party(hubs[0], receiver.url(f"/r{n}")) for n in range(4)]
    lanes = {
        f"/r{n}": [add_delivery(hubs[0], stage_update(p, k), party=p) for k in range(1, 6)]
        for n, p in enumerate(parties)
    }
    pair = [dispatchers(hubs[0]), dispatchers(hubs[1])]
    start = threading.Barrier(2)

    def recover(dispatcher: Dispatcher) -> int:
        start.wait(timeout=10)
        return dispatcher.recover()

    with ThreadPoolExecutor(max_workers=2) as both:
        counts = list(both.map(recover, pair))
    assert all(d.wait_idle(timeout=30) for d in pair)

    assert sum(counts) >= 20  # every pending delivery was in a lane one of them took
    assert {path: webhook_ids(receiver, path) for path in lanes} == lanes


def test_the_only_process_voids_the_leases_of_its_earlier_life_at_start_up(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    hub = hubs[0]
    party = add_party(hub, receiver.url("/restart"))
    hold(hub, party, holder="before-the-crash", until=datetime.now(UTC) + timedelta(minutes=5))
    waiting = add_delivery(hub, stage_update(party), party=party)
    restarted = dispatchers(hub)

    assert restarted.recover(only_process=True) == 1
    assert restarted.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/restart") == [waiting]


def test_a_replayed_dead_letter_goes_out_in_its_place_in_the_lane(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    hub = hubs[0]
    party = add_party(hub, receiver.url("/replay"))
    first, *rest = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3)]
    with transaction(hub.sessions) as session:
        row = session.get(Delivery, first)
        assert row is not None
        row.status = "dead"

    deadletters.replay(hub, first, actor="admin")
    dispatcher = dispatchers(hubs[1])
    dispatcher.submit(rest[-1])  # any poke of the lane: it sends from the lowest seq
    assert dispatcher.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/replay") == [first, *rest]


def test_a_delivery_whose_handling_crashes_is_dead_lettered_and_its_lane_goes_on(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    hub = hubs[0]
    party = add_party(hub, receiver.url("/crash"))

    def renderer(kind: str, document: dict[str, Any]) -> tuple[bytes, str]:
        if document["sequence"] == 1:
            raise KeyError("a bug in a renderer")
        return render_common(kind, document)

    updates = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3)]
    dispatcher = dispatchers(hub, renderers={"generic": renderer})
    dispatcher.submit(updates[0])
    assert dispatcher.wait_idle(timeout=30)

    crashed = delivery(hub, updates[0])
    assert (crashed.status, crashed.attempts) == ("dead", 0)
    assert "KeyError" in (crashed.last_error or "")
    assert webhook_ids(receiver, "/crash") == updates[1:]
    with hub.sessions() as session:
        pending = session.scalars(select(Delivery.id).where(Delivery.status == "pending"))
        assert list(pending) == []


def leases(hub: Hub, holder: str, clock: Clock, **options: Any) -> LaneLeases:
    """A dispatcher's leases on the test's clock (a quantum, a want's life... in ``options``)."""
    return LaneLeases(
        hub.engine, holder=holder, seconds=30, clock=clock, reader=hub.reader, **options
    )


def lane_row(hub: Hub, lane: str) -> tuple[str | None, str | None]:
    """The lane's holder and the process that wants it, as stored."""
    with hub.sessions() as session:
        row = session.get(DeliveryLane, lane)
        assert row is not None
        return row.holder, row.wanted_by


def test_a_lane_is_asked_for_only_from_a_holder_of_two_lanes_more_and_by_one_process_at_once(
    hubs: tuple[Hub, Hub],
) -> None:
    clock = Clock()
    a, b, c = (leases(hubs[n % 2], name, clock) for n, name in enumerate("abc"))
    x, y, z, never_seen = (f"connector:{name}-{uuid.uuid4().hex[:6]}" for name in "xyzn")

    assert a.acquire(x)
    assert not b.want(x)  # one lane each at most, either way: moving it gains nothing
    assert a.acquire(y)
    assert b.want(x)
    assert lane_row(hubs[0], x) == ("a", "b")
    assert not c.want(x)  # b asks for it already
    assert b.want(x)  # b may write its want again (to keep it alive)
    assert b.acquire(z)
    assert not b.want(y)  # a has two lanes, b one: not worth it
    b.release([z])
    assert not b.want(z)  # a free lane is taken, not asked for
    assert not b.want(never_seen)


def test_a_wanted_lane_is_handed_over_between_deliveries_once_held_for_the_quantum(
    hubs: tuple[Hub, Hub],
) -> None:
    clock = Clock()
    a, b = leases(hubs[0], "a", clock, quantum=2), leases(hubs[1], "b", clock, quantum=2)
    x, y = (f"connector:{name}-{uuid.uuid4().hex[:6]}" for name in "xy")
    assert a.acquire(x)
    assert a.acquire(y)
    assert b.want(x)

    assert a.look_for_wants([x, y]) == {x}
    assert not a.hand_over_due(x)  # held for less than the quantum
    clock.now += timedelta(seconds=2)
    assert a.hand_over_due(x)
    assert not a.hand_over_due(y)
    assert a.hand_over(x)

    assert lane_row(hubs[0], x) == ("b", None)
    assert not a.holds(x)
    assert not a.acquire(x)
    assert not a.want(x)  # a holds one lane and b one: it does not come back
    assert b.acquire(x)
    assert not b.hand_over(x)  # nobody asks for it


def test_an_expired_want_is_ignored_and_another_process_may_ask_instead(
    hubs: tuple[Hub, Hub],
) -> None:
    clock = Clock()
    a, b, c = (leases(hubs[0], name, clock, quantum=0, want_seconds=5) for name in "abc")
    x, y = (f"connector:{name}-{uuid.uuid4().hex[:6]}" for name in "xy")
    assert a.acquire(x)
    assert a.acquire(y)
    assert b.want(x)

    clock.now += timedelta(seconds=6)  # b stopped asking (it died, say) 6 s ago
    assert a.look_for_wants([x, y]) == set()
    assert not a.hand_over_due(x)
    assert not a.hand_over(x)
    assert lane_row(hubs[0], x) == ("a", "b")
    assert c.want(x)
    assert lane_row(hubs[0], x) == ("a", "c")
    assert not b.want(x)  # c's want is live


def test_a_want_on_a_lane_that_empties_meanwhile_does_nothing_harmful(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    clock = Clock()  # stands still: the holder never hands over
    holder = dispatchers(hubs[0], leases=leases(hubs[0], "a", clock), renew_every=0.05)
    other = dispatchers(hubs[1], leases=leases(hubs[1], "b", clock), renew_every=0.05)
    parties = [add_party(hubs[0], receiver.url(path)) for path in ("/last", "/busy")]
    sent = [add_delivery(hubs[0], stage_update(p), party=p) for p in parties]
    gate = receiver.gates["/last"] = receiver.gates["/busy"] = threading.Event()
    for delivery_id in sent:
        holder.submit(delivery_id)
    eventually(lambda: len(receiver.requests) == 2)  # mid-send of each lane's last delivery

    other.submit(sent[0])
    assert lane_row(hubs[0], lane_of(parties[0])) == ("a", "b")
    gate.set()
    assert holder.wait_idle(timeout=30)
    assert other.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/last") == [sent[0]]
    assert lane_row(hubs[0], lane_of(parties[0])) == (None, None)  # given back, want gone


def test_a_lane_handed_over_mid_stream_goes_on_in_seq_order_from_its_new_holder(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    clock = Clock()
    first_leases = leases(hubs[0], "a", clock, quantum=2)
    first = dispatchers(hubs[0], leases=first_leases, renew_every=0.05)
    second = dispatchers(hubs[1], leases=leases(hubs[1], "b", clock, quantum=2), renew_every=0.05)
    moved, kept = (
        add_party(hubs[0], receiver.url("/moved")),
        add_party(hubs[0], receiver.url("/kept")),
    )
    moving = [add_delivery(hubs[0], stage_update(moved, n), party=moved) for n in range(1, 5)]
    staying = [add_delivery(hubs[0], stage_update(kept, n), party=kept) for n in (1, 2)]
    gates = [threading.Event() for _ in range(3)]
    receiver.gates["/moved"], receiver.gates["/kept"] = gates[0], threading.Event()
    first.submit(moving[0])
    first.submit(staying[0])
    eventually(lambda: len(receiver.on("/moved")) == len(receiver.on("/kept")) == 1)

    second.submit(moving[1])  # wants the lane: the first holds two, the second none
    assert lane_row(hubs[0], lane_of(moved)) == ("a", "b")
    eventually(lambda: first_leases.look_for_wants([lane_of(moved)]) == {lane_of(moved)})
    receiver.gates["/moved"] = gates[1]
    gates[0].set()  # the first delivery ends within the quantum: the first goes on
    eventually(lambda: len(receiver.on("/moved")) == 2)
    assert lane_row(hubs[0], lane_of(moved))[0] == "a"

    clock.now += timedelta(seconds=3)
    receiver.gates["/moved"] = gates[2]
    gates[1].set()  # the second ends after the quantum: handed over before the third
    eventually(lambda: len(receiver.on("/moved")) == 3)
    assert lane_row(hubs[0], lane_of(moved))[0] == "b"  # the second sends the third
    gates[2].set()
    receiver.gates["/kept"].set()
    assert first.wait_idle(timeout=30)
    assert second.wait_idle(timeout=30)

    assert webhook_ids(receiver, "/moved") == moving  # each once, in the order stored
    assert webhook_ids(receiver, "/kept") == staying
    assert lane_row(hubs[0], lane_of(moved)) == (None, None)


class CountingHandOvers(LaneLeases):
    """Leases that count their hand-overs."""

    def __init__(self, hub: Hub, holder: str) -> None:
        super().__init__(
            hub.engine, holder=holder, seconds=30, clock=lambda: datetime.now(UTC), quantum=0
        )
        self.handed: list[str] = []

    def hand_over(self, lane: str) -> bool:
        handed = super().hand_over(lane)
        if handed:
            self.handed.append(lane)
        return handed


def test_a_process_holding_every_lane_hands_some_over_and_each_lane_keeps_its_order(
    hubs: tuple[Hub, Hub], dispatchers: Callable[..., Dispatcher], receiver: Receiver
) -> None:
    paths = [f"/h{n}" for n in range(4)]
    parties = [add_party(hubs[0], receiver.url(path)) for path in paths]
    lanes = {
        path: [add_delivery(hubs[0], stage_update(p, k), party=p) for k in range(1, 9)]
        for path, p in zip(paths, parties, strict=True)
    }
    gate = threading.Event()
    for path in paths:
        receiver.gates[path] = gate
    hog_leases = CountingHandOvers(hubs[0], "hog")
    hog = dispatchers(hubs[0], leases=hog_leases, renew_every=0.05)
    assert hog.recover() == 32  # every lane, each mid-send of its first delivery
    eventually(lambda: len(receiver.requests) == 4)
    latecomer = dispatchers(hubs[1], renew_every=0.05)

    for pending in lanes.values():
        for delivery_id in pending:
            latecomer.submit(delivery_id)
    keys = [lane_of(p) for p in parties]
    eventually(lambda: hog_leases.look_for_wants(keys) != set())
    gate.set()
    assert hog.wait_idle(timeout=30)
    assert latecomer.wait_idle(timeout=30)

    assert {path: webhook_ids(receiver, path) for path in paths} == lanes
    assert hog_leases.handed  # and each lane went on in order from its new holder


def test_upgrading_numbers_stored_deliveries_in_their_old_order_and_new_ones_after_them(
    database_url: str,
) -> None:
    command.upgrade(migrate.alembic_config(database_url), "0003")
    engine = make_engine(database_url)
    try:
        table = Table("deliveries", MetaData(), autoload_with=engine)
        attempts = Table("delivery_attempts", MetaData(), autoload_with=engine)
        t0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
        stored = {"b": t0, "a": t0, "c": t0 - timedelta(hours=1)}  # old order: c, a, b
        with engine.begin() as conn:
            conn.execute(insert(table), [_old_row(i, at) for i, at in stored.items()])
            conn.execute(  # a child row: the upgrade must keep it and its foreign key
                insert(attempts),
                [{"delivery_id": "a", "attempted_at": t0, "status_code": 500, "duration_ms": 3}],
            )
        migrate.upgrade(database_url)
        with Session(engine) as session, session.begin():
            session.add(Delivery(**_old_row("d", t0)))
        with Session(engine) as session:
            numbered = session.execute(select(Delivery.id, Delivery.seq).order_by(Delivery.seq))
            assert [tuple(row) for row in numbered] == [("c", 1), ("a", 2), ("b", 3), ("d", 4)]
    finally:
        engine.dispose()


def _old_row(delivery_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "escalation_id": "esc-1",
        "connector_id": "cn-1",
        "channel": "webhook",
        "target": "https://care.example/hook",
        "document_sealed": b"-",
        "status": "pending",
        "attempts": 0,
        "created_at": at,
    }
