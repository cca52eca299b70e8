"""The children's social care native format: workflow events, as large case systems emit them.

Modelled on the integration feeds of English children's case-management systems (workflow
steps with step types and statuses, case notes, person, worker and team ids). Field names are
the system's own (camelCase); validation errors name them, e.g. ``step.stepType``.
Vocabularies map the system's codes to the common schema's values.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from connectors.base import ConnectorConfig
from schemas.actions import DiscussionMethod, OutcomeKind
from schemas.common import AgencyKind, ConcernCategory, Flag
from schemas.people import Role

__all__ = [
    "CONCERNS",
    "EVENT_STATUS",
    "FLAGS",
    "METHODS",
    "NOTE_TYPES",
    "OUTCOMES",
    "PARTNER_KINDS",
    "ROLES",
    "STEP_ACTIONS",
    "WORKER_ROLES",
    "Ack",
    "PartnerNotification",
    "PartnerStageUpdate",
    "SocialCareConfig",
    "WorkflowEvent",
    "dump",
]

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=128)]
NativeId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
]

#: (eventType, step.stepType) -> the common action. Case notes and status changes need no step.
STEP_ACTIONS: Final[dict[tuple[str, str | None], str]] = {
    ("WorkflowStepStarted", "PROFESSIONAL_DISAGREEMENT"): "raised",
    ("WorkflowStepCancelled", "PROFESSIONAL_DISAGREEMENT"): "withdrawn",
    ("WorkflowStepCompleted", "PROFESSIONAL_DISAGREEMENT_ACKNOWLEDGEMENT"): "acknowledged",
    ("WorkflowStepCompleted", "PROFESSIONAL_DISAGREEMENT_ACTION_PLAN"): "plan_agreed",
    ("WorkflowStepCompleted", "PROFESSIONAL_DISAGREEMENT_ESCALATION"): "escalated",
    ("WorkflowStepCompleted", "PROFESSIONAL_DISAGREEMENT_RESOLUTION"): "resolved",
    ("CaseNoteAdded", None): "discussion_recorded",
    ("PersonStatusChanged", None): "flags_changed",
}
EVENT_STATUS: Final = {
    "WorkflowStepStarted": "STARTED",
    "WorkflowStepCompleted": "COMPLETED",
    "WorkflowStepCancelled": "CANCELLED",
}
NOTE_TYPES: Final = frozenset(
    {"PROFESSIONAL_DISCUSSION", "STRATEGY_DISCUSSION", "MULTI_AGENCY_MEETING", "MANAGER_DISCUSSION"}
)
WORKER_ROLES: Final[dict[str, Role]] = {
    "SOCIAL_WORKER": Role.PRACTITIONER,
    "PRACTITIONER": Role.PRACTITIONER,
    "TEAM_MANAGER": Role.LINE_MANAGER,
    "SERVICE_MANAGER": Role.SENIOR_MANAGER,
    "HEAD_OF_SERVICE": Role.SENIOR_MANAGER,
    "DIRECTOR": Role.DIRECTOR,
    "INDEPENDENT_REVIEWING_OFFICER": Role.INDEPENDENT_REVIEWING_OFFICER,
    "CP_CHAIR": Role.INDEPENDENT_CHAIR,
}
#: Role -> the system's worker role code (outbound tasks).
ROLES: Final[dict[Role, str]] = {
    Role.PRACTITIONER: "SOCIAL_WORKER",
    Role.LINE_MANAGER: "TEAM_MANAGER",
    Role.SENIOR_MANAGER: "SERVICE_MANAGER",
    Role.DIRECTOR: "DIRECTOR",
    Role.INDEPENDENT_REVIEWING_OFFICER: "INDEPENDENT_REVIEWING_OFFICER",
    Role.INDEPENDENT_CHAIR: "CP_CHAIR",
}
PARTNER_KINDS: Final = {
    "HEALTH": AgencyKind.HEALTH,
    "POLICE": AgencyKind.POLICE,
    "EDUCATION": AgencyKind.EDUCATION,
    "PROBATION": AgencyKind.PROBATION,
    "SOCIAL_CARE": AgencyKind.SOCIAL_CARE,
    "OTHER": AgencyKind.OTHER,
}
CONCERNS: Final = {category.name: category for category in ConcernCategory}
FLAGS: Final = {
    "CP_PLAN": Flag.CHILD_PROTECTION_PLAN,
    "CLA": Flag.LOOKED_AFTER,
    "IMMEDIATE_RISK": Flag.IMMEDIATE_RISK_OF_HARM,
    "LIFE_THREATENING": Flag.LIFE_THREATENING,
    "AGENCY_NOT_INVOLVED": Flag.AGENCY_NON_INVOLVEMENT,
    "AGED_16_17_LACKS_CAPACITY": Flag.AGED_16_17_LACKING_CAPACITY,
    "CROSS_BORDER": Flag.CROSS_BORDER,
}
METHODS: Final = {method.name: method for method in DiscussionMethod}
OUTCOMES: Final = {
    "AGREED": OutcomeKind.AGREED,
    "NATURAL_TURN_OF_EVENTS": OutcomeKind.NATURAL_TURN_OF_EVENTS,
    "MEDIATED": OutcomeKind.MEDIATED,
    "PANEL_DECISION": OutcomeKind.PANEL_DECISION,
    "PURSUED_WITHOUT_CONSENSUS": OutcomeKind.COURSE_PURSUED_WITHOUT_CONSENSUS,
}


class SocialCareConfig(ConnectorConfig):
    """The social care connector's settings: the system's short name, besides the common ones."""

    system: str = Field(
        default="lcs",
        pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description="The case system's short name: event sources and the child's local id.",
    )


class _Native(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Person(_Native):
    person_id: Ref
    nhs_number: str | None = None
    forename: str | None = Field(default=None, max_length=200)
    surname: str | None = Field(default=None, max_length=200)
    date_of_birth: date | None = None
    statuses: tuple[Code, ...] = ()
    statuses_started: tuple[Code, ...] = ()
    statuses_ended: tuple[Code, ...] = ()


class CaseNote(_Native):
    note_id: NativeId
    note_type: Code
    text: Text
    contact_method: Code | None = None
    contact_date: AwareDatetime | None = None


class Worker(_Native):
    worker_id: Ref
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Code


class Team(_Native):
    team_id: Ref
    name: str | None = None


class Partner(_Native):
    code: Code
    agency_type: Code
    case_reference: Ref | None = None


class Attempt(_Native):
    attempted_at: AwareDatetime
    method: Code
    summary: Text
    with_codes: tuple[Code, ...] = ()


class PlanAction(_Native):
    description: Text
    owner_code: Code | None = None
    due_date: date | None = None


class ActionPlan(_Native):
    summary: Text
    actions: tuple[PlanAction, ...] = ()
    agreed_by_codes: tuple[Code, ...] = ()


class Outcome(_Native):
    outcome_type: Code
    written_confirmation: bool
    agreed_by_codes: tuple[Code, ...] = ()
    outstanding_issues: Text | None = None
    learning_points: tuple[Text, ...] = ()


class Step(_Native):
    step_id: NativeId
    step_type: Code
    status: Code | None = None
    escalation_stage: int | None = Field(default=None, ge=1, le=10)
    within_stage_tier: bool = False
    attempts: tuple[Attempt, ...] = ()
    attempts_exhausted: bool = False
    action_plan: ActionPlan | None = None
    outcome: Outcome | None = None


class WorkflowEvent(_Native):
    """One event from the case system's integration feed."""

    schema_version: Literal["1.0"] = "1.0"
    event_id: NativeId
    event_type: Code
    occurred_at: AwareDatetime
    case_id: Ref
    hub_reference: NativeId | None = None
    step: Step | None = None
    person: Person | None = None
    case_note: CaseNote | None = None
    worker: Worker
    team: Team | None = None
    partner_agencies: tuple[Partner, ...] = Field(default=(), max_length=19)
    concerns: tuple[Code, ...] = ()


