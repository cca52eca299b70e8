"""``plan_agreed``: record the plan; a shorter agreed timescale replaces the deadline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from router.rules_base import Applied, Ctx, Refusal, announce, current_deadline, stage_label, when
from router.rules_deadlines import agreed_deadline, replace
from schemas.envelope import PlanAgreed
from schemas.escalation import DeadlineState, Escalation, RecordedPlan
from schemas.procedure import Timescale
from schemas.updates import Effect

__all__ = ["on_plan_agreed"]


@dataclass(frozen=True)
class _Timing:
    escalation: Escalation
    effects: tuple[Effect, ...]
    rule: str
    note: str


def _entered_at(escalation: Escalation, timescale: Timescale) -> datetime:
    """Where an agreed timescale counts from when the stage has no deadline of its own."""
    if timescale.measured_from == "raised":
        return escalation.opened_at
    here = (escalation.stage, escalation.tier)
    entries = [h.entered_at for h in escalation.history if (h.stage, h.tier) == here]
    return entries[-1] if entries else escalation.opened_at


def _timing(ctx: Ctx, escalation: Escalation, timescale: Timescale) -> _Timing:
    current = current_deadline(escalation)
    started = current.started_at if current is not None else _entered_at(escalation, timescale)
    offered = agreed_deadline(
        ctx, timescale, stage=escalation.stage, tier=escalation.tier, started_at=started
    )
    if current is not None and current.state is DeadlineState.BREACHED:
        note = f"; the deadline already passed ({when(current.due)}) and stands"
        return _Timing(escalation, (), "plan_agreed.deadline_already_breached", note)
    if current is not None and offered.due >= current.due:
        note = (
            f"; the agreed timescale (due {when(offered.due)}) is not shorter, so the "
            f"current deadline stands (due {when(current.due)})"
        )
        return _Timing(escalation, (), "plan_agreed.longer_timescale_ignored", note)
    clear = [current.id] if current is not None else []
    deadlines, effects = replace(escalation, clear=clear, add=[offered])
    after = escalation.model_copy(update={"deadlines": deadlines})
    note = f"; the shorter agreed timescale wins: now due by {when(offered.due)}"
    return _Timing(after, effects, "plan_agreed.shorter_timescale_wins", note)


def _refuse_outsiders(escalation: Escalation, event: PlanAgreed) -> Refusal | None:
    for index, agency in enumerate(event.data.plan.agreed_by):
        if escalation.party(agency) is None:
            return Refusal(
                rule="plan_agreed.agreed_by_non_party",
                reason=f"'{agency}' is not a party to this escalation and cannot agree its plan",
                field=f"data.plan.agreed_by[{index}]",
            )
    return None


def on_plan_agreed(ctx: Ctx, escalation: Escalation, event: PlanAgreed) -> Applied | Refusal:
    refusal = _refuse_outsiders(escalation, event)
    if refusal is not None:
        return refusal
    plan = event.data.plan
    recorded = RecordedPlan(
        stage=escalation.stage,
        tier=escalation.tier,
        recorded_at=ctx.now,
        by=event.data.by,
        plan=plan,
    )
    after = escalation.model_copy(update={"plans": (*escalation.plans, recorded)})
    clause = ctx.procedure.stage(after.stage).clause
    timing = _Timing(after, (), "plan_agreed.recorded", "")
    if plan.agreed_timescale is not None:
        timing = _timing(ctx, after, plan.agreed_timescale)
        clause = ctx.procedure.shorter_timescale_clause or clause
    actions = f" with {len(plan.actions)} action(s)" if plan.actions else ""
    return announce(
        ctx,
        timing.escalation,
        rule=timing.rule,
        clause=clause,
        event="plan_agreed",
        summary=(
            f"{event.data.by.agency_id} recorded a plan of action{actions} agreed by "
            f"{', '.join(plan.agreed_by)} at {stage_label(ctx.procedure, after.stage)}"
            f"{timing.note}."
        ),
        effects=timing.effects,
    )
