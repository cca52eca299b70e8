"""Who takes part: agencies, the people acting for them, and the child."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from schemas.common import AgencyKind

__all__ = [
    "SENSITIVE",
    "Actor",
    "AgencyId",
    "Child",
    "ChildIdentifiers",
    "Narrative",
    "Party",
    "Role",
]

#: Marker on fields that are encrypted at rest and never logged.
SENSITIVE: JsonDict = {"x-sensitive": True}

AgencyId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$"),
    Field(description="The hub's id of an agency: lowercase letters, digits, '-' and '_'."),
]
Narrative = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20_000, strip_whitespace=True),
    Field(json_schema_extra=SENSITIVE, description="Free text; encrypted at rest, never logged."),
]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    """The roles a procedure names as acting at a stage or receiving a notification."""

    PRACTITIONER = "practitioner"
    LINE_MANAGER = "line_manager"
    SENIOR_MANAGER = "senior_manager"
    DIRECTOR = "director"
    DESIGNATED_SAFEGUARDING_LEAD = "designated_safeguarding_lead"
    NAMED_PROFESSIONAL = "named_professional"
    PARTNERSHIP_REPRESENTATIVE = "partnership_representative"
    BUSINESS_OFFICE = "business_office"
    STRATEGIC_LEAD = "strategic_lead"
    RESOLUTION_PANEL = "resolution_panel"
    INDEPENDENT_REVIEWING_OFFICER = "independent_reviewing_officer"
    INDEPENDENT_CHAIR = "independent_chair"


class Actor(Frozen):
    """A person acting for an agency."""

    agency_id: AgencyId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role


class Party(Frozen):
    """An agency taking part in the disagreement, with its own case reference."""

    agency_id: AgencyId
    kind: AgencyKind
    case_reference: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    contact: Actor | None = None


class ChildIdentifiers(Frozen):
    """Who the child is. Encrypted at rest; only ever in clear inside a recipient's JWE."""

    nhs_number: Annotated[str, StringConstraints(pattern=r"^\d{3} ?\d{3} ?\d{4}$")] | None = Field(
        default=None, json_schema_extra=SENSITIVE
    )
    local_ids: dict[str, str] = Field(default_factory=dict, json_schema_extra=SENSITIVE)
    given_name: str | None = Field(default=None, max_length=200, json_schema_extra=SENSITIVE)
    family_name: str | None = Field(default=None, max_length=200, json_schema_extra=SENSITIVE)
    date_of_birth: date | None = Field(default=None, json_schema_extra=SENSITIVE)


class Child(Frozen):
    """The child: identifiers kept apart from the keyed pseudonyms used for matching."""

    identifiers: ChildIdentifiers | None = None
    pseudonyms: tuple[str, ...] = Field(
        default=(), description="Keyed HMAC pseudonyms set by the hub; never the identifier."
    )
