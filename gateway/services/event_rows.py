"""The rows of an accepted event: numbered in its escalation's order, sealed, announced.

Ingest (every request) and the scheduler (deadline events) store events through
``record_event``. It writes with Core statements built once, on the caller's connection and
inside its transaction: the ORM's unit of work cost more than the writes themselves on the
hot path. The caller holds the escalation's row lock (or has just inserted the row), so the
sequence number it passes is the next one and nobody else can take it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, bindparam, insert, update

from gateway.bootstrap import Hub
from gateway.bus.topology import partition_for
from gateway.store.models import EscalationRow, InboundEvent, OutboxMessage
from schemas.envelope import AnyEvent

__all__ = ["record_event"]

_ESCALATIONS = EscalationRow.__table__
_INSERT_INBOUND: Final = insert(InboundEvent)
_INSERT_OUTBOX: Final = insert(OutboxMessage)
_BUMP_SEQ: Final = (
    update(EscalationRow)
    .where(_ESCALATIONS.c.id == bindparam("escalation"))
    .values(next_seq=bindparam("next_seq"))
)


def record_event(
    hub: Hub,
    conn: Connection,
    *,
    escalation_id: str,
    seq: int,
    event: AnyEvent,
    connector_id: str | None,
    agency_id: str | None,
    now: datetime,
) -> int:
    """Store ``event`` sealed as number ``seq`` of its escalation (the next one: the caller
    holds the row's lock), move the escalation's ``next_seq`` on and write the ``decide``
    outbox row; return ``seq``."""
    conn.execute(
        _INSERT_INBOUND,
        {
            "source": event.source,
            "event_id": event.id,
            "event_type": event.type.value,
            "escalation_id": escalation_id,
            "seq": seq,
            "connector_id": connector_id,
            "agency_id": agency_id,
            "body_sealed": hub.sealer.seal(
                event.model_dump(mode="json"), context=f"inbound:{event.source}#{event.id}"
            ),
            "received_at": now,
        },
    )
    conn.execute(_BUMP_SEQ, {"escalation": escalation_id, "next_seq": seq + 1})
    conn.execute(
        _INSERT_OUTBOX,
        {
            "message_id": f"decide:{escalation_id}:{seq}",
            "topic": "decide",
            "routing_key": str(partition_for(escalation_id, hub.settings.router_partitions)),
            "payload": {"escalation_id": escalation_id},
            "created_at": now,
        },
    )
    return seq
