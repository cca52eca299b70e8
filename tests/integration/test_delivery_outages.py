"""A database that goes away under a delivery lane: the lane waits, drops nothing, keeps order.

The store fails on cue (``Outage``): chosen statements, or every statement for a while, raise
the driver's own ``OperationalError`` (as when PostgreSQL stops or SQLite is locked), through
SQLAlchemy's usual error handling. Pokes go through ``handle_deliver`` as the bus hands them
over: a transient error puts the message back. No test calls ``recover()`` unless it says so,
so a lane dropped on an error would show as a delivery never sent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from gateway.bootstrap import Hub
from gateway.bus.consumer import is_transient
from gateway.services.delivery import Dispatcher, handle_deliver
from gateway.store.models import DeliveryLane
from tests.integration.test_delivery import (
    Party,
    Receiver,
    add_delivery,
    add_party,
    delivery,
    eventually,
    stage_update,
)
from tests.integration.test_delivery_lanes import (
    database_url,
    dispatchers,
    hubs,
    lane_of,
    receiver,
    webhook_ids,
)

__all__ = ["database_url", "dispatchers", "hubs", "receiver"]  # fixtures shared with lanes

#: Where a lane touches the store, and a statement only that step runs.
STEPS = {
    "acquire": r"^UPDATE delivery_lanes SET holder=.*lease_until <",
    "next_pending": r"^SELECT deliveries\.id\s+FROM deliveries\s.*ORDER BY deliveries\.seq",
    "prepare": r"^SELECT .*deliveries\.document_sealed.*\sWHERE deliveries\.id = ",
    "attempt": r"^INSERT INTO delivery_attempts",
    "conclude": r"^UPDATE deliveries SET status=",
    "release": r"^UPDATE delivery_lanes SET holder=.* IN \(",
    "renew": r"^UPDATE delivery_lanes SET lease_until=",
}


@dataclass
class _Rule:
    pattern: re.Pattern[str]
    skip: int
    times: int


@dataclass
class Outage:
    """Makes an engine's statements fail as if its server went away, on cue."""

    engine: Engine
    down: bool = False  # every statement fails
    failed: list[str] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._check)

    def fail(self, step: str, times: int = 1, *, skip: int = 0) -> None:
        """Fail ``times`` statements of ``step`` (see STEPS), after letting ``skip`` pass."""
        pattern = re.compile(STEPS[step], re.IGNORECASE | re.DOTALL)
        with self._lock:
            self._rules.append(_Rule(pattern, skip, times))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._check)

    def _check(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._lock:
            hit = self.down
            for rule in self._rules:
                if hit or rule.times == 0 or not rule.pattern.search(statement):
                    continue
                if rule.skip:
                    rule.skip -= 1
                    continue
                rule.times -= 1
                hit = True
            if hit:
                self.failed.append(" ".join(statement.split())[:60])
        if hit:
            raise conn.dialect.loaded_dbapi.OperationalError("injected: the server went away")


@pytest.fixture
def outage(hubs: tuple[Hub, Hub]) -> Iterator[Outage]:
    """Failures of the first hub's engine (the dispatcher's); the test reads via the second."""
    made = Outage(hubs[0].engine)
    yield made
    made.close()


def poke(hub: Hub, dispatcher: Dispatcher, delivery_id: str, *, tries: int = 20) -> int:
    """Hand a poke over as the bus does: a transient error puts it back (the bus waits, then
    delivers it again). How many times it was handed over."""
    for n in range(1, tries + 1):
        try:
            handle_deliver(
                hub, f"deliver:{delivery_id}", {"delivery_id": delivery_id}, dispatcher=dispatcher
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            time.sleep(0.01)
            continue
        return n
    raise AssertionError(f"the poke failed {tries} times")


def lease(reader: Hub, party: Party) -> tuple[str | None, Any]:
    with reader.sessions() as session:
        lane = session.get(DeliveryLane, lane_of(party))
        assert lane is not None
        return lane.holder, lane.lease_until


@pytest.mark.parametrize("times", [1, 3])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_store_failure_at_any_step_of_a_lane_delays_it_and_drops_nothing(
    hubs: tuple[Hub, Hub],
    dispatchers: Callable[..., Dispatcher],
    receiver: Receiver,
    outage: Outage,
    step: str,
    times: int,
) -> None:
    hub, reader = hubs
    party = add_party(hub, receiver.url("/lane"))
    stored = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3)]
    dispatcher = dispatchers(hub, renew_every=0.05)
    receiver.gates["/lane"] = gate = threading.Event()
    threading.Timer(0.3, gate.set).start()  # the first send takes a while: the keeper runs
    outage.fail(step, times)

    poke(hub, dispatcher, stored[0])
    eventually(lambda: all(delivery(reader, d).status == "succeeded" for d in stored))
    assert dispatcher.wait_idle(timeout=30)

    assert len(outage.failed) == times, f"{step} did not fail {times} times"
    sent = webhook_ids(receiver, "/lane")
    assert list(dict.fromkeys(sent)) == stored  # in seq order; a repeat keeps its webhook-id
    assert lease(reader, party) == (None, None)  # given back once empty


