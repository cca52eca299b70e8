"""The native documents the demo's three case systems send, each in its own format.

Children's social care: JSON workflow events (``connectors.social_care``). Health: FHIR R4
Task versions (``connectors.fhir``). Police: records-management XML (``connectors.police``).
Each names the escalation only by the agency's own case reference; the hub finds it from the
references the social care system recorded when it raised the disagreement. Every person
and child here is fictional.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "CONFIGS",
    "PARTNERSHIP",
    "REFERENCES",
    "Document",
    "csc_escalated",
    "csc_plan",
    "csc_raised",
    "health_acknowledged",
    "health_escalated",
    "police_escalated",
    "police_resolved",
]

PARTNERSHIP: Final = "northamptonshire"
CSC, HEALTH, POLICE = "nct-csc", "nhft", "nhants-police"
#: Each agency's own case reference for the one escalation of the story.
REFERENCES: Final = {CSC: "CS-004512", HEALTH: "SG-2026-0051", POLICE: "34/12345/26"}
#: The connector config each agency registers: how its system names the other agencies.
CONFIGS: Final[dict[str, dict[str, Any]]] = {
    CSC: {
        "partnership": PARTNERSHIP,
        "system": "lcs",
        "organisations": {"RP1": HEALTH, "NORTHANTS-POLICE": POLICE},
    },
    HEALTH: {"partnership": PARTNERSHIP, "organisations": {"NCTCSC": CSC, "NHPOL": POLICE}},
    POLICE: {
        "partnership": PARTNERSHIP,
        "organisations": {"34": POLICE, "RP1": HEALTH, "NCT": CSC},
    },
}
FHIR: Final = "https://escalation-hub.org/fhir"
HEALTH_CASES: Final = "https://nhft.example.nhs.uk/Id/safeguarding-case"
POLICE_NS: Final = "urn:escalation-hub:police:v1"


@dataclass(frozen=True)
class Document:
    """One native document: what it is, its bytes and its media type."""

    label: str
    body: bytes
    media_type: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _csc(event_id: str, event_type: str, step: dict[str, Any], **more: Any) -> Document:
    document = {
        "schemaVersion": "1.0",
        "eventId": event_id,
        "eventType": event_type,
        "occurredAt": _now(),
        "caseId": REFERENCES[CSC],
        "step": step,
        **more,
    }
    label = f"{event_type} {step['stepType']}"
    return Document(label, json.dumps(document, indent=2).encode(), "application/json")


def csc_raised() -> Document:
    """The social worker starts a professional disagreement step on the child's case."""
    return _csc(
        "WFE-DEMO-0001",
        "WorkflowStepStarted",
        {"stepId": "WS-DEMO-1", "stepType": "PROFESSIONAL_DISAGREEMENT", "status": "STARTED"},
        person={
            "personId": "P1234567",
            "nhsNumber": "943 476 5919",
            "forename": "Sam",
            "surname": "Example",
            "dateOfBirth": "2015-06-01",
        },
        caseNote={
            "noteId": "CN-DEMO-1",
            "noteType": "PROFESSIONAL_DISAGREEMENT",
            "text": "Referral not considered to meet the threshold for assessment.",
        },
        worker={"workerId": "W-3310", "name": "Alex Morgan", "role": "SOCIAL_WORKER"},
        team={"teamId": "T-MASH-N", "name": "MASH North"},
        partnerAgencies=[
            {"code": "RP1", "agencyType": "HEALTH", "caseReference": REFERENCES[HEALTH]},
            {
                "code": "NORTHANTS-POLICE",
                "agencyType": "POLICE",
                "caseReference": REFERENCES[POLICE],
            },
        ],
        concerns=["THRESHOLDS", "NEED_FOR_ACTION"],
    )


def csc_plan() -> Document:
    """The practitioners agree a plan of action (stage 1)."""
    plan = {
        "summary": "Joint home visit and a strategy discussion.",
        "actions": [{"description": "Joint home visit"}],
        "agreedByCodes": ["RP1"],
    }
    return _csc(
        "WFE-DEMO-0003",
        "WorkflowStepCompleted",
        {
            "stepId": "WS-DEMO-3",
            "stepType": "PROFESSIONAL_DISAGREEMENT_ACTION_PLAN",
            "actionPlan": plan,
        },
        worker={"workerId": "W-3310", "name": "Alex Morgan", "role": "SOCIAL_WORKER"},
    )


def csc_escalated(to_stage: int) -> Document:
    """The service manager escalates, with the evidence that the stage was exhausted."""
    attempt = {
        "attemptedAt": _now(),
        "method": "TELEPHONE",
        "summary": f"Attempts at stage {to_stage - 1} exhausted without agreement.",
        "withCodes": ["RP1"],
    }
    return _csc(
        f"WFE-DEMO-{to_stage:04d}-ESC",
        "WorkflowStepCompleted",
        {
            "stepId": f"WS-DEMO-ESC-{to_stage}",
            "stepType": "PROFESSIONAL_DISAGREEMENT_ESCALATION",
            "escalationStage": to_stage,
            "attempts": [attempt],
            "attemptsExhausted": True,
        },
        worker={"workerId": "W-1002", "name": "Jordan Reeve", "role": "SERVICE_MANAGER"},
    )


