"""Hub facts: what the hub itself decided or observed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.people import AgencyId
from schemas.procedure import Recipient

__all__ = [
    "DeadlineData",
    "DeadlineKind",
    "PartnershipNotifiedData",
    "RejectedData",
    "StageChangedData",
]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadlineKind(StrEnum):
    STAGE = "stage"
    TIER = "tier"
    TOTAL = "total"
    MEDIATION_OFFER = "mediation_offer"


class StageChangedData(_Data):
    from_stage: int | None
    from_tier: int | None
    to_stage: int
    to_tier: int
    stage_title: str
    due: AwareDatetime | None
    clause: str


class DeadlineData(_Data):
    """Fed by the scheduler; the router decides what the deadline means."""

    deadline_id: str
    kind: DeadlineKind
    stage: int
    tier: int
    due: AwareDatetime


class PartnershipNotifiedData(_Data):
    recipient: Recipient
    recipient_agency_id: AgencyId | None = Field(
        default=None, description="The one party notified; null: every party (or the office)."
    )
    reason: str
    clause: str
    stage: int
    immediate: bool


class RejectedData(_Data):
    rejected_event_id: str
    rejected_type: str
    reason: str
    clause: str | None = None
    field: str | None = None
