"""Deadline facts from the scheduler: approaching and breached, acted on only when current."""

from __future__ import annotations

from router.rules_base import Applied, Ctx, Ignored, announce, prompt_for, stage_label, when
from router.rules_deadlines import with_state
from router.rules_notify import fire, holding, position_of
from schemas.envelope import DeadlineApproaching, DeadlineBreached
from schemas.escalation import Deadline, DeadlineState, Escalation
from schemas.facts import DeadlineKind
from schemas.procedure import Trigger
from schemas.updates import SetDeadline

__all__ = ["on_deadline"]

_MAY_MOVE = {
    DeadlineState.APPROACHING: frozenset({DeadlineState.PENDING}),
    DeadlineState.BREACHED: frozenset({DeadlineState.PENDING, DeadlineState.APPROACHING}),
}


def _what(ctx: Ctx, deadline: Deadline) -> str:
    if deadline.kind is DeadlineKind.TOTAL:
        return "the overall time limit of the procedure"
    tier = f"management tier {deadline.tier} of " if deadline.kind is DeadlineKind.TIER else ""
    agreed = " (as agreed by the agencies)" if deadline.agreed_shorter else ""
    return f"the timescale for {tier}{stage_label(ctx.procedure, deadline.stage)}{agreed}"


def on_deadline(
    ctx: Ctx, escalation: Escalation, event: DeadlineApproaching | DeadlineBreached
) -> Applied | Ignored:
    if escalation.status.terminal:
        return Ignored("deadline.ignored_closed")
    target = (
        DeadlineState.APPROACHING
        if isinstance(event, DeadlineApproaching)
        else DeadlineState.BREACHED
    )
    deadline = escalation.deadline(event.data.deadline_id)
    if (
        deadline is None
        or deadline.due != event.data.due
        or deadline.state not in _MAY_MOVE[target]
    ):
        return Ignored("deadline.ignored_stale")
    deadlines, moved = with_state(escalation, deadline, target)
    after = escalation.model_copy(update={"deadlines": deadlines})
    if target is DeadlineState.APPROACHING:
        return _approaching(ctx, after, deadline, moved)
    return _breached(ctx, after, deadline, moved)


def _approaching(
    ctx: Ctx, escalation: Escalation, deadline: Deadline, moved: SetDeadline
) -> Applied:
    stage = ctx.procedure.stage(escalation.stage)
    return announce(
        ctx,
        escalation,
        rule="deadline.approaching",
        clause=deadline.clause,
        event="deadline_approaching",
        summary=f"Reminder: {_what(ctx, deadline)} is due by {when(deadline.due)}.",
        prompt=prompt_for(stage, f"Please resolve or escalate before {when(deadline.due)}."),
        effects=(moved,),
    )


def _breached(ctx: Ctx, escalation: Escalation, deadline: Deadline, moved: SetDeadline) -> Applied:
    """Tell every party; prompt the role at the next stage (at the last, the current one)."""
    current = escalation.stage
    following = min(current + 1, ctx.procedure.last_stage)
    what = _what(ctx, deadline)
    passed = f"{what[0].upper()}{what[1:]} passed on {when(deadline.due)}"
    if following > current:
        text = f"{passed}; consider escalation to {stage_label(ctx.procedure, following)}."
    else:
        text = f"{passed}; this is the final stage: please act now."
    fired = fire(
        ctx, escalation, holding(ctx.procedure, position_of(escalation), Trigger.DEADLINE_BREACHED)
    )
    return announce(
        ctx,
        fired.escalation,
        rule="deadline.breached",
        clause=deadline.clause,
        event="deadline_breached",
        summary=f"{passed} without the disagreement being resolved.",
        prompt=prompt_for(ctx.procedure.stage(following), text),
        effects=(moved, *fired.notifications),
        facts=fired.facts,
    )
