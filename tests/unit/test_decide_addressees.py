"""Whose role-holder a notification is for: the acting agency, the raiser, or every party."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.procedures import load
from schemas.common import Flag
from schemas.envelope import PartnershipNotified
from schemas.procedure import (
    NotificationRule,
    Procedure,
    Recipient,
    RecipientAgency,
    Trigger,
)
from schemas.updates import Notification
from tests.unit.builders import (
    HEALTH,
    POLICE,
    SOCIAL_CARE,
    T0,
    Story,
    breached,
    escalated,
    flags_changed,
    notifications,
    raised,
)

IMMEDIATE_HARM = "Gloucestershire 1.7"


def _by_clause(story: Story, clause: str) -> list[Notification]:
    return [n for d in story.decisions for n in notifications(d) if n.clause == clause]


def test_gloucestershire_immediate_harm_at_the_raise_is_for_the_raising_agencys_lead_alone() -> (
    None
):
    story = Story(load("gloucestershire"))
    opened = story.send(raised("gloucestershire", flags=(Flag.IMMEDIATE_RISK_OF_HARM,), by=HEALTH))
    (note,) = [n for n in notifications(opened) if n.clause == IMMEDIATE_HARM]
    assert note.recipient is Recipient.DESIGNATED_SAFEGUARDING_LEAD
    assert (note.recipient_agency, note.recipient_agency_id) == (RecipientAgency.ACTING, HEALTH)
    (fact,) = [
        f
        for f in opened.facts
        if isinstance(f, PartnershipNotified) and f.data.clause == IMMEDIATE_HARM
    ]
    assert fact.data.recipient_agency_id == HEALTH


def test_gloucestershire_immediate_harm_flagged_later_is_for_the_flagging_agencys_lead() -> None:
    story = Story(load("gloucestershire"))
    story.open()  # raised by social care
    decision = story.send(flags_changed(story.id, set_=(Flag.IMMEDIATE_RISK_OF_HARM,), by=POLICE))
    (note,) = notifications(decision)
    assert (note.clause, note.immediate) == (IMMEDIATE_HARM, True)
    assert (note.recipient_agency, note.recipient_agency_id) == (RecipientAgency.ACTING, POLICE)


def test_another_agency_flagging_immediate_harm_again_tells_its_own_lead_once() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    harm = (Flag.IMMEDIATE_RISK_OF_HARM,)
    story.send(flags_changed(story.id, set_=harm, by=POLICE))
    story.send(flags_changed(story.id, cleared=harm, by=POLICE))
    story.send(flags_changed(story.id, set_=harm, by=HEALTH))
    story.send(flags_changed(story.id, cleared=harm, by=HEALTH))
    story.send(flags_changed(story.id, set_=harm, by=POLICE))  # told already
    told = [n.recipient_agency_id for n in _by_clause(story, IMMEDIATE_HARM)]
    assert told == [POLICE, HEALTH]


def test_the_gloucestershire_iro_notice_stays_addressed_to_every_party() -> None:
    story = Story(load("gloucestershire"))
    story.open(flags=(Flag.LOOKED_AFTER,))
    story.climb_to(2)
    (note,) = _by_clause(story, "Gloucestershire 2.2(d)")
    assert note.recipient is Recipient.INDEPENDENT_REVIEWING_OFFICER
    assert (note.recipient_agency, note.recipient_agency_id) == (RecipientAgency.ALL_PARTIES, None)


def test_the_gloucestershire_stage_one_count_is_for_each_partys_own_lead() -> None:
    opened = Story(load("gloucestershire")).open()
    (note,) = notifications(opened)
    assert note.clause == "Gloucestershire 2 (closing paragraph)"
    assert (note.recipient_agency, note.recipient_agency_id) == (RecipientAgency.EACH_PARTY, None)


def test_a_business_office_notice_names_no_agency() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(3)
    (note,) = _by_clause(story, "Gloucestershire 2.3(e)")
    assert (note.recipient_agency, note.recipient_agency_id) == (None, None)


def _with_rule(procedure: Procedure, stage: int, rule: NotificationRule) -> Procedure:
    stages = list(procedure.stages)
    stages[stage - 1] = stages[stage - 1].model_copy(update={"notifications": (rule,)})
    return procedure.model_copy(update={"stages": tuple(stages)})


def _rule(trigger: Trigger, agency: RecipientAgency) -> NotificationRule:
    return NotificationRule(
        recipient=Recipient.DESIGNATED_SAFEGUARDING_LEAD,
        recipient_agency=agency,
        trigger=trigger,
        reason="Because.",
        clause="Test 1",
    )


@pytest.mark.parametrize(
    ("agency", "expected"),
    [(RecipientAgency.RAISER, SOCIAL_CARE), (RecipientAgency.ACTING, HEALTH)],
)
def test_a_stage_entry_rule_is_addressed_to_the_raiser_or_the_escalating_agency(
    agency: RecipientAgency, expected: str
) -> None:
    procedure = _with_rule(load("northamptonshire"), 2, _rule(Trigger.STAGE_ENTRY, agency))
    story = Story(procedure)
    story.open()  # raised by social care
    (note,) = notifications(story.send(escalated(story.id, by=HEALTH)))
    assert note.recipient_agency_id == expected


def test_a_breach_rule_for_the_raiser_names_the_raiser() -> None:
    procedure = _with_rule(
        load("northamptonshire"), 1, _rule(Trigger.DEADLINE_BREACHED, RecipientAgency.RAISER)
    )
    story = Story(procedure)
    story.open()
    (deadline,) = story.state.deadlines
    (note,) = notifications(story.send(breached(story.id, deadline)))
    assert note.recipient_agency_id == SOCIAL_CARE


# --- the rule and the notification refuse addressees that cannot be --------------------------


def test_a_business_office_rule_may_not_name_a_partys_role_holder() -> None:
    with pytest.raises(ValidationError, match="business office is the partnership's own"):
        NotificationRule(
            recipient=Recipient.BUSINESS_OFFICE,
            recipient_agency=RecipientAgency.ACTING,
            trigger=Trigger.STAGE_ENTRY,
            reason="Because.",
            clause="Test 1",
        )


def test_a_breach_rule_may_not_address_the_acting_agency() -> None:
    with pytest.raises(ValidationError, match="no agency acts when a deadline is breached"):
        _rule(Trigger.DEADLINE_BREACHED, RecipientAgency.ACTING)


def test_a_rule_addresses_every_party_unless_it_says_otherwise() -> None:
    rule = NotificationRule.model_validate(
        {"recipient": "legal_adviser", "trigger": "stage_entry", "reason": "R", "clause": "C"}
    )
    assert rule.recipient_agency is RecipientAgency.ALL_PARTIES


@pytest.mark.parametrize(
    ("agency", "agency_id"),
    [
        (RecipientAgency.ACTING, None),
        (RecipientAgency.RAISER, None),
        (RecipientAgency.ALL_PARTIES, HEALTH),
        (RecipientAgency.EACH_PARTY, HEALTH),
    ],
)
def test_a_notification_names_an_agency_exactly_when_it_is_for_one(
    agency: RecipientAgency, agency_id: str | None
) -> None:
    with pytest.raises(ValidationError, match="recipient_agency_id names the agency exactly"):
        _notification(Recipient.DESIGNATED_SAFEGUARDING_LEAD, agency, agency_id)


def test_a_notification_to_the_business_office_names_no_recipient_agency() -> None:
    with pytest.raises(ValidationError, match="business office names no recipient_agency"):
        _notification(Recipient.BUSINESS_OFFICE, RecipientAgency.ALL_PARTIES, None)


def _notification(
    recipient: Recipient, agency: RecipientAgency | None, agency_id: str | None
) -> Notification:
    return Notification(
        notification_id="n-1",
        escalation_id="e-1",
        partnership="gloucestershire",
        recipient=recipient,
        recipient_agency=agency,
        recipient_agency_id=agency_id,
        reason="Because.",
        clause="Test 1",
        stage=1,
        tier=1,
        immediate=False,
        occurred_at=T0,
    )
