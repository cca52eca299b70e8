"""Police XML records -> common-schema events: the police connector's inbound half.

A document is one ``<SafeguardingEscalationRecord>`` or a ``<SafeguardingEscalationExport>``
of up to ``InboundContext.max_events`` of them; each record is one agency action, in document
order. The occurrence reference is the case reference (``agencyref``); the event id is
``<RecordId>.v<version>``, so re-sending the same version of a record changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from connectors.base import InboundContext, TranslationError
from connectors.police_actions import BUILDERS, EXTRA_ELEMENTS
from connectors.police_record import ROLES, Record
from connectors.police_xml import MEDIA_TYPES, Node, parse_document, pascal
from schemas.envelope import AGENCY_ACTIONS, AgencyEvent, EventType, agency_event_adapter

__all__ = ["EXPORT", "RECORD", "translate"]

RECORD: Final = "SafeguardingEscalationRecord"
EXPORT: Final = "SafeguardingEscalationExport"
_ACTIONS: Final = {pascal(t.short): t for t in EventType if t in AGENCY_ACTIONS}

_COMMON: Final = (
    "Force",
    "OccurrenceReference",
    "RecordId",
    "RecordedAt",
    "Action",
    "EscalationId",
    "Officer",
    "Narrative",
    "Partnership",
    "Subject",
    "PartnerAgencies",
    "ConcernCategories",
)
_EXTRAS: Final = frozenset(name for names in EXTRA_ELEMENTS.values() for name in names)
_FORCE_CODE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_REFERENCE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.:-]{0,99}$")
_REFERENCE_FORM: Final = "1 to 100 letters, digits and / _ . : -"
_ESCALATION_ID: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
_COLLAR: Final = re.compile(r"^[A-Za-z0-9]{1,10}$")
_FIELDS: Final[Mapping[str, str]] = {
    "id": "RecordId",
    "time": "RecordedAt",
    "subject": "EscalationId",
    "agencyref": "OccurrenceReference",
    "partnership": "Partnership",
    "raised_by": "Officer",
    "by": "Officer",
    "parties": "PartnerAgencies",
    "child": "Subject",
    "concern_categories": "ConcernCategories",
    "flags": "Flags",
    "set": "Flags",
    "cleared": "Flags",
    "summary": "Narrative",
    "note": "Narrative",
    "reason": "Narrative",
    "agreed_timescale": "AgreedTimescale",
    "plan": "Plan",
    "held_at": "Discussion/@heldAt",
    "method": "Discussion/@method",
    "participants": "Discussion",
    "decisions": "Discussion",
    "evidence": "Evidence",
    "to_stage": "EscalateTo/@stage",
    "within_stage_tier": "EscalateTo/@nextTier",
    "outcome": "Outcome",
}


def translate(body: bytes, content_type: str, *, context: InboundContext) -> list[AgencyEvent]:
    """A police record or export -> one common-schema event per record, in document order."""
    check_media_type(content_type)
    root = parse_document(body, roots=(RECORD, EXPORT))
    if root.name == RECORD:
        return [_translate(root, context)]
    root.only((RECORD,), ("schemaVersion",))
    records = root.children(RECORD)
    if not 1 <= len(records) <= context.max_events:
        raise root.error(
            "holds no records or more than one request may carry",
            f"1 to {context.max_events} <{RECORD}> elements; send the rest in another request",
        )
    events: list[AgencyEvent] = []
    for node in records:
        event = _translate(node, context)
        if any(e.id == event.id for e in events):
            raise TranslationError(
                "repeats the RecordId and version of an earlier record in this export",
                path=f"{node.path}/RecordId",
                expected="each record version once",
            )
        events.append(event)
    return events


def check_media_type(content_type: str) -> None:
    """Refuse a body that is not declared as XML (parameters such as charset are allowed)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise TranslationError(
            "the body is not declared as XML",
            path="Content-Type",
            expected=" or ".join(MEDIA_TYPES),
        )


