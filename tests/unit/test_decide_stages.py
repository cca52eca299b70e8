"""Moving up: stages, management tiers, and who is told on the way."""

from __future__ import annotations

from datetime import UTC, datetime

from router.procedures import load
from schemas.common import Flag
from schemas.envelope import StageChanged
from schemas.facts import DeadlineKind
from schemas.people import Role
from schemas.procedure import Recipient
from schemas.updates import ClearDeadline, Notification, SetDeadline
from tests.unit.builders import (
    HEALTH,
    Story,
    escalated,
    flags_changed,
    notifications,
    updates,
)


def test_a_new_stage_replaces_the_stage_deadline_and_prompts_its_role() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    decision = story.send(escalated(story.id))
    state = story.state
    assert decision.rule == "escalated.opens_stage_2"
    assert decision.clause == "Northamptonshire flowchart Stage 2"
    assert (state.stage, state.tier) == (2, 1)
    (deadline,) = state.deadlines
    assert deadline.id == "stage:2:1"
    assert deadline.due == datetime(2026, 3, 9, 9, 30, tzinfo=UTC)  # 5 working days
    cleared = [e.deadline_id for e in decision.effects if isinstance(e, ClearDeadline)]
    assert cleared == ["stage:1:1"]
    sent = updates(decision)
    assert [u.event for u in sent] == ["stage_changed"] * 3
    assert all(u.prompt is not None and u.prompt.role is Role.LINE_MANAGER for u in sent)
    assert all(u.due == deadline.due for u in sent)
    (fact,) = [f for f in decision.facts if isinstance(f, StageChanged)]
    assert (fact.data.from_stage, fact.data.to_stage) == (1, 2)
    assert [h.stage for h in state.history] == [1, 2]


def test_northamptonshire_stage_three_repeats_through_management_tiers() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    story.climb_to(3)
    second = story.send(escalated(story.id, within_tier=True))
    third = story.send(escalated(story.id, within_tier=True))
    state = story.state
    assert second.rule == third.rule == "escalated.next_tier"
    assert (state.stage, state.tier) == (3, 3)
    (deadline,) = state.deadlines
    assert (deadline.id, deadline.kind) == ("tier:3:3", DeadlineKind.TIER)
    assert [(h.stage, h.tier) for h in state.history] == [(1, 1), (2, 1), (3, 1), (3, 2), (3, 3)]
    cleared = [e.deadline_id for e in third.effects if isinstance(e, ClearDeadline)]
    assert cleared == ["tier:3:2"]
    assert {u.event for u in updates(third)} == {"tier_changed"}
    story.send(escalated(story.id))
    assert (story.state.stage, story.state.tier) == (4, 1)


def test_gloucestershire_stage_three_tiers_keep_five_working_days_each() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(3)
    decision = story.send(escalated(story.id, within_tier=True))
    (deadline,) = story.state.deadlines
    assert deadline.id == "tier:3:2"
    assert (deadline.amount, deadline.clause) == (5, "Gloucestershire 2.3(g)")
    assert decision.clause == "Gloucestershire 2.3(d)"


def test_a_stage_without_tiers_refuses_a_tier_move() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    decision = story.send(escalated(story.id, within_tier=True))
    assert not decision.accepted
    assert decision.rule == "escalated.stage_has_no_tiers"


def test_northamptonshire_tells_the_business_office_at_stages_four_and_five() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    story.climb_to(3)
    assert all(notifications(d) == [] for d in story.decisions)
    fourth = story.send(escalated(story.id))
    fifth = story.send(escalated(story.id))
    (at_four,) = notifications(fourth)
    (at_five,) = notifications(fifth)
    assert (at_four.recipient, at_four.stage, at_four.immediate) == (
        Recipient.BUSINESS_OFFICE,
        4,
        False,
    )
    assert (at_five.recipient, at_five.stage, at_five.immediate) == (
        Recipient.BUSINESS_OFFICE,
        5,
        True,
    )
    assert at_five.clause == "Northamptonshire flowchart Stage 5"
    assert {u.prompt.role for u in updates(fifth) if u.prompt} == {Role.BUSINESS_OFFICE}


def _iro(story: Story) -> list[Notification]:
    return [
        n
        for d in story.decisions
        for n in notifications(d)
        if n.recipient is Recipient.INDEPENDENT_REVIEWING_OFFICER
    ]


def test_gloucestershire_notifies_the_iro_at_stage_two_when_the_child_is_looked_after() -> None:
    story = Story(load("gloucestershire"))
    story.open(flags=(Flag.LOOKED_AFTER,))
    assert _iro(story) == []
    story.climb_to(2)
    assert len(_iro(story)) == 1


def test_gloucestershire_notifies_the_iro_at_stage_two_when_on_a_child_protection_plan() -> None:
    story = Story(load("gloucestershire"))
    story.open(flags=(Flag.CHILD_PROTECTION_PLAN,))
    story.climb_to(3)
    (note,) = _iro(story)
    assert note.clause == "Gloucestershire 2.2(d)"


def test_gloucestershire_does_not_notify_the_iro_otherwise() -> None:
    story = Story(load("gloucestershire"))
    story.open(flags=(Flag.CROSS_BORDER,))
    story.climb_to(4)
    assert _iro(story) == []


