"""What the router refuses, and the caller's mistakes it raises on."""

from __future__ import annotations

from datetime import datetime

import pytest

from router import Decision, decide
from router.procedures import load
from schemas.envelope import EventType, Rejected, StageChanged
from schemas.facts import StageChangedData
from tests.unit.builders import (
    HEALTH,
    OUTSIDER,
    SOCIAL_CARE,
    T0,
    Story,
    acknowledged,
    escalated,
    evidence,
    next_id,
    updates,
    withdrawn,
)


def _rejected(decision: Decision) -> Rejected:
    (fact,) = decision.facts
    assert isinstance(fact, Rejected)
    return fact


def test_an_agency_that_is_not_a_party_is_refused_and_hears_nothing() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    before = story.state
    decision = story.send(acknowledged(story.id, by=OUTSIDER))
    assert not decision.accepted
    assert decision.rule == "action.not_a_party"
    assert decision.escalation is before
    assert _rejected(decision).data.field == "data.by.agency_id"
    assert decision.effects == ()


def test_a_closed_escalation_refuses_further_actions_and_tells_the_sender() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    story.send(withdrawn(story.id))
    closed = story.state
    decision = story.send(escalated(story.id, by=HEALTH))
    assert not decision.accepted
    assert decision.rule == "action.closed"
    assert decision.escalation is closed
    assert "the escalation is closed" in _rejected(decision).data.reason
    (update,) = updates(decision)
    assert update.recipient_agency_id == HEALTH
    assert update.event == "rejected"


def test_escalating_without_evidence_is_refused_with_the_evidence_clause() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    decision = story.send(escalated(story.id, proof=evidence(attempts=0, exhausted=False)))
    assert not decision.accepted
    assert decision.rule == "escalated.rejected_without_evidence"
    assert decision.clause == "Northamptonshire The Process"
    fact = _rejected(decision)
    assert fact.data.field == "data.evidence.attempts"
    assert "attempt" in fact.data.reason
    assert "exhausted" in fact.data.reason
    assert story.state.stage == 1


def test_escalating_with_attempts_not_yet_exhausted_is_refused() -> None:
    story = Story(load("buckinghamshire"))
    story.open()
    decision = story.send(escalated(story.id, proof=evidence(attempts=2, exhausted=False)))
    assert not decision.accepted
    assert _rejected(decision).data.field == "data.evidence.exhausted"
    assert decision.clause == "Buckinghamshire 2.4.10 (Appendix C flow diagram)"


@pytest.mark.parametrize(
    ("to_stage", "rule"), [(3, "escalated.skips_stage"), (1, "escalated.backwards")]
)
def test_an_escalation_cannot_skip_a_stage_or_go_backwards(to_stage: int, rule: str) -> None:
    story = Story(load("gloucestershire"))
    story.open()
    decision = story.send(escalated(story.id, to_stage=to_stage))
    assert not decision.accepted
    assert decision.rule == rule
    assert _rejected(decision).data.field == "data.to_stage"
    assert story.state.stage == 1


def test_naming_the_next_stage_is_the_same_as_omitting_it() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    assert story.send(escalated(story.id, to_stage=2)).accepted
    assert story.state.stage == 2


def test_the_final_stage_cannot_be_escalated() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(4)
    decision = story.send(escalated(story.id))
    assert not decision.accepted
    assert decision.rule == "escalated.already_final_stage"
    assert "already at the final stage" in _rejected(decision).data.reason


def test_a_refusal_leaves_the_state_identical_and_does_not_count() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    before = story.state
    decision = story.send(escalated(story.id, to_stage=4))
    assert decision.escalation is before
    assert before.events_applied == 1


def test_a_refusal_update_never_reuses_the_id_of_the_next_accepted_update() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    refused = story.send(escalated(story.id, to_stage=4, by=SOCIAL_CARE))
    accepted = story.send(escalated(story.id, by=SOCIAL_CARE))
    refused_ids = {u.update_id for u in updates(refused)}
    accepted_ids = {u.update_id for u in updates(accepted)}
    assert len(refused_ids) == 1
    assert not refused_ids & accepted_ids


def test_an_action_on_an_unknown_escalation_is_refused() -> None:
    decision = decide(None, acknowledged("nope"), load("northamptonshire"), T0)
    assert not decision.accepted
    assert decision.rule == "action.unknown_escalation"
    assert _rejected(decision).data.field == "subject"


def test_a_procedure_version_other_than_the_escalations_raises() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    newer = load("northamptonshire").model_copy(update={"version": "1.1.0"})
    with pytest.raises(ValueError, match=r"load the version it started under"):
        decide(story.state, acknowledged(story.id), newer, T0)


def test_an_event_about_another_escalation_raises() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    with pytest.raises(ValueError, match="not"):
        decide(story.state, acknowledged("someone-else"), story.procedure, T0)


def test_a_naive_now_raises() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(story.state, acknowledged(story.id), story.procedure, datetime(2026, 3, 2, 9))


def test_the_routers_own_facts_are_not_inputs() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    fact = StageChanged(
        type=EventType.STAGE_CHANGED,
        id=next_id(),
        source="urn:elsewhere",
        time=T0,
        subject=story.id,
        data=StageChangedData(
            from_stage=1, from_tier=1, to_stage=5, to_tier=1, stage_title="x", due=None, clause="x"
        ),
    )
    decision = story.send(fact)
    assert not decision.accepted
    assert decision.rule == "fact.not_an_input"
    assert decision.effects == ()
    assert story.state.stage == 1


def test_deciding_the_same_event_on_the_same_state_gives_an_equal_decision() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    event = escalated(story.id)
    first = decide(story.state, event, story.procedure, T0)
    second = decide(story.state, event, story.procedure, T0)
    assert first == second
    assert first.model_dump_json() == second.model_dump_json()


def test_acknowledging_twice_is_recorded_once() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    first = story.send(acknowledged(story.id, by=HEALTH))
    again = story.send(acknowledged(story.id, by=HEALTH))
    assert first.rule == "acknowledged.recorded"
    assert again.rule == "acknowledged.already_recorded"
    assert story.state.acknowledged_by == (HEALTH,)
    assert len(updates(first)) == 3
    assert again.effects == ()
