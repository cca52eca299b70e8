"""Builders for router tests: actors, parties, events, and a story that applies them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from router import Decision, decide
from schemas.actions import (
    AcknowledgedData,
    Attempt,
    DiscussionMethod,
    DiscussionRecordedData,
    EscalatedData,
    Evidence,
    FlagsChangedData,
    Outcome,
    OutcomeKind,
    Plan,
    PlanAgreedData,
    RaisedData,
    ResolvedData,
    WithdrawnData,
)
from schemas.common import AgencyKind, ConcernCategory, Flag, TimeUnit
from schemas.envelope import (
    Acknowledged,
    AnyEvent,
    DeadlineApproaching,
    DeadlineBreached,
    DiscussionRecorded,
    Escalated,
    EventType,
    FlagsChanged,
    PlanAgreed,
    Raised,
    Resolved,
    Withdrawn,
)
from schemas.escalation import Deadline, Escalation
from schemas.facts import DeadlineData
from schemas.people import Actor, Child, ChildIdentifiers, Party, Role
from schemas.procedure import Procedure, Timescale
from schemas.updates import Notification, StageUpdate

SOCIAL_CARE = "csc"
HEALTH = "health"
POLICE = "police"
OUTSIDER = "school"
#: Monday 2 March 2026, 09:30 in London (GMT).
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

_ids = itertools.count(1)


SOURCE = "urn:test:case-system"


def next_id() -> str:
    return f"evt-{next(_ids)}"


def actor(agency: str = SOCIAL_CARE, role: Role = Role.PRACTITIONER) -> Actor:
    return Actor(agency_id=agency, name=f"Worker at {agency}", role=role)


def parties(*agencies: str) -> tuple[Party, ...]:
    kinds = {SOCIAL_CARE: AgencyKind.SOCIAL_CARE, HEALTH: AgencyKind.HEALTH}
    return tuple(
        Party(agency_id=a, kind=kinds.get(a, AgencyKind.OTHER), case_reference=f"{a}-ref")
        for a in agencies or (SOCIAL_CARE, HEALTH, POLICE)
    )


def child() -> Child:
    return Child(
        identifiers=ChildIdentifiers(nhs_number="943 476 5919", given_name="Alex"),
        pseudonyms=("p-1",),
    )


def raised(
    partnership: str,
    *,
    flags: tuple[Flag, ...] = (),
    agreed: Timescale | None = None,
    by: str = SOCIAL_CARE,
    subject: str | None = None,
) -> Raised:
    data = RaisedData(
        partnership=partnership,
        raised_by=actor(by),
        parties=parties(),
        child=child(),
        concern_categories=(ConcernCategory.THRESHOLDS,),
        flags=flags,
        summary="Referral not considered to meet the threshold.",
        agreed_timescale=agreed,
    )
    return Raised(
        type=EventType.RAISED, data=data, id=next_id(), source=SOURCE, time=T0, subject=subject
    )


def acknowledged(subject: str, by: str = HEALTH) -> Acknowledged:
    data = AcknowledgedData(by=actor(by))
    return Acknowledged(
        type=EventType.ACKNOWLEDGED,
        data=data,
        id=next_id(),
        source=SOURCE,
        time=T0,
        subject=subject,
    )


def plan_agreed(
    subject: str, *, timescale: Timescale | None = None, by: str = SOCIAL_CARE
) -> PlanAgreed:
    plan = Plan(summary="Joint visit.", agreed_by=(SOCIAL_CARE, HEALTH), agreed_timescale=timescale)
    data = PlanAgreedData(by=actor(by), plan=plan)
    return PlanAgreed(
        type=EventType.PLAN_AGREED, data=data, id=next_id(), source=SOURCE, time=T0, subject=subject
    )


def discussed(subject: str, by: str = SOCIAL_CARE) -> DiscussionRecorded:
    data = DiscussionRecordedData(
        by=actor(by), held_at=T0, method=DiscussionMethod.TELEPHONE, summary="Talked it over."
    )
    return DiscussionRecorded(
        type=EventType.DISCUSSION_RECORDED,
        data=data,
        id=next_id(),
        source=SOURCE,
        time=T0,
        subject=subject,
    )


def evidence(*, attempts: int = 1, exhausted: bool = True) -> Evidence:
    tried = tuple(
        Attempt(at=T0, method=DiscussionMethod.TELEPHONE, summary=f"Call {n}.")
        for n in range(attempts)
    )
    return Evidence(attempts=tried, exhausted=exhausted)


def escalated(
    subject: str,
    *,
    by: str = SOCIAL_CARE,
    to_stage: int | None = None,
    within_tier: bool = False,
    proof: Evidence | None = None,
) -> Escalated:
    data = EscalatedData(
        by=actor(by, Role.LINE_MANAGER),
        evidence=proof if proof is not None else evidence(),
        to_stage=to_stage,
        within_stage_tier=within_tier,
    )
    return Escalated(
        type=EventType.ESCALATED, data=data, id=next_id(), source=SOURCE, time=T0, subject=subject
    )


def resolved(
    subject: str,
    *,
    kind: OutcomeKind = OutcomeKind.AGREED,
    written: bool = True,
    learning: tuple[str, ...] = (),
    by: str = SOCIAL_CARE,
) -> Resolved:
    outcome = Outcome(
        kind=kind,
        summary="Assessment to go ahead.",
        agreed_by=(SOCIAL_CARE, HEALTH),
        written_confirmation=written,
        learning_points=learning,
    )
    data = ResolvedData(by=actor(by), outcome=outcome)
    return Resolved(
        type=EventType.RESOLVED, data=data, id=next_id(), source=SOURCE, time=T0, subject=subject
    )


def withdrawn(subject: str, by: str = SOCIAL_CARE) -> Withdrawn:
    data = WithdrawnData(by=actor(by), reason="No longer needed.")
    return Withdrawn(
        type=EventType.WITHDRAWN, data=data, id=next_id(), source=SOURCE, time=T0, subject=subject
    )


def flags_changed(
    subject: str,
    *,
    set_: tuple[Flag, ...] = (),
    cleared: tuple[Flag, ...] = (),
    by: str = SOCIAL_CARE,
) -> FlagsChanged:
    data = FlagsChangedData(by=actor(by), set=set_, cleared=cleared)
    return FlagsChanged(
        type=EventType.FLAGS_CHANGED,
        data=data,
        id=next_id(),
        source=SOURCE,
        time=T0,
        subject=subject,
    )


def _deadline_data(deadline: Deadline, due: datetime | None) -> DeadlineData:
    return DeadlineData(
        deadline_id=deadline.id,
        kind=deadline.kind,
        stage=deadline.stage,
        tier=deadline.tier,
        due=due or deadline.due,
    )


def approaching(
    subject: str, deadline: Deadline, *, due: datetime | None = None
) -> DeadlineApproaching:
    return DeadlineApproaching(
        type=EventType.DEADLINE_APPROACHING,
        data=_deadline_data(deadline, due),
        id=next_id(),
        source=SOURCE,
        time=deadline.notice_at or T0,
        subject=subject,
    )


def breached(subject: str, deadline: Deadline, *, due: datetime | None = None) -> DeadlineBreached:
    return DeadlineBreached(
        type=EventType.DEADLINE_BREACHED,
        data=_deadline_data(deadline, due),
        id=next_id(),
        source=SOURCE,
        time=deadline.due or T0,
        subject=subject,
    )


def working_days(amount: int) -> Timescale:
    return Timescale(amount=amount, unit=TimeUnit.WORKING_DAYS)


def hours(amount: int) -> Timescale:
    return Timescale(amount=amount, unit=TimeUnit.HOURS)


@dataclass
class Story:
    """One escalation told event by event; accepted decisions move the state on."""

    procedure: Procedure
    now: datetime = T0
    escalation: Escalation | None = None
    decisions: list[Decision] = field(default_factory=list)

    @property
    def id(self) -> str:
        assert self.escalation is not None
        return self.escalation.id

    @property
    def state(self) -> Escalation:
        assert self.escalation is not None
        return self.escalation

    def send(self, event: AnyEvent, *, after: timedelta = timedelta(0)) -> Decision:
        self.now += after
        decision = decide(self.escalation, event, self.procedure, self.now)
        if decision.accepted:
            self.escalation = decision.escalation
        self.decisions.append(decision)
        return decision

    def open(self, *, flags: tuple[Flag, ...] = (), agreed: Timescale | None = None) -> Decision:
        decision = self.send(raised(self.procedure.id, flags=flags, agreed=agreed))
        assert decision.accepted, decision
        return decision

    def climb_to(self, stage: int) -> None:
        while self.state.stage < stage:
            decision = self.send(escalated(self.id))
            assert decision.accepted, decision


def updates(decision: Decision) -> list[StageUpdate]:
    return [e for e in decision.effects if isinstance(e, StageUpdate)]


def notifications(decision: Decision) -> list[Notification]:
    return [e for e in decision.effects if isinstance(e, Notification)]
