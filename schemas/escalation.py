"""The state of one escalation, as the router keeps it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.actions import Outcome, Plan
from schemas.common import ConcernCategory, Flag, TimeUnit
from schemas.facts import DeadlineKind
from schemas.people import Actor, AgencyId, Child, Narrative, Party

__all__ = [
    "Deadline",
    "DeadlineState",
    "DiscussionRecord",
    "Escalation",
    "RecordedPlan",
    "StageEntry",
    "Status",
]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(StrEnum):
    OPEN = "open"
    SEEING_THROUGH = "seeing_through"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"

    @property
    def terminal(self) -> bool:
        return self in (Status.RESOLVED, Status.WITHDRAWN)


class DeadlineState(StrEnum):
    PENDING = "pending"
    APPROACHING = "approaching"
    BREACHED = "breached"


class Deadline(_State):
    """A due instant (UTC) with the timescale, clause and calendar it was computed from."""

    id: str
    kind: DeadlineKind
    stage: int
    tier: int
    started_at: AwareDatetime
    due: AwareDatetime
    notice_at: AwareDatetime | None = Field(description="When 'approaching' fires.")
    amount: int
    unit: TimeUnit
    clause: str
    calendar_version: str
    agreed_shorter: bool = False
    state: DeadlineState = DeadlineState.PENDING


class StageEntry(_State):
    stage: int
    tier: int
    entered_at: AwareDatetime
    clause: str
    event_id: str
    by_agency: AgencyId | None = None


class RecordedPlan(_State):
    stage: int
    tier: int
    recorded_at: AwareDatetime
    by: Actor
    plan: Plan


class DiscussionRecord(_State):
    stage: int
    tier: int
    recorded_at: AwareDatetime
    by: Actor
    summary: Narrative
    decisions: tuple[Narrative, ...] = ()
    kind: str = "discussion"


class Escalation(_State):
    id: str
    partnership: str
    procedure_id: str
    procedure_version: str
    status: Status
    stage: int
    tier: int
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    raised_by: Actor
    parties: tuple[Party, ...]
    child: Child
    concern_categories: tuple[ConcernCategory, ...]
    flags: frozenset[Flag] = frozenset()
    summary: Narrative
    deadlines: tuple[Deadline, ...] = ()
    history: tuple[StageEntry, ...] = ()
    plans: tuple[RecordedPlan, ...] = ()
    records: tuple[DiscussionRecord, ...] = ()
    acknowledged_by: tuple[AgencyId, ...] = ()
    outcome: Outcome | None = None
    learning_points: tuple[Narrative, ...] = ()
    notified: tuple[str, ...] = Field(default=(), description="Keys of notifications already sent.")
    events_applied: int = 0

    def party(self, agency_id: str) -> Party | None:
        return next((p for p in self.parties if p.agency_id == agency_id), None)

    def deadline(self, deadline_id: str) -> Deadline | None:
        return next((d for d in self.deadlines if d.id == deadline_id), None)
