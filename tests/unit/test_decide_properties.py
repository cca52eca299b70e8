"""Properties of decide() over random procedures and random sequences of events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from router import Decision
from router.procedures import load
from schemas.actions import OutcomeKind
from schemas.common import Flag, TimeUnit
from schemas.envelope import (
    Acknowledged,
    AnyEvent,
    DiscussionRecorded,
    Escalated,
    FlagsChanged,
    PlanAgreed,
    Raised,
    Resolved,
    Withdrawn,
)
from schemas.escalation import Deadline, DeadlineState, Escalation
from schemas.facts import DeadlineKind
from schemas.people import Role
from schemas.procedure import (
    Condition,
    NotificationRule,
    Procedure,
    Recipient,
    RecipientAgency,
    Stage,
    Tiers,
    Timescale,
    Trigger,
)
from schemas.updates import ClearDeadline, Notification, SetDeadline, StageUpdate
from tests.unit.builders import (
    HEALTH,
    OUTSIDER,
    POLICE,
    SOCIAL_CARE,
    T0,
    Story,
    acknowledged,
    approaching,
    breached,
    discussed,
    escalated,
    evidence,
    flags_changed,
    plan_agreed,
    raised,
    resolved,
    updates,
    withdrawn,
)

FLAGS = st.lists(st.sampled_from(Flag), max_size=2, unique=True).map(tuple)
TIMESCALES = st.builds(
    Timescale,
    amount=st.integers(0, 8),
    unit=st.sampled_from(TimeUnit),
    measured_from=st.sampled_from(["stage_entry", "raised"]),
)
CONDITIONS = st.builds(
    Condition,
    flags_any=FLAGS,
    flags_none=st.lists(st.sampled_from(Flag), max_size=1).map(tuple),
    min_stage=st.none() | st.integers(1, 5),
    min_tier=st.none() | st.integers(1, 3),
)


@st.composite
def rules(draw: st.DrawFn) -> NotificationRule:
    """A rule addressed to any agency its recipient and trigger allow."""
    recipient = draw(st.sampled_from(Recipient))
    trigger = draw(st.sampled_from(Trigger))
    agencies = [RecipientAgency.ALL_PARTIES]
    if recipient is not Recipient.BUSINESS_OFFICE:
        agencies = [a for a in RecipientAgency]
        if trigger is Trigger.DEADLINE_BREACHED:
            agencies.remove(RecipientAgency.ACTING)
    return NotificationRule(
        recipient=recipient,
        recipient_agency=draw(st.sampled_from(agencies)),
        trigger=trigger,
        condition=draw(CONDITIONS),
        immediate=draw(st.booleans()),
        reason="Because.",
        clause=draw(st.sampled_from(["R 1", "R 2"])),
    )


RULES = st.lists(rules(), max_size=2).map(tuple)
TIERS = st.none() | st.builds(
    Tiers, max_tiers=st.none() | st.integers(2, 3), timescale=TIMESCALES, clause=st.just("T")
)


@st.composite
def procedures(draw: st.DrawFn) -> Procedure:
    count = draw(st.integers(1, 6))
    stages = tuple(
        Stage(
            number=n,
            title=f"Stage {n}",
            actors=draw(st.lists(st.sampled_from(Role), max_size=2).map(tuple)),
            timescale=draw(st.none() | TIMESCALES),
            notifications=draw(RULES),
            tiers=draw(TIERS),
            clause=f"S {n}",
        )
        for n in range(1, count + 1)
    )
    return Procedure(
        id="random",
        version="1.0.0",
        title="Random",
        partnership="Random SCP",
        source="inline",
        effective_from=date(2020, 1, 1),
        stages=stages,
        total_maximum=draw(st.none() | TIMESCALES),
        flag_rules=draw(RULES),
        resolution_rules=draw(RULES),
        approaching_notice=draw(
            st.builds(Timescale, amount=st.integers(0, 3), unit=st.sampled_from(TimeUnit))
        ),
        natural_resolution_seen_through=draw(st.none() | st.just("N 1")),
        closure_days=tuple(
            draw(st.lists(st.dates(date(2026, 3, 1), date(2026, 6, 30)), max_size=3))
        ),
    )


@dataclass(frozen=True)
class Op:
    """One abstract step, made concrete against the state it meets."""

    kind: str
    agency: str = SOCIAL_CARE
    offset: int | None = None
    within: bool = False
    good: bool = True
    timescale: Timescale | None = None
    outcome: OutcomeKind = OutcomeKind.AGREED
    set_: tuple[Flag, ...] = ()
    cleared: tuple[Flag, ...] = ()
    index: int = 0
    hours: int = 0


#: Mostly parties, sometimes an outsider.
AGENCIES = st.sampled_from([SOCIAL_CARE, HEALTH, POLICE] * 3 + [OUTSIDER])
#: Escalations are the common step; closing steps are rare so stories get somewhere.
KINDS = ["escalate"] * 16 + ["ack", "discuss", "raise"] + ["plan", "flags"] * 3
KINDS += ["approach", "breach"] * 3 + ["resolve"] * 2 + ["withdraw"]
OPS = st.builds(
    Op,
    kind=st.sampled_from(KINDS),
    agency=AGENCIES,
    offset=st.sampled_from([None] * 6 + [1, 0, -1, 2]),
    within=st.integers(0, 2).map(lambda n: n == 0),
    good=st.integers(0, 9).map(bool),
    timescale=st.none() | TIMESCALES,
    outcome=st.sampled_from(OutcomeKind),
    set_=FLAGS,
    cleared=FLAGS,
    index=st.integers(0, 3),
    hours=st.integers(0, 80),
)


def _deadline_event(op: Op, state: Escalation) -> AnyEvent:
    deadlines = state.deadlines or (_PHANTOM,)
    deadline = deadlines[op.index % len(deadlines)]
    due = deadline.due if op.good else deadline.due + timedelta(minutes=1)
    build = approaching if op.kind == "approach" else breached
    return build(state.id, deadline, due=due)


_PHANTOM = Deadline(
    id="stage:9:9",
    kind=DeadlineKind.STAGE,
    stage=9,
    tier=9,
    started_at=T0,
    due=T0,
    notice_at=None,
    amount=1,
    unit=TimeUnit.HOURS,
    clause="x",
    calendar_version="x",
)


def _event(op: Op, story: Story) -> AnyEvent:
    state = story.state
    sid, by = state.id, op.agency
    if op.kind in ("approach", "breach"):
        return _deadline_event(op, state)
    if op.kind == "escalate":
        to = None if op.offset is None else state.stage + op.offset
        proof = evidence() if op.good else evidence(attempts=0)
        return escalated(sid, by=by, to_stage=to, within_tier=op.within, proof=proof)
    return _record_event(op, story)


def _record_event(op: Op, story: Story) -> AnyEvent:
    sid, by = story.state.id, op.agency
    match op.kind:
        case "ack":
            return acknowledged(sid, by=by)
        case "discuss":
            return discussed(sid, by=by)
        case "withdraw":
            return withdrawn(sid, by=by)
        case "raise":
            return raised(story.procedure.id, subject=sid)
        case "plan":
            return plan_agreed(sid, timescale=op.timescale, by=by)
        case "resolve":
            return resolved(sid, kind=op.outcome, written=op.good)
        case _:
            return flags_changed(sid, set_=op.set_, cleared=op.cleared, by=by)


class Audit:
    """Checks every decision against the one before and keeps the store's deadline index."""

    def __init__(self, story: Story) -> None:
        self.story = story
        self.index: dict[str, Deadline] = {d.id: d for d in story.state.deadlines}
        self.accepted = 1
        self.update_ids = {u.update_id for u in updates(story.decisions[0])}
        self.notification_ids: set[str] = set()

    def step(self, op: Op) -> None:
        before = self.story.state
        event = _event(op, self.story)
        decision = self.story.send(event, after=timedelta(hours=op.hours))
        if decision.accepted:
            self.accepted += 1
        else:
            assert decision.escalation is before
        if before.status.terminal:
            assert self.story.state is before
        self._follow_index(decision)
        self._unique_ids(decision)
        check_addressees(self.story.state, event, notifications_of(decision))
        check_state(self.story.procedure, self.story.state, self.accepted)
        assert self.index == {d.id: d for d in self.story.state.deadlines}

    def _follow_index(self, decision: Decision) -> None:
        for effect in decision.effects:
            if isinstance(effect, ClearDeadline):
                assert effect.deadline_id in self.index
                del self.index[effect.deadline_id]
            elif isinstance(effect, SetDeadline):
                self.index[effect.deadline.id] = effect.deadline

    def _unique_ids(self, decision: Decision) -> None:
        for effect in decision.effects:
            if isinstance(effect, StageUpdate):
                assert effect.update_id not in self.update_ids
                self.update_ids.add(effect.update_id)
            elif isinstance(effect, Notification):
                assert effect.notification_id not in self.notification_ids
                self.notification_ids.add(effect.notification_id)


