"""``resolved``: the agreed outcome in writing closes the escalation, unless a dispute the
natural turn of events resolved is still seen through for learning."""

from __future__ import annotations

from router.rules_base import Applied, Ctx, Refusal, announce, stage_label
from router.rules_deadlines import clear_all
from router.rules_notify import fire, holding, position_of
from schemas.actions import Outcome, OutcomeKind
from schemas.envelope import Resolved
from schemas.escalation import Escalation, Status
from schemas.procedure import Trigger

__all__ = ["on_resolved"]


def _recorded(escalation: Escalation, outcome: Outcome, status: Status) -> Escalation:
    return escalation.model_copy(
        update={
            "status": status,
            "outcome": outcome,
            "learning_points": (*escalation.learning_points, *outcome.learning_points),
        }
    )


def _refuse_outsiders(escalation: Escalation, outcome: Outcome, clause: str) -> Refusal | None:
    for index, agency in enumerate(outcome.agreed_by):
        if escalation.party(agency) is None:
            return Refusal(
                rule="resolved.agreed_by_non_party",
                reason=(
                    f"'{agency}' is not a party to this escalation and cannot agree its outcome: "
                    "list in outcome.agreed_by only the parties that confirmed it"
                ),
                field=f"data.outcome.agreed_by[{index}]",
                clause=clause,
            )
    return None


def on_resolved(ctx: Ctx, escalation: Escalation, event: Resolved) -> Applied | Refusal:
    outcome = event.data.outcome
    recording = ctx.procedure.recording_clause or ctx.procedure.stage(escalation.stage).clause
    refusal = _refuse_outsiders(escalation, outcome, recording)
    if refusal is not None:
        return refusal
    if not outcome.written_confirmation:
        return Refusal(
            rule="resolved.without_written_confirmation",
            reason=(
                "record the agreed outcome in writing: the parties must confirm the outcome "
                "and how any outstanding issues will be pursued in writing before it closes"
            ),
            field="data.outcome.written_confirmation",
            clause=recording,
        )
    seen_through = ctx.procedure.natural_resolution_seen_through
    natural = outcome.kind is OutcomeKind.NATURAL_TURN_OF_EVENTS
    if natural and seen_through and escalation.status is Status.OPEN:
        return _seeing_through(ctx, escalation, event, seen_through)
    return _close(ctx, escalation, event, recording)


def _seeing_through(ctx: Ctx, escalation: Escalation, event: Resolved, clause: str) -> Applied:
    after = _recorded(escalation, event.data.outcome, Status.SEEING_THROUGH)
    return announce(
        ctx,
        after,
        rule="resolved.seen_through_for_learning",
        clause=clause,
        event="resolved",
        summary=(
            f"{event.data.by.agency_id} reports that the natural turn of events resolved the "
            f"dispute at {stage_label(ctx.procedure, after.stage)}; the procedure is still seen "
            "through to the end so that the underlying issues are identified and addressed."
        ),
    )


def _close(ctx: Ctx, escalation: Escalation, event: Resolved, clause: str) -> Applied:
    outcome = event.data.outcome
    deadlines, deadline_effects = clear_all(escalation)
    closed = _recorded(escalation, outcome, Status.RESOLVED)
    closed = closed.model_copy(update={"deadlines": deadlines})
    fired = fire(ctx, closed, holding(ctx.procedure, position_of(closed), Trigger.RESOLUTION))
    kind = outcome.kind.value.replace("_", " ")
    return announce(
        ctx,
        fired.escalation,
        rule="resolved.closed",
        clause=clause,
        event="resolved",
        summary=(
            f"Resolved at {stage_label(ctx.procedure, closed.stage)} ({kind}), confirmed in "
            f"writing: {outcome.summary}"
        ),
        effects=(*deadline_effects, *fired.notifications),
        facts=fired.facts,
    )
