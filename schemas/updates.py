"""What leaves the router: stage updates to case systems, notifications, deadline changes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.escalation import Deadline, Status
from schemas.people import AgencyId, Child, Role
from schemas.procedure import Recipient, RecipientAgency

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
    recipient_agency: RecipientAgency | None = Field(
        default=None,
        description=(
            "Whose role-holder the recipient is: 'acting' or 'raiser' (one agency, named by "
            "recipient_agency_id), 'each_party' (each party's own) or 'all_parties' (a role "
            "that concerns every party, e.g. the child's IRO). Null for the business office."
        ),
    )
    recipient_agency_id: AgencyId | None = Field(
        default=None,
        description=(
            "The one party this notification is for: only its case systems receive it. Null: "
            "every party's case systems receive it (the business office: the partnership's)."
        ),
    )
    reason: str
    clause: str
    stage: int
    tier: int
    immediate: bool
    occurred_at: AwareDatetime

    @model_validator(mode="after")
    def _one_agency_is_named(self) -> Notification:
        if self.recipient is Recipient.BUSINESS_OFFICE and self.recipient_agency is not None:
            raise ValueError("a notification to the business office names no recipient_agency")
        one = self.recipient_agency is not None and self.recipient_agency.one_agency
        if one != (self.recipient_agency_id is not None):
            raise ValueError(
                "recipient_agency_id names the agency exactly when recipient_agency is "
                "'acting' or 'raiser'"
            )
        return self


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
