"""The business office's view of its partnership: counts, notifications, overdue deadlines.

Ids, stages and clauses only: no child, no narrative. Every read is audited; an agency
reaching for a partnership not its own is refused with 404 and an ``access_denied`` entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api.access import ObjectId, deny
from gateway.api.auth import CallerDep, HubDep, SessionDep
from gateway.api.problems import ProblemError, problem_responses
from gateway.store import audit
from gateway.store.models import DeadlineRow, EscalationRow, NotificationRow
from router import procedures

__all__ = ["NotificationView", "OverdueDeadline", "Overview", "router"]

router = APIRouter(tags=["partnerships"], responses=problem_responses(422))
NOTIFICATIONS_SHOWN = 200  # the most recent ones
OVERDUE_SHOWN = 500  # the longest overdue first


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NotificationView(_Row):
    id: str
    escalation_id: str
    recipient: str
    stage: int
    clause: str
    reason: str
    immediate: bool
    created_at: datetime


class OverdueDeadline(_Row):
    escalation_id: str
    deadline_id: str
    due: datetime
    state: str


class Overview(BaseModel):
    """A partnership at a glance, for its business office."""

    partnership: str
    by_status: dict[str, int]
    by_stage: dict[str, int]
    notifications: list[NotificationView]
    overdue: list[OverdueDeadline]


@router.get(
    "/v1/partnerships/{partnership_id}/overview",
    summary="A partnership's overview for its business office",
    responses=problem_responses(401, 404),
)
def partnership_overview(
    partnership_id: ObjectId, caller: CallerDep, hub: HubDep, session: SessionDep
) -> Overview:
    """Counts by status and stage, recent notifications and overdue deadlines (no content)."""
    office = caller.is_business_office and partnership_id in caller.partnerships
    known = partnership_id in {procedure_id for procedure_id, _ in procedures.available()}
    named = {"partnership": partnership_id} if known else {}  # never an arbitrary text
    if not (office or (caller.is_admin and known)):
        if not caller.is_admin:  # an agency reaching for a partnership not its own
            deny(session, hub, caller, "overview", **named)
        raise ProblemError(
            404,
            "Not found",
            "no such partnership in your remit; check 'partnership_id'",
            field="partnership_id",
        )
    overview = _overview(session, partnership_id, hub.clock())
    detail = {"resource": "overview", **named}
    audit.append(
        session,
        at=hub.clock(),
        action="read",
        actor=caller.actor,
        escalation_id=None,
        detail=detail,
    )
    session.commit()
    return overview


def _counts(session: Session, column: Any, partnership: str) -> dict[str, int]:
    rows = session.execute(
        select(column, func.count())
        .where(EscalationRow.partnership == partnership)
        .group_by(column)
    ).all()
    return {str(key): int(count) for key, count in rows}


def _overview(session: Session, partnership: str, now: datetime) -> Overview:
    notifications = session.scalars(
        select(NotificationRow)
        .where(NotificationRow.partnership == partnership)
        .order_by(NotificationRow.created_at.desc(), NotificationRow.id)
        .limit(NOTIFICATIONS_SHOWN)
    ).all()
    overdue = session.scalars(
        select(DeadlineRow)
        .join(EscalationRow, EscalationRow.id == DeadlineRow.escalation_id)
        .where(EscalationRow.partnership == partnership, DeadlineRow.due < now)
        .where(DeadlineRow.state != "done")
        .order_by(DeadlineRow.due)
        .limit(OVERDUE_SHOWN)
    ).all()
    return Overview(
        partnership=partnership,
        by_status=_counts(session, EscalationRow.status, partnership),
        by_stage=_counts(session, EscalationRow.stage, partnership),
        notifications=[NotificationView.model_validate(n) for n in notifications],
        overdue=[OverdueDeadline.model_validate(d) for d in overdue],
    )
