"""``raised``: a professional opens an escalation at stage 1, tier 1."""

from __future__ import annotations

from router.rules_base import (
    Applied,
    Ctx,
    Refusal,
    current_deadline,
    due_text,
    prompt_for,
    stage_label,
    stage_updates,
)
from router.rules_stages import enter
from schemas.envelope import Raised
from schemas.escalation import Escalation, Status

__all__ = ["on_raised"]


def _opened(ctx: Ctx, event: Raised) -> Escalation:
    data = event.data
    return Escalation(
        id=ctx.escalation_id,
        partnership=data.partnership,
        procedure_id=ctx.procedure.id,
        procedure_version=ctx.procedure.version,
        status=Status.OPEN,
        stage=1,
        tier=1,
        opened_at=ctx.now,
        updated_at=ctx.now,
        raised_by=data.raised_by,
        parties=data.parties,
        child=data.child,
        concern_categories=data.concern_categories,
        flags=frozenset(data.flags),
        summary=data.summary,
    )


def _summary(ctx: Ctx, escalation: Escalation) -> str:
    """Who raised what kind of disagreement, and when stage 1 is due: never the narrative."""
    deadline = current_deadline(escalation)
    agreed = ""
    if deadline is not None and deadline.agreed_shorter:
        agreed = " (a shorter timescale agreed by the agencies)"
    about = ", ".join(c.value.replace("_", " ") for c in escalation.concern_categories)
    return (
        f"{escalation.raised_by.agency_id} raised a professional disagreement about {about}; "
        f"{stage_label(ctx.procedure, 1)} is open{due_text(escalation)}{agreed}."
    )


def on_raised(ctx: Ctx, event: Raised) -> Applied | Refusal:
    data = event.data
    if data.partnership != ctx.procedure.id:
        return Refusal(
            rule="raised.wrong_partnership",
            reason=(
                f"this escalation names partnership '{data.partnership}' but is decided "
                f"under '{ctx.procedure.id}'; send it to its own partnership"
            ),
            field="data.partnership",
        )
    stage = ctx.procedure.stage(1)
    entered = enter(
        ctx,
        None,
        _opened(ctx, event),
        clause=stage.clause,
        by_agency=data.raised_by.agency_id,
        agreed=data.agreed_timescale,
    )
    escalation = entered.escalation
    due = due_text(escalation)
    updates = stage_updates(
        ctx,
        escalation,
        event="raised",
        clause=stage.clause,
        summary=_summary(ctx, escalation),
        prompt=prompt_for(stage, f"Please act at {stage_label(ctx.procedure, 1)}{due}."),
        child=escalation.child,
    )
    return Applied(
        escalation=escalation,
        rule="raised.opens_stage_1",
        clause=stage.clause,
        effects=(*updates, *entered.effects),
        facts=entered.facts,
    )
