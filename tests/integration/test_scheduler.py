"""The deadline scheduler against real stores: fed once, through the deadline indexes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, event, insert, select, text
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.services.routing import handle_decide
from gateway.services.scheduler import SCHEDULER_SOURCE, Scheduler, due_query, notice_query, sweep
from gateway.store.models import AuditEntry, DeadlineRow, Delivery, InboundEvent, OutboxMessage
from tests.integration.test_ingest import Clock, clock, hub, raised, send

__all__ = ["clock", "hub"]  # fixtures shared with test_ingest

NOTICE = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)  # 24 hours before the stage 1 deadline
DUE = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # 2 working days after Monday 09:30


def opened_and_decided(hub: Hub, event_id: str = "raise-1") -> str:
    escalation_id = str(send(hub, raised(event_id))["accepted"][0]["escalation_id"])
    assert handle_decide(hub, f"decide:{escalation_id}:1", {"escalation_id": escalation_id}) == 1
    return escalation_id


def decide_all(hub: Hub, escalation_id: str) -> int:
    return handle_decide(hub, f"decide:{escalation_id}:n", {"escalation_id": escalation_id})


def deadline_state(hub: Hub, escalation_id: str) -> str:
    with Session(hub.engine) as session:
        row = session.get(DeadlineRow, (escalation_id, "stage:1:1"))
        assert row is not None
        return row.state


def fed(hub: Hub) -> list[tuple[str, str, int]]:
    with Session(hub.engine) as session:
        query = select(InboundEvent.event_id, InboundEvent.event_type, InboundEvent.seq).where(
            InboundEvent.source == SCHEDULER_SOURCE
        )
        return [(i, t.rsplit(".", 1)[-1], s) for i, t, s in session.execute(query)]


def test_an_approaching_deadline_is_fed_once_when_its_notice_time_comes(hub: Hub) -> None:
    escalation_id = opened_and_decided(hub)
    assert sweep(hub, now=NOTICE - timedelta(minutes=1)) == 0
    assert sweep(hub, now=NOTICE) == 1
    assert sweep(hub, now=NOTICE + timedelta(minutes=1)) == 0  # the router has not caught up
    event_id = f"{escalation_id}/stage:1:1/approaching/20260304T093000Z"
    assert fed(hub) == [(event_id, "deadline_approaching", 2)]
    with Session(hub.engine) as session:
        messages = session.scalars(
            select(OutboxMessage.message_id).where(OutboxMessage.topic == "decide")
        )
        assert f"decide:{escalation_id}:2" in list(messages)
    assert decide_all(hub, escalation_id) == 1
    assert deadline_state(hub, escalation_id) == "approaching"
    assert sweep(hub, now=NOTICE + timedelta(hours=2)) == 0
    assert any(i.startswith(f"{escalation_id}:2:") for i in _delivery_ids(hub))


def test_a_passed_deadline_is_fed_once_as_breached_and_never_as_approaching(hub: Hub) -> None:
    escalation_id = opened_and_decided(hub)
    after = DUE + timedelta(hours=1)
    assert sweep(hub, now=after) == 1
    assert sweep(hub, now=after) == 0
    assert [kind for _, kind, _ in fed(hub)] == ["deadline_breached"]
    assert decide_all(hub, escalation_id) == 1
    assert deadline_state(hub, escalation_id) == "breached"
    with Session(hub.engine) as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last is not None
        assert (last.actor, last.detail["rule"]) == ("hub", "deadline.breached")
    assert sweep(hub, now=after + timedelta(days=3)) == 0


def test_the_earliest_deadlines_are_fed_first_and_a_full_batch_crowds_out_nothing(
    hub: Hub, clock: Clock
) -> None:
    first = opened_and_decided(hub, "r-1")
    clock.advance(hours=1)
    second = opened_and_decided(hub, "r-2")
    clock.advance(hours=1)
    third = opened_and_decided(hub, "r-3")
    later = DUE + timedelta(days=1)
    assert sweep(hub, now=later, limit=2) == 2
    assert {i.split("/")[0] for i, _, _ in fed(hub)} == {first, second}
    assert sweep(hub, now=later, limit=2) == 1  # the two fed wait for the router
    assert {i.split("/")[0] for i, _, _ in fed(hub)} == {first, second, third}


def test_the_sweep_reads_the_deadline_indexes_and_never_the_escalations(hub: Hub) -> None:
    escalation_id = opened_and_decided(hub)
    far = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        {
            "escalation_id": escalation_id,
            "deadline_id": f"filler:{n}",
            "due": far + timedelta(minutes=n),
            "notice_at": far + timedelta(minutes=n - 60),
            "state": "pending",
            "calendar_version": "test",
        }
        for n in range(3000)
    ]
    with hub.sessions.begin() as session:
        session.execute(insert(DeadlineRow), rows)
    for query, index in ((due_query, "ix_deadlines_due"), (notice_query, "ix_deadlines_notice")):
        plan = _plan(hub, query(NOTICE, 500))
        assert index in plan, plan
        assert "escalations" not in plan, plan


def test_the_scheduler_thread_sweeps_at_its_interval_until_stopped(hub: Hub, clock: Clock) -> None:
    opened_and_decided(hub)
    clock.now = NOTICE + timedelta(minutes=5)
    scheduler = Scheduler(hub, interval=0.01)
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while not fed(hub) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        scheduler.stop()
    assert [kind for _, kind, _ in fed(hub)] == ["deadline_approaching"]
    assert scheduler.sweep_once() == 0


def _delivery_ids(hub: Hub) -> list[str]:
    with Session(hub.engine) as session:
        return list(session.scalars(select(Delivery.id)))


def _plan(hub: Hub, query: Select[str, str, Any]) -> str:
    """The store's own plan for ``query``, run as SQLAlchemy runs it but prefixed by EXPLAIN."""
    sqlite = hub.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "

    def explain(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        return prefix + statement, parameters

    with hub.engine.connect() as conn:
        if not sqlite:
            conn.execute(text("ANALYZE deadlines"))
        event.listen(conn, "before_cursor_execute", explain, retval=True)
        rows = conn.execute(query).cursor.fetchall()
        event.remove(conn, "before_cursor_execute", explain)
        conn.rollback()
    return "\n".join(" ".join(str(c) for c in row) for row in rows)
