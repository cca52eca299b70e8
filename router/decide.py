"""``decide()``: the pure router. One event on one escalation under its procedure -> a Decision.

No I/O and no clock: ``now`` is passed in. Refusals are decisions (``accepted=False`` with
a ``rejected`` fact), never exceptions; only a caller's mistake raises ``ValueError``
(a naive ``now``, the wrong procedure or version, or the wrong escalation for the event).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from uuid import NAMESPACE_URL, uuid5

from router.calendar import WorkingCalendar
from router.decision import Decision
from router.rules_base import ROUTER_SOURCE, Applied, Ctx, Ignored, Refusal, Result, stage_update
from router.rules_escalated import on_escalated
from router.rules_plans import on_plan_agreed
from router.rules_raised import on_raised
from router.rules_records import (
    on_acknowledged,
    on_discussion_recorded,
    on_flags_changed,
    on_withdrawn,
)
from router.rules_resolved import on_resolved
from router.rules_timers import on_deadline
from schemas.envelope import (
    Acknowledged,
    AnyEvent,
    DeadlineApproaching,
    DeadlineBreached,
    DiscussionRecorded,
    Escalated,
    EventType,
    FlagsChanged,
    PlanAgreed,
    Raised,
    Rejected,
    Resolved,
    Withdrawn,
)
from schemas.escalation import Escalation
from schemas.facts import RejectedData
from schemas.procedure import Procedure
from schemas.updates import Effect

__all__ = ["decide"]

_AgencyAction = (
    Acknowledged | PlanAgreed | DiscussionRecorded | Escalated | Resolved | Withdrawn | FlagsChanged
)


@lru_cache(maxsize=64)
def _calendar(closure_days: tuple[date, ...]) -> WorkingCalendar:
    return WorkingCalendar(closure_days)


def decide(
    escalation: Escalation | None, event: AnyEvent, procedure: Procedure, now: datetime
) -> Decision:
    """Apply ``event`` to ``escalation`` under ``procedure`` at ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if escalation is not None:
        _check_caller(escalation, event, procedure)
    ctx = Ctx(
        event=event,
        procedure=procedure,
        now=now.astimezone(UTC),
        calendar=_calendar(procedure.closure_days),
        escalation_id=_escalation_id(escalation, event),
        sequence=escalation.events_applied + 1 if escalation is not None else 1,
    )
    result = _route(ctx, escalation, event)
    if isinstance(result, Applied):
        return _accepted(ctx, result)
    if isinstance(result, Refusal):
        return _refused(ctx, escalation, result)
    return _ignored(ctx, escalation, result)


def _check_caller(escalation: Escalation, event: AnyEvent, procedure: Procedure) -> None:
    """The caller loads the escalation the event names and the procedure it started under."""
    if (escalation.procedure_id, escalation.procedure_version) != (procedure.id, procedure.version):
        raise ValueError(
            f"escalation {escalation.id} runs under procedure {escalation.procedure_id} "
            f"{escalation.procedure_version}, not {procedure.id} {procedure.version}; "
            "load the version it started under"
        )
    if event.subject is not None and event.subject != escalation.id:
        raise ValueError(f"event {event.id} is about {event.subject}, not {escalation.id}")


def _escalation_id(escalation: Escalation | None, event: AnyEvent) -> str:
    if escalation is not None:
        return escalation.id
    return event.subject or str(uuid5(NAMESPACE_URL, f"{event.source}#{event.id}"))


def _route(ctx: Ctx, escalation: Escalation | None, event: AnyEvent) -> Result:
    if isinstance(event, Raised):
        if escalation is not None:
            return Refusal(
                "raised.already_exists",
                f"escalation {escalation.id} already exists; send actions about it instead",
                field="subject",
            )
        return on_raised(ctx, event)
    if isinstance(event, DeadlineApproaching | DeadlineBreached):
        if escalation is None:
            return Ignored("deadline.ignored_unknown")
        return on_deadline(ctx, escalation, event)
    if not isinstance(event, _AgencyAction):
        return Ignored("fact.not_an_input")
    if escalation is None:
        return Refusal(
            "action.unknown_escalation",
            f"there is no escalation '{event.subject}'; raise one first",
            field="subject",
        )
    return _act(ctx, escalation, event)


