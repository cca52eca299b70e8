"""Deadline facts from the scheduler: approaching and breached, acted on only when current."""

from __future__ import annotations

from router.rules_base import Applied, Ctx, Ignored, announce, prompt_for, stage_label, when
from router.rules_deadlines import with_state
from router.rules_notify import fire, holding, position_of
from schemas.envelope import DeadlineApproaching, DeadlineBreached
from schemas.escalation import Deadline, DeadlineState, Escalation
from schemas.facts import DeadlineKind
from schemas.procedure import Stage, Trigger
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
    """Tell every party; prompt whoever acts next (see ``_next_step``)."""
    what = _what(ctx, deadline)
    passed = f"{what[0].upper()}{what[1:]} passed on {when(deadline.due)}"
    prompted, step = _next_step(ctx, escalation)
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
        prompt=prompt_for(prompted, f"{passed}; {step}"),
        effects=(moved, *fired.notifications),
        facts=fired.facts,
    )


def _next_step(ctx: Ctx, escalation: Escalation) -> tuple[Stage, str]:
    """The stage whose role is prompted after a breach, and what it is asked to consider.

    Where the current stage repeats through management tiers and a tier is left, the next
    tier comes first (Gloucestershire 2.3(d): "escalated up to all tiers of management before
    it is escalated to the" GSCP), so its role is the current stage's; otherwise the role at
    the next stage; at the final stage, its own role.
    """
    procedure, number, tier = ctx.procedure, escalation.stage, escalation.tier
    stage = procedure.stage(number)
    following = procedure.stage(number + 1) if number < procedure.last_stage else None
    tiers = stage.tiers
    if tiers is not None and (tiers.max_tiers is None or tier < tiers.max_tiers):
        step = (
            f"consider escalation to management tier {tier + 1} of {stage_label(procedure, number)}"
        )
        if following is not None:
            step += f", then to {stage_label(procedure, following.number)} once every tier is tried"
        return stage, f"{step}."
    if following is not None:
        return following, f"consider escalation to {stage_label(procedure, following.number)}."
    return stage, "this is the final stage: please act now."
