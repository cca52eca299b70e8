"""The conformance kit's checks and fixtures (see ``connectors.conformance``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_etree
from defusedxml import DefusedXmlException

from connectors.base import (
    Connector,
    ConnectorMeta,
    OutboundDocument,
    Rendered,
    TranslationError,
)
from schemas.envelope import Raised, agency_event_adapter
from schemas.escalation import Status
from schemas.people import Child, Role
from schemas.procedure import Recipient
from schemas.updates import Notification, Prompt, StageUpdate

__all__ = [
    "NOTIFICATION",
    "events_valid",
    "meta_valid",
    "no_child_in",
    "reads_back",
    "sample_values",
    "translation_error",
    "update_for",
    "well_formed",
]

HUB_SOURCES: Final = "urn:escalation-hub:"  # event sources the hub keeps for itself
AT: Final = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ESCALATION: Final = "c0f1e2d3-0000-4000-8000-00000000c0de"
NOTIFICATION: Final = Notification(
    notification_id="ntf-conformance-1",
    escalation_id=ESCALATION,
    partnership="northamptonshire",
    recipient=Recipient.BUSINESS_OFFICE,
    reason="The escalation reached director level; the business office is told.",
    clause="Conformance clause 4",
    stage=4,
    tier=0,
    immediate=False,
    occurred_at=AT,
)


def meta_valid(meta: ConnectorMeta, media_type: re.Pattern[str]) -> None:
    """The meta validates again and names well-formed media types it reads and writes."""
    ConnectorMeta.model_validate(meta.model_dump())
    assert meta.reads, "meta.reads must name at least one media type"
    assert meta.writes, "meta.writes must name at least one media type"
    for kind in (*meta.reads, *meta.writes):
        assert media_type.match(kind), f"'{kind}' is not a media type like application/json"


def events_valid(events: list[Any], *, agency_id: str) -> None:
    """At least one event; each valid in the common schema, the agency's own, findable."""
    assert events, "a valid sample must translate to at least one event"
    for event in events:
        again = agency_event_adapter.validate_python(event.model_dump(mode="json"))
        assert again == event, "the event does not survive a round trip through JSON"
        assert not event.source.startswith(HUB_SOURCES), "the source is reserved for the hub"
        actor = event.data.raised_by if isinstance(event, Raised) else event.data.by
        assert actor.agency_id == agency_id, "the actor must be the sending agency"
        if not isinstance(event, Raised):
            assert event.subject or event.agencyref, (
                "an action needs a subject or an agencyref so the hub can find its escalation"
            )


def update_for(event: Any, *, sequence: int, agency_id: str) -> StageUpdate:
    """The stage update the sending agency would get back for ``event``."""
    child = event.data.child if isinstance(event, Raised) else None
    return StageUpdate(
        update_id=f"upd-conformance-{sequence}",
        escalation_id=event.subject or ESCALATION,
        sequence=sequence,
        partnership="northamptonshire",
        procedure_id="northamptonshire",
        procedure_version="1.0.0",
        recipient_agency_id=agency_id,
        recipient_case_reference=event.agencyref,
        event=event.type.short,
        occurred_at=AT,
        status=Status.OPEN,
        stage=2,
        stage_title="Manager to manager",
        tier=1,
        due=AT + timedelta(days=7),
        clause="Conformance clause 2",
        summary="The disagreement moved to stage 2.",
        prompt=Prompt(role=Role.LINE_MANAGER, text="Contact your counterpart's line manager."),
        child=child,
    )


def reads_back(connector: Connector, document: OutboundDocument) -> None:
    """Render ``document`` and read it back as the case system files it."""
    rendered = connector.render_outbound(document)
    assert isinstance(rendered, Rendered), "render_outbound must return a Rendered"
    assert rendered.body, "render_outbound gave an empty document"
    assert rendered.media_type in connector.meta.writes, "the media type is not in meta.writes"
    try:
        record = connector.read_outbound(rendered)
    except NotImplementedError:
        well_formed(rendered)
        return
    if isinstance(document, StageUpdate):
        assert record.effect == "stage_update", "a stage update was read as something else"
        assert record.document_id == document.update_id, "the update id is lost"
        assert record.case_reference == document.recipient_case_reference, (
            "the recipient's own case reference is lost"
        )
        assert record.sequence == document.sequence, "the sequence is lost"
        assert record.carries_child == (document.child is not None), "the child is mishandled"
        identifiers = document.child.identifiers if document.child else None
        if identifiers is not None and identifiers.nhs_number:
            assert record.nhs_number == identifiers.nhs_number, "the NHS number is lost"
    else:
        assert record.effect == "notification", "a notification was read as something else"
        assert record.document_id == document.notification_id, "the notification id is lost"
    assert record.escalation_id == document.escalation_id, "the escalation id is lost"
    assert record.stage == document.stage, "the stage is lost"
    ack = connector.acknowledge(rendered)
    assert isinstance(ack, Rendered), "acknowledge must return a Rendered"
    assert ack.media_type, "acknowledge must say the media type of its answer"


def well_formed(rendered: Rendered) -> None:
    """Without a reader: the body parses as its media type says (JSON or XML)."""
    kind = rendered.media_type
    if kind.endswith(("/json", "+json")):
        json.loads(rendered.body)
    elif kind.endswith(("/xml", "+xml")):
        try:
            safe_etree.fromstring(rendered.body)
        except (ParseError, DefusedXmlException) as exc:
            raise AssertionError(f"the rendered XML is not well-formed: {exc}") from None


def no_child_in(connector: Connector, update: StageUpdate, child: Child | None) -> None:
    """An update without the child names none of the child's identifiers."""
    identifiers = child.identifiers if child else None
    if identifiers is None:
        return
    secrets = {identifiers.given_name, identifiers.family_name, identifiers.nhs_number}
    if identifiers.nhs_number:
        secrets.add(identifiers.nhs_number.replace(" ", ""))
    if identifiers.date_of_birth:
        secrets.add(identifiers.date_of_birth.isoformat())
    secrets.update(identifiers.local_ids.values())
    text = connector.render_outbound(update).body.decode("utf-8", "replace")
    found = sorted(s for s in secrets if s and s in text)
    assert not found, "an update without the child still carries its identifiers"


def translation_error(translate: Callable[[Any], list[Any]], sample: Any) -> TranslationError:
    """The TranslationError an invalid sample must raise."""
    try:
        translate(sample)
    except TranslationError as error:
        return error
    raise AssertionError(f"the invalid sample '{sample.name}' translated without an error")


def sample_values(body: bytes) -> set[str]:
    """Every string value of a document longer than 3 characters (JSON, XML, or quoted)."""
    try:
        return {v for v in _json_values(json.loads(body)) if len(v) > 3}
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return {v for v in _xml_values(safe_etree.fromstring(body)) if len(v) > 3}
    except (ParseError, DefusedXmlException):
        pass
    text = body.decode("utf-8", "replace")
    quoted = re.findall(r'"([^"]{4,})"|>([^<]{4,})<', text)
    return {value.strip() for pair in quoted for value in pair if len(value.strip()) > 3}


def _json_values(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _json_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _json_values(value)


def _xml_values(element: Element) -> Iterator[str]:
    for node in element.iter():
        if node.text and node.text.strip():
            yield node.text.strip()
        yield from node.attrib.values()
