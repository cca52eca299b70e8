"""Closing: resolution in writing, natural resolution seen through, withdrawal, records."""

from __future__ import annotations

from router.procedures import load
from schemas.actions import OutcomeKind
from schemas.envelope import Rejected
from schemas.escalation import Status
from schemas.procedure import Recipient
from schemas.updates import ClearDeadline
from tests.unit.builders import (
    HEALTH,
    OUTSIDER,
    SOCIAL_CARE,
    Story,
    discussed,
    escalated,
    notifications,
    resolved,
    updates,
    withdrawn,
)


def test_resolving_without_written_confirmation_is_refused() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    decision = story.send(resolved(story.id, written=False))
    assert not decision.accepted
    assert decision.rule == "resolved.without_written_confirmation"
    assert decision.clause == "Northamptonshire Recording and Communication"
    (fact,) = decision.facts
    assert isinstance(fact, Rejected)
    assert "record the agreed outcome in writing" in fact.data.reason
    assert story.state.status is Status.OPEN


def test_an_outcome_agreed_by_an_agency_that_is_not_a_party_is_refused() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    event = resolved(story.id)
    outcome = event.data.outcome.model_copy(update={"agreed_by": (SOCIAL_CARE, OUTSIDER)})
    event = event.model_copy(update={"data": event.data.model_copy(update={"outcome": outcome})})
    decision = story.send(event)
    assert not decision.accepted
    assert decision.rule == "resolved.agreed_by_non_party"
    assert decision.clause == "Northamptonshire Recording and Communication"
    (fact,) = decision.facts
    assert isinstance(fact, Rejected)
    assert fact.data.field == "data.outcome.agreed_by[1]"
    assert f"'{OUTSIDER}' is not a party" in fact.data.reason
    assert (story.state.status, story.state.outcome) == (Status.OPEN, None)


def test_resolving_closes_clears_deadlines_and_tells_everyone_the_outcome() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    decision = story.send(resolved(story.id, learning=("Call sooner.",)))
    state = story.state
    assert decision.rule == "resolved.closed"
    assert (state.status, state.deadlines) == (Status.RESOLVED, ())
    assert state.learning_points == ("Call sooner.",)
    assert state.outcome is not None
    cleared = [e.deadline_id for e in decision.effects if isinstance(e, ClearDeadline)]
    assert cleared == ["stage:1:1"]
    sent = updates(decision)
    assert len(sent) == 3
    assert all("Assessment to go ahead." in u.summary for u in sent)
    assert all(u.child is None for u in sent)
    (note,) = notifications(decision)
    assert note.recipient is Recipient.BUSINESS_OFFICE
    assert note.clause == "Northamptonshire Recording and Communication"


def test_buckinghamshire_natural_resolution_is_seen_through_then_closed() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    deadlines = story.state.deadlines
    natural = story.send(
        resolved(story.id, kind=OutcomeKind.NATURAL_TURN_OF_EVENTS, learning=("Missing.",))
    )
    assert natural.rule == "resolved.seen_through_for_learning"
    assert natural.clause == "Buckinghamshire 2.4.11"
    assert story.state.status is Status.SEEING_THROUGH
    assert story.state.deadlines == deadlines
    assert all("seen through" in u.summary for u in updates(natural))
    assert story.send(escalated(story.id)).accepted
    assert story.state.stage == 2
    closing = story.send(resolved(story.id, learning=("Policy fixed.",)))
    closed = story.state
    assert closing.rule == "resolved.closed"
    assert closed.status is Status.RESOLVED
    assert closed.learning_points == ("Missing.", "Policy fixed.")


def test_natural_resolution_closes_where_the_procedure_does_not_see_it_through() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    story.send(resolved(story.id, kind=OutcomeKind.NATURAL_TURN_OF_EVENTS))
    assert story.state.status is Status.RESOLVED


def test_northumberland_reports_resolutions_only_from_senior_manager_level() -> None:
    early = Story(load("northumberland"))
    early.open()
    assert notifications(early.send(resolved(early.id))) == []
    late = Story(load("northumberland"))
    late.open()
    late.climb_to(3)
    (note,) = notifications(late.send(resolved(late.id)))
    assert note.clause == "Northumberland Appendix 3"


def test_withdrawing_closes_and_clears_every_deadline() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    decision = story.send(withdrawn(story.id, by=HEALTH))
    assert decision.rule == "withdrawn.closed"
    assert story.state.status is Status.WITHDRAWN
    assert story.state.deadlines == ()
    cleared = sorted(e.deadline_id for e in decision.effects if isinstance(e, ClearDeadline))
    assert cleared == ["stage:1:1", "total:0:0"]
    assert not story.send(resolved(story.id)).accepted


def test_withdrawing_after_the_business_office_was_told_notifies_only_the_parties() -> None:
    """Northamptonshire stage 5 and Gloucestershire stage 4: reading 'withdrawal ...'."""
    for procedure_id, stage in [("northamptonshire", 5), ("gloucestershire", 4)]:
        story = Story(load(procedure_id))
        story.open()
        story.climb_to(stage)
        assert any(
            n.recipient is Recipient.BUSINESS_OFFICE
            for d in story.decisions
            for n in notifications(d)
        )
        decision = story.send(withdrawn(story.id, by=HEALTH))
        assert decision.rule == "withdrawn.closed"
        assert notifications(decision) == []
        assert len(updates(decision)) == len(story.state.parties)


def test_gloucestershire_resolution_after_the_monitoring_copy_notifies_only_the_parties() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(3)
    decision = story.send(resolved(story.id))
    assert decision.rule == "resolved.closed"
    assert notifications(decision) == []


def test_a_discussion_is_recorded_at_the_current_stage() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(2)
    decision = story.send(discussed(story.id))
    (record,) = story.state.records
    assert (record.stage, record.tier, record.summary) == (2, 1, "Talked it over.")
    assert decision.clause == "Gloucestershire 2 (closing paragraph)"
    assert all("Talked it over" not in u.summary for u in updates(decision))
