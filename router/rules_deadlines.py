"""Deadlines: computed with the working calendar, kept in the state, mirrored as effects."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from router.calendar import WorkingCalendar
from router.rules_base import Ctx
from schemas.common import TimeUnit
from schemas.escalation import Deadline, DeadlineState, Escalation
from schemas.facts import DeadlineKind
from schemas.procedure import Timescale
from schemas.updates import ClearDeadline, Effect, SetDeadline

__all__ = [
    "agreed_deadline",
    "clear_all",
    "deadline_id",
    "position_deadline",
    "replace",
    "shorter",
    "total_deadline",
    "with_state",
]

_LONDON = ZoneInfo("Europe/London")


def deadline_id(kind: DeadlineKind, stage: int, tier: int) -> str:
    return f"{kind.value}:{stage}:{tier}"


def _build(
    ctx: Ctx,
    *,
    kind: DeadlineKind,
    position: tuple[int, int],
    started_at: datetime,
    timescale: Timescale,
    clause: str,
    agreed_shorter: bool = False,
) -> Deadline:
    due = ctx.calendar.add(started_at, timescale.amount, timescale.unit)
    return Deadline(
        id=deadline_id(kind, *position),
        kind=kind,
        stage=position[0],
        tier=position[1],
        started_at=started_at,
        due=due,
        notice_at=_notice_at(ctx, started_at, due),
        amount=timescale.amount,
        unit=timescale.unit,
        clause=clause,
        calendar_version=ctx.calendar.version,
        agreed_shorter=agreed_shorter,
    )


def _notice_at(ctx: Ctx, started_at: datetime, due: datetime) -> datetime | None:
    """``due`` minus the procedure's notice, or None when that is not after ``started_at``."""
    notice = ctx.procedure.approaching_notice
    if notice.unit is TimeUnit.HOURS:
        at = due - timedelta(hours=notice.amount)
    elif notice.unit is TimeUnit.CALENDAR_DAYS:
        at = (due.astimezone(_LONDON) - timedelta(days=notice.amount)).astimezone(UTC)
    else:
        at = _working_days_before(ctx.calendar, due, notice.amount)
    return at if at > started_at else None


def _working_days_before(calendar: WorkingCalendar, due: datetime, amount: int) -> datetime:
    """The latest same-time-of-day instant from which ``amount`` working days reach ``due``."""
    local = due.astimezone(_LONDON)
    back = amount
    while True:
        candidate = (local - timedelta(days=back)).astimezone(UTC)
        if calendar.add(candidate, amount, TimeUnit.WORKING_DAYS) <= due:
            return candidate
        back += 1


def _start(timescale: Timescale, *, entered_at: datetime, opened_at: datetime) -> datetime:
    return opened_at if timescale.measured_from == "raised" else entered_at


def position_deadline(
    ctx: Ctx, *, stage: int, tier: int, entered_at: datetime, opened_at: datetime
) -> Deadline | None:
    """The procedure's deadline at a stage and tier: the stage timescale at tier 1, above
    that the tier timescale; None where the procedure sets no timescale."""
    rules = ctx.procedure.stage(stage)
    if tier > 1 and rules.tiers is not None:
        kind, timescale = DeadlineKind.TIER, rules.tiers.timescale
        clause = timescale.clause or rules.tiers.clause
    elif rules.timescale is not None:
        kind, timescale = DeadlineKind.STAGE, rules.timescale
        clause = timescale.clause or rules.clause
    else:
        return None
    started_at = _start(timescale, entered_at=entered_at, opened_at=opened_at)
    return _build(
        ctx,
        kind=kind,
        position=(stage, tier),
        started_at=started_at,
        timescale=timescale,
        clause=clause,
    )


def agreed_deadline(
    ctx: Ctx, timescale: Timescale, *, stage: int, tier: int, started_at: datetime
) -> Deadline:
    """A timescale the agencies agreed for this stage and tier (wins only when shorter)."""
    clause = ctx.procedure.shorter_timescale_clause or ctx.procedure.stage(stage).clause
    kind = DeadlineKind.TIER if tier > 1 else DeadlineKind.STAGE
    return _build(
        ctx,
        kind=kind,
        position=(stage, tier),
        started_at=started_at,
        timescale=timescale,
        clause=clause,
        agreed_shorter=True,
    )


def shorter(procedure_due: Deadline | None, agreed: Deadline | None) -> Deadline | None:
    """The agreed deadline if it is due strictly earlier (or the procedure sets none)."""
    if agreed is None:
        return procedure_due
    if procedure_due is None or agreed.due < procedure_due.due:
        return agreed
    return procedure_due


def total_deadline(ctx: Ctx, opened_at: datetime) -> Deadline | None:
    timescale = ctx.procedure.total_maximum
    if timescale is None:
        return None
    return _build(
        ctx,
        kind=DeadlineKind.TOTAL,
        position=(0, 0),
        started_at=opened_at,
        timescale=timescale,
        clause=timescale.clause or ctx.procedure.stage(1).clause,
    )


def replace(
    escalation: Escalation, *, clear: Iterable[str] = (), add: Iterable[Deadline] = ()
) -> tuple[tuple[Deadline, ...], tuple[Effect, ...]]:
    """Clear deadlines by id and set new ones (an existing id is cleared first); every
    change is also an effect."""
    added = tuple(add)
    gone = set(clear) | {d.id for d in added}
    cleared = tuple(d.id for d in escalation.deadlines if d.id in gone)
    kept = tuple(d for d in escalation.deadlines if d.id not in gone)
    effects: list[Effect] = [
        ClearDeadline(escalation_id=escalation.id, deadline_id=i) for i in cleared
    ]
    effects += [SetDeadline(escalation_id=escalation.id, deadline=d) for d in added]
    return kept + added, tuple(effects)


def clear_all(escalation: Escalation) -> tuple[tuple[Deadline, ...], tuple[Effect, ...]]:
    return replace(escalation, clear=[d.id for d in escalation.deadlines])


def with_state(
    escalation: Escalation, deadline: Deadline, state: DeadlineState
) -> tuple[tuple[Deadline, ...], SetDeadline]:
    """Move one deadline to ``state`` in place; the SetDeadline keeps the index in step."""
    moved = deadline.model_copy(update={"state": state})
    deadlines = tuple(moved if d.id == deadline.id else d for d in escalation.deadlines)
    return deadlines, SetDeadline(escalation_id=escalation.id, deadline=moved)
