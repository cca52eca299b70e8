"""Notifications: which rules fire, each at most once per escalation (``notified`` keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.rules_base import ROUTER_SOURCE, Ctx, fact_id
from schemas.common import Flag
from schemas.envelope import EventType, PartnershipNotified
from schemas.escalation import Escalation
from schemas.facts import PartnershipNotifiedData
from schemas.procedure import NotificationRule, Procedure, Trigger
from schemas.updates import Notification

__all__ = ["Fired", "Position", "fire", "holding", "newly_due", "position_of", "rules_for"]

_ENTRY_TRIGGERS = frozenset({Trigger.STAGE_ENTRY, Trigger.TIER_ENTRY, Trigger.FLAG_PRESENT})


@dataclass(frozen=True)
class Position:
    """What a rule's condition looks at."""

    flags: frozenset[Flag]
    stage: int
    tier: int


@dataclass(frozen=True)
class Fired:
    escalation: Escalation
    notifications: tuple[Notification, ...]
    facts: tuple[PartnershipNotified, ...]
    rules: tuple[NotificationRule, ...]


def position_of(escalation: Escalation) -> Position:
    return Position(escalation.flags, escalation.stage, escalation.tier)


def rules_for(
    procedure: Procedure, stage: int, triggers: Iterable[Trigger]
) -> tuple[tuple[NotificationRule, bool], ...]:
    """The rules in force at ``stage`` with one of ``triggers``, each with whether it
    belongs to that stage (True) or to the whole procedure (False)."""
    wanted = frozenset(triggers)
    pool = [(r, True) for r in procedure.stage(stage).notifications]
    pool += [(r, False) for r in procedure.flag_rules + procedure.resolution_rules]
    return tuple((r, scoped) for r, scoped in pool if r.trigger in wanted)


def _holds(rule: NotificationRule, at: Position) -> bool:
    return rule.condition.holds(at.flags, stage=at.stage, tier=at.tier)


def _entered(rule: NotificationRule, before: Position, after: Position, scoped: bool) -> bool:
    """Whether the move from ``before`` to ``after`` enters the scope the rule watches."""
    stage_changed = before.stage != after.stage
    if rule.trigger is Trigger.TIER_ENTRY:
        return stage_changed or before.tier != after.tier
    return stage_changed and (scoped or rule.trigger is Trigger.STAGE_ENTRY)


def newly_due(
    procedure: Procedure, before: Position | None, after: Position
) -> tuple[NotificationRule, ...]:
    """Entry and flag rules that hold at ``after`` and did not already hold at ``before``
    (a rule whose stage or tier was just entered counts as new)."""
    return tuple(
        rule
        for rule, scoped in rules_for(procedure, after.stage, _ENTRY_TRIGGERS)
        if _holds(rule, after)
        and (before is None or _entered(rule, before, after, scoped) or not _holds(rule, before))
    )


def holding(procedure: Procedure, at: Position, trigger: Trigger) -> tuple[NotificationRule, ...]:
    return tuple(r for r, _ in rules_for(procedure, at.stage, (trigger,)) if _holds(r, at))


def _scope(procedure: Procedure, rule: NotificationRule, at: Escalation) -> tuple[int, int]:
    """The stage and tier a rule notifies once for: a tier (tier entry, breach), a stage
    (stage entry, a stage's own flag rule, resolution) or the escalation (procedure-wide
    flag rules, 0 and 0)."""
    if rule.trigger in (Trigger.TIER_ENTRY, Trigger.DEADLINE_BREACHED):
        return at.stage, at.tier
    if rule.trigger is Trigger.FLAG_PRESENT and rule not in procedure.stage(at.stage).notifications:
        return 0, 0
    return at.stage, 0


def _key(procedure: Procedure, rule: NotificationRule, at: Escalation) -> str:
    stage, tier = _scope(procedure, rule, at)
    return f"{rule.recipient}|{rule.trigger}|{stage}|{tier}|{rule.clause}"


def fire(ctx: Ctx, escalation: Escalation, rules: Iterable[NotificationRule]) -> Fired:
    """Notify for each rule not already notified; remember its key in the state."""
    keys = list(escalation.notified)
    fired: list[NotificationRule] = []
    for rule in rules:
        key = _key(ctx.procedure, rule, escalation)
        if key not in keys:
            keys.append(key)
            fired.append(rule)
    notifications = tuple(_notification(ctx, escalation, r, n) for n, r in enumerate(fired, 1))
    facts = tuple(_fact(ctx, note, n) for n, note in enumerate(notifications, 1))
    after = escalation.model_copy(update={"notified": tuple(keys)}) if fired else escalation
    return Fired(after, notifications, facts, tuple(fired))


def _notification(ctx: Ctx, escalation: Escalation, rule: NotificationRule, n: int) -> Notification:
    return Notification(
        notification_id=f"{escalation.id}:{ctx.sequence}:{rule.recipient}:{n}",
        escalation_id=escalation.id,
        partnership=escalation.partnership,
        recipient=rule.recipient,
        reason=rule.reason,
        clause=rule.clause,
        stage=escalation.stage,
        tier=escalation.tier,
        immediate=rule.immediate,
        occurred_at=ctx.now,
    )


def _fact(ctx: Ctx, note: Notification, n: int) -> PartnershipNotified:
    return PartnershipNotified(
        type=EventType.PARTNERSHIP_NOTIFIED,
        id=fact_id(ctx, f"partnership_notified/{n}"),
        source=ROUTER_SOURCE,
        time=ctx.now,
        subject=note.escalation_id,
        data=PartnershipNotifiedData(
            recipient=note.recipient,
            reason=note.reason,
            clause=note.clause,
            stage=note.stage,
            immediate=note.immediate,
        ),
    )
