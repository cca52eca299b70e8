"""What leaves the router: stage updates to case systems, notifications, deadline changes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.escalation import Deadline, Status
from schemas.people import AgencyId, Child, Role
from schemas.procedure import Recipient

__all__ = [
    "ClearDeadline",
    "Effect",
    "Notification",
    "Prompt",
    "SetDeadline",
    "StageUpdate",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prompt(_Out):
    """A nudge to whoever acts next: the role at the next stage, or the parties."""

    role: Role
    text: str


class StageUpdate(_Out):
    """The document every party's case system receives (encrypted for it alone)."""

    effect: Literal["stage_update"] = "stage_update"
    update_id: str = Field(description="Stable id; repeat deliveries carry the same one.")
    escalation_id: str
    sequence: int
    partnership: str
    procedure_id: str
    procedure_version: str
    recipient_agency_id: AgencyId
    recipient_case_reference: str | None = None
    event: str = Field(description="What happened, e.g. 'stage_changed', 'deadline_breached'.")
    occurred_at: AwareDatetime
    status: Status
    stage: int
    stage_title: str
    tier: int
    due: AwareDatetime | None
    clause: str
    summary: str = Field(description="A sentence for the case record; never the child's identity.")
    prompt: Prompt | None = None
    child: Child | None = None


class Notification(_Out):
    """A message to the business office, an IRO or another named role."""

    effect: Literal["notification"] = "notification"
    notification_id: str
    escalation_id: str
    partnership: str
    recipient: Recipient
    reason: str
    clause: str
    stage: int
    tier: int
    immediate: bool
    occurred_at: AwareDatetime


class SetDeadline(_Out):
    effect: Literal["set_deadline"] = "set_deadline"
    escalation_id: str
    deadline: Deadline


class ClearDeadline(_Out):
    effect: Literal["clear_deadline"] = "clear_deadline"
    escalation_id: str
    deadline_id: str


Effect = Annotated[
    StageUpdate | Notification | SetDeadline | ClearDeadline, Field(discriminator="effect")
]
