"""Raising an escalation: stage 1 opens with its deadline, parties hear of it once."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

from router import decide
from router.procedures import load
from schemas.common import Flag, TimeUnit
from schemas.envelope import Rejected, StageChanged
from schemas.escalation import Status
from schemas.facts import DeadlineKind
from schemas.procedure import Recipient
from schemas.updates import SetDeadline
from tests.unit.builders import (
    SOURCE,
    T0,
    Story,
    acknowledged,
    hours,
    notifications,
    raised,
    updates,
    working_days,
)


def test_stage_one_opens_with_northamptonshire_two_working_day_deadline() -> None:
    story = Story(load("northamptonshire"))
    decision = story.open()

    state = story.state
    assert decision.rule == "raised.opens_stage_1"
    assert decision.clause == "Northamptonshire flowchart Stage 1"
    assert (decision.procedure_id, decision.procedure_version) == ("northamptonshire", "1.0.0")
    assert (state.status, state.stage, state.tier, state.events_applied) == (Status.OPEN, 1, 1, 1)
    (deadline,) = state.deadlines
    assert deadline.id == "stage:1:1"
    assert deadline.due == datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # Monday + 2 working days
    assert deadline.notice_at == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    assert (deadline.amount, deadline.unit) == (2, TimeUnit.WORKING_DAYS)
    assert deadline.calendar_version.startswith("gb-eng/")
    assert [e.deadline for e in decision.effects if isinstance(e, SetDeadline)] == [deadline]
    (entry,) = state.history
    assert (entry.stage, entry.tier, entry.entered_at, entry.by_agency) == (1, 1, T0, "csc")


def test_raised_over_a_weekend_counts_from_the_next_working_day() -> None:
    friday_evening = datetime(2026, 4, 2, 17, 0, tzinfo=UTC)  # Thursday before Good Friday
    story = Story(load("northamptonshire"), now=friday_evening)
    story.open()
    (deadline,) = story.state.deadlines
    assert deadline.due == datetime(2026, 4, 8, 17, 0, tzinfo=UTC)  # skips Easter: Tue, Wed


def test_escalation_id_is_the_subject_or_derived_from_source_and_id() -> None:
    procedure = load("northamptonshire")
    named = decide(None, raised("northamptonshire", subject="esc-42"), procedure, T0)
    event = raised("northamptonshire")
    derived = decide(None, event, procedure, T0)
    assert named.escalation is not None
    assert named.escalation.id == "esc-42"
    assert derived.escalation is not None
    assert derived.escalation.id == str(uuid5(NAMESPACE_URL, f"{SOURCE}#{event.id}"))


def test_every_party_gets_an_update_and_only_the_raised_update_carries_the_child() -> None:
    story = Story(load("northamptonshire"))
    opened = story.open()
    sent = updates(opened)
    assert [u.recipient_agency_id for u in sent] == ["csc", "health", "police"]
    assert [u.update_id for u in sent] == [f"{story.id}:1:{a}" for a in ("csc", "health", "police")]
    assert all(u.child == story.state.child for u in sent)
    assert all(u.recipient_case_reference == f"{u.recipient_agency_id}-ref" for u in sent)
    assert all("Alex" not in u.summary and "943" not in u.summary for u in sent)
    later = story.send(acknowledged(story.id))
    assert all(u.child is None for u in updates(later))


def test_raised_states_the_stage_change_fact() -> None:
    opened = Story(load("gloucestershire")).open()
    (fact,) = [f for f in opened.facts if isinstance(f, StageChanged)]
    assert (fact.data.from_stage, fact.data.to_stage, fact.data.to_tier) == (None, 1, 1)
    assert fact.data.due is not None


def test_raised_for_another_partnership_is_refused() -> None:
    decision = decide(None, raised("gloucestershire"), load("northamptonshire"), T0)
    assert not decision.accepted
    assert decision.escalation is None
    (fact,) = decision.facts
    assert isinstance(fact, Rejected)
    assert fact.data.field == "data.partnership"
    assert decision.effects == ()


def test_raised_on_an_existing_escalation_is_refused() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    before = story.state
    decision = story.send(raised("northamptonshire", subject=story.id))
    assert not decision.accepted
    assert decision.rule == "raised.already_exists"
    assert decision.escalation is before


def test_a_shorter_agreed_timescale_at_raise_wins() -> None:
    story = Story(load("gloucestershire"))
    story.open(agreed=working_days(2))
    (deadline,) = story.state.deadlines
    assert deadline.agreed_shorter
    assert deadline.due == datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
    assert deadline.clause == "Gloucestershire 2.1(d)"


def test_a_longer_agreed_timescale_at_raise_does_not() -> None:
    story = Story(load("gloucestershire"))
    story.open(agreed=working_days(8))
    (deadline,) = story.state.deadlines
    assert not deadline.agreed_shorter
    assert deadline.due == datetime(2026, 3, 9, 9, 30, tzinfo=UTC)


def test_an_agreed_timescale_in_hours_is_compared_by_its_due_instant() -> None:
    story = Story(load("northamptonshire"))
    story.open(agreed=hours(47))
    (deadline,) = story.state.deadlines
    assert deadline.agreed_shorter
    assert deadline.unit is TimeUnit.HOURS


def test_buckinghamshire_starts_its_fifteen_day_total_maximum() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    total = story.state.deadline("total:0:0")
    assert total is not None
    assert total.kind is DeadlineKind.TOTAL
    assert total.due == datetime(2026, 3, 17, 9, 30, tzinfo=UTC)
    assert total.unit is TimeUnit.CALENDAR_DAYS


def test_gloucestershire_immediate_risk_tells_the_designated_safeguarding_lead_at_once() -> None:
    opened = Story(load("gloucestershire")).open(flags=(Flag.IMMEDIATE_RISK_OF_HARM,))
    immediate = [n for n in notifications(opened) if n.clause == "Gloucestershire 1.7"]
    assert len(immediate) == 1
    assert immediate[0].recipient is Recipient.DESIGNATED_SAFEGUARDING_LEAD
    assert immediate[0].immediate


def test_buckinghamshire_life_threatening_non_involvement_tells_the_business_office_at_once() -> (
    None
):
    story = Story(load("buckinghamshire"))
    opened = story.open(flags=(Flag.LIFE_THREATENING, Flag.AGENCY_NON_INVOLVEMENT))
    (note,) = notifications(opened)
    assert note.recipient is Recipient.BUSINESS_OFFICE
    assert note.immediate
    assert note.clause == "Buckinghamshire 2.4.25"
    assert note.notification_id == f"{story.id}:1:business_office:1"


def test_buckinghamshire_life_threatening_alone_tells_nobody() -> None:
    opened = Story(load("buckinghamshire")).open(flags=(Flag.LIFE_THREATENING,))
    assert notifications(opened) == []
