"""Ingest: a connector's batch of agency events, stored durably in ONE transaction before 202.

Per batch: a repeated webhook id gets the first answer again and changes nothing; each event
is checked (the actor is the connector's agency; a ``raised`` names one of its partnerships;
any other action names an escalation the agency is a party to, by ``subject`` or else by the
agency's own case reference in ``agencyref``), numbered in its escalation's order, stored
sealed, and announced by a ``decide`` outbox row. A ``raised`` files every party under the
case reference it gives, the raiser under its ``agencyref``. Any refusal rolls the whole
batch back. A refusal because the escalation is unknown (or the agency is no party to it) is
answered 404 either way and written to the audit log in a transaction of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.metrics import INGEST_REFUSED, INGESTED
from gateway.services.errors import Conflict, Forbidden, Invalid, NotFound, Refused, Unavailable
from gateway.services.references import escalation_by_reference, with_own_reference
from gateway.services.routing import record_event
from gateway.store.audit import append
from gateway.store.db import transaction
from gateway.store.models import Agency, EscalationRow, IdempotentResponse, InboundEvent, Party
from router import procedures
from schemas.envelope import AgencyEvent, Raised
from schemas.people import Child
from schemas.procedure import Procedure
from security.errors import InvalidIdentifier
from security.pseudonyms import NHS_KIND, pseudonym

__all__ = ["HUB_SOURCES", "Accepted", "accept", "pseudonymise"]

#: Event sources the hub itself uses (scheduler, router); an agency's events may not.
HUB_SOURCES = "urn:escalation-hub:"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The answer to a webhook request: status 202 and the JSON body (ids only)."""

    status_code: int
    body: dict[str, Any]


class _Denied(Exception):
    """Internal: the escalation is unknown or the agency is no party to it (audited, 404)."""

    def __init__(self, *, index: int, subject: str, event: AgencyEvent) -> None:
        super().__init__(f"no escalation visible at [{index}].subject")
        self.index = index
        self.subject = subject
        self.event_id = event.id
        self.event_type = event.type.short


def accept(
    hub: Hub,
    *,
    connector_id: str,
    agency_id: str,
    webhook_id: str,
    events: Sequence[AgencyEvent],
) -> Accepted:
    """Store ``events`` (all or nothing) with their decide messages; return the 202 answer."""
    try:
        return _accept_retrying_races(hub, connector_id, agency_id, webhook_id, events)
    except _Denied as denied:
        _audit_denial(hub, connector_id=connector_id, agency_id=agency_id, denied=denied)
        INGEST_REFUSED.labels(reason="not_found").inc()
        raise NotFound(
            f"there is no escalation '{denied.subject}' that agency '{agency_id}' is a party "
            "to; use the escalation id the hub returned when the escalation was raised",
            field=f"[{denied.index}].subject",
        ) from None
    except Refused as refused:
        INGEST_REFUSED.labels(reason=type(refused).__name__.lower()).inc()
        raise


def _accept_retrying_races(
    hub: Hub, connector_id: str, agency_id: str, webhook_id: str, events: Sequence[AgencyEvent]
) -> Accepted:
    """Run the batch; a unique-key race (same webhook id or event) is retried once, which then
    finds the winner's stored answer or reports the events as duplicates."""
    for attempt in (1, 2):
        try:
            return _accept_once(hub, connector_id, agency_id, webhook_id, events)
        except IntegrityError:
            logger.info(
                "ingest.race_retried",
                extra={"connector_id": connector_id, "webhook_id": webhook_id, "try": attempt},
            )
        except (DBAPIError, PoolTimeout) as exc:
            logger.warning("ingest.store_unavailable", extra={"error": type(exc).__name__})
            raise Unavailable(
                "the hub's database cannot store events right now; nothing was stored, "
                "retry the same request later"
            ) from exc
    raise Conflict(
        f"webhook '{webhook_id}' collided twice with concurrent requests for the same events; "
        "retry the request unchanged"
    )


