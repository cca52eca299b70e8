"""The scheduler's index of deadlines, kept equal to each decided state's deadlines.

The ``deadlines`` table mirrors the new state's deadlines (upserted by id, the others
deleted; none for a closed escalation), so the scheduler reads an index instead of unsealing
states. ``SetDeadline``/``ClearDeadline`` effects describe the same change; a disagreement
with the state is logged (the state wins). Core statements built once, in the decision's
transaction (``effects.apply_effects``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from gateway.store.models import DeadlineRow
from router.decision import Decision
from schemas.escalation import Deadline
from schemas.updates import ClearDeadline, SetDeadline

__all__ = ["sync_deadlines"]

logger = logging.getLogger(__name__)


def sync_deadlines(session: Session, escalation_id: str, decision: Decision) -> None:
    """Make the escalation's DeadlineRows equal the decided state's deadlines (none once
    closed); rows that already match are not written."""
    assert decision.escalation is not None
    escalation = decision.escalation
    _check_deadline_effects(escalation_id, decision)
    wanted = {} if escalation.status.terminal else {d.id: _columns(d) for d in escalation.deadlines}
    conn = session.connection()
    stored = {
        r.deadline_id: (r.due, r.notice_at, r.state, r.calendar_version)
        for r in conn.execute(_STORED_DEADLINES, {"escalation": escalation_id})
    }
    gone = [{"escalation": escalation_id, "deadline": i} for i in stored.keys() - wanted.keys()]
    if gone:
        conn.execute(_DELETE_DEADLINE, gone)
    new, changed = [], []
    for deadline_id, columns in wanted.items():
        values = {"escalation": escalation_id, "deadline": deadline_id, **columns}
        if deadline_id not in stored:
            new.append({"escalation_id": escalation_id, "deadline_id": deadline_id, **columns})
        elif _same(stored[deadline_id], columns):
            continue
        else:
            changed.append(values)
    if new:
        conn.execute(_INSERT_DEADLINE, new)
    if changed:
        conn.execute(_UPDATE_DEADLINE, changed)


def _columns(deadline: Deadline) -> dict[str, Any]:
    return {
        "due": deadline.due,
        "notice_at": deadline.notice_at,
        "state": deadline.state.value,
        "calendar_version": deadline.calendar_version,
    }


def _same(stored: tuple[Any, ...], columns: Mapping[str, Any]) -> bool:
    """Whether a stored row already holds these values (times are aware: UTCDateTime)."""
    return stored == (
        columns["due"],
        columns["notice_at"],
        columns["state"],
        columns["calendar_version"],
    )


_DEADLINES = DeadlineRow.__table__
_STORED_DEADLINES: Final = select(
    _DEADLINES.c.deadline_id,
    _DEADLINES.c.due,
    _DEADLINES.c.notice_at,
    _DEADLINES.c.state,
    _DEADLINES.c.calendar_version,
).where(_DEADLINES.c.escalation_id == bindparam("escalation"))
_THIS_DEADLINE = (DeadlineRow.escalation_id == bindparam("escalation")) & (
    DeadlineRow.deadline_id == bindparam("deadline")
)
_DELETE_DEADLINE: Final = delete(DeadlineRow).where(_THIS_DEADLINE)
_INSERT_DEADLINE: Final = insert(DeadlineRow)
_UPDATE_DEADLINE: Final = update(DeadlineRow).where(_THIS_DEADLINE)


def _check_deadline_effects(escalation_id: str, decision: Decision) -> None:
    """Log (ids only) where Set/ClearDeadline effects disagree with the state's deadlines."""
    assert decision.escalation is not None
    state = {d.id: d for d in decision.escalation.deadlines}
    claimed: dict[str, Deadline | None] = {}
    for effect in decision.effects:
        if isinstance(effect, SetDeadline):
            claimed[effect.deadline.id] = effect.deadline
        elif isinstance(effect, ClearDeadline):
            claimed[effect.deadline_id] = None
    disagree = sorted(i for i, d in claimed.items() if state.get(i) != d)
    if disagree:
        logger.warning(
            "effects.deadline_effects_disagree",
            extra={"escalation_id": escalation_id, "deadline_ids": disagree, "rule": decision.rule},
        )
