"""Notifications: which rules fire, each at most once per escalation (``notified`` keys).

A rule's ``recipient_agency`` addresses it: ``acting`` to the agency whose event fired it
(the raiser on a raise), ``raiser`` to the agency that raised the escalation; either names
that one agency in ``recipient_agency_id``, and its key carries the agency, so another agency
that later brings the same rule about is told too. ``each_party`` and ``all_parties`` name no
agency (every party), nor does a notification to the business office.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.rules_base import ROUTER_SOURCE, Ctx, fact_id
from schemas.common import Flag
from schemas.envelope import (
    Acknowledged,
    AnyEvent,
    DiscussionRecorded,
    Escalated,
    EventType,
    FlagsChanged,
    PartnershipNotified,
    PlanAgreed,
    Raised,
    Resolved,
    Withdrawn,
)
from schemas.escalation import Escalation
from schemas.facts import PartnershipNotifiedData
from schemas.procedure import NotificationRule, Procedure, Recipient, RecipientAgency, Trigger
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


_Action = (
    Acknowledged | PlanAgreed | DiscussionRecorded | Escalated | Resolved | Withdrawn | FlagsChanged
)


def _actor(event: AnyEvent) -> str | None:
    """The agency whose event this is; None for a hub fact (a deadline)."""
    if isinstance(event, Raised):
        return event.data.raised_by.agency_id
    return event.data.by.agency_id if isinstance(event, _Action) else None


def _addressee(ctx: Ctx, rule: NotificationRule, at: Escalation) -> str | None:
    """The one agency a rule is addressed to, or None for every party (or the office).

    ``acting`` on a hub fact falls back to the raiser; NotificationRule refuses the one
    trigger that only a hub fact fires (a breach) with ``acting``.
    """
    if rule.recipient_agency is RecipientAgency.ACTING:
        return _actor(ctx.event) or at.raised_by.agency_id
    if rule.recipient_agency is RecipientAgency.RAISER:
        return at.raised_by.agency_id
    return None


def _key(procedure: Procedure, rule: NotificationRule, at: Escalation, agency: str | None) -> str:
    stage, tier = _scope(procedure, rule, at)
    key = f"{rule.recipient}|{rule.trigger}|{stage}|{tier}|{rule.clause}"
    return key if agency is None else f"{key}|{agency}"


def fire(ctx: Ctx, escalation: Escalation, rules: Iterable[NotificationRule]) -> Fired:
    """Notify for each rule not already notified; remember its key in the state."""
    keys = list(escalation.notified)
    fired: list[tuple[NotificationRule, str | None]] = []
    for rule in rules:
        agency = _addressee(ctx, rule, escalation)
        key = _key(ctx.procedure, rule, escalation, agency)
        if key not in keys:
            keys.append(key)
            fired.append((rule, agency))
    notifications = tuple(
        _notification(ctx, escalation, rule, agency, n) for n, (rule, agency) in enumerate(fired, 1)
    )
    facts = tuple(_fact(ctx, note, n) for n, note in enumerate(notifications, 1))
    after = escalation.model_copy(update={"notified": tuple(keys)}) if fired else escalation
    return Fired(after, notifications, facts, tuple(rule for rule, _ in fired))


def _notification(
    ctx: Ctx, escalation: Escalation, rule: NotificationRule, agency: str | None, n: int
) -> Notification:
    office = rule.recipient is Recipient.BUSINESS_OFFICE
    return Notification(
        notification_id=f"{escalation.id}:{ctx.sequence}:{rule.recipient}:{n}",
        escalation_id=escalation.id,
        partnership=escalation.partnership,
        recipient=rule.recipient,
        recipient_agency=None if office else rule.recipient_agency,
        recipient_agency_id=agency,
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
            recipient_agency_id=note.recipient_agency_id,
            reason=note.reason,
            clause=note.clause,
            stage=note.stage,
            immediate=note.immediate,
        ),
    )