def _accept_once(
    hub: Hub, connector_id: str, agency_id: str, webhook_id: str, events: Sequence[AgencyEvent]
) -> Accepted:
    now = hub.clock()
    with transaction(hub.sessions) as session:
        stored = session.get(IdempotentResponse, (connector_id, webhook_id))
        if stored is not None:
            logger.info("ingest.replayed", extra={"connector_id": connector_id})
            return Accepted(status_code=stored.status_code, body=dict(stored.body))
        batch = _Batch(hub, session, connector_id=connector_id, agency_id=agency_id, now=now)
        entries = [batch.take(index, event) for index, event in enumerate(events)]
        body: dict[str, Any] = {"accepted": entries}
        session.add(
            IdempotentResponse(
                connector_id=connector_id,
                webhook_id=webhook_id,
                status_code=202,
                body=body,
                created_at=now,
            )
        )
    for entry in entries:
        if not entry["duplicate"]:
            INGESTED.labels(type=entry["type"].rsplit(".", 1)[-1]).inc()
    logger.info(
        "ingest.accepted",
        extra={"connector_id": connector_id, "events": len(entries), "new": batch.new},
    )
    return Accepted(status_code=202, body=body)


class _Batch:
    """The checks and rows of one batch, inside its transaction."""

    def __init__(
        self, hub: Hub, session: Session, *, connector_id: str, agency_id: str, now: datetime
    ) -> None:
        self.hub, self.session, self.now = hub, session, now
        self.connector_id, self.agency_id = connector_id, agency_id
        self.new = 0

    def take(self, index: int, event: AgencyEvent) -> dict[str, Any]:
        """Check and store one event; return its entry in the 202 body."""
        _check_source_and_actor(index, event, self.agency_id)
        duplicate = self._duplicate(index, event)
        if duplicate is not None:
            return _entry(event, duplicate.escalation_id, duplicate.seq, duplicate=True)
        if isinstance(event, Raised):
            row, event = self._open(index, event)
        else:
            row, event = self._party_escalation(index, event)
        seq = record_event(
            self.hub,
            self.session,
            row=row,
            event=event,
            connector_id=self.connector_id,
            agency_id=self.agency_id,
            now=self.now,
        )
        self.new += 1
        return _entry(event, row.id, seq, duplicate=False)

    def _duplicate(self, index: int, event: AgencyEvent) -> InboundEvent | None:
        found = self.session.scalars(
            select(InboundEvent).where(
                InboundEvent.source == event.source, InboundEvent.event_id == event.id
            )
        ).first()
        if found is not None and found.agency_id != self.agency_id:
            raise Conflict(
                f"event [{index}]: source and id are already used by another agency's event; "
                "give your connector's events a source of their own",
                field=f"[{index}].id",
            )
        return found

    def _open(self, index: int, event: Raised) -> tuple[EscalationRow, Raised]:
        """A new escalation (pending until the router decides its ``raised``) and its parties."""
        data = event.data
        procedure = self._procedure(index, data.partnership)
        child = pseudonymise(self.hub.pseudonym_key, data.child, index=index)
        escalation_id = str(uuid4())
        parties = with_own_reference(data.parties, self.agency_id, event.agencyref)
        event = event.model_copy(
            update={
                "subject": escalation_id,
                "data": data.model_copy(update={"child": child, "parties": parties}),
            }
        )
        row = EscalationRow(
            id=escalation_id,
            partnership=data.partnership,
            procedure_id=procedure.id,
            procedure_version=procedure.version,
            status="pending",
            stage=0,
            tier=0,
            child_pseudonym=child.pseudonyms[0] if child.pseudonyms else None,
            next_seq=1,
            applied_seq=0,
            opened_at=self.now,
            updated_at=self.now,
        )
        self.session.add(row)
        self.session.flush()  # the parties and the event refer to it
        for party in event.data.parties:
            self.session.add(
                Party(
                    escalation_id=row.id,
                    agency_id=party.agency_id,
                    case_reference=party.case_reference,
                )
            )
        return row, event

    def _procedure(self, index: int, partnership: str) -> Procedure:
        """The current procedure of one of this agency's partnerships."""
        agency = self.session.get(Agency, self.agency_id)
        allowed = (agency.partnerships or {}).get("ids", []) if agency is not None else []
        if partnership not in allowed:
            raise Forbidden(
                f"agency '{self.agency_id}' is not a member of partnership '{partnership}'; "
                "raise it in one of your partnerships or ask the hub administrator",
                field=f"[{index}].data.partnership",
            )
        try:
            return procedures.load(partnership)
        except procedures.UnknownProcedureError:
            known = ", ".join(sorted({pid for pid, _ in procedures.available()}))
            raise Invalid(
                f"no procedure is configured for partnership '{partnership}'; known: {known}",
                field=f"[{index}].data.partnership",
            ) from None

    def _party_escalation(
        self, index: int, event: AgencyEvent
    ) -> tuple[EscalationRow, AgencyEvent]:
        """The escalation the event names (by subject, else by the agency's own case
        reference), locked; only if this agency is a party to it. The event gets its subject."""
        subject = event.subject
        if subject is None:
            if event.agencyref is None:
                raise _invalid_subject(index)
            subject = escalation_by_reference(
                self.session, agency_id=self.agency_id, reference=event.agencyref, index=index
            )
            event = event.model_copy(update={"subject": subject})
        row = self.session.scalars(
            select(EscalationRow).where(EscalationRow.id == subject).with_for_update()
        ).first()
        party = None if row is None else self.session.get(Party, (row.id, self.agency_id))
        if row is None or party is None:
            raise _Denied(index=index, subject=subject, event=event)
        if party.case_reference is None and event.agencyref is not None:
            party.case_reference = event.agencyref
        return row, event