def _act(ctx: Ctx, escalation: Escalation, event: _AgencyAction) -> Result:
    agency = event.data.by.agency_id
    if escalation.party(agency) is None:
        return Refusal(
            "action.not_a_party",
            f"'{agency}' is not a party to this escalation; only its parties may act on it",
            field="data.by.agency_id",
        )
    if escalation.status.terminal:
        return Refusal("action.closed", f"the escalation is closed ({escalation.status.value})")
    if isinstance(event, Acknowledged):
        return on_acknowledged(ctx, escalation, event)
    if isinstance(event, PlanAgreed):
        return on_plan_agreed(ctx, escalation, event)
    if isinstance(event, DiscussionRecorded):
        return on_discussion_recorded(ctx, escalation, event)
    if isinstance(event, Escalated):
        return on_escalated(ctx, escalation, event)
    if isinstance(event, Resolved):
        return on_resolved(ctx, escalation, event)
    if isinstance(event, Withdrawn):
        return on_withdrawn(ctx, escalation, event)
    return on_flags_changed(ctx, escalation, event)


def _accepted(ctx: Ctx, result: Applied) -> Decision:
    after = result.escalation.model_copy(
        update={"events_applied": ctx.sequence, "updated_at": ctx.now}
    )
    return Decision(
        accepted=True,
        escalation=after,
        effects=result.effects,
        facts=result.facts,
        rule=result.rule,
        clause=result.clause,
        procedure_id=ctx.procedure.id,
        procedure_version=ctx.procedure.version,
    )


def _fallback_clause(ctx: Ctx, escalation: Escalation | None) -> str:
    """The clause of the stage the event met (stage 1 before there is an escalation)."""
    return ctx.procedure.stage(escalation.stage if escalation is not None else 1).clause


def _ignored(ctx: Ctx, escalation: Escalation | None, result: Ignored) -> Decision:
    return Decision(
        accepted=False,
        escalation=escalation,
        rule=result.rule,
        clause=result.clause or _fallback_clause(ctx, escalation),
        procedure_id=ctx.procedure.id,
        procedure_version=ctx.procedure.version,
    )


def _refused(ctx: Ctx, escalation: Escalation | None, refusal: Refusal) -> Decision:
    clause = refusal.clause or _fallback_clause(ctx, escalation)
    event = ctx.event
    key = str(uuid5(NAMESPACE_URL, f"{event.source}#{event.id}"))
    fact = Rejected(
        type=EventType.REJECTED,
        id=str(uuid5(NAMESPACE_URL, f"{ROUTER_SOURCE}/rejected/{key}")),
        source=ROUTER_SOURCE,
        time=ctx.now,
        subject=escalation.id if escalation is not None else event.subject,
        data=RejectedData(
            rejected_event_id=event.id,
            rejected_type=event.type.short,
            reason=refusal.reason,
            clause=clause,
            field=refusal.field,
        ),
    )
    return Decision(
        accepted=False,
        escalation=escalation,
        effects=_rejection_update(ctx, escalation, refusal, clause, key),
        facts=(fact,),
        rule=refusal.rule,
        clause=clause,
        procedure_id=ctx.procedure.id,
        procedure_version=ctx.procedure.version,
    )


def _rejection_update(
    ctx: Ctx, escalation: Escalation | None, refusal: Refusal, clause: str, key: str
) -> tuple[Effect, ...]:
    """One update to the sender, when it is a party of an existing escalation.

    Its id carries the refused event's key: the sequence does not move on a refusal, so
    ``{escalation}:{sequence}:{agency}`` would collide with the next accepted update.
    """
    event = ctx.event
    if isinstance(event, Raised):
        sender: str | None = event.data.raised_by.agency_id
    else:
        sender = event.data.by.agency_id if isinstance(event, _AgencyAction) else None
    if escalation is None or sender is None or (party := escalation.party(sender)) is None:
        return ()
    sequence = escalation.events_applied
    return (
        stage_update(
            ctx,
            escalation,
            party,
            update_id=f"{escalation.id}:{sequence}:{sender}:rejected:{key}",
            sequence=sequence,
            event="rejected",
            clause=clause,
            summary=f"Your '{ctx.event.type.short}' event was not accepted: {refusal.reason}.",
        ),
    )