def test_a_child_becoming_looked_after_at_gloucestershire_stage_two_notifies_the_iro_once() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(2)
    became = story.send(flags_changed(story.id, set_=(Flag.LOOKED_AFTER,)))
    also_plan = story.send(flags_changed(story.id, set_=(Flag.CHILD_PROTECTION_PLAN,)))
    cleared = story.send(flags_changed(story.id, cleared=(Flag.LOOKED_AFTER,)))
    again = story.send(flags_changed(story.id, set_=(Flag.LOOKED_AFTER,)))
    assert became.rule == "flags_changed.notified"
    assert became.clause == "Gloucestershire 2.2(d)"
    assert len(_iro(story)) == 1
    assert notifications(also_plan) == notifications(cleared) == notifications(again) == []
    assert Flag.LOOKED_AFTER in story.state.flags


def test_gloucestershire_copies_the_monitoring_form_at_stage_three_and_refers_at_four() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(3)
    (monitoring,) = notifications(story.decisions[-1])
    referral = story.send(escalated(story.id))
    (referred,) = notifications(referral)
    assert (monitoring.clause, monitoring.immediate) == ("Gloucestershire 2.3(e)", False)
    assert (referred.clause, referred.immediate) == ("Gloucestershire 2.4(b)", True)
    assert referred.recipient is Recipient.BUSINESS_OFFICE


def test_gloucestershire_immediate_risk_set_later_tells_the_lead_immediately() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    decision = story.send(flags_changed(story.id, set_=(Flag.IMMEDIATE_RISK_OF_HARM,)))
    (note,) = notifications(decision)
    assert note.recipient is Recipient.DESIGNATED_SAFEGUARDING_LEAD
    assert note.immediate


def test_buckinghamshire_tells_the_business_office_when_senior_officers_are_involved() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    story.climb_to(2)
    assert all(notifications(d) == [] for d in story.decisions)
    decision = story.send(escalated(story.id))
    (note,) = notifications(decision)
    assert (note.recipient, note.stage, note.clause) == (
        Recipient.BUSINESS_OFFICE,
        3,
        "Buckinghamshire 2.4.24",
    )


def test_buckinghamshire_life_threatening_non_involvement_set_later_tells_the_office_once() -> None:
    story = Story(load("buckinghamshire"))
    story.open(flags=(Flag.LIFE_THREATENING,))
    first = story.send(flags_changed(story.id, set_=(Flag.AGENCY_NON_INVOLVEMENT,), by=HEALTH))
    story.send(flags_changed(story.id, cleared=(Flag.AGENCY_NON_INVOLVEMENT,)))
    story.climb_to(2)
    again = story.send(flags_changed(story.id, set_=(Flag.AGENCY_NON_INVOLVEMENT,)))
    (note,) = notifications(first)
    assert note.immediate
    assert notifications(again) == []


def test_buckinghamshire_legal_advice_for_sixteen_seventeen_lacking_capacity_from_stage_three() -> (
    None
):
    story = Story(load("buckinghamshire"))
    story.open(flags=(Flag.AGED_16_17_LACKING_CAPACITY,))
    story.climb_to(2)
    assert all(notifications(d) == [] for d in story.decisions)
    decision = story.send(escalated(story.id))
    recipients = sorted(n.recipient for n in notifications(decision))
    assert recipients == [Recipient.BUSINESS_OFFICE, Recipient.LEGAL_ADVISER]


def test_the_total_maximum_survives_stage_changes() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    story.climb_to(3)
    ids = sorted(d.id for d in story.state.deadlines)
    assert ids == ["stage:3:1", "total:0:0"]
    cleared = [
        e.deadline_id for d in story.decisions for e in d.effects if isinstance(e, ClearDeadline)
    ]
    assert "total:0:0" not in cleared
    set_total = [e for d in story.decisions for e in d.effects if isinstance(e, SetDeadline)]
    assert sum(e.deadline.id == "total:0:0" for e in set_total) == 1


def test_a_stage_without_a_timescale_has_no_stage_deadline() -> None:
    story = Story(load("northumberland"))
    story.open()
    story.climb_to(3)
    assert [d.id for d in story.state.deadlines] == ["total:0:0"]
    assert all(u.due is None for u in updates(story.decisions[-1]))


def test_gloucestershire_notifies_the_iro_when_a_child_becomes_looked_after_after_stage_two() -> (
    None
):
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(3)
    assert _iro(story) == []
    became = story.send(flags_changed(story.id, set_=(Flag.LOOKED_AFTER,)))
    (note,) = notifications(became)
    assert (note.recipient, note.stage, note.clause) == (
        Recipient.INDEPENDENT_REVIEWING_OFFICER,
        3,
        "Gloucestershire 2.2(d)",
    )
    story.climb_to(4)
    assert len(_iro(story)) == 1


def test_gloucestershire_does_not_notify_the_iro_at_stage_one() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.send(flags_changed(story.id, set_=(Flag.CHILD_PROTECTION_PLAN,)))
    assert _iro(story) == []
    story.climb_to(2)
    assert len(_iro(story)) == 1
