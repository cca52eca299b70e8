"""Stage updates and notifications -> police XML, and back: the connector's outbound half.

Documents are built with ``xml.etree.ElementTree`` (the library escapes text and attributes);
characters XML 1.0 cannot carry become U+FFFD. Instants are written in Europe/London time
with their UTC offset. ``parse_outbound`` reads a document back (simulators, round trips)
with the same defused parser as inbound records.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any, Final
from xml.etree.ElementTree import Element, SubElement, indent, tostring
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from connectors.base import OutboundDocument, Rendered
from connectors.police_xml import (
    NAMESPACE,
    SCHEMA_VERSION,
    Node,
    parse_document,
    pascal,
    vocabulary,
)
from schemas.escalation import Status
from schemas.people import Child, Role
from schemas.procedure import Recipient
from schemas.updates import Notification, StageUpdate

__all__ = [
    "MEDIA_TYPE",
    "NOTIFICATION",
    "STAGE_UPDATE",
    "event_name",
    "instant",
    "parse_outbound",
    "render",
    "serialise",
]

MEDIA_TYPE: Final = "application/xml"
STAGE_UPDATE: Final = "SafeguardingStageUpdate"
NOTIFICATION: Final = "SafeguardingNotification"
_STATUSES: Final = vocabulary(Status)
_ROLES: Final = vocabulary(Role)
_RECIPIENTS: Final = vocabulary(Recipient)
_UPDATE: Final = (
    "UpdateId",
    "EscalationId",
    "Sequence",
    "Partnership",
    "Procedure",
    "RecipientAgency",
    "OccurrenceReference",
    "Event",
    "OccurredAt",
    "Status",
    "Stage",
    "Due",
    "Clause",
    "Summary",
    "Prompt",
    "Subject",
)
_NOTICE: Final = (
    "NotificationId",
    "EscalationId",
    "Partnership",
    "Recipient",
    "Reason",
    "Clause",
    "Stage",
    "Immediate",
    "OccurredAt",
)
_SUBJECT: Final = ("PNCId", "NHSNumber", "Forename", "Surname", "DOB", "LocalId", "Pseudonym")
_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@cache
def _london() -> ZoneInfo:
    return ZoneInfo("Europe/London")


def render(document: OutboundDocument) -> Rendered:
    """A stage update or notification as a police XML document (UTF-8, indented)."""
    if isinstance(document, StageUpdate):
        root = _stage_update(document)
    else:
        root = _root(NOTIFICATION)
        _add(root, "NotificationId", document.notification_id)
        _add(root, "EscalationId", document.escalation_id)
        _add(root, "Partnership", document.partnership)
        _add(root, "Recipient", pascal(document.recipient.value))
        _add(root, "Reason", document.reason)
        _add(root, "Clause", document.clause)
        _add(root, "Stage", None, number=str(document.stage), tier=str(document.tier))
        _add(root, "Immediate", "true" if document.immediate else "false")
        _add(root, "OccurredAt", instant(document.occurred_at))
    indent(root)
    return serialise(root)


def serialise(root: Element) -> Rendered:
    """An element tree as a UTF-8 XML document with its declaration."""
    body = _DECLARATION + tostring(root, encoding="unicode").encode("utf-8")
    return Rendered(body=body, media_type=MEDIA_TYPE)


def _stage_update(update: StageUpdate) -> Element:
    root = _root(STAGE_UPDATE)
    _add(root, "UpdateId", update.update_id)
    _add(root, "EscalationId", update.escalation_id)
    _add(root, "Sequence", str(update.sequence))
    _add(root, "Partnership", update.partnership)
    _add(root, "Procedure", None, id=update.procedure_id, version=update.procedure_version)
    _add(root, "RecipientAgency", update.recipient_agency_id)
    if update.recipient_case_reference is not None:
        _add(root, "OccurrenceReference", update.recipient_case_reference)
    _add(root, "Event", event_name(update.event))
    _add(root, "OccurredAt", instant(update.occurred_at))
    _add(root, "Status", pascal(update.status.value))
    _add(root, "Stage", update.stage_title, number=str(update.stage), tier=str(update.tier))
    if update.due is not None:
        _add(root, "Due", instant(update.due))
    _add(root, "Clause", update.clause)
    _add(root, "Summary", update.summary)
    if update.prompt is not None:
        _add(root, "Prompt", update.prompt.text, role=pascal(update.prompt.role.value))
    if update.child is not None:
        _subject(root, update.child)
    return root


def _subject(root: Element, child: Child) -> None:
    """The child, only as the update carries it: identifiers first, then pseudonyms."""
    subject = _add(root, "Subject", None)
    ids = child.identifiers
    if ids is not None:
        if "pnc" in ids.local_ids:
            _add(subject, "PNCId", ids.local_ids["pnc"])
        dob = None if ids.date_of_birth is None else ids.date_of_birth.isoformat()
        for name, value in (
            ("NHSNumber", ids.nhs_number),
            ("Forename", ids.given_name),
            ("Surname", ids.family_name),
            ("DOB", dob),
        ):
            if value is not None:
                _add(subject, name, value)
        for scheme, value in sorted(ids.local_ids.items()):
            if scheme != "pnc":
                _add(subject, "LocalId", value, scheme=scheme)
    for pseudonym in child.pseudonyms:
        _add(subject, "Pseudonym", pseudonym)


def instant(value: datetime) -> str:
    """An instant in Europe/London time with its offset, e.g. ``2026-06-01T10:00:00+01:00``."""
    return value.astimezone(_london()).isoformat()


def event_name(event: str) -> str:
    """``stage_changed`` -> ``StageChanged``; anything else is written as it is."""
    return pascal(event) if re.fullmatch(r"[a-z]+(_[a-z]+)*", event) else event


def _root(name: str) -> Element:
    """The document element; its children are unqualified, so they take its default namespace."""
    return Element(name, {"xmlns": NAMESPACE, "schemaVersion": SCHEMA_VERSION})


def _add(parent: Element, name: str, text: str | None, **attributes: str) -> Element:
    element = SubElement(parent, name, {k: _xml(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _xml(text)
    return element


def _xml(text: str) -> str:
    """Text XML 1.0 can carry: control characters and lone surrogates become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def event_from_name(name: str) -> str:
    """``StageChanged`` -> ``stage_changed``: the inverse of ``event_name``."""
    if not re.fullmatch(r"([A-Z][a-z]+)+", name):
        return name
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def parse_outbound(body: bytes) -> StageUpdate | Notification:
    """A document ``render`` wrote -> the stage update or notification (for receivers, tests)."""
    root = parse_document(body, roots=(STAGE_UPDATE, NOTIFICATION))
    try:
        if root.name == STAGE_UPDATE:
            return StageUpdate.model_validate(_read_update(root))
        return Notification.model_validate(_read_notification(root))
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise root.error(
            f"does not fit the common schema at '{where}': {error['msg']}",
            "a document as the hub renders it (see docs/connector-police.md)",
        ) from None


