"""Scoped reads of escalations; every read is audited, every denied read answers 404.

A party agency sees its escalations in full; a business office sees its partnerships' ones
with the child's identifiers removed (pseudonyms kept); the administrator sees every summary
and the same redacted view. Nothing else is shown to anyone, and "not yours" looks exactly
like "no such escalation".
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from gateway.api.access import ID_PATTERN, ObjectId, deny, not_visible
from gateway.api.auth import Caller, CallerDep, HubDep, SessionDep
from gateway.api.problems import ProblemError, problem_responses
from gateway.bootstrap import Hub
from gateway.store import audit
from gateway.store.models import (
    Connector,
    Delivery,
    EscalationRow,
    InboundEvent,
    Party,
)
from schemas.escalation import Escalation
from schemas.people import Child

__all__ = [
    "DeliveryView",
    "EscalationPage",
    "EscalationSummary",
    "EscalationView",
    "EventView",
    "History",
    "decode_cursor",
    "encode_cursor",
    "redacted",
    "router",
    "summary",
]

router = APIRouter(tags=["escalations"], responses=problem_responses(422))
View = Literal["party", "oversight"]
#: Unpadded base64url: whole quanta, then 2 to 4 characters (a lone last character is no byte).
CURSOR = r"^(?:[A-Za-z0-9_-]{4})*[A-Za-z0-9_-]{2,4}$"


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EscalationSummary(_Row):
    """Clear columns only: never the child, never a narrative."""

    id: str
    partnership: str
    procedure_id: str
    procedure_version: str
    status: str
    stage: int
    tier: int
    opened_at: datetime
    updated_at: datetime
    case_reference: str | None = Field(default=None, description="The caller's own reference.")


class EscalationPage(BaseModel):
    items: list[EscalationSummary]
    next_cursor: str | None = None


class EscalationView(EscalationSummary):
    """The state; ``view`` 'oversight' means the child's identifiers were removed."""

    view: View
    state: Escalation | None = Field(description="None until the router decides 'raised'.")


class EventView(_Row):
    seq: int
    type: str = Field(validation_alias="event_type")
    received_at: datetime
    decided_at: datetime | None
    rule: str | None = Field(validation_alias="outcome")


class DeliveryView(_Row):
    id: str
    recipient_agency_id: str | None = None
    channel: str
    status: str
    attempts: int
    last_status: int | None
    created_at: datetime
    finished_at: datetime | None


class History(BaseModel):
    escalation_id: str
    events: list[EventView]
    deliveries: list[DeliveryView]


def summary(row: EscalationRow, reference: str | None) -> EscalationSummary:
    """The clear columns of an escalation with the caller's own case reference."""
    found = EscalationSummary.model_validate(row)
    return found.model_copy(update={"case_reference": reference})


def _audit(
    session: Session,
    hub: Hub,
    caller: Caller,
    action: str,
    escalation_id: str | None,
    **detail: Any,
) -> None:
    audit.append(
        session,
        at=hub.clock(),
        action=action,
        actor=caller.actor,
        escalation_id=escalation_id,
        detail=detail,
    )


def redacted(state: Escalation) -> Escalation:
    """The state without the child's identifiers; the keyed pseudonyms stay for matching."""
    return state.model_copy(update={"child": Child(pseudonyms=state.child.pseudonyms)})


def _visible(caller: Caller) -> ColumnElement[bool]:
    """Which escalations a caller may see (with Party outer-joined for the caller's agency)."""
    if caller.is_admin:
        return true()
    office = (
        EscalationRow.partnership.in_(sorted(caller.partnerships))
        if caller.is_business_office
        else false()
    )
    return or_(Party.agency_id.is_not(None), office)


def _view(session: Session, caller: Caller, row: EscalationRow) -> View | None:
    """How this caller may see this escalation, or None."""
    if caller.agency_id is not None and session.get(Party, (row.id, caller.agency_id)) is not None:
        return "party"
    if caller.is_admin or (caller.is_business_office and row.partnership in caller.partnerships):
        return "oversight"
    return None


def decode_cursor(cursor: str) -> str:
    """The position a cursor names: the last id of the previous page.

    Every text matching ``CURSOR`` (unpadded base64url) names a position, so the query
    parameter's pattern is the whole contract: bytes that are not UTF-8 decode with U+FFFD,
    and NUL (which PostgreSQL text cannot hold) becomes U+FFFD too.
    """
    raw = cursor.encode("ascii", "replace")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):  # only if the pattern was not checked first
        detail = "the cursor is not one this API made; pass next_cursor from the previous page"
        raise ProblemError(422, "Invalid cursor", detail, field="cursor") from None
    return decoded.decode("utf-8", "replace").replace("\x00", "\ufffd")


