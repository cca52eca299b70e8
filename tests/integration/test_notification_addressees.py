"""A notification for one agency's role-holder reaches that agency's case system alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.services.ingest import accept
from gateway.services.routing import handle_decide
from gateway.store.models import Delivery, NotificationRow
from schemas.common import Flag
from schemas.envelope import AgencyEvent
from tests.integration.test_ingest import action, add_agency, clock, hub, raised

__all__ = ["clock", "hub"]  # fixtures shared with test_ingest

GLOS = "gloucestershire"
SOCIAL, HEALTH = "gl-social", "gl-health"
CONNECTOR = {SOCIAL: "gl-sc", HEALTH: "gl-hl"}
IMMEDIATE_HARM = "Gloucestershire 1.7"


def _gloucestershire(hub: Hub) -> None:
    add_agency(hub, SOCIAL, partnerships=(GLOS,), connectors={CONNECTOR[SOCIAL]: "active"})
    add_agency(hub, HEALTH, partnerships=(GLOS,), connectors={CONNECTOR[HEALTH]: "active"})


def decide(hub: Hub, escalation_id: str, seq: int = 1) -> int:
    return handle_decide(hub, f"decide:{escalation_id}:{seq}", {"escalation_id": escalation_id})


def _send(hub: Hub, event: AgencyEvent, agency: str) -> Any:
    answer = accept(
        hub,
        connector_id=CONNECTOR[agency],
        agency_id=agency,
        webhook_id=f"msg_{event.id}",
        events=[event],
    )
    assert answer.status_code == 202
    return answer.body


def _sent(hub: Hub, document_id: str) -> dict[str, Any]:
    """The documents delivered under ``document_id``, unsealed, by connector (or channel)."""
    with Session(hub.engine) as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.id.startswith(f"{document_id}:", autoescape=True))
        )
        return {
            d.connector_id or d.channel: hub.sealer.unseal(
                d.document_sealed, context=f"delivery:{d.id}"
            )
            for d in rows
        }


def _note(hub: Hub, clause: str) -> NotificationRow:
    with Session(hub.engine) as session:
        return session.scalars(
            select(NotificationRow).where(NotificationRow.clause == clause)
        ).one()


def test_immediate_harm_flagged_by_one_party_reaches_only_its_case_system(hub: Hub) -> None:
    _gloucestershire(hub)
    body = _send(hub, raised(by=SOCIAL, other=HEALTH, partnership=GLOS), SOCIAL)
    escalation_id = body["accepted"][0]["escalation_id"]
    assert decide(hub, escalation_id) == 1
    flagged = action(
        "flags_changed", escalation_id, "flag-1", by=HEALTH, set=["immediate_risk_of_harm"]
    )
    _send(hub, flagged, HEALTH)
    assert decide(hub, escalation_id, 2) == 1

    note = _note(hub, IMMEDIATE_HARM)
    assert (note.recipient, note.immediate) == ("designated_safeguarding_lead", True)
    dsl = _sent(hub, note.id)
    assert list(dsl) == [CONNECTOR[HEALTH]]  # the flagging agency's DSL, nobody else's
    assert dsl[CONNECTOR[HEALTH]]["recipient_agency"] == "acting"
    assert dsl[CONNECTOR[HEALTH]]["recipient_agency_id"] == HEALTH
    for agency, connector in CONNECTOR.items():  # both parties still get the stage update
        update = _sent(hub, f"{escalation_id}:2:{agency}")
        assert list(update) == [connector]
        assert update[connector]["event"] == "flags_changed"


def test_a_raise_with_immediate_harm_tells_the_raisers_lead_and_every_partys_count(
    hub: Hub,
) -> None:
    _gloucestershire(hub)
    event = raised(by=SOCIAL, other=HEALTH, partnership=GLOS)
    flagged = event.model_copy(
        update={"data": event.data.model_copy(update={"flags": (Flag.IMMEDIATE_RISK_OF_HARM,)})}
    )
    body = _send(hub, flagged, SOCIAL)
    escalation_id = body["accepted"][0]["escalation_id"]
    assert decide(hub, escalation_id) == 1

    harm = _sent(hub, _note(hub, IMMEDIATE_HARM).id)
    assert list(harm) == [CONNECTOR[SOCIAL]]
    assert harm[CONNECTOR[SOCIAL]]["recipient_agency_id"] == SOCIAL
    count = _sent(hub, _note(hub, "Gloucestershire 2 (closing paragraph)").id)
    assert set(count) == set(CONNECTOR.values())  # each party's own DSL
    assert {d["recipient_agency"] for d in count.values()} == {"each_party"}
    assert {d["recipient_agency_id"] for d in count.values()} == {None}
    for agency, connector in CONNECTOR.items():
        assert list(_sent(hub, f"{escalation_id}:1:{agency}")) == [connector]