def test_a_store_away_for_a_while_mid_send_pauses_the_lane_and_it_resumes_in_order(
    hubs: tuple[Hub, Hub],
    dispatchers: Callable[..., Dispatcher],
    receiver: Receiver,
    outage: Outage,
) -> None:
    hub, reader = hubs
    party = add_party(hub, receiver.url("/away"))
    stored = [add_delivery(hub, stage_update(party, n), party=party) for n in range(1, 6)]
    receiver.gates["/away"] = gate = threading.Event()
    dispatcher = dispatchers(hub, renew_every=0.05)
    poke(hub, dispatcher, stored[0])
    eventually(lambda: len(receiver.on("/away")) == 1)  # the first send is under way

    outage.down = True  # its attempt cannot be recorded; renewals and turns fail too
    gate.set()
    time.sleep(1.5)
    outage.down = False
    eventually(lambda: all(delivery(reader, d).status == "succeeded" for d in stored))
    assert dispatcher.wait_idle(timeout=30)

    assert outage.failed
    sent = webhook_ids(receiver, "/away")
    assert list(dict.fromkeys(sent)) == stored
    assert len(sent) <= len(stored) + 1  # at most the send under way is repeated (same id)
    assert lease(reader, party) == (None, None)


def test_a_poke_during_an_outage_is_retried_and_recover_takes_the_lane_after_it(
    hubs: tuple[Hub, Hub],
    dispatchers: Callable[..., Dispatcher],
    receiver: Receiver,
    outage: Outage,
) -> None:
    hub, reader = hubs
    party = add_party(hub, receiver.url("/poked"))
    stored = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3)]
    dispatcher = dispatchers(hub)

    outage.down = True
    with pytest.raises(OperationalError) as lookup:
        handle_deliver(hub, "deliver:during", {"delivery_id": stored[0]}, dispatcher=dispatcher)
    assert is_transient(lookup.value)  # not acked: the bus hands it over again later
    with pytest.raises(OperationalError) as periodic:
        dispatcher.recover()
    assert is_transient(periodic.value)  # the periodic job logs it and runs again
    outage.down = False

    # The broker may give up on the poke (x-delivery-limit); the next recover() finds the lane.
    assert dispatcher.recover() == 3
    assert dispatcher.wait_idle(timeout=30)
    assert webhook_ids(receiver, "/poked") == stored
    assert lease(reader, party) == (None, None)


def test_a_lane_whose_give_back_failed_keeps_renewing_its_lease_through_a_slow_send(
    hubs: tuple[Hub, Hub],
    dispatchers: Callable[..., Dispatcher],
    receiver: Receiver,
    outage: Outage,
) -> None:
    hub, reader = hubs
    party = add_party(hub, receiver.url("/kept"))
    first = add_delivery(hub, stage_update(party, 1), party=party)
    holder = dispatchers(hub, lease_seconds=0.5, renew_every=0.05)
    other = dispatchers(reader)
    # next_pending runs in the turn that sends the first, in the turn that finds the lane
    # empty, then once more after the lease was given back: that third look fails.
    outage.fail("next_pending", skip=2)
    poke(hub, holder, first)
    eventually(lambda: bool(outage.failed))  # the lane waits 0.5 s, then takes it again
    receiver.gates["/kept"] = gate = threading.Event()
    second = add_delivery(reader, stage_update(party, 2), party=party)
    eventually(lambda: len(receiver.on("/kept")) == 2)  # the holder is sending the second

    stop_at = time.monotonic() + 2.0  # four lease lengths
    taken = 0
    while time.monotonic() < stop_at:
        taken += other.recover()
        time.sleep(0.05)
    gate.set()
    assert holder.wait_idle(timeout=30)
    assert other.wait_idle(timeout=30)

    assert taken == 0, "the lease lapsed while its holder was sending"
    assert webhook_ids(receiver, "/kept") == [first, second]
