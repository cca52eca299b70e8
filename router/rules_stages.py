"""Entering a stage or tier: history, deadlines, entry notifications and the fact."""

from __future__ import annotations

from dataclasses import dataclass

from router.rules_base import Ctx, stage_changed_fact
from router.rules_deadlines import (
    agreed_deadline,
    position_deadline,
    replace,
    shorter,
    total_deadline,
)
from router.rules_notify import fire, newly_due, position_of
from schemas.envelope import HubEvent
from schemas.escalation import Deadline, Escalation, StageEntry
from schemas.facts import DeadlineKind
from schemas.procedure import Timescale
from schemas.updates import Effect

__all__ = ["Entered", "enter"]


@dataclass(frozen=True)
class Entered:
    escalation: Escalation
    effects: tuple[Effect, ...]
    facts: tuple[HubEvent, ...]


def _new_deadlines(ctx: Ctx, moved: Escalation, agreed: Timescale | None) -> list[Deadline]:
    procedures = position_deadline(
        ctx, stage=moved.stage, tier=moved.tier, entered_at=ctx.now, opened_at=moved.opened_at
    )
    offered = None
    if agreed is not None:
        offered = agreed_deadline(
            ctx, agreed, stage=moved.stage, tier=moved.tier, started_at=ctx.now
        )
    chosen = shorter(procedures, offered)
    return [chosen] if chosen is not None else []


def enter(
    ctx: Ctx,
    before: Escalation | None,
    moved: Escalation,
    *,
    clause: str,
    by_agency: str,
    agreed: Timescale | None = None,
) -> Entered:
    """``moved`` stands at its new stage and tier; record the entry and what it starts.

    The old stage and tier deadlines are cleared (never the total maximum); on opening
    (``before`` is None) the total maximum starts too.
    """
    entry = StageEntry(
        stage=moved.stage,
        tier=moved.tier,
        entered_at=ctx.now,
        clause=clause,
        event_id=ctx.event.id,
        by_agency=by_agency,
    )
    add = _new_deadlines(ctx, moved, agreed)
    if before is None:
        add += [d for d in (total_deadline(ctx, moved.opened_at),) if d is not None]
    stale = [d.id for d in moved.deadlines if d.kind is not DeadlineKind.TOTAL]
    deadlines, deadline_effects = replace(moved, clear=stale, add=add)
    moved = moved.model_copy(update={"history": (*moved.history, entry), "deadlines": deadlines})
    old = position_of(before) if before is not None else None
    fired = fire(ctx, moved, newly_due(ctx.procedure, old, position_of(moved)))
    facts: tuple[HubEvent, ...] = (stage_changed_fact(ctx, before, fired.escalation), *fired.facts)
    return Entered(fired.escalation, deadline_effects + fired.notifications, facts)
