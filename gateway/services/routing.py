"""The router worker's handler: decide an escalation's accepted events in the order accepted.

A ``decide`` message only says *which* escalation has news; the database says what the news
is. The handler locks the escalation row, takes every stored event after ``applied_seq`` in
sequence order, decides each with the pure ``router.decide``, and commits the new state, the
effects (deliveries and their outbox rows), the deadline index and the audit entries in ONE
transaction. A duplicated, late or out-of-order message finds nothing new: the handler is
idempotent and keeps per-escalation order with any number of router workers.

Undecidable events (an operator's job, never skipped): an event that cannot be unsealed or
validated, whose procedure version is not installed, or on which ``decide`` itself raises,
stops its escalation there. The events decided before it are committed; the event is marked
``outcome = "undecidable:<ErrorType>"`` and audited, and ``PoisonMessage`` is raised so the
bus dead-letters the message. Later events of that escalation wait (skipping one would break
the order and lose it). After fixing the cause, replay the message, or publish any ``decide``
message for the escalation: the handler resumes at the stuck event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.bus.consumer import PoisonMessage
from gateway.metrics import DECISIONS
from gateway.services.effects import apply_effects
from gateway.store.audit import append
from gateway.store.db import insert_or_nothing, transaction
from gateway.store.models import EscalationRow, InboundEvent, ProcessedMessage
from router import procedures
from router.decide import decide
from router.decision import Decision
from schemas.envelope import event_adapter
from schemas.escalation import Escalation
from security.errors import SecurityError

__all__ = ["handle_decide"]

logger = logging.getLogger(__name__)


class _Undecidable(Exception):
    """Internal: this stored event cannot be decided; the escalation waits for an operator."""

    def __init__(self, inbound: InboundEvent, error: BaseException) -> None:
        super().__init__(f"event seq {inbound.seq} cannot be decided: {type(error).__name__}")
        self.inbound = inbound
        self.error_type = type(error).__name__


@dataclass
class _Run:
    """One handler call: the escalation, its state so far and what has been decided."""

    row: EscalationRow
    state: Escalation | None
    now: datetime
    decided: list[Decision]
    audits: list[tuple[str, str, dict[str, Any]]]


def handle_decide(hub: Hub, message_id: str, payload: Mapping[str, Any]) -> int:
    """Decide every new event of the message's escalation, in order; return how many."""
    escalation_id = _escalation_id(message_id, payload)
    stuck: _Undecidable | None = None
    with transaction(hub.sessions) as session:
        row = session.scalars(
            select(EscalationRow).where(EscalationRow.id == escalation_id).with_for_update()
        ).first()
        if row is None:
            logger.error("router.unknown_escalation", extra={"message_id": message_id})
            raise PoisonMessage(f"decide message {message_id}: no escalation {escalation_id}")
        pending = _pending(session, row)
        if not pending:  # a duplicate or late message: nothing new
            return 0
        run = _Run(row, _state(message_id, hub, row), hub.clock(), [], [])
        _processed(session, message_id, run.now)
        try:
            for inbound in pending:
                _decide_and_persist(session, hub, run, inbound)
        except _Undecidable as exc:
            stuck = exc
            _mark_stuck(run, exc)
        for action, actor, detail in run.audits:  # last: appending locks the chain head
            append(
                session, at=run.now, action=action, actor=actor, escalation_id=row.id, detail=detail
            )
    for decision in run.decided:
        DECISIONS.labels(rule=decision.rule, accepted=str(decision.accepted).lower()).inc()
    logger.info(
        "router.decided",
        extra={"escalation_id": escalation_id, "message_id": message_id, "n": len(run.decided)},
    )
    if stuck is not None:
        raise PoisonMessage(
            f"escalation {escalation_id}: event seq {stuck.inbound.seq} cannot be decided "
            f"({stuck.error_type}); it and later events wait for an operator"
        )
    return len(run.decided)


def _processed(session: Session, message_id: str, at: datetime) -> None:
    """Note the message in the router's inbox (once; a redelivery finds it there)."""
    conn = session.connection()
    statement = insert_or_nothing(ProcessedMessage, conn.dialect.name)
    conn.execute(statement, {"consumer": "router", "message_id": message_id, "processed_at": at})


