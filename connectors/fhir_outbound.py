"""Common-schema documents -> FHIR R4: a stage update as a Task, a notification as a Communication.

A stage update is the escalation Task as the hub knows it now: one Task per escalation
(``id`` = the escalation id), ``meta.versionId`` = the update's sequence, so the case
system can keep each version as the stage history. The child's identifiers appear only
when the update carries them (the opening update), as a contained Patient.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.communication import Communication, CommunicationPayload
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task, TaskRestriction

from connectors.fhir_codes import (
    AGENCY_SYSTEM,
    CASE_REFERENCE_SYSTEM,
    ESCALATION_CODE,
    ESCALATION_ID_SYSTEM,
    ESCALATION_SYSTEM,
    EVENT_SYSTEM,
    HUB_STATUS_TO_TASK,
    NHS_NUMBER_SYSTEM,
    NOTIFICATION_ID_SYSTEM,
    PSEUDONYM_SYSTEM,
    ROLE_SYSTEM,
    STAGE_SYSTEM,
    Ext,
    stage_code,
)
from schemas.people import Child
from schemas.updates import Notification, StageUpdate

__all__ = [
    "LOCAL_ID_PREFIX",
    "PROCEDURE_PREFIX",
    "notification_communication",
    "stage_update_task",
    "title",
]

PROCEDURE_PREFIX: Final = "urn:escalation-hub:procedure:"
LOCAL_ID_PREFIX: Final = "urn:escalation-hub:local-id:"
_FHIR_ID: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def title(code: str) -> str:
    """A code as words for a display, e.g. 'line_manager' -> 'Line manager'."""
    return code.replace("_", " ").replace("-", " ").capitalize()


def stage_update_task(update: StageUpdate) -> Task:
    """The escalation Task as it stands after this update, for one recipient."""
    prompt = update.prompt
    contained: list[Resource] = [_patient(update.child)] if update.child is not None else []
    if prompt is not None:
        contained.append(_role("prompted", prompt.role.value))
    return Task(
        id=_fhir_id(update.escalation_id),
        meta=Meta(versionId=str(update.sequence), lastUpdated=update.occurred_at),
        extension=[
            Extension(url=Ext.UPDATE_ID, valueString=update.update_id),
            Extension(url=Ext.PARTNERSHIP, valueString=update.partnership),
            Extension(url=Ext.ESCALATION_STATUS, valueCode=update.status.value),
            Extension(url=Ext.TIER, valueInteger=update.tier),
        ],
        contained=contained or None,
        identifier=_identifiers(update),
        instantiatesUri=f"{PROCEDURE_PREFIX}{update.procedure_id}:{update.procedure_version}",
        status=HUB_STATUS_TO_TASK[update.status],
        statusReason=_concept(EVENT_SYSTEM, update.event),
        businessStatus=_stage(update),
        intent="order",
        code=_concept(ESCALATION_SYSTEM, ESCALATION_CODE),
        description=update.summary,
        for_fhir=Reference(reference="#child") if update.child is not None else None,
        lastModified=update.occurred_at,
        owner=Reference(reference="#prompted", display=title(prompt.role.value))
        if prompt
        else None,
        restriction=_restriction(update),
        note=_notes(update),
    )


def _stage(update: StageUpdate) -> CodeableConcept:
    """Task.businessStatus: the stage as a coding (its title as display) and as text."""
    code = stage_code(update.stage)
    return CodeableConcept(
        coding=[Coding(system=STAGE_SYSTEM, code=code, display=update.stage_title)],
        text=f"Stage {update.stage}: {update.stage_title}",
    )


def _restriction(update: StageUpdate) -> TaskRestriction:
    """Task.restriction: the due date, and the recipient agency the update is for."""
    agency = Identifier(system=AGENCY_SYSTEM, value=update.recipient_agency_id)
    return TaskRestriction(
        period=Period(end=update.due) if update.due is not None else None,
        recipient=[Reference(identifier=agency)],
    )


def notification_communication(note: Notification) -> Communication:
    """A message to the named recipient role (the business office, an IRO...)."""
    return Communication(
        contained=[_role("recipient", note.recipient.value)],
        extension=[
            Extension(url=Ext.PARTNERSHIP, valueString=note.partnership),
            Extension(url=Ext.TIER, valueInteger=note.tier),
        ],
        identifier=[Identifier(system=NOTIFICATION_ID_SYSTEM, value=note.notification_id)],
        status="completed",
        category=[_concept(ESCALATION_SYSTEM, "notification")],
        priority="urgent" if note.immediate else "routine",
        about=[
            Reference(
                type="Task",
                identifier=Identifier(system=ESCALATION_ID_SYSTEM, value=note.escalation_id),
            )
        ],
        sent=note.occurred_at,
        recipient=[Reference(reference="#recipient", display=title(note.recipient.value))],
        reasonCode=[
            CodeableConcept(
                coding=[Coding(system=STAGE_SYSTEM, code=stage_code(note.stage))],
                text=f"Stage {note.stage}",
            )
        ],
        payload=[CommunicationPayload(contentString=note.reason)],
        note=[_note("clause", note.clause)],
    )


def _identifiers(update: StageUpdate) -> list[Identifier]:
    found = [Identifier(use="secondary", system=ESCALATION_ID_SYSTEM, value=update.escalation_id)]
    if update.recipient_case_reference is not None:
        own = Identifier(
            use="official", system=CASE_REFERENCE_SYSTEM, value=update.recipient_case_reference
        )
        found.insert(0, own)
    return found


def _notes(update: StageUpdate) -> list[Annotation]:
    notes = [
        _note("summary", update.summary, update),
        _note("clause", update.clause, update),
    ]
    if update.prompt is not None:
        notes.append(_note("prompt", update.prompt.text, update))
    return notes


def _note(kind: str, text: str, update: StageUpdate | None = None) -> Annotation:
    return Annotation(
        extension=[Extension(url=Ext.NOTE_KIND, valueCode=kind)],
        authorString="escalation-hub",
        time=update.occurred_at if update is not None else None,
        text=text,
    )


def _concept(system: str, code: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=system, code=code, display=title(code))])


def _role(local_id: str, code: str) -> PractitionerRole:
    return PractitionerRole(id=local_id, code=[_concept(ROLE_SYSTEM, code)])


def _fhir_id(value: str) -> str | None:
    return value if _FHIR_ID.match(value) else None


def _patient(child: Child) -> Patient:
    ids = child.identifiers
    found: list[Identifier] = []
    name: list[HumanName] | None = None
    if ids is not None and ids.nhs_number is not None:
        found.append(Identifier(system=NHS_NUMBER_SYSTEM, value=ids.nhs_number.replace(" ", "")))
    if ids is not None:
        for system, value in sorted(ids.local_ids.items()):
            uri = system if ":" in system else LOCAL_ID_PREFIX + quote(system, safe="")
            found.append(Identifier(system=uri, value=value))
        if ids.given_name or ids.family_name:
            given = [ids.given_name] if ids.given_name else None
            name = [HumanName(given=given, family=ids.family_name)]
    found += [Identifier(system=PSEUDONYM_SYSTEM, value=p) for p in child.pseudonyms]
    return Patient(
        id="child",
        identifier=found or None,
        name=name,
        birthDate=ids.date_of_birth if ids is not None else None,
    )
