"""The rulebook: one partnership's escalation procedure as data."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import Flag, TimeUnit
from schemas.people import Role

__all__ = [
    "Condition",
    "NotificationRule",
    "Output",
    "Procedure",
    "Reading",
    "Recipient",
    "RecipientAgency",
    "Stage",
    "Tiers",
    "Timescale",
    "Trigger",
]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timescale(_Rule):
    """An amount of time with an explicit unit and the clause that sets it."""

    amount: Annotated[int, Field(ge=0, le=366)]
    unit: TimeUnit
    measured_from: Literal["stage_entry", "raised"] = "stage_entry"
    clause: str | None = None
    quote: str | None = None
    note: str | None = None


class Recipient(StrEnum):
    """Who a notification is for, besides the parties themselves."""

    BUSINESS_OFFICE = "business_office"
    INDEPENDENT_REVIEWING_OFFICER = "independent_reviewing_officer"
    DESIGNATED_SAFEGUARDING_LEAD = "designated_safeguarding_lead"
    SAFEGUARDING_STANDARDS_MANAGER = "safeguarding_standards_manager"
    DESIGNATED_PROFESSIONAL = "designated_professional"
    LEGAL_ADVISER = "legal_adviser"


class RecipientAgency(StrEnum):
    """Which party's role-holder a notification to a role (not the business office) means.

    It decides whose case systems receive it: one agency for ``acting`` and ``raiser``, every
    party for ``each_party`` and ``all_parties``.
    """

    #: The role concerns every party (e.g. the child's IRO): every party's case system.
    ALL_PARTIES = "all_parties"
    #: Each party's own role-holder (e.g. each agency's DSL): every party's case system.
    EACH_PARTY = "each_party"
    #: The agency whose event fired the rule (it raised, escalated, set the flag...) alone.
    ACTING = "acting"
    #: The agency that raised the escalation alone.
    RAISER = "raiser"

    @property
    def one_agency(self) -> bool:
        return self in (RecipientAgency.ACTING, RecipientAgency.RAISER)


class Trigger(StrEnum):
    STAGE_ENTRY = "stage_entry"
    TIER_ENTRY = "tier_entry"
    FLAG_PRESENT = "flag_present"
    RESOLUTION = "resolution"
    DEADLINE_BREACHED = "deadline_breached"


class Output(StrEnum):
    """What a stage must produce."""

    ACKNOWLEDGEMENT = "acknowledgement"
    PLAN_OF_ACTION = "plan_of_action"
    WRITTEN_RECORD = "written_record"
    MEETING = "meeting"
    MONITORING_FORM = "monitoring_form"
    REFERRAL = "referral"
    MEDIATION_OFFER = "mediation_offer"


class Condition(_Rule):
    """When a rule applies: every listed part must hold (empty means always)."""

    flags_any: tuple[Flag, ...] = ()
    flags_all: tuple[Flag, ...] = ()
    flags_none: tuple[Flag, ...] = ()
    min_stage: int | None = None
    min_tier: int | None = None

    def holds(self, flags: frozenset[Flag], *, stage: int = 1, tier: int = 1) -> bool:
        if self.flags_any and not flags.intersection(self.flags_any):
            return False
        if not flags.issuperset(self.flags_all) or flags.intersection(self.flags_none):
            return False
        if self.min_stage is not None and stage < self.min_stage:
            return False
        return self.min_tier is None or tier >= self.min_tier


class NotificationRule(_Rule):
    recipient: Recipient
    recipient_agency: RecipientAgency = Field(
        default=RecipientAgency.ALL_PARTIES,
        description=(
            "Whose role-holder is meant, hence whose case systems receive the notification: "
            "'acting' (the agency whose event fired the rule) or 'raiser' (the agency that "
            "raised the escalation) alone; 'each_party' or 'all_parties': every party. Not "
            "for the business office, which is the partnership's own."
        ),
    )
    trigger: Trigger
    condition: Condition = Condition()
    immediate: bool = False
    reason: str
    clause: str
    quote: str | None = Field(default=None, description="Verbatim words of the seed text.")

    @model_validator(mode="after")
    def _addressee_exists(self) -> NotificationRule:
        if (
            self.recipient is Recipient.BUSINESS_OFFICE
            and self.recipient_agency is not RecipientAgency.ALL_PARTIES
        ):
            raise ValueError(
                "recipient_agency names a party's role-holder; the business office is the "
                "partnership's own: leave recipient_agency out"
            )
        if (
            self.trigger is Trigger.DEADLINE_BREACHED
            and self.recipient_agency is RecipientAgency.ACTING
        ):
            raise ValueError(
                "no agency acts when a deadline is breached: use recipient_agency 'raiser', "
                "'each_party' or 'all_parties'"
            )
        return self


class Tiers(_Rule):
    """A stage repeated through an organisation's management tiers, each with its timescale."""

    max_tiers: int | None = Field(default=None, ge=2)
    timescale: Timescale
    clause: str
    quote: str | None = None


class Stage(_Rule):
    number: Annotated[int, Field(ge=1, le=9)]
    title: str
    actors: tuple[Role, ...]
    timescale: Timescale | None
    produces: tuple[Output, ...] = ()
    notifications: tuple[NotificationRule, ...] = ()
    tiers: Tiers | None = None
    clause: str
    quote: str | None = None
    note: str | None = None


class Reading(_Rule):
    """An interpretive choice where the procedure text allows more than one reading."""

    topic: str
    choice: str
    clause: str
    quote: str | None = None


class Procedure(_Rule):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]+$")]
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    title: str
    partnership: str
    source: str = Field(description="The seed text this rulebook encodes.")
    effective_from: date
    stages: tuple[Stage, ...]
    total_maximum: Timescale | None = None
    flag_rules: tuple[NotificationRule, ...] = ()
    resolution_rules: tuple[NotificationRule, ...] = ()
    approaching_notice: Timescale = Field(
        default=Timescale(amount=24, unit=TimeUnit.HOURS),
        description="How long before a due instant 'deadline_approaching' fires (hours or days).",
    )
    evidence_required_clause: str | None = None
    shorter_timescale_clause: str | None = None
    recording_clause: str | None = None
    natural_resolution_seen_through: str | None = Field(
        default=None, description="Clause: a dispute resolved by events is still seen through."
    )
    closure_days: tuple[date, ...] = ()
    readings: tuple[Reading, ...] = ()

    @model_validator(mode="after")
    def _stages_are_numbered_from_one(self) -> Procedure:
        numbers = [s.number for s in self.stages]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"stages must be numbered 1..n in order, got {numbers}")
        return self

    def stage(self, number: int) -> Stage:
        return self.stages[number - 1]

    @property
    def last_stage(self) -> int:
        return len(self.stages)
