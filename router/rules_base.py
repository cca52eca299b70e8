"""What every rule shares: the context of one decision, its outcomes and the output builders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

from router.calendar import WorkingCalendar
from schemas.envelope import AnyEvent, EventType, HubEvent, StageChanged
from schemas.escalation import Deadline, Escalation
from schemas.facts import DeadlineKind, StageChangedData
from schemas.people import Child, Party
from schemas.procedure import Procedure, Stage
from schemas.updates import Effect, Prompt, StageUpdate

__all__ = [
    "ROUTER_SOURCE",
    "Applied",
    "Ctx",
    "Ignored",
    "Refusal",
    "Result",
    "announce",
    "current_deadline",
    "due_text",
    "fact_id",
    "prompt_for",
    "stage_changed_fact",
    "stage_label",
    "stage_update",
    "stage_updates",
    "when",
]

#: The CloudEvents ``source`` of every fact the router states.
ROUTER_SOURCE = "urn:escalation-hub:router"
_LONDON = ZoneInfo("Europe/London")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_STAGE_KINDS = (DeadlineKind.STAGE, DeadlineKind.TIER)


@dataclass(frozen=True)
class Ctx:
    """One decision: the event, its rulebook, the instant and the numbering of its outputs."""

    event: AnyEvent
    procedure: Procedure
    now: datetime
    calendar: WorkingCalendar
    escalation_id: str
    sequence: int


@dataclass(frozen=True)
class Applied:
    """The event was accepted: the new state (counters not yet moved) and what it caused."""

    escalation: Escalation
    rule: str
    clause: str
    effects: tuple[Effect, ...] = ()
    facts: tuple[HubEvent, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """The event breaks the procedure: refused, with the reason, field and clause."""

    rule: str
    reason: str
    field: str | None = None
    clause: str | None = None


@dataclass(frozen=True)
class Ignored:
    """Nothing to do (a stale or late hub fact): not accepted, no effects, no rejection."""

    rule: str
    clause: str | None = None


Result = Applied | Refusal | Ignored


def when(instant: datetime) -> str:
    """A due instant as a case worker reads it: '4 March 2026 at 09:30 UK time'."""
    local = instant.astimezone(_LONDON)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} at {local:%H:%M} UK time"


def stage_label(procedure: Procedure, number: int) -> str:
    return f"stage {number} ({procedure.stage(number).title})"


def current_deadline(escalation: Escalation) -> Deadline | None:
    """The stage or tier deadline of the escalation's current stage and tier, if any."""
    return next(
        (
            d
            for d in escalation.deadlines
            if d.kind in _STAGE_KINDS and (d.stage, d.tier) == (escalation.stage, escalation.tier)
        ),
        None,
    )


def due_text(escalation: Escalation) -> str:
    """'; it is due by ...' for the current stage or tier deadline, or nothing."""
    deadline = current_deadline(escalation)
    return f"; it is due by {when(deadline.due)}" if deadline is not None else ""


def prompt_for(stage: Stage, text: str) -> Prompt | None:
    """A prompt to the first role who acts at ``stage`` (none if the stage names nobody)."""
    return Prompt(role=stage.actors[0], text=text) if stage.actors else None


def fact_id(ctx: Ctx, tag: str) -> str:
    """A stable id for a fact: the same event on the same state gives the same id."""
    return str(uuid5(NAMESPACE_URL, f"{ROUTER_SOURCE}/{ctx.escalation_id}/{ctx.sequence}/{tag}"))


def stage_update(
    ctx: Ctx,
    escalation: Escalation,
    party: Party,
    *,
    update_id: str,
    sequence: int,
    event: str,
    clause: str,
    summary: str,
    prompt: Prompt | None = None,
    child: Child | None = None,
) -> StageUpdate:
    due = current_deadline(escalation)
    return StageUpdate(
        update_id=update_id,
        escalation_id=escalation.id,
        sequence=sequence,
        partnership=escalation.partnership,
        procedure_id=escalation.procedure_id,
        procedure_version=escalation.procedure_version,
        recipient_agency_id=party.agency_id,
        recipient_case_reference=party.case_reference,
        event=event,
        occurred_at=ctx.now,
        status=escalation.status,
        stage=escalation.stage,
        stage_title=ctx.procedure.stage(escalation.stage).title,
        tier=escalation.tier,
        due=due.due if due is not None else None,
        clause=clause,
        summary=summary,
        prompt=prompt,
        child=child,
    )


def stage_updates(
    ctx: Ctx,
    escalation: Escalation,
    *,
    event: str,
    clause: str,
    summary: str,
    prompt: Prompt | None = None,
    child: Child | None = None,
) -> tuple[StageUpdate, ...]:
    """One update per party, ids ``{escalation}:{sequence}:{agency}``."""
    return tuple(
        stage_update(
            ctx,
            escalation,
            party,
            update_id=f"{escalation.id}:{ctx.sequence}:{party.agency_id}",
            sequence=ctx.sequence,
            event=event,
            clause=clause,
            summary=summary,
            prompt=prompt,
            child=child,
        )
        for party in escalation.parties
    )


def announce(
    ctx: Ctx,
    escalation: Escalation,
    *,
    rule: str,
    clause: str,
    event: str,
    summary: str,
    prompt: Prompt | None = None,
    effects: tuple[Effect, ...] = (),
    facts: tuple[HubEvent, ...] = (),
) -> Applied:
    """Accept: the new state, a stage update to every party, then the other effects."""
    updates = stage_updates(
        ctx, escalation, event=event, clause=clause, summary=summary, prompt=prompt
    )
    return Applied(escalation, rule, clause, (*updates, *effects), facts)


def stage_changed_fact(ctx: Ctx, before: Escalation | None, after: Escalation) -> StageChanged:
    entry = after.history[-1]
    due = current_deadline(after)
    return StageChanged(
        type=EventType.STAGE_CHANGED,
        id=fact_id(ctx, "stage_changed"),
        source=ROUTER_SOURCE,
        time=ctx.now,
        subject=after.id,
        data=StageChangedData(
            from_stage=before.stage if before is not None else None,
            from_tier=before.tier if before is not None else None,
            to_stage=after.stage,
            to_tier=after.tier,
            stage_title=ctx.procedure.stage(after.stage).title,
            due=due.due if due is not None else None,
            clause=entry.clause,
        ),
    )