class StepView(_Native):
    step_type: Literal["PROFESSIONAL_DISAGREEMENT_STAGE"] = "PROFESSIONAL_DISAGREEMENT_STAGE"
    status: str
    escalation_stage: int
    stage_title: str
    management_tier: int
    due_date: AwareDatetime | None = None
    hub_event: str


class ProcedureView(_Native):
    id: str
    version: str
    clause: str


class NoteView(_Native):
    note_type: Literal["MULTI_AGENCY_UPDATE"] = "MULTI_AGENCY_UPDATE"
    text: str


class TaskView(_Native):
    assign_to_role: str
    text: str


class PersonView(_Native):
    nhs_number: str | None = None
    forename: str | None = None
    surname: str | None = None
    date_of_birth: date | None = None
    local_ids: dict[str, str] = Field(default_factory=dict)


class PartnerStageUpdate(_Native):
    """Outbound: the hub's stage update, as a workflow update under the recipient's case."""

    schema_version: Literal["1.0"] = "1.0"
    event_type: Literal["PartnerStageUpdate"] = "PartnerStageUpdate"
    message_id: str
    case_id: str | None = None
    hub_reference: str
    partnership: str
    sequence: int
    occurred_at: AwareDatetime
    step: StepView
    procedure: ProcedureView
    case_note: NoteView
    task: TaskView | None = None
    person: PersonView | None = None


class PartnerNotification(_Native):
    """Outbound: a notification for a named role (business office, IRO...)."""

    schema_version: Literal["1.0"] = "1.0"
    event_type: Literal["PartnerNotification"] = "PartnerNotification"
    message_id: str
    hub_reference: str
    partnership: str
    recipient_role: str
    reason: str
    clause: str
    escalation_stage: int
    management_tier: int
    immediate: bool
    occurred_at: AwareDatetime


class Ack(_Native):
    """The case system's answer to a delivered document."""

    status: Literal["ACCEPTED"] = "ACCEPTED"
    message_id: str | None = None
    case_id: str | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """A native model as JSON-ready data, by its native (camelCase) names, nulls left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
