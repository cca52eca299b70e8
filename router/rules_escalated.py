"""``escalated``: one step up, to the next management tier or the next stage, on evidence."""

from __future__ import annotations

from router.rules_base import (
    Applied,
    Ctx,
    Refusal,
    due_text,
    prompt_for,
    stage_label,
    stage_updates,
)
from router.rules_stages import enter
from schemas.actions import EscalatedData
from schemas.envelope import Escalated
from schemas.escalation import Escalation

__all__ = ["on_escalated"]


def _refuse_tier(ctx: Ctx, escalation: Escalation, data: EscalatedData) -> Refusal | None:
    stage = ctx.procedure.stage(escalation.stage)
    if data.to_stage is not None and data.to_stage != escalation.stage:
        return Refusal(
            rule="escalated.tier_names_another_stage",
            reason=(
                f"a move to the next management tier stays at stage {escalation.stage}; "
                f"omit to_stage or set it to {escalation.stage}"
            ),
            field="data.to_stage",
            clause=stage.clause,
        )
    if stage.tiers is None:
        return Refusal(
            rule="escalated.stage_has_no_tiers",
            reason=(
                f"{stage_label(ctx.procedure, stage.number)} does not repeat through "
                "management tiers; escalate to the next stage instead"
            ),
            field="data.within_stage_tier",
            clause=stage.clause,
        )
    limit = stage.tiers.max_tiers
    if limit is not None and escalation.tier >= limit:
        return Refusal(
            rule="escalated.tiers_exhausted",
            reason=(
                f"all {limit} management tiers of stage {stage.number} have been used; "
                "escalate to the next stage instead"
            ),
            field="data.within_stage_tier",
            clause=stage.tiers.clause,
        )
    return None


def _refuse_stage(ctx: Ctx, escalation: Escalation, data: EscalatedData) -> Refusal | None:
    current, last = escalation.stage, ctx.procedure.last_stage
    clause = ctx.procedure.stage(current).clause
    if current >= last:
        return Refusal(
            rule="escalated.already_final_stage",
            reason=f"the escalation is already at the final stage ({current} of {last})",
            field="data.to_stage" if data.to_stage is not None else None,
            clause=clause,
        )
    wanted = data.to_stage
    if wanted is None or wanted == current + 1:
        return None
    if wanted <= current:
        rule, reason = "escalated.backwards", f"cannot move back from stage {current} to {wanted}"
    else:
        rule = "escalated.skips_stage"
        reason = f"cannot skip from stage {current} to {wanted}; escalate to {current + 1} first"
    return Refusal(rule=rule, reason=reason, field="data.to_stage", clause=clause)


def _refuse_evidence(ctx: Ctx, escalation: Escalation, data: EscalatedData) -> Refusal | None:
    missing = []
    if not data.evidence.attempts:
        missing.append(("data.evidence.attempts", "at least one attempt to resolve it"))
    if not data.evidence.exhausted:
        missing.append(("data.evidence.exhausted", "confirmation they are exhausted"))
    if not missing:
        return None
    return Refusal(
        rule="escalated.rejected_without_evidence",
        reason=(
            f"escalating needs evidence from stage {escalation.stage}: "
            + " and ".join(what for _, what in missing)
        ),
        field=missing[0][0],
        clause=ctx.procedure.evidence_required_clause
        or ctx.procedure.stage(escalation.stage).clause,
    )


def on_escalated(ctx: Ctx, escalation: Escalation, event: Escalated) -> Applied | Refusal:
    data = event.data
    check = _refuse_tier if data.within_stage_tier else _refuse_stage
    refusal = check(ctx, escalation, data) or _refuse_evidence(ctx, escalation, data)
    if refusal is not None:
        return refusal
    if data.within_stage_tier:
        return _next_tier(ctx, escalation, event)
    return _next_stage(ctx, escalation, event)


def _next_tier(ctx: Ctx, escalation: Escalation, event: Escalated) -> Applied:
    stage = ctx.procedure.stage(escalation.stage)
    assert stage.tiers is not None  # checked by _refuse_tier
    moved = escalation.model_copy(update={"tier": escalation.tier + 1})
    entered = enter(
        ctx, escalation, moved, clause=stage.tiers.clause, by_agency=event.data.by.agency_id
    )
    after = entered.escalation
    due = due_text(after)
    where = f"management tier {after.tier} of {stage_label(ctx.procedure, stage.number)}"
    updates = stage_updates(
        ctx,
        after,
        event="tier_changed",
        clause=stage.tiers.clause,
        summary=f"{event.data.by.agency_id} escalated to {where}{due}.",
        prompt=prompt_for(stage, f"The next management tier should now act at {where}{due}."),
    )
    return Applied(
        escalation=after,
        rule="escalated.next_tier",
        clause=stage.tiers.clause,
        effects=(*updates, *entered.effects),
        facts=entered.facts,
    )


def _next_stage(ctx: Ctx, escalation: Escalation, event: Escalated) -> Applied:
    stage = ctx.procedure.stage(escalation.stage + 1)
    moved = escalation.model_copy(update={"stage": stage.number, "tier": 1})
    entered = enter(ctx, escalation, moved, clause=stage.clause, by_agency=event.data.by.agency_id)
    after = entered.escalation
    due = due_text(after)
    label = stage_label(ctx.procedure, stage.number)
    updates = stage_updates(
        ctx,
        after,
        event="stage_changed",
        clause=stage.clause,
        summary=f"{event.data.by.agency_id} escalated to {label}{due}.",
        prompt=prompt_for(stage, f"Please act now at {label}{due}."),
    )
    return Applied(
        escalation=after,
        rule=f"escalated.opens_stage_{stage.number}",
        clause=stage.clause,
        effects=(*updates, *entered.effects),
        facts=entered.facts,
    )
