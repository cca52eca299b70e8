"""FHIR R4 -> common-schema documents: reading back what the hub sent (``parse_outbound``).

For simulated case systems and the conformance round trip: a Task rendered from a stage
update, or a Communication rendered from a notification, becomes that document again.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar
from urllib.parse import unquote

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from connectors.base import OutboundDocument, TranslationError
from connectors.fhir_codes import (
    CASE_REFERENCE_SYSTEM,
    ESCALATION_ID_SYSTEM,
    NHS_NUMBER_SYSTEM,
    NOTIFICATION_ID_SYSTEM,
    PSEUDONYM_SYSTEM,
    ROLE_SYSTEM,
    Ext,
    stage_of,
)
from connectors.fhir_outbound import LOCAL_ID_PREFIX, PROCEDURE_PREFIX
from connectors.fhir_parse import common_schema, parse_document
from schemas.people import Child, ChildIdentifiers
from schemas.updates import Notification, StageUpdate

__all__ = ["parse_outbound"]

T = TypeVar("T")


def parse_outbound(body: bytes) -> OutboundDocument:
    """A Task or Communication the hub rendered, as its StageUpdate or Notification."""
    located = parse_document(body, "application/fhir+json")
    if len(located) != 1:
        raise TranslationError(
            "is not one resource", path="body", expected="one Task or Communication"
        )
    resource = located[0].resource
    with common_schema(located[0].path):
        if isinstance(resource, Task):
            return _stage_update(resource)
        assert isinstance(resource, Communication)
        return _notification(resource)


def _need(value: T | None, path: str, expected: str) -> T:
    if value is None:
        raise TranslationError("is missing from a hub update", path=path, expected=expected)
    return value


def _extension(resource: Task | Communication, url: str) -> Extension:
    found = next((e for e in resource.extension or [] if e.url == url), None)
    return _need(found, f"{resource.get_resource_type()}.extension", f"an extension {url}")


def _first(items: list[T] | None) -> T | None:
    return items[0] if items else None


def _identifier(idents: list[Identifier] | None, system: str) -> str | None:
    return next((i.value for i in idents or [] if i.system == system), None)


def _note(resource: Task | Communication, kind: str) -> str | None:
    for note in resource.note or []:
        if any(e.url == Ext.NOTE_KIND and e.valueCode == kind for e in note.extension or []):
            return note.text
    return None


def _contained(resource: Resource, local_id: str) -> Resource | None:
    return next((r for r in getattr(resource, "contained", None) or [] if r.id == local_id), None)


def _role_code(resource: Resource, local_id: str) -> str | None:
    role = _contained(resource, local_id)
    if not isinstance(role, PractitionerRole):
        return None
    codings = [c for concept in role.code or [] for c in concept.coding or []]
    return next((c.code for c in codings if c.system == ROLE_SYSTEM), None)


def _stage_update(task: Task) -> StageUpdate:
    stage_coding = _first(task.businessStatus.coding) if task.businessStatus else None
    procedure = _need(task.instantiatesUri, "Task.instantiatesUri", "the procedure")
    procedure_id, _, version = procedure.removeprefix(PROCEDURE_PREFIX).partition(":")
    restriction = task.restriction
    recipients = (restriction.recipient or []) if restriction is not None else []
    period = restriction.period if restriction is not None else None
    role = _role_code(task, "prompted")
    event = _first(task.statusReason.coding) if task.statusReason is not None else None
    fields: dict[str, Any] = {
        "update_id": _extension(task, Ext.UPDATE_ID).valueString,
        "escalation_id": _identifier(task.identifier, ESCALATION_ID_SYSTEM),
        "sequence": int(_need(task.meta, "Task.meta", "versionId").versionId or "0"),
        "partnership": _extension(task, Ext.PARTNERSHIP).valueString,
        "procedure_id": procedure_id,
        "procedure_version": version,
        "recipient_agency_id": recipients[0].identifier.value
        if recipients and recipients[0].identifier
        else None,
        "recipient_case_reference": _identifier(task.identifier, CASE_REFERENCE_SYSTEM),
        "event": event.code if event is not None else None,
        "occurred_at": task.lastModified,
        "status": _extension(task, Ext.ESCALATION_STATUS).valueCode,
        "stage": stage_of(stage_coding.code) if stage_coding is not None else None,
        "stage_title": stage_coding.display if stage_coding is not None else None,
        "tier": _extension(task, Ext.TIER).valueInteger,
        "due": period.end if period is not None else None,
        "clause": _note(task, "clause"),
        "summary": task.description,
        "prompt": {"role": role, "text": _note(task, "prompt")} if role is not None else None,
        "child": _child(task),
    }
    return StageUpdate.model_validate(fields)


def _child(task: Task) -> Child | None:
    patient = _contained(task, "child")
    if not isinstance(patient, Patient):
        return None
    nhs, local, pseudonyms = None, {}, []
    for ident in patient.identifier or []:
        system, value = ident.system or "", ident.value or ""
        if system == NHS_NUMBER_SYSTEM:
            nhs = value
        elif system == PSEUDONYM_SYSTEM:
            pseudonyms.append(value)
        else:
            local[unquote(system.removeprefix(LOCAL_ID_PREFIX))] = value
    name = patient.name[0] if patient.name else None
    born = patient.birthDate if isinstance(patient.birthDate, date) else None
    has_ids = nhs or local or name or born
    identifiers = ChildIdentifiers(
        nhs_number=nhs,
        local_ids=local,
        given_name=name.given[0] if name is not None and name.given else None,
        family_name=name.family if name is not None else None,
        date_of_birth=born,
    )
    return Child(identifiers=identifiers if has_ids else None, pseudonyms=tuple(pseudonyms))


def _notification(comm: Communication) -> Notification:
    about, reason, payload = _first(comm.about), _first(comm.reasonCode), _first(comm.payload)
    stage_coding = _first(reason.coding) if reason is not None else None
    fields: dict[str, Any] = {
        "notification_id": _identifier(comm.identifier, NOTIFICATION_ID_SYSTEM),
        "escalation_id": about.identifier.value if about and about.identifier else None,
        "partnership": _extension(comm, Ext.PARTNERSHIP).valueString,
        "recipient": _role_code(comm, "recipient"),
        "reason": payload.contentString if payload is not None else None,
        "clause": _note(comm, "clause"),
        "stage": stage_of(stage_coding.code) if stage_coding is not None else None,
        "tier": _extension(comm, Ext.TIER).valueInteger,
        "immediate": comm.priority == "urgent",
        "occurred_at": comm.sent,
    }
    return Notification.model_validate(fields)
