"""The router worker's handler against real stores: order, idempotence, sealing, effects."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.bus.consumer import PoisonMessage
from gateway.services import deadletters
from gateway.services.ingest import accept
from gateway.services.routing import handle_decide
from gateway.store.models import (
    AuditEntry,
    Base,
    Connector,
    DeadlineRow,
    Delivery,
    EscalationRow,
    InboundEvent,
    NotificationRow,
    OutboxMessage,
)
from schemas.escalation import Escalation
from tests.integration.test_ingest import (
    CHILD_NAME,
    HEALTH,
    NHS,
    OFFICE,
    SOCIAL,
    SOURCE,
    SUMMARY,
    action,
    add_agency,
    clock,
    escalated,
    hub,
    raised,
    send,
)

__all__ = ["clock", "hub"]  # fixtures shared with test_ingest


def opened(hub: Hub) -> str:
    """Raise an escalation (not yet decided); return its id."""
    return str(send(hub, raised())["accepted"][0]["escalation_id"])


def decide(hub: Hub, escalation_id: str, seq: int = 1) -> int:
    return handle_decide(hub, f"decide:{escalation_id}:{seq}", {"escalation_id": escalation_id})


def row_of(hub: Hub, escalation_id: str) -> EscalationRow:
    with Session(hub.engine) as session:
        row = session.get(EscalationRow, escalation_id)
        assert row is not None
        return row


def decisions(hub: Hub) -> list[dict[str, Any]]:
    with Session(hub.engine) as session:
        query = select(AuditEntry.detail).where(AuditEntry.action == "decision")
        return list(session.scalars(query.order_by(AuditEntry.seq)))


def deliveries(hub: Hub) -> dict[str, Delivery]:
    with Session(hub.engine) as session:
        return {d.id: d for d in session.scalars(select(Delivery))}


def stored_bytes(hub: Hub) -> Iterator[bytes]:
    """Every value of every table as bytes, and on SQLite the database and WAL files."""
    with Session(hub.engine) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    yield value if isinstance(value, bytes) else str(value).encode()
    path = hub.engine.url.database
    if hub.engine.dialect.name == "sqlite" and path:
        for name in (path, f"{path}-wal"):
            if Path(name).exists():
                yield Path(name).read_bytes()


def test_a_raised_event_is_decided_into_an_open_escalation_whose_state_is_sealed(
    hub: Hub,
) -> None:
    escalation_id = opened(hub)
    assert decide(hub, escalation_id) == 1
    row = row_of(hub, escalation_id)
    assert (row.status, row.stage, row.tier, row.applied_seq) == ("open", 1, 1, 1)
    assert row.state_sealed is not None
    state = Escalation.model_validate(
        hub.sealer.unseal(row.state_sealed, context=f"escalation:{escalation_id}")
    )
    assert state.child.identifiers is not None
    assert state.child.identifiers.given_name == CHILD_NAME
    assert row.child_pseudonym == state.child.pseudonyms[0]
    with Session(hub.engine) as session:
        event = session.scalars(select(InboundEvent)).one()
        assert (event.outcome, event.decided_at) == ("raised.opens_stage_1", hub.clock())
    [detail] = decisions(hub)
    assert detail == {
        "event_id": "raise-1",
        "type": "raised",
        "rule": "raised.opens_stage_1",
        "clause": "Northamptonshire flowchart Stage 1",
        "procedure": "northamptonshire",
        "version": "1.0.0",
        "accepted": True,
        "sequence": 1,
    }
    secrets = [s.encode() for s in (CHILD_NAME, NHS, NHS.replace(" ", ""), SUMMARY, "M-77")]
    for blob in stored_bytes(hub):
        assert not [s for s in secrets if s in blob]


def test_events_are_decided_in_the_order_accepted_whatever_order_their_messages_arrive(
    hub: Hub,
) -> None:
    escalation_id = opened(hub)
    assert decide(hub, escalation_id, 1) == 1
    send(hub, action("acknowledged", escalation_id, "ack-1"), agency=HEALTH)
    send(hub, escalated(escalation_id, "esc-1"), agency=HEALTH)
    assert decide(hub, escalation_id, 3) == 2  # the later message brings both, in order
    assert decide(hub, escalation_id, 2) == 0  # late
    assert decide(hub, escalation_id, 3) == 0  # duplicated
    assert [(d["sequence"], d["rule"]) for d in decisions(hub)] == [
        (1, "raised.opens_stage_1"),
        (2, "acknowledged.recorded"),
        (3, "escalated.opens_stage_2"),
    ]
    assert (row_of(hub, escalation_id).stage, row_of(hub, escalation_id).applied_seq) == (2, 3)


def test_several_routers_on_one_escalation_decide_each_event_exactly_once(hub: Hub) -> None:
    escalation_id = opened(hub)
    notes = [action("acknowledged", escalation_id, f"ack-{n}") for n in range(6)]
    send(hub, *notes, agency=HEALTH)
    barrier, totals = threading.Barrier(4), []

    def router() -> None:
        barrier.wait()
        totals.append(sum(decide(hub, escalation_id, seq) for seq in range(1, 8)))

    threads = [threading.Thread(target=router) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == 7
    assert [d["sequence"] for d in decisions(hub)] == list(range(1, 8))


def test_each_stage_update_goes_to_every_connector_of_its_party_under_a_stable_id(
    hub: Hub,
) -> None:
    add_agency(hub, "nn-spare", connectors={"sc-second": "active", "sc-old": "disabled"})
    with hub.sessions.begin() as session:  # move them to social care
        session.execute(
            Base.metadata.tables["connectors"]
            .update()
            .where(Base.metadata.tables["connectors"].c.agency_id == "nn-spare")
            .values(agency_id=SOCIAL)
        )
    escalation_id = opened(hub)
    decide(hub, escalation_id)
    decide(hub, escalation_id)  # a redelivered message adds nothing
    found = deliveries(hub)
    social, health = f"{escalation_id}:1:{SOCIAL}", f"{escalation_id}:1:{HEALTH}"
    expected = {f"{social}:sc-mosaic", f"{social}:sc-second", f"{health}:hl-systmone"}
    held = found.pop(f"{social}:sc-old")  # kept for the disabled connector: dead, never sent
    assert (held.channel, held.status, held.attempts) == ("webhook", "dead", 0)
    assert "sc-old is disabled (its endpoint answered 410 Gone)" in (held.last_error or "")
    assert "/v1/connectors/sc-old/enable?replay=true" in (held.last_error or "")
    assert set(found) == expected
    for delivery_id, delivery in found.items():
        assert (delivery.channel, delivery.status) == ("webhook", "pending")
        assert delivery.target == f"http://127.0.0.1:9/{delivery.connector_id}"
        document = hub.sealer.unseal(delivery.document_sealed, context=f"delivery:{delivery_id}")
        assert document["update_id"] == delivery_id.rsplit(":", 1)[0]
        assert document["recipient_agency_id"] in delivery_id
        assert document["child"]["identifiers"]["given_name"] == CHILD_NAME
    with Session(hub.engine) as session:
        query = select(OutboxMessage.message_id, OutboxMessage.payload).where(
            OutboxMessage.topic == "deliver"
        )
        announced = {key: payload for key, payload in session.execute(query)}
    assert announced == {
        f"deliver:{i}": {"delivery_id": i, "lane": f"connector:{i.rsplit(':', 1)[1]}"}
        for i in expected
    }


def _spare_social_connector(hub: Hub, status: str) -> str:
    """A second connector of the social care party, in ``status``; its id."""
    add_agency(hub, "nn-spare", connectors={"sc-spare": status})
    with hub.sessions.begin() as session:
        session.execute(
            update(Connector).where(Connector.agency_id == "nn-spare").values(agency_id=SOCIAL)
        )
    return "sc-spare"


def test_an_update_decided_while_its_connector_is_being_enabled_is_sent_not_held(
    hub: Hub,
) -> None:
    spare = _spare_social_connector(hub, "disabled")
    escalation_id = opened(hub)
    locked = threading.Event()

    def enable_with_replay() -> None:  # what POST .../enable?replay=true does, held open
        with hub.sessions.begin() as session:
            connector = session.get(Connector, spare, with_for_update=True)
            assert connector is not None
            connector.status = "active"
            deadletters.replay_connector(session, spare, at=hub.clock(), actor="admin")
            locked.set()
            time.sleep(0.5)  # the decision comes now, before this commits

    enabling = threading.Thread(target=enable_with_replay)
    enabling.start()
    assert locked.wait(timeout=10)
    decide(hub, escalation_id)
    enabling.join(timeout=30)

    # Read as 'disabled' and held back, it would be a dead letter the replay never saw.
    held = deliveries(hub)[f"{escalation_id}:1:{SOCIAL}:{spare}"]
    assert held.status == "pending"


def test_the_business_office_gets_a_webhook_and_an_email_at_northamptonshire_stage_4(
    hub: Hub,
) -> None:
    add_agency(
        hub,
        OFFICE,
        kind="business_office",
        notify_email="office@nscp.test",
        connectors={"bo-portal": "active"},
    )
    add_agency(
        hub,
        "bucks-office",
        kind="business_office",
        partnerships=("buckinghamshire",),
        notify_email="office@bscp.test",
    )
    escalation_id = opened(hub)
    steps = [escalated(escalation_id, f"esc-{n}") for n in (2, 3, 4)]
    send(hub, *steps, agency=HEALTH)
    assert decide(hub, escalation_id, 4) == 4
    assert row_of(hub, escalation_id).stage == 4
    with Session(hub.engine) as session:
        note = session.scalars(select(NotificationRow)).one()
    assert (note.recipient, note.stage, note.clause) == (
        "business_office",
        4,
        "Northamptonshire The Protocol",
    )
    office = {i: d for i, d in deliveries(hub).items() if i.startswith(note.id)}
    assert {(d.channel, d.target) for d in office.values()} == {
        ("webhook", "http://127.0.0.1:9/bo-portal"),
        ("email", "office@nscp.test"),
    }
    assert set(office) == {f"{note.id}:bo-portal", f"{note.id}:email:{OFFICE}"}
    for delivery_id, delivery in office.items():
        document = hub.sealer.unseal(delivery.document_sealed, context=f"delivery:{delivery_id}")
        assert (document["effect"], document["notification_id"]) == ("notification", note.id)


def test_a_notification_for_a_named_role_goes_to_every_partys_case_system(hub: Hub) -> None:
    add_agency(hub, "gl-social", partnerships=("gloucestershire",), connectors={"gl-sc": "active"})
    add_agency(hub, "gl-health", partnerships=("gloucestershire",), connectors={"gl-hl": "active"})
    event = raised(by="gl-social", other="gl-health", partnership="gloucestershire")
    answer = accept(
        hub, connector_id="gl-sc", agency_id="gl-social", webhook_id="msg_gl", events=[event]
    )
    escalation_id = answer.body["accepted"][0]["escalation_id"]
    assert decide(hub, escalation_id) == 1
    with Session(hub.engine) as session:
        note = session.scalars(select(NotificationRow)).one()
    assert note.recipient == "designated_safeguarding_lead"
    sent = {
        i: (d.channel, d.connector_id) for i, d in deliveries(hub).items() if i.startswith(note.id)
    }
    assert sent == {
        f"{note.id}:gl-sc": ("webhook", "gl-sc"),
        f"{note.id}:gl-hl": ("webhook", "gl-hl"),
    }


def test_the_deadlines_table_follows_the_escalations_state(hub: Hub) -> None:
    escalation_id = opened(hub)
    decide(hub, escalation_id)

    def mirrored() -> dict[str, tuple[datetime, datetime | None, str]]:
        with Session(hub.engine) as session:
            rows = session.scalars(select(DeadlineRow))
            return {r.deadline_id: (r.due, r.notice_at, r.state) for r in rows}

    wednesday = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # 2 working days after Monday 09:30
    assert mirrored() == {
        "stage:1:1": (wednesday, datetime(2026, 3, 3, 9, 30, tzinfo=UTC), "pending")
    }
    send(hub, escalated(escalation_id, "esc-2"), agency=HEALTH)
    decide(hub, escalation_id, 2)
    assert list(mirrored()) == ["stage:2:1"]
    outcome = {"kind": "agreed", "summary": "agreed a plan", "written_confirmation": True}
    send(hub, action("resolved", escalation_id, "done", by=SOCIAL, outcome=outcome))
    decide(hub, escalation_id, 3)
    assert row_of(hub, escalation_id).status == "resolved"
    assert mirrored() == {}


def test_a_refused_action_changes_nothing_but_tells_its_sender_why(hub: Hub) -> None:
    escalation_id = opened(hub)
    unsupported = action("escalated", escalation_id, "esc-x", evidence={"exhausted": False})
    send(hub, unsupported, agency=HEALTH)
    assert decide(hub, escalation_id, 2) == 2
    assert (row_of(hub, escalation_id).stage, row_of(hub, escalation_id).applied_seq) == (1, 2)
    assert decisions(hub)[-1]["rule"] == "escalated.rejected_without_evidence"
    assert decisions(hub)[-1]["accepted"] is False
    refusals = [d for i, d in deliveries(hub).items() if ":rejected:" in i]
    assert [d.connector_id for d in refusals] == ["hl-systmone"]


def test_an_undecidable_event_holds_its_escalation_for_an_operator(hub: Hub) -> None:
    escalation_id = opened(hub)
    send(hub, action("acknowledged", escalation_id, "ack-1"), agency=HEALTH)
    context = f"inbound:{SOURCE}#ack-1"
    with hub.sessions.begin() as session:
        stuck = session.scalars(select(InboundEvent).where(InboundEvent.seq == 2)).one()
        original = stuck.body_sealed
        stuck.body_sealed = hub.sealer.seal({"not": "an event"}, context=context)
    for _ in range(2):
        with pytest.raises(PoisonMessage, match="seq 2"):
            decide(hub, escalation_id, 2)
    assert row_of(hub, escalation_id).applied_seq == 1  # the raise before it was kept
    with Session(hub.engine) as session:
        assert session.get_one(InboundEvent, stuck.pk).outcome == "undecidable:ValidationError"
        marks = session.scalars(select(AuditEntry.action).where(AuditEntry.action != "decision"))
        assert list(marks) == ["undecidable", "undecidable"]
    with hub.sessions.begin() as session:
        session.get_one(InboundEvent, stuck.pk).body_sealed = original
    assert decide(hub, escalation_id, 2) == 1
    assert row_of(hub, escalation_id).applied_seq == 2


@pytest.mark.parametrize("payload", [{}, {"escalation_id": 7}, {"escalation_id": "no-such-id"}])
def test_a_decide_message_naming_no_escalation_is_poison(hub: Hub, payload: Any) -> None:
    with pytest.raises(PoisonMessage, match="decide message m-1"):
        handle_decide(hub, "m-1", payload)
