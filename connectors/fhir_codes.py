"""The FHIR R4 vocabulary of the health connector: systems, codes and the status mapping.

Everything the hub defines lives under ``https://escalation-hub.org/fhir``; the NHS
identifier systems and HL7 terminology are used where they exist. The mapping tables here
are the ones documented in ``docs/connector-fhir.md``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from schemas.actions import DiscussionMethod
from schemas.envelope import EventType
from schemas.escalation import Status

__all__ = [
    "ACTION_CODES",
    "ACTION_STATUSES",
    "AGENCY_SYSTEM",
    "BASE",
    "CASE_REFERENCE_SYSTEM",
    "CONCERN_SYSTEM",
    "DEFAULT_ACTION",
    "ESCALATION_CODE",
    "ESCALATION_ID_SYSTEM",
    "ESCALATION_SYSTEM",
    "EVENT_SYSTEM",
    "EXT",
    "FLAG_SYSTEM",
    "HUB_STATUS_TO_TASK",
    "INPUT_SYSTEM",
    "METHOD_SYSTEM",
    "NHS_NUMBER_SYSTEM",
    "NOTIFICATION_ID_SYSTEM",
    "ODS_SYSTEM",
    "PARTICIPATION_MODE",
    "PARTICIPATION_MODE_METHODS",
    "PSEUDONYM_SYSTEM",
    "ROLE_SYSTEM",
    "STAGE_SYSTEM",
    "STATUS_REFUSALS",
    "TASK_INTENTS",
    "TASK_STATUSES",
    "TIME_UNIT_SYSTEM",
    "ActionCode",
    "Ext",
    "stage_code",
    "stage_of",
]

BASE: Final = "https://escalation-hub.org/fhir"

ESCALATION_SYSTEM: Final = f"{BASE}/CodeSystem/escalation"
ESCALATION_CODE: Final = "professional-disagreement"
STAGE_SYSTEM: Final = f"{BASE}/CodeSystem/escalation-stage"
EVENT_SYSTEM: Final = f"{BASE}/CodeSystem/escalation-event"
INPUT_SYSTEM: Final = f"{BASE}/CodeSystem/escalation-input"
ROLE_SYSTEM: Final = f"{BASE}/CodeSystem/role"
CONCERN_SYSTEM: Final = f"{BASE}/CodeSystem/concern-category"
FLAG_SYSTEM: Final = f"{BASE}/CodeSystem/flag"
METHOD_SYSTEM: Final = f"{BASE}/CodeSystem/discussion-method"
TIME_UNIT_SYSTEM: Final = f"{BASE}/CodeSystem/time-unit"

ESCALATION_ID_SYSTEM: Final = f"{BASE}/Id/escalation"
CASE_REFERENCE_SYSTEM: Final = f"{BASE}/Id/case-reference"
AGENCY_SYSTEM: Final = f"{BASE}/Id/agency"
NOTIFICATION_ID_SYSTEM: Final = f"{BASE}/Id/notification"
PSEUDONYM_SYSTEM: Final = f"{BASE}/Id/child-pseudonym"

NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
PARTICIPATION_MODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"

EXT: Final = f"{BASE}/StructureDefinition/"


class Ext:
    """Extension URLs of the hub's Task and Communication profile."""

    ACTOR_ROLE: Final = EXT + "actor-role"
    DISCUSSION_METHOD: Final = EXT + "discussion-method"
    ACTION_OWNER: Final = EXT + "action-owner"
    ACTION_DUE: Final = EXT + "action-due"
    ESCALATION_STATUS: Final = EXT + "escalation-status"
    TIER: Final = EXT + "tier"
    PARTNERSHIP: Final = EXT + "partnership"
    UPDATE_ID: Final = EXT + "update-id"
    NOTE_KIND: Final = EXT + "note-kind"


