"""Actions that keep the record at the current stage: acknowledgement, discussion, flags,
and withdrawal."""

from __future__ import annotations

from router.rules_base import Applied, Ctx, Refusal, announce, stage_label
from router.rules_deadlines import clear_all
from router.rules_notify import fire, newly_due, position_of
from schemas.common import Flag
from schemas.envelope import Acknowledged, DiscussionRecorded, FlagsChanged, Withdrawn
from schemas.escalation import DiscussionRecord, Escalation, Status

__all__ = ["on_acknowledged", "on_discussion_recorded", "on_flags_changed", "on_withdrawn"]


def _here(ctx: Ctx, escalation: Escalation) -> str:
    return stage_label(ctx.procedure, escalation.stage)


def on_acknowledged(ctx: Ctx, escalation: Escalation, event: Acknowledged) -> Applied:
    agency = event.data.by.agency_id
    clause = ctx.procedure.stage(escalation.stage).clause
    if agency in escalation.acknowledged_by:
        return Applied(escalation, "acknowledged.already_recorded", clause)
    after = escalation.model_copy(update={"acknowledged_by": (*escalation.acknowledged_by, agency)})
    return announce(
        ctx,
        after,
        rule="acknowledged.recorded",
        clause=clause,
        event="acknowledged",
        summary=f"{agency} acknowledged the disagreement at {_here(ctx, after)}.",
    )


def on_discussion_recorded(ctx: Ctx, escalation: Escalation, event: DiscussionRecorded) -> Applied:
    data = event.data
    record = DiscussionRecord(
        stage=escalation.stage,
        tier=escalation.tier,
        recorded_at=ctx.now,
        by=data.by,
        summary=data.summary,
        decisions=data.decisions,
    )
    after = escalation.model_copy(update={"records": (*escalation.records, record)})
    method = data.method.value.replace("_", " ")
    decisions = f" with {len(data.decisions)} decision(s)" if data.decisions else ""
    return announce(
        ctx,
        after,
        rule="discussion_recorded.recorded",
        clause=ctx.procedure.recording_clause or ctx.procedure.stage(after.stage).clause,
        event="discussion_recorded",
        summary=(
            f"{data.by.agency_id} recorded a discussion ({method}){decisions} "
            f"at {_here(ctx, after)}."
        ),
    )


def _flag_words(flags: tuple[Flag, ...]) -> str:
    return ", ".join(f.value.replace("_", " ") for f in flags)


def on_flags_changed(ctx: Ctx, escalation: Escalation, event: FlagsChanged) -> Applied | Refusal:
    data = event.data
    both = sorted(set(data.set) & set(data.cleared))
    if both:
        return Refusal(
            rule="flags_changed.contradictory",
            reason=f"a flag cannot be set and cleared at once: {_flag_words(tuple(both))}",
            field="data.cleared",
        )
    flags = (escalation.flags | frozenset(data.set)) - frozenset(data.cleared)
    moved = escalation.model_copy(update={"flags": flags})
    fired = fire(ctx, moved, newly_due(ctx.procedure, position_of(escalation), position_of(moved)))
    changes = [f"flags set: {_flag_words(data.set)}"] if data.set else []
    changes += [f"flags cleared: {_flag_words(data.cleared)}"] if data.cleared else []
    what = "; ".join(changes) or "no flags changed"
    rules = fired.rules
    return announce(
        ctx,
        fired.escalation,
        rule="flags_changed.notified" if rules else "flags_changed.applied",
        clause=rules[0].clause if rules else ctx.procedure.stage(moved.stage).clause,
        event="flags_changed",
        summary=f"{data.by.agency_id} recorded a change in the case: {what}.",
        effects=fired.notifications,
        facts=fired.facts,
    )


def on_withdrawn(ctx: Ctx, escalation: Escalation, event: Withdrawn) -> Applied:
    deadlines, effects = clear_all(escalation)
    after = escalation.model_copy(update={"status": Status.WITHDRAWN, "deadlines": deadlines})
    return announce(
        ctx,
        after,
        rule="withdrawn.closed",
        clause=ctx.procedure.stage(after.stage).clause,
        event="withdrawn",
        summary=(
            f"{event.data.by.agency_id} withdrew the escalation at {_here(ctx, after)}; "
            "it is closed."
        ),
        effects=effects,
    )