def notifications_of(decision: Decision) -> list[Notification]:
    return [e for e in decision.effects if isinstance(e, Notification)]


_ACTIONS = (
    Acknowledged | PlanAgreed | DiscussionRecorded | Escalated | Resolved | Withdrawn | FlagsChanged
)


def _actor(event: AnyEvent, state: Escalation) -> str:
    """The agency whose event it is; the raiser for a hub fact (a deadline)."""
    if isinstance(event, Raised):
        return event.data.raised_by.agency_id
    return event.data.by.agency_id if isinstance(event, _ACTIONS) else state.raised_by.agency_id


def check_addressees(state: Escalation, event: AnyEvent, notes: list[Notification]) -> None:
    """A notification names one party exactly when addressed to the acting agency or the
    raiser, and then the right one; the business office's names none."""
    parties = {p.agency_id for p in state.parties}
    for note in notes:
        if note.recipient is Recipient.BUSINESS_OFFICE:
            assert (note.recipient_agency, note.recipient_agency_id) == (None, None)
        elif note.recipient_agency is RecipientAgency.ACTING:
            assert note.recipient_agency_id == _actor(event, state)
        elif note.recipient_agency is RecipientAgency.RAISER:
            assert note.recipient_agency_id == state.raised_by.agency_id
        else:
            assert note.recipient_agency in (
                RecipientAgency.ALL_PARTIES,
                RecipientAgency.EACH_PARTY,
            )
            assert note.recipient_agency_id is None
        assert note.recipient_agency_id is None or note.recipient_agency_id in parties


