"""The checks and rows of one ingest batch, inside its transaction (Core, statements built once).

Each event is checked (the actor is the connector's agency; a ``raised`` names one of its
partnerships; any other action names an escalation the agency is a party to, by ``subject``
or else by the agency's own case reference in ``agencyref``), numbered in its escalation's
order and stored sealed with its ``decide`` outbox row (``event_rows.record_event``). A
``raised`` opens a pending escalation and files every party under the case reference it
gives, the raiser under its ``agencyref``.

This runs for every request, so it speaks Core on the transaction's connection: the ORM's
identity map and unit of work cost more than the statements themselves. Every read goes to
the database (nothing cached), so a second event of the same batch sees the first's rows.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final
from uuid import uuid4

from sqlalchemy import Connection, bindparam, insert, select, update

from gateway.bootstrap import Hub
from gateway.services.errors import Conflict, Forbidden, Invalid, Refused
from gateway.services.event_rows import record_event
from gateway.services.references import escalation_by_reference, with_own_reference
from gateway.store.models import Agency, EscalationRow, InboundEvent, Party
from router import procedures
from schemas.envelope import AgencyEvent, Raised
from schemas.people import Child
from schemas.procedure import Procedure
from security.errors import InvalidIdentifier
from security.pseudonyms import NHS_KIND, pseudonym

__all__ = ["HUB_SOURCES", "Batch", "Denied", "pseudonymise"]

#: Event sources the hub itself uses (scheduler, router); an agency's events may not.
HUB_SOURCES = "urn:escalation-hub:"

_INBOUND = InboundEvent.__table__
_ESCALATIONS = EscalationRow.__table__
_PARTIES = Party.__table__
_AGENCIES = Agency.__table__
_DUPLICATE: Final = select(_INBOUND.c.agency_id, _INBOUND.c.escalation_id, _INBOUND.c.seq).where(
    _INBOUND.c.source == bindparam("source"), _INBOUND.c.event_id == bindparam("event_id")
)
_LOCK_ESCALATION: Final = (
    select(_ESCALATIONS.c.next_seq)
    .where(_ESCALATIONS.c.id == bindparam("escalation"))
    .with_for_update()  # PostgreSQL; SQLite's writer already holds the one write lock
)
_PARTY_REFERENCE: Final = select(_PARTIES.c.case_reference).where(
    _PARTIES.c.escalation_id == bindparam("escalation"),
    _PARTIES.c.agency_id == bindparam("agency"),
)
_FILE_REFERENCE: Final = (
    update(Party)
    .where(
        _PARTIES.c.escalation_id == bindparam("escalation"),
        _PARTIES.c.agency_id == bindparam("agency"),
    )
    .values(case_reference=bindparam("reference"))
)
_PARTNERSHIPS: Final = select(_AGENCIES.c.partnerships).where(_AGENCIES.c.id == bindparam("agency"))
_INSERT_ESCALATION: Final = insert(EscalationRow)
_INSERT_PARTY: Final = insert(Party)


class Denied(Exception):
    """The escalation is unknown or the agency is no party to it (audited, answered 404)."""

    def __init__(self, *, index: int, subject: str, event: AgencyEvent) -> None:
        super().__init__(f"no escalation visible at [{index}].subject")
        self.index = index
        self.subject = subject
        self.event_id = event.id
        self.event_type = event.type.short


class Batch:
    """The checks and rows of one batch, on its transaction's connection."""

    def __init__(
        self, hub: Hub, conn: Connection, *, connector_id: str, agency_id: str, now: datetime
    ) -> None:
        self.hub, self.conn, self.now = hub, conn, now
        self.connector_id, self.agency_id = connector_id, agency_id
        self.new = 0

    def take(self, index: int, event: AgencyEvent) -> dict[str, Any]:
        """Check and store one event; return its entry in the 202 body."""
        _check_source_and_actor(index, event, self.agency_id)
        duplicate = self._duplicate(index, event)
        if duplicate is not None:
            return entry(event, duplicate[0], duplicate[1], duplicate=True)
        if isinstance(event, Raised):
            escalation_id, seq, event = self._open(index, event)
        else:
            escalation_id, seq, event = self._party_escalation(index, event)
        record_event(
            self.hub,
            self.conn,
            escalation_id=escalation_id,
            seq=seq,
            event=event,
            connector_id=self.connector_id,
            agency_id=self.agency_id,
            now=self.now,
        )
        self.new += 1
        return entry(event, escalation_id, seq, duplicate=False)

    def _duplicate(self, index: int, event: AgencyEvent) -> tuple[str, int] | None:
        """(escalation id, sequence) of this agency's event stored with the same source and id."""
        found = self.conn.execute(_DUPLICATE, {"source": event.source, "event_id": event.id})
        row = found.first()
        if row is None:
            return None
        if row.agency_id != self.agency_id:
            raise Conflict(
                f"event [{index}]: source and id are already used by another agency's event; "
                "give your connector's events a source of their own",
                field=f"[{index}].id",
            )
        return str(row.escalation_id), int(row.seq)

    def _open(self, index: int, event: Raised) -> tuple[str, int, Raised]:
        """A new escalation (pending until the router decides its ``raised``) and its parties;
        returns its id, the event's sequence number (1) and the event with its subject."""
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
        self.conn.execute(
            _INSERT_ESCALATION,
            {
                "id": escalation_id,
                "partnership": data.partnership,
                "procedure_id": procedure.id,
                "procedure_version": procedure.version,
                "status": "pending",
                "stage": 0,
                "tier": 0,
                "child_pseudonym": child.pseudonyms[0] if child.pseudonyms else None,
                "state_sealed": None,
                "next_seq": 1,
                "applied_seq": 0,
                "opened_at": self.now,
                "updated_at": self.now,
            },
        )
        self.conn.execute(
            _INSERT_PARTY,
            [
                {
                    "escalation_id": escalation_id,
                    "agency_id": party.agency_id,
                    "case_reference": party.case_reference,
                }
                for party in event.data.parties
            ],
        )
        return escalation_id, 1, event

    def _procedure(self, index: int, partnership: str) -> Procedure:
        """The current procedure of one of this agency's partnerships."""
        found = self.conn.execute(_PARTNERSHIPS, {"agency": self.agency_id}).scalar()
        allowed = (found or {}).get("ids", [])
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

    def _party_escalation(self, index: int, event: AgencyEvent) -> tuple[str, int, AgencyEvent]:
        """The escalation the event names (by subject, else by the agency's own case
        reference), locked, and the event's sequence number in it; only if this agency is a
        party to it. The event gets its subject."""
        subject = event.subject
        if subject is None:
            if event.agencyref is None:
                raise _invalid_subject(index)
            subject = escalation_by_reference(
                self.conn, agency_id=self.agency_id, reference=event.agencyref, index=index
            )
            event = event.model_copy(update={"subject": subject})
        seq = self.conn.execute(_LOCK_ESCALATION, {"escalation": subject}).scalar()
        keys = {"escalation": subject, "agency": self.agency_id}
        party = None if seq is None else self.conn.execute(_PARTY_REFERENCE, keys).first()
        if seq is None or party is None:
            raise Denied(index=index, subject=subject, event=event)
        if party.case_reference is None and event.agencyref is not None:
            self.conn.execute(_FILE_REFERENCE, {**keys, "reference": event.agencyref})
        return subject, int(seq), event


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


def entry(event: AgencyEvent, escalation_id: str, seq: int, *, duplicate: bool) -> dict[str, Any]:
    """An event's line in the 202 answer: ids only."""
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type.value,
        "escalation_id": escalation_id,
        "sequence": seq,
        "duplicate": duplicate,
    }