#: FHIR R4 TaskStatus and TaskIntent (required bindings; the models do not check them).
TASK_STATUSES: Final = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]
TASK_INTENTS: Final = [
    "unknown",
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
]


class ActionCode(StrEnum):
    """Task.businessStatus codes (ESCALATION_SYSTEM) naming the agency's action."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    PLAN_AGREED = "plan-agreed"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"
    FLAGS_CHANGED = "flags-changed"


ACTION_CODES: Final[dict[str, EventType]] = {
    "raised": EventType.RAISED,
    "acknowledged": EventType.ACKNOWLEDGED,
    "plan-agreed": EventType.PLAN_AGREED,
    "escalated": EventType.ESCALATED,
    "resolved": EventType.RESOLVED,
    "withdrawn": EventType.WITHDRAWN,
    "flags-changed": EventType.FLAGS_CHANGED,
}

#: The action a Task.status means when businessStatus names none.
DEFAULT_ACTION: Final[dict[str, EventType]] = {
    "requested": EventType.RAISED,
    "accepted": EventType.ACKNOWLEDGED,
    "completed": EventType.RESOLVED,
    "cancelled": EventType.WITHDRAWN,
}

#: The Task.status values each action may carry.
ACTION_STATUSES: Final[dict[EventType, tuple[str, ...]]] = {
    EventType.RAISED: ("requested", "received", "ready"),
    EventType.ACKNOWLEDGED: ("accepted", "received", "in-progress"),
    EventType.PLAN_AGREED: ("accepted", "in-progress"),
    EventType.ESCALATED: ("accepted", "in-progress"),
    EventType.RESOLVED: ("completed",),
    EventType.WITHDRAWN: ("cancelled",),
    EventType.FLAGS_CHANGED: ("requested", "received", "accepted", "ready", "in-progress"),
}

#: Why a Task.status without an action code is not an action, and what to send instead.
STATUS_REFUSALS: Final[dict[str, str]] = {
    "draft": "a draft Task is not yet an escalation; send it with status 'requested'",
    "in-progress": "an in-progress Task must say what happened in businessStatus "
    "('plan-agreed', 'escalated' or 'flags-changed')",
    "rejected": "the procedure has no refusal; record a discussion (Communication) or escalate",
    "on-hold": "the procedure cannot be paused; record a discussion or escalate",
    "failed": "the procedure has no failure; escalate to the next stage instead",
    "entered-in-error": "the hub keeps every record; withdraw with status 'cancelled' instead",
    "received": "name the action in businessStatus, e.g. 'raised' or 'acknowledged'",
    "ready": "name the action in businessStatus, e.g. 'raised'",
}

#: Hub status -> Task.status of outbound updates (the exact one rides in an extension).
HUB_STATUS_TO_TASK: Final[dict[Status, str]] = {
    Status.OPEN: "in-progress",
    Status.SEEING_THROUGH: "in-progress",
    Status.RESOLVED: "completed",
    Status.WITHDRAWN: "cancelled",
}

#: HL7 v3 ParticipationMode (Communication.medium) -> discussion method.
PARTICIPATION_MODE_METHODS: Final[dict[str, DiscussionMethod]] = {
    "FACE": DiscussionMethod.FACE_TO_FACE,
    "PHYSICAL": DiscussionMethod.FACE_TO_FACE,
    "PHONE": DiscussionMethod.TELEPHONE,
    "VIDEOCONF": DiscussionMethod.VIRTUAL_MEETING,
    "EMAILWRIT": DiscussionMethod.EMAIL,
}


def stage_code(stage: int) -> str:
    """The code of a stage in STAGE_SYSTEM, e.g. 'stage-2'."""
    return f"stage-{stage}"


def stage_of(code: str | None) -> int | None:
    """The stage number of a STAGE_SYSTEM code, or None if it is not one."""
    number = (code or "").removeprefix("stage-")
    return int(number) if number != code and number.isdigit() and len(number) < 3 else None