def check_state(procedure: Procedure, state: Escalation, accepted: int) -> None:
    assert state.events_applied == accepted
    positions = [(h.stage, h.tier) for h in state.history]
    assert positions[0] == (1, 1)
    for (stage, tier), (next_stage, next_tier) in pairwise(positions):
        assert (next_stage, next_tier) in ((stage + 1, 1), (stage, tier + 1))
    assert positions[-1] == (state.stage, state.tier)
    assert len(set(state.notified)) == len(state.notified)
    if state.status.terminal:
        assert state.deadlines == ()
        return
    check_deadlines(procedure, state)


def check_deadlines(procedure: Procedure, state: Escalation) -> None:
    ids = [d.id for d in state.deadlines]
    assert len(set(ids)) == len(ids)
    totals = [d for d in state.deadlines if d.kind is DeadlineKind.TOTAL]
    assert len(totals) == (procedure.total_maximum is not None)
    staged = [d for d in state.deadlines if d.kind is not DeadlineKind.TOTAL]
    assert all((d.stage, d.tier) == (state.stage, state.tier) for d in staged)
    stage = procedure.stage(state.stage)
    has_timescale = stage.timescale is not None or (stage.tiers is not None and state.tier > 1)
    assert len(staged) == 1 if has_timescale else len(staged) <= 1
    for deadline in state.deadlines:
        assert deadline.notice_at is None or deadline.started_at < deadline.notice_at
        assert deadline.state in DeadlineState


@settings(max_examples=150, deadline=None)
@given(
    procedure=procedures(),
    flags=FLAGS,
    ops=st.lists(OPS, min_size=8, max_size=40),
)
def test_random_stories_keep_every_invariant(
    procedure: Procedure, flags: tuple[Flag, ...], ops: list[Op]
) -> None:
    story = Story(procedure)
    opened = story.open(flags=flags)
    check_state(procedure, story.state, 1)
    check_addressees(story.state, raised(procedure.id), notifications_of(opened))
    audit = Audit(story)
    for op in ops:
        audit.step(op)


@settings(max_examples=50, deadline=None)
@given(procedure=procedures(), ops=st.lists(OPS, min_size=1, max_size=12))
def test_deciding_twice_gives_equal_decisions(procedure: Procedure, ops: list[Op]) -> None:
    story = Story(procedure)
    story.open()
    for op in ops:
        event = _event(op, story)
        again = Story(procedure, now=story.now, escalation=story.state).send(event)
        assert story.send(event) == again


SEEDS = ["buckinghamshire", "gloucestershire", "northamptonshire", "northumberland"]


@settings(max_examples=200, deadline=None)
@given(
    procedure_id=st.sampled_from(SEEDS),
    flags=FLAGS,
    ops=st.lists(OPS, min_size=8, max_size=40),
)
def test_random_stories_under_the_four_seed_procedures_keep_every_invariant(
    procedure_id: str, flags: tuple[Flag, ...], ops: list[Op]
) -> None:
    procedure = load(procedure_id)
    story = Story(procedure)
    story.open(flags=flags)
    check_state(procedure, story.state, 1)
    audit = Audit(story)
    for op in ops:
        audit.step(op)