def _read_update(root: Node) -> dict[str, Any]:
    root.only(_UPDATE, ("schemaVersion",))
    procedure, stage = root.must("Procedure"), root.must("Stage")
    procedure.only((), ("id", "version"))
    stage.only((), ("number", "tier"))
    due, prompt, subject = root.child("Due"), root.child("Prompt"), root.child("Subject")
    sequence = root.must("Sequence")
    return {
        "update_id": root.value("UpdateId"),
        "escalation_id": root.value("EscalationId"),
        "sequence": sequence.integer(sequence.text(), low=0, high=2**62),
        "partnership": root.value("Partnership"),
        "procedure_id": procedure.need("id"),
        "procedure_version": procedure.need("version"),
        "recipient_agency_id": root.value("RecipientAgency"),
        "recipient_case_reference": root.maybe_value("OccurrenceReference"),
        "event": event_from_name(root.value("Event")),
        "occurred_at": _instant(root.must("OccurredAt")),
        "status": root.must("Status").enum(root.value("Status"), _STATUSES),
        "stage": stage.integer(stage.need("number"), low=0, high=99, attr="number"),
        "stage_title": stage.text(),
        "tier": stage.integer(stage.need("tier"), low=0, high=99, attr="tier"),
        "due": None if due is None else _instant(due),
        "clause": root.value("Clause"),
        "summary": root.value("Summary"),
        "prompt": None if prompt is None else _prompt(prompt),
        "child": None if subject is None else _child(subject),
    }


def _read_notification(root: Node) -> dict[str, Any]:
    root.only(_NOTICE, ("schemaVersion",))
    stage, immediate = root.must("Stage"), root.must("Immediate")
    stage.only((), ("number", "tier"))
    return {
        "notification_id": root.value("NotificationId"),
        "escalation_id": root.value("EscalationId"),
        "partnership": root.value("Partnership"),
        "recipient": root.must("Recipient").enum(root.value("Recipient"), _RECIPIENTS),
        "reason": root.value("Reason"),
        "clause": root.value("Clause"),
        "stage": stage.integer(stage.need("number"), low=0, high=99, attr="number"),
        "tier": stage.integer(stage.need("tier"), low=0, high=99, attr="tier"),
        "immediate": immediate.boolean(immediate.text()),
        "occurred_at": _instant(root.must("OccurredAt")),
    }


def _instant(node: Node) -> datetime:
    return node.instant(node.text())


def _prompt(prompt: Node) -> dict[str, Any]:
    prompt.only((), ("role",))
    return {"role": prompt.enum(prompt.need("role"), _ROLES, "role"), "text": prompt.text()}


def _child(subject: Node) -> dict[str, Any]:
    subject.only(_SUBJECT)
    local_ids = {}
    if (pnc := subject.maybe_value("PNCId")) is not None:
        local_ids["pnc"] = pnc
    for item in subject.children("LocalId"):
        item.only((), ("scheme",))
        local_ids[item.need("scheme")] = item.text()
    dob = subject.child("DOB")
    identifiers = {
        "nhs_number": subject.maybe_value("NHSNumber"),
        "local_ids": local_ids,
        "given_name": subject.maybe_value("Forename"),
        "family_name": subject.maybe_value("Surname"),
        "date_of_birth": None if dob is None else dob.day(dob.text()),
    }
    return {
        "identifiers": identifiers if any(identifiers.values()) else None,
        "pseudonyms": [p.text() for p in subject.children("Pseudonym")],
    }