def _task(version: int, status: str, codes: list[tuple[str, str]], note: dict[str, Any]) -> Any:
    return {
        "resourceType": "Task",
        "id": "esc-demo",
        "meta": {"versionId": str(version), "lastUpdated": _now()},
        "identifier": [{"use": "official", "system": HEALTH_CASES, "value": REFERENCES[HEALTH]}],
        "status": status,
        "intent": "order",
        "code": {
            "coding": [
                {"system": f"{FHIR}/CodeSystem/escalation", "code": "professional-disagreement"}
            ]
        },
        "businessStatus": {"coding": [{"system": s, "code": c} for s, c in codes]},
        "lastModified": _now(),
        "note": [note],
    }


def _fhir(label: str, task: Any) -> Document:
    return Document(label, json.dumps(task, indent=2).encode(), "application/fhir+json")


def health_acknowledged() -> Document:
    """The named nurse accepts the Task: the disagreement is acknowledged."""
    note = {"authorString": "Jo Nurse", "time": _now(), "text": "Received; will call today."}
    stage = [(f"{FHIR}/CodeSystem/escalation-stage", "stage-1")]
    return _fhir("Task accepted (v2)", _task(2, "accepted", stage, note))


def health_escalated(version: int, to_stage: int, *, name: str, role: str) -> Document:
    """A health manager escalates the Task to the next stage, with the attempts made."""
    codes = [
        (f"{FHIR}/CodeSystem/escalation", "escalated"),
        (f"{FHIR}/CodeSystem/escalation-stage", f"stage-{to_stage}"),
    ]
    author = {
        "display": name,
        "extension": [{"url": f"{FHIR}/StructureDefinition/actor-role", "valueCode": role}],
    }
    note = {"authorReference": author, "time": _now(), "text": "Escalating to the next stage."}
    task = _task(version, "in-progress", codes, note)
    attempt_type = {
        "coding": [{"system": f"{FHIR}/CodeSystem/escalation-input", "code": "attempt"}]
    }
    done_type = {"coding": [{"system": f"{FHIR}/CodeSystem/escalation-input", "code": "exhausted"}]}
    summary = f"Attempts at stage {to_stage - 1} exhausted without agreement."
    task["input"] = [
        {"type": attempt_type, "valueAnnotation": {"time": _now(), "text": summary}},
        {"type": done_type, "valueBoolean": True},
    ]
    return _fhir(f"Task escalated to stage-{to_stage} (v{version})", task)


def _police(record_id: str, action: str, officer: tuple[str, str, str], body: str) -> Document:
    collar, rank, name = officer
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<SafeguardingEscalationRecord xmlns="{POLICE_NS}" schemaVersion="1">
  <Force code="34"/>
  <OccurrenceReference>{escape(REFERENCES[POLICE])}</OccurrenceReference>
  <RecordId version="1">{record_id}</RecordId>
  <RecordedAt>{_now()}</RecordedAt>
  <Action>{action}</Action>
  <Officer collarNumber={quoteattr(collar)} rank={quoteattr(rank)} role="Director">{name}</Officer>
{body}
</SafeguardingEscalationRecord>
"""
    return Document(f"{action} record {record_id}", xml.encode(), "application/xml")


_CHIEF: Final = ("1001", "ACC", "Chris Lane")


def police_escalated(to_stage: int) -> Document:
    """The force's director-level lead refers the disagreement to the partnership."""
    at = _now()
    body = f"""  <Evidence exhausted="true">
    <Attempt at="{at}" method="Meeting" with="RP1">Directors met; no agreement.</Attempt>
  </Evidence>
  <EscalateTo stage="{to_stage}"/>
  <Narrative>Attempts at stage {to_stage - 1} exhausted without agreement.</Narrative>"""
    return _police("NICHE-SER-DEMO-7", "Escalated", _CHIEF, body)


def police_resolved() -> Document:
    """The partnership's mediation resolves it; the force records the agreed outcome."""
    body = """  <Outcome kind="Mediated" writtenConfirmation="true">
    <AgreedBy>
      <Agency code="34"/>
      <Agency code="RP1"/>
      <Agency code="NCT"/>
    </AgreedBy>
    <LearningPoint>Share threshold rationale in writing at stage 1.</LearningPoint>
  </Outcome>
  <Narrative>Mediation agreed an assessment within 10 days.</Narrative>"""
    return _police("NICHE-SER-DEMO-8", "Resolved", _CHIEF, body)
