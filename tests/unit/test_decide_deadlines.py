"""Deadlines: agreed shorter timescales, approaching and breached facts, stale facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from router.procedures import load
from schemas.common import TimeUnit
from schemas.escalation import DeadlineState
from schemas.people import Role
from schemas.procedure import (
    NotificationRule,
    Procedure,
    Recipient,
    Stage,
    Tiers,
    Timescale,
    Trigger,
)
from schemas.updates import ClearDeadline, SetDeadline
from tests.unit.builders import (
    HEALTH,
    Story,
    approaching,
    breached,
    escalated,
    hours,
    notifications,
    plan_agreed,
    resolved,
    updates,
    working_days,
)


def test_a_shorter_timescale_agreed_in_the_plan_replaces_the_stage_deadline() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    decision = story.send(plan_agreed(story.id, timescale=working_days(2)))
    (deadline,) = story.state.deadlines
    assert decision.rule == "plan_agreed.shorter_timescale_wins"
    assert decision.clause == "Gloucestershire 2.1(d)"
    assert deadline.agreed_shorter
    assert deadline.due == datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
    assert deadline.started_at == story.state.opened_at
    kinds = [e.effect for e in decision.effects if isinstance(e, ClearDeadline | SetDeadline)]
    assert kinds == ["clear_deadline", "set_deadline"]
    assert all("shorter agreed timescale wins" in u.summary for u in updates(decision))
    assert len(story.state.plans) == 1


def test_a_longer_timescale_agreed_in_the_plan_leaves_the_procedures_deadline() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    before = story.state.deadlines
    decision = story.send(plan_agreed(story.id, timescale=working_days(9)))
    assert decision.accepted
    assert decision.rule == "plan_agreed.longer_timescale_ignored"
    assert story.state.deadlines == before
    assert all("current deadline stands" in u.summary for u in updates(decision))
    assert not [e for e in decision.effects if isinstance(e, SetDeadline | ClearDeadline)]


def test_the_agreed_timescale_counts_from_when_the_deadline_started() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    story.send(plan_agreed(story.id, timescale=hours(24)), after=timedelta(hours=20))
    (deadline,) = story.state.deadlines
    assert deadline.due == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    assert deadline.notice_at is None  # 24 hours before due is not after the start


def test_a_plan_agreed_by_an_agency_that_is_not_a_party_is_refused() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    event = plan_agreed(story.id)
    plan = event.data.plan.model_copy(update={"agreed_by": ("csc", "school")})
    event = event.model_copy(update={"data": event.data.model_copy(update={"plan": plan})})
    decision = story.send(event)
    assert not decision.accepted
    assert decision.rule == "plan_agreed.agreed_by_non_party"


def test_approaching_marks_the_deadline_and_prompts_the_current_stage() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    (deadline,) = story.state.deadlines
    decision = story.send(approaching(story.id, deadline))
    (after,) = story.state.deadlines
    assert decision.rule == "deadline.approaching"
    assert decision.clause == deadline.clause
    assert after.state is DeadlineState.APPROACHING
    sent = updates(decision)
    assert len(sent) == 3
    assert all(u.event == "deadline_approaching" for u in sent)
    assert all("4 March 2026 at 09:30 UK time" in u.summary for u in sent)
    assert {u.prompt.role for u in sent if u.prompt} == {Role.PRACTITIONER}
    (moved,) = [e for e in decision.effects if isinstance(e, SetDeadline)]
    assert moved.deadline == after


def test_breached_prompts_the_role_at_the_next_stage() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    (deadline,) = story.state.deadlines
    story.send(approaching(story.id, deadline))
    decision = story.send(breached(story.id, deadline))
    assert decision.rule == "deadline.breached"
    assert story.state.deadlines[0].state is DeadlineState.BREACHED
    sent = updates(decision)
    assert all(u.event == "deadline_breached" for u in sent)
    assert {u.prompt.role for u in sent if u.prompt} == {Role.LINE_MANAGER}
    assert all("stage 2" in u.prompt.text for u in sent if u.prompt)


@pytest.mark.parametrize(
    ("procedure_id", "next_stage"),
    [("gloucestershire", "stage 4 (Resolution by GSCP)"), ("northamptonshire", "stage 4")],
)
def test_a_breach_at_a_stage_with_management_tiers_prompts_the_next_tier_first(
    procedure_id: str, next_stage: str
) -> None:
    story = Story(load(procedure_id))
    story.open()
    story.climb_to(3)
    (deadline,) = story.state.deadlines
    decision = story.send(breached(story.id, deadline))
    prompts = {u.prompt for u in updates(decision)}
    (prompt,) = prompts
    assert prompt is not None
    assert prompt.role is Role.SENIOR_MANAGER
    assert "management tier 2 of stage 3" in prompt.text
    assert f"then to {next_stage}" in prompt.text
    assert "once every tier is tried" in prompt.text


def test_a_breach_once_the_tiers_are_used_up_prompts_the_role_at_the_next_stage() -> None:
    first = Stage(
        number=1,
        title="One",
        actors=(Role.LINE_MANAGER,),
        timescale=working_days(3),
        clause="T 1",
        tiers=Tiers(max_tiers=2, timescale=working_days(2), clause="T 1t"),
    )
    second = Stage(
        number=2, title="Two", actors=(Role.DIRECTOR,), timescale=working_days(2), clause="T 2"
    )
    story = Story(_tiny(stages=(first, second)))
    story.open()
    story.send(escalated(story.id, within_tier=True))
    (deadline,) = story.state.deadlines
    decision = story.send(breached(story.id, deadline))
    (prompt,) = {u.prompt for u in updates(decision)}
    assert prompt is not None
    assert prompt.role is Role.DIRECTOR
    assert prompt.text.endswith("consider escalation to stage 2 (Two).")


def test_breached_at_the_final_stage_prompts_its_own_role() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    story.climb_to(4)
    (deadline,) = story.state.deadlines
    decision = story.send(breached(story.id, deadline))
    assert {u.prompt.role for u in updates(decision) if u.prompt} == {Role.BUSINESS_OFFICE}


def test_a_deadline_fact_for_a_replaced_deadline_is_ignored() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    (old,) = story.state.deadlines
    story.send(escalated(story.id))
    before = story.state
    decision = story.send(breached(story.id, old))
    assert not decision.accepted
    assert decision.rule == "deadline.ignored_stale"
    assert decision.effects == ()
    assert decision.facts == ()
    assert decision.escalation is before


def test_a_deadline_fact_with_another_due_instant_is_ignored() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    (deadline,) = story.state.deadlines
    story.send(plan_agreed(story.id, timescale=working_days(1)))
    decision = story.send(breached(story.id, deadline))
    assert decision.rule == "deadline.ignored_stale"


def test_a_deadline_fact_repeated_or_out_of_order_is_ignored() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    (deadline,) = story.state.deadlines
    assert story.send(breached(story.id, deadline)).accepted
    assert story.send(breached(story.id, deadline)).rule == "deadline.ignored_stale"
    assert story.send(approaching(story.id, deadline)).rule == "deadline.ignored_stale"
    assert story.state.events_applied == 2


def test_deadline_facts_after_closing_are_ignored() -> None:
    story = Story(load("northamptonshire"))
    story.open()
    (deadline,) = story.state.deadlines
    story.send(resolved(story.id))
    decision = story.send(breached(story.id, deadline))
    assert not decision.accepted
    assert decision.rule == "deadline.ignored_closed"
    assert decision.effects == ()


def test_a_breached_deadline_cannot_be_replaced_by_an_agreed_one() -> None:
    story = Story(load("gloucestershire"))
    story.open()
    (deadline,) = story.state.deadlines
    story.send(breached(story.id, deadline))
    decision = story.send(plan_agreed(story.id, timescale=working_days(1)))
    assert decision.rule == "plan_agreed.deadline_already_breached"
    assert story.state.deadlines[0].due == deadline.due


def _tiny(**changes: object) -> Procedure:
    rule = NotificationRule(
        recipient=Recipient.BUSINESS_OFFICE,
        trigger=Trigger.DEADLINE_BREACHED,
        reason="Overdue.",
        clause="T 9",
    )
    stages = (
        Stage(
            number=1,
            title="One",
            actors=(Role.PRACTITIONER,),
            timescale=working_days(3),
            clause="T 1",
            notifications=(rule,),
        ),
        Stage(
            number=2,
            title="Two",
            actors=(Role.SENIOR_MANAGER,),
            timescale=None,
            clause="T 2",
            tiers=Tiers(max_tiers=2, timescale=hours(48), clause="T 2t"),
        ),
    )
    fields: dict[str, object] = {
        "id": "tiny",
        "version": "1.0.0",
        "title": "Tiny",
        "partnership": "Tiny SCP",
        "source": "inline",
        "effective_from": date(2020, 1, 1),
        "stages": stages,
        **changes,
    }
    return Procedure.model_validate(fields)


def test_approaching_notice_in_working_days_skips_weekends() -> None:
    procedure = _tiny(approaching_notice=Timescale(amount=1, unit=TimeUnit.WORKING_DAYS))
    story = Story(procedure, now=datetime(2026, 3, 5, 9, 30, tzinfo=UTC))  # Thursday
    story.open()
    (deadline,) = story.state.deadlines
    assert deadline.due == datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # Tuesday
    assert deadline.notice_at == datetime(2026, 3, 9, 9, 30, tzinfo=UTC)  # Monday


def test_closure_days_move_the_deadline() -> None:
    story = Story(_tiny(closure_days=(date(2026, 3, 3),)))
    story.open()
    (deadline,) = story.state.deadlines
    assert deadline.due == datetime(2026, 3, 6, 9, 30, tzinfo=UTC)


def test_a_breach_fires_the_stages_deadline_breached_rules() -> None:
    story = Story(_tiny())
    story.open()
    (deadline,) = story.state.deadlines
    decision = story.send(breached(story.id, deadline))
    (note,) = notifications(decision)
    assert (note.clause, note.stage) == ("T 9", 1)


def test_a_stage_without_timescale_gets_tier_deadlines_and_stops_at_max_tiers() -> None:
    story = Story(_tiny())
    story.open()
    story.climb_to(2)
    assert not story.state.deadlines
    story.send(escalated(story.id, within_tier=True))
    (deadline,) = story.state.deadlines
    assert (deadline.id, deadline.unit) == ("tier:2:2", TimeUnit.HOURS)
    refused = story.send(escalated(story.id, within_tier=True, by=HEALTH))
    assert refused.rule == "escalated.tiers_exhausted"


def test_an_agreed_timescale_gives_a_stage_without_one_a_deadline() -> None:
    story = Story(_tiny())
    story.open()
    story.climb_to(2)
    decision = story.send(plan_agreed(story.id, timescale=working_days(1)))
    assert decision.rule == "plan_agreed.shorter_timescale_wins"
    (deadline,) = story.state.deadlines
    assert deadline.id == "stage:2:1"
    assert deadline.agreed_shorter
