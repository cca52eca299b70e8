"""Case references: each agency's own reference for an escalation, kept in ``parties``.

A ``raised`` files every party under the reference it gives (the raiser under its
``agencyref``); an agency that acts without naming the escalation is matched by its own
reference. Among several escalations filed under one reference, the open one is chosen; two open
ones are a conflict the sender resolves by naming the escalation.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from gateway.services.errors import Conflict, NotFound
from gateway.store.models import EscalationRow, Party
from schemas.people import Party as PartyData

__all__ = ["escalation_by_reference", "with_own_reference"]

_CLOSED = frozenset({"resolved", "withdrawn", "rejected"})


def with_own_reference(
    parties: tuple[PartyData, ...], agency_id: str, reference: str | None
) -> tuple[PartyData, ...]:
    """The parties, the raiser's own party filed under ``reference`` unless it names one."""
    if reference is None:
        return parties
    return tuple(
        p.model_copy(update={"case_reference": reference})
        if p.agency_id == agency_id and p.case_reference is None
        else p
        for p in parties
    )


def escalation_by_reference(
    session: Session | Connection, *, agency_id: str, reference: str, index: int
) -> str:
    """The escalation ``agency_id`` files under ``reference``: the open one if several."""
    found = session.execute(
        select(EscalationRow.id, EscalationRow.status)
        .join(Party, Party.escalation_id == EscalationRow.id)
        .where(Party.agency_id == agency_id, Party.case_reference == reference)
        .order_by(EscalationRow.opened_at.desc(), EscalationRow.id)
    ).all()
    open_ = [escalation_id for escalation_id, status in found if status not in _CLOSED]
    if len(open_) > 1:
        raise Conflict(
            f"event [{index}]: your case reference names {len(open_)} open escalations; "
            "send the escalation id the hub returned as the subject",
            field=f"[{index}].agencyref",
        )
    if open_:
        return open_[0]
    if found:  # only closed ones: the newest, whose router refuses what comes too late
        return str(found[0][0])
    raise NotFound(
        f"event [{index}]: no escalation that agency '{agency_id}' is a party to is "
        "filed under this case reference; send the escalation id as the subject, or raise it",
        field=f"[{index}].agencyref",
    )