def encode_cursor(last_id: str) -> str:
    """An opaque cursor after ``last_id`` (unpadded base64url)."""
    return base64.urlsafe_b64encode(last_id.encode()).decode("ascii").rstrip("=")


@router.get(
    "/v1/escalations",
    summary="List escalations visible to the caller",
    responses=problem_responses(401, 422),
)
def list_escalations(
    caller: CallerDep,
    hub: HubDep,
    session: SessionDep,
    status: Annotated[
        str | None, Query(max_length=32, pattern=ID_PATTERN, examples=["open"])
    ] = None,
    stage: Annotated[int | None, Query(ge=0, le=99)] = None,
    partnership: Annotated[
        str | None, Query(max_length=64, pattern=ID_PATTERN, examples=["northamptonshire"])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=CURSOR,
            description="'next_cursor' of the previous page (unpadded base64url).",
        ),
    ] = None,
) -> EscalationPage:
    """List summaries (no sealed content), oldest id first, a page at a time."""
    mine = and_(Party.escalation_id == EscalationRow.id, Party.agency_id == caller.agency_id)
    query = (
        select(EscalationRow, Party.case_reference)
        .outerjoin(Party, mine)
        .where(_visible(caller))
        .order_by(EscalationRow.id)
        .limit(limit + 1)
    )
    for column, wanted in (
        (EscalationRow.status, status),
        (EscalationRow.stage, stage),
        (EscalationRow.partnership, partnership),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    if cursor is not None:
        query = query.where(EscalationRow.id > decode_cursor(cursor))
    rows = session.execute(query).all()
    items = [summary(row, reference) for row, reference in rows[:limit]]
    _audit(session, hub, caller, "read", None, resource="escalations", ids=[i.id for i in items])
    session.commit()
    more = len(rows) > limit
    return EscalationPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


def _readable(
    session: Session, hub: Hub, caller: Caller, escalation_id: str, resource: str
) -> tuple[EscalationRow, View]:
    """The escalation and the caller's view of it, or 404 (a denial is audited at once)."""
    row = session.get(EscalationRow, escalation_id)
    view = None if row is None else _view(session, caller, row)
    if row is None or view is None:
        if row is not None:
            deny(session, hub, caller, resource, escalation_id=row.id)
        raise not_visible("escalation", "escalation_id")
    return row, view


@router.get(
    "/v1/escalations/{escalation_id}",
    summary="Read one escalation's state",
    responses=problem_responses(401, 404),
)
def read_escalation(
    escalation_id: ObjectId, caller: CallerDep, hub: HubDep, session: SessionDep
) -> EscalationView:
    """The escalation's state: in full for parties, without child identifiers for oversight."""
    row, view = _readable(session, hub, caller, escalation_id, "escalation")
    reference = None
    if caller.agency_id is not None:
        party = session.get(Party, (row.id, caller.agency_id))
        reference = party.case_reference if party is not None else None
    state = None
    if row.state_sealed is not None:
        document = hub.sealer.unseal(row.state_sealed, context=f"escalation:{row.id}")
        state = Escalation.model_validate(document)
        if view != "party":
            state = redacted(state)
    _audit(session, hub, caller, "read", row.id, resource="escalation", view=view)
    session.commit()
    return EscalationView(**summary(row, reference).model_dump(), view=view, state=state)


@router.get(
    "/v1/escalations/{escalation_id}/history",
    summary="Read one escalation's events and deliveries",
    responses=problem_responses(401, 404),
)
def read_history(
    escalation_id: ObjectId, caller: CallerDep, hub: HubDep, session: SessionDep
) -> History:
    """Inbound events in the order accepted, and every delivery with its status."""
    row, view = _readable(session, hub, caller, escalation_id, "history")
    events = session.scalars(
        select(InboundEvent).where(InboundEvent.escalation_id == row.id).order_by(InboundEvent.seq)
    ).all()
    deliveries = session.execute(
        select(Delivery, Connector.agency_id)
        .outerjoin(Connector, Connector.id == Delivery.connector_id)
        .where(Delivery.escalation_id == row.id)
        .order_by(Delivery.created_at, Delivery.id)
    ).all()
    _audit(session, hub, caller, "read", row.id, resource="history", view=view)
    session.commit()
    return History(
        escalation_id=row.id,
        events=[EventView.model_validate(e) for e in events],
        deliveries=[
            DeliveryView.model_validate(d).model_copy(update={"recipient_agency_id": agency})
            for d, agency in deliveries
        ],
    )
