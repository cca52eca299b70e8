"""Agency actions: what a party's case system tells the hub happened."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.common import ConcernCategory, Flag
from schemas.errors import located
from schemas.people import Actor, AgencyId, Child, Narrative, Party
from schemas.procedure import Timescale

__all__ = [
    "AcknowledgedData",
    "Attempt",
    "DiscussionMethod",
    "DiscussionRecordedData",
    "EscalatedData",
    "Evidence",
    "FlagsChangedData",
    "Outcome",
    "OutcomeKind",
    "Plan",
    "PlanAction",
    "PlanAgreedData",
    "RaisedData",
    "ResolvedData",
    "WithdrawnData",
]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiscussionMethod(StrEnum):
    FACE_TO_FACE = "face_to_face"
    TELEPHONE = "telephone"
    VIRTUAL_MEETING = "virtual_meeting"
    MEETING = "meeting"
    EMAIL = "email"
    OTHER = "other"


class RaisedData(_Data):
    """A professional raises a disagreement with another agency (stage 1 opens)."""

    partnership: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]+$")]
    raised_by: Actor
    parties: Annotated[tuple[Party, ...], Field(min_length=2, max_length=20)]
    child: Child
    concern_categories: Annotated[tuple[ConcernCategory, ...], Field(min_length=1)]
    flags: tuple[Flag, ...] = ()
    summary: Narrative
    agreed_timescale: Timescale | None = Field(
        default=None, description="A shorter timescale the agencies agreed to protect the child."
    )

    @model_validator(mode="after")
    def _raiser_is_a_party_and_parties_distinct(self) -> RaisedData:
        ids = [p.agency_id for p in self.parties]
        repeated = next((i for i, agency in enumerate(ids) if agency in ids[:i]), None)
        if repeated is not None:
            raise located(
                "RaisedData",
                ("parties", repeated, "agency_id"),
                "party_repeated",
                "each agency may appear only once in parties",
                expected="an agency not already listed in parties: list each agency once",
            )
        if self.raised_by.agency_id not in ids:
            raise located(
                "RaisedData",
                ("raised_by", "agency_id"),
                "raiser_not_a_party",
                "raised_by.agency_id must be one of the parties",
                expected="the agency_id of one of the parties: the raising agency is a party",
            )
        return self


class AcknowledgedData(_Data):
    by: Actor
    note: Narrative | None = None


class PlanAction(_Data):
    description: Narrative
    owner_agency: AgencyId
    due: date | None = None


class Plan(_Data):
    summary: Narrative
    actions: tuple[PlanAction, ...] = ()
    agreed_by: Annotated[tuple[AgencyId, ...], Field(min_length=1)]
    agreed_timescale: Timescale | None = Field(
        default=None, description="A shorter timescale for this stage, agreed by the agencies."
    )


class PlanAgreedData(_Data):
    by: Actor
    plan: Plan


class DiscussionRecordedData(_Data):
    by: Actor
    held_at: AwareDatetime
    method: DiscussionMethod
    participants: tuple[Actor, ...] = ()
    summary: Narrative
    decisions: tuple[Narrative, ...] = ()


class Attempt(_Data):
    """One attempt to resolve the disagreement at the current stage."""

    at: AwareDatetime
    method: DiscussionMethod
    summary: Narrative
    with_agencies: tuple[AgencyId, ...] = ()


class Evidence(_Data):
    """Evidence that attempts at the previous stage took place and were exhausted."""

    attempts: tuple[Attempt, ...] = ()
    exhausted: bool = False
    reason: Narrative | None = None


class EscalatedData(_Data):
    by: Actor
    evidence: Evidence
    to_stage: int | None = Field(
        default=None, description="The stage asked for; must be the next one. Omit for 'next'."
    )
    within_stage_tier: bool = Field(
        default=False,
        description="Move to the next management tier of the current stage, where it repeats.",
    )


class OutcomeKind(StrEnum):
    AGREED = "agreed"
    NATURAL_TURN_OF_EVENTS = "natural_turn_of_events"
    MEDIATED = "mediated"
    PANEL_DECISION = "panel_decision"
    COURSE_PURSUED_WITHOUT_CONSENSUS = "course_pursued_without_consensus"


class Outcome(_Data):
    kind: OutcomeKind
    summary: Narrative
    agreed_by: tuple[AgencyId, ...] = ()
    written_confirmation: bool = Field(
        description="The parties confirmed the agreed outcome in writing."
    )
    outstanding_issues: Narrative | None = None
    how_outstanding_pursued: Narrative | None = None
    learning_points: tuple[Narrative, ...] = ()


class ResolvedData(_Data):
    by: Actor
    outcome: Outcome


class WithdrawnData(_Data):
    by: Actor
    reason: Narrative


class FlagsChangedData(_Data):
    """A fact about the child changed during the dispute (e.g. a child protection plan)."""

    by: Actor
    set: tuple[Flag, ...] = ()
    cleared: tuple[Flag, ...] = ()