def _check_source_and_actor(index: int, event: AgencyEvent, agency_id: str) -> None:
    """The event is the agency's own: its actor is the agency, its source not the hub's."""
    if event.source.startswith(HUB_SOURCES):
        raise Invalid(
            f"event [{index}] uses a source reserved for the hub ('{HUB_SOURCES}...'); "
            "give your connector's events a source of their own",
            field=f"[{index}].source",
        )
    if isinstance(event, Raised):
        actor, where = event.data.raised_by.agency_id, "data.raised_by.agency_id"
    else:
        actor, where = event.data.by.agency_id, "data.by.agency_id"
    if actor != agency_id:
        raise Forbidden(
            f"event [{index}] acts for agency '{actor}' but this connector belongs to "
            f"'{agency_id}'; a connector may only send its own agency's actions",
            field=f"[{index}].{where}",
        )


def pseudonymise(key: bytes, child: Child, *, index: int) -> Child:
    """The child with keyed pseudonyms of its NHS number and local ids (identifiers kept)."""
    ids = child.identifiers
    if ids is None:
        return child
    found: list[str] = []
    where = f"[{index}].data.child.identifiers"
    try:
        if ids.nhs_number is not None:
            found.append(pseudonym(key, NHS_KIND, ids.nhs_number))
    except InvalidIdentifier as exc:
        raise Invalid(f"{exc}", field=f"{where}.nhs_number") from None
    for system, value in sorted(ids.local_ids.items()):
        try:
            digest = pseudonym(key, "local", f"{system}\x00{value}").split(":", 1)[1]
        except InvalidIdentifier:
            raise Invalid(
                "a local id is empty; give each case system's id for the child, or omit it",
                field=f"{where}.local_ids",
            ) from None
        found.append(f"local:{_slug(system)}:{digest}")
    return child.model_copy(update={"pseudonyms": tuple(dict.fromkeys(found))})


def _slug(system: str) -> str:
    """A case system's name as a short label (it is bound into the digest in full)."""
    return re.sub(r"[^a-z0-9_-]+", "-", system.casefold()).strip("-")[:32] or "system"


def _invalid_subject(index: int) -> Refused:
    return Invalid(
        f"event [{index}] has no subject; every action except 'raised' must name the "
        "escalation id the hub returned when the escalation was raised",
        field=f"[{index}].subject",
    )


def _entry(event: AgencyEvent, escalation_id: str, seq: int, *, duplicate: bool) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type.value,
        "escalation_id": escalation_id,
        "sequence": seq,
        "duplicate": duplicate,
    }


def _audit_denial(hub: Hub, *, connector_id: str, agency_id: str, denied: _Denied) -> None:
    """Record the refused access in the audit chain (its own transaction: the batch is gone).

    The chain is permanent, so a subject that is not an escalation id (free text could be
    anything) is recorded only as such."""
    try:
        escalation_id: str | None = str(UUID(denied.subject))
    except ValueError:
        escalation_id = None
    try:
        with transaction(hub.sessions) as session:
            append(
                session,
                at=hub.clock(),
                action="access_denied",
                actor=agency_id,
                escalation_id=escalation_id,
                detail={
                    "connector_id": connector_id,
                    "event_id": denied.event_id,
                    "event_type": denied.event_type,
                    "subject": escalation_id or "(not an escalation id)",
                },
            )
    except SQLAlchemyError as exc:
        logger.error("ingest.audit_failed", extra={"error": type(exc).__name__})
        raise Unavailable(
            "the hub could not record this request in its audit log; retry later"
        ) from exc
