"""CloudEvents 1.0 envelopes, one class per event type, discriminated by ``type``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from schemas import actions as a
from schemas import facts as f

__all__ = [
    "AGENCY_ACTIONS",
    "SCHEMA_VERSION",
    "AgencyEvent",
    "AnyEvent",
    "EventType",
    "HubEvent",
    "event_adapter",
]

SCHEMA_VERSION = "1"
PREFIX = "uk.escalation-hub.v1."


class EventType(StrEnum):
    RAISED = PREFIX + "raised"
    ACKNOWLEDGED = PREFIX + "acknowledged"
    PLAN_AGREED = PREFIX + "plan_agreed"
    DISCUSSION_RECORDED = PREFIX + "discussion_recorded"
    ESCALATED = PREFIX + "escalated"
    RESOLVED = PREFIX + "resolved"
    WITHDRAWN = PREFIX + "withdrawn"
    FLAGS_CHANGED = PREFIX + "flags_changed"
    STAGE_CHANGED = PREFIX + "stage_changed"
    DEADLINE_APPROACHING = PREFIX + "deadline_approaching"
    DEADLINE_BREACHED = PREFIX + "deadline_breached"
    PARTNERSHIP_NOTIFIED = PREFIX + "partnership_notified"
    REJECTED = PREFIX + "rejected"

    @property
    def short(self) -> str:
        return self.value.removeprefix(PREFIX)


Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class Envelope(BaseModel):
    """The CloudEvents 1.0 context attributes; ``source`` + ``id`` is the de-duplication key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: Id
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    time: AwareDatetime
    subject: Id | None = Field(
        default=None, description="The escalation id; omitted on 'raised' (the hub assigns it)."
    )
    datacontenttype: Literal["application/json"] = "application/json"
    agencyref: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="Extension: the sending agency's own case reference."
    )


class Raised(Envelope):
    type: Literal[EventType.RAISED]
    data: a.RaisedData


class Acknowledged(Envelope):
    type: Literal[EventType.ACKNOWLEDGED]
    data: a.AcknowledgedData


class PlanAgreed(Envelope):
    type: Literal[EventType.PLAN_AGREED]
    data: a.PlanAgreedData


class DiscussionRecorded(Envelope):
    type: Literal[EventType.DISCUSSION_RECORDED]
    data: a.DiscussionRecordedData


class Escalated(Envelope):
    type: Literal[EventType.ESCALATED]
    data: a.EscalatedData


class Resolved(Envelope):
    type: Literal[EventType.RESOLVED]
    data: a.ResolvedData


class Withdrawn(Envelope):
    type: Literal[EventType.WITHDRAWN]
    data: a.WithdrawnData


class FlagsChanged(Envelope):
    type: Literal[EventType.FLAGS_CHANGED]
    data: a.FlagsChangedData


class StageChanged(Envelope):
    type: Literal[EventType.STAGE_CHANGED]
    data: f.StageChangedData


class DeadlineApproaching(Envelope):
    type: Literal[EventType.DEADLINE_APPROACHING]
    data: f.DeadlineData


class DeadlineBreached(Envelope):
    type: Literal[EventType.DEADLINE_BREACHED]
    data: f.DeadlineData


class PartnershipNotified(Envelope):
    type: Literal[EventType.PARTNERSHIP_NOTIFIED]
    data: f.PartnershipNotifiedData


class Rejected(Envelope):
    type: Literal[EventType.REJECTED]
    data: f.RejectedData


AgencyEvent = Annotated[
    Raised
    | Acknowledged
    | PlanAgreed
    | DiscussionRecorded
    | Escalated
    | Resolved
    | Withdrawn
    | FlagsChanged,
    Field(discriminator="type"),
]
HubEvent = Annotated[
    StageChanged | DeadlineApproaching | DeadlineBreached | PartnershipNotified | Rejected,
    Field(discriminator="type"),
]
AnyEvent = Annotated[
    Raised
    | Acknowledged
    | PlanAgreed
    | DiscussionRecorded
    | Escalated
    | Resolved
    | Withdrawn
    | FlagsChanged
    | StageChanged
    | DeadlineApproaching
    | DeadlineBreached
    | PartnershipNotified
    | Rejected,
    Field(discriminator="type"),
]
AGENCY_ACTIONS = frozenset(
    {
        EventType.RAISED,
        EventType.ACKNOWLEDGED,
        EventType.PLAN_AGREED,
        EventType.DISCUSSION_RECORDED,
        EventType.ESCALATED,
        EventType.RESOLVED,
        EventType.WITHDRAWN,
        EventType.FLAGS_CHANGED,
    }
)

event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
agency_event_adapter: TypeAdapter[AgencyEvent] = TypeAdapter(AgencyEvent)