def _translate(node: Node, context: InboundContext) -> AgencyEvent:
    record = _record(node, context)
    data = BUILDERS[record.action](record)
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "type": record.action,
        "id": record.event_id,
        "source": f"urn:police-xml:{record.agency_id}",
        "time": record.time,
        "agencyref": record.reference,
        "data": data,
    }
    if record.escalation_id is not None:
        envelope["subject"] = record.escalation_id
    try:
        return agency_event_adapter.validate_python(envelope)
    except ValidationError as exc:
        raise _from_validation(exc, node) from None


def _record(node: Node, context: InboundContext) -> Record:
    action_node = node.must("Action")
    action = action_node.enum(action_node.text(), _ACTIONS)
    allowed = (*_COMMON, *EXTRA_ELEMENTS.get(action, ()))
    for extra in sorted(_EXTRAS.difference(allowed)):
        if (misplaced := node.child(extra)) is not None:
            raise misplaced.error(
                "is not read with this <Action>", "only the elements of the record's <Action>"
            )
    node.only(allowed, ("schemaVersion",))
    if node.attr("schemaVersion") not in (None, "1"):
        raise node.error("this schema version is not supported", '"1"', "schemaVersion")
    agency_id, force_code = _force(node.must("Force"), context)
    record_id = node.must("RecordId")
    record_id.only((), ("version",))
    version = record_id.integer(record_id.attr("version") or "1", low=1, high=999_999)
    recorded_at = node.must("RecordedAt")
    return Record(
        node=node,
        action=action,
        agency_id=agency_id,
        force_code=force_code,
        reference=_matching(node.must("OccurrenceReference"), _REFERENCE, _REFERENCE_FORM),
        event_id=f"{_matching(record_id, _REFERENCE, _REFERENCE_FORM)}.v{version}",
        time=recorded_at.instant(recorded_at.text()),
        escalation_id=_escalation_id(node.child("EscalationId")),
        officer=_officer(node.must("Officer"), agency_id),
        context=context,
    )


def _force(force: Node, context: InboundContext) -> tuple[str, str]:
    force.only((), ("code",))
    code = force.need("code")
    if not _FORCE_CODE.match(code):
        raise force.error("is not a force code", "1 to 32 letters, digits, '-' or '_'", "code")
    mapped = context.config.organisations.get(code)
    if mapped is not None and mapped != context.agency_id:
        raise force.error(
            "is mapped in the connector's organisations setting to an agency other than the one "
            "this connector is registered for; a connector sends only its own force's records",
            "this force's own code: left out of organisations, or mapped there to the "
            "connector's own agency",
            "code",
        )
    return context.agency_id, code


def _matching(node: Node, pattern: re.Pattern[str], expected: str) -> str:
    text = node.text()
    if not pattern.match(text):
        raise node.error("is not in the expected form", expected)
    return text


def _escalation_id(node: Node | None) -> str | None:
    if node is None:
        return None
    return _matching(node, _ESCALATION_ID, "the hub's escalation id, as sent in its updates")


def _officer(officer: Node, agency_id: str) -> dict[str, Any]:
    officer.only((), ("collarNumber", "role", "rank"))
    collar = officer.need("collarNumber")
    if not _COLLAR.match(collar):
        raise officer.error("is not a collar number", "1 to 10 letters or digits", "collarNumber")
    role = officer.enum(officer.need("role"), ROLES, "role")
    parts = (officer.attr("rank"), collar, officer.maybe_text())
    return {"agency_id": agency_id, "name": " ".join(p for p in parts if p), "role": role}


def _from_validation(exc: ValidationError, node: Node) -> TranslationError:
    """The first schema error at its native path, without the submitted value."""
    error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = [part for part in error["loc"][1:] if part != "data"]
    field = _FIELDS.get(str(loc[0]), "") if loc else ""
    path = f"{node.path}/{field}" if field else node.path
    return TranslationError(
        f"does not fit the common schema: {error['msg']}",
        path=path,
        expected="see docs/connector-police.md for this element",
    )