def _escalation_id(message_id: str, payload: Mapping[str, Any]) -> str:
    value = payload.get("escalation_id") if isinstance(payload, Mapping) else None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        logger.error("router.bad_message", extra={"message_id": message_id})
        raise PoisonMessage(
            f"decide message {message_id} needs 'escalation_id', a string of 1-64 characters"
        )
    return value


def _pending(session: Session, row: EscalationRow) -> list[InboundEvent]:
    """The stored events not yet decided, in the order they were accepted."""
    query = (
        select(InboundEvent)
        .where(InboundEvent.escalation_id == row.id, InboundEvent.seq > row.applied_seq)
        .order_by(InboundEvent.seq)
    )
    return list(session.scalars(query))


def _state(message_id: str, hub: Hub, row: EscalationRow) -> Escalation | None:
    """The escalation's state as last decided (None before its 'raised' is accepted)."""
    if row.state_sealed is None:
        return None
    try:
        document = hub.sealer.unseal(row.state_sealed, context=f"escalation:{row.id}")
        return Escalation.model_validate(document)
    except (SecurityError, ValueError) as exc:  # incl. pydantic ValidationError
        logger.error(
            "router.unreadable_state",
            extra={"escalation_id": row.id, "message_id": message_id, "error": type(exc).__name__},
        )
        raise PoisonMessage(
            f"escalation {row.id}: its sealed state cannot be read ({type(exc).__name__}); "
            "check the data key ring (EH_DATA_KEYS) includes the key it was sealed under"
        ) from None


def _decide_and_persist(session: Session, hub: Hub, run: _Run, inbound: InboundEvent) -> None:
    decision = _decide_one(hub, run, inbound)
    row = run.row
    if decision.escalation is not None:
        run.state = decision.escalation
        row.state_sealed = hub.sealer.seal(
            run.state.model_dump(mode="json"), context=f"escalation:{row.id}"
        )
        row.status, row.stage, row.tier = run.state.status.value, run.state.stage, run.state.tier
        pseudonyms = run.state.child.pseudonyms
        row.child_pseudonym = pseudonyms[0] if pseudonyms else None
        row.updated_at = run.now
    elif row.state_sealed is None:
        row.status = "rejected"  # its 'raised' was refused: there is no escalation to keep
    row.applied_seq = inbound.seq
    inbound.decided_at, inbound.outcome = run.now, decision.rule
    apply_effects(session, hub, row, decision)
    run.decided.append(decision)
    run.audits.append(("decision", inbound.agency_id or "hub", _audit_detail(inbound, decision)))


def _decide_one(hub: Hub, run: _Run, inbound: InboundEvent) -> Decision:
    """Unseal, validate and decide one stored event, or raise ``_Undecidable``."""
    try:
        body = hub.sealer.unseal(
            inbound.body_sealed, context=f"inbound:{inbound.source}#{inbound.event_id}"
        )
        event = event_adapter.validate_python(body)
        procedure = procedures.load(run.row.procedure_id, run.row.procedure_version)
    except (SecurityError, ValueError, LookupError) as exc:  # incl. pydantic ValidationError
        raise _Undecidable(inbound, exc) from exc
    try:
        return decide(run.state, event, procedure, now=run.now)
    except Exception as exc:  # any bug in the pure router stops the escalation, visibly
        raise _Undecidable(inbound, exc) from exc


def _mark_stuck(run: _Run, stuck: _Undecidable) -> None:
    """Leave the operator a visible mark on the event, and an audit entry; log ids only."""
    inbound = stuck.inbound
    inbound.outcome = f"undecidable:{stuck.error_type}"[:100]
    logger.error(
        "router.undecidable",
        extra={
            "escalation_id": run.row.id,
            "event_id": inbound.event_id,
            "sequence": inbound.seq,
            "error": stuck.error_type,
        },
    )
    detail = {
        "event_id": inbound.event_id,
        "type": inbound.event_type.rsplit(".", 1)[-1],
        "sequence": inbound.seq,
        "error": stuck.error_type,
    }
    run.audits.append(("undecidable", "hub", detail))


def _audit_detail(inbound: InboundEvent, decision: Decision) -> dict[str, Any]:
    return {
        "event_id": inbound.event_id,
        "type": inbound.event_type.rsplit(".", 1)[-1],
        "rule": decision.rule,
        "clause": decision.clause,
        "procedure": decision.procedure_id,
        "version": decision.procedure_version,
        "accepted": decision.accepted,
        "sequence": inbound.seq,
    }
