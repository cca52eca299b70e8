"""A Communication about an escalation Task -> a recorded discussion.

The Communication must be ``completed``, be ``about`` the escalation Task (in the same Bundle,
or by identifier), name its ``sender`` and say when it was ``sent``; ``payload.contentString``
is the summary, ``note`` the decisions and ``medium`` the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.task import Task

from connectors.base import TranslationError
from connectors.fhir_actions import enum_value
from connectors.fhir_codes import (
    ESCALATION_ID_SYSTEM,
    METHOD_SYSTEM,
    PARTICIPATION_MODE,
    PARTICIPATION_MODE_METHODS,
)
from connectors.fhir_inputs import aware, narrative
from connectors.fhir_parse import Located, Resolver
from connectors.fhir_people import People
from connectors.fhir_status import references
from schemas.actions import DiscussionMethod, DiscussionRecordedData

__all__ = ["Discussion", "discussion"]


@dataclass(frozen=True)
class Discussion:
    """A recorded discussion and how the hub finds its escalation."""

    data: DiscussionRecordedData
    agencyref: str | None
    subject: str | None
    time: datetime


def discussion(
    item: Located, comm: Communication, *, people: People, resolver: Resolver
) -> Discussion:
    """The discussion a completed Communication records (common-schema errors propagate)."""
    path = item.path
    if comm.status != "completed":
        raise TranslationError(
            "is not a discussion that took place",
            path=f"{path}.status",
            expected="completed (only completed discussions are recorded)",
        )
    agencyref, subject = _about(item, comm, resolver=resolver)
    held_at = _sent(comm, path=path)
    texts = [p.contentString for p in comm.payload or [] if p.contentString]
    data = DiscussionRecordedData(
        by=people.actor(comm.sender, within=item, path=f"{path}.sender"),
        held_at=held_at,
        method=_method(comm, path=path),
        summary=narrative("\n\n".join(texts), path=f"{path}.payload", what="payload.contentString"),
        decisions=tuple(
            narrative(note.text, path=f"{path}.note[{i}].text", what="a decision")
            for i, note in enumerate(comm.note or [])
        ),
    )
    updated = aware(comm.meta.lastUpdated) if comm.meta is not None else None
    return Discussion(data, agencyref, subject, updated or held_at)


def _sent(comm: Communication, *, path: str) -> datetime:
    if comm.sender is None:
        raise TranslationError(
            "does not say who recorded the discussion",
            path=f"{path}.sender",
            expected="a reference to the person (display = name, or a PractitionerRole)",
        )
    held_at = aware(comm.sent)
    if held_at is None:
        raise TranslationError(
            "has no time", path=f"{path}.sent", expected="a dateTime with a time zone"
        )
    return held_at


def _about(
    item: Located, comm: Communication, *, resolver: Resolver
) -> tuple[str | None, str | None]:
    """(case reference, escalation id) of the escalation Task the Communication is about."""
    for index, ref in enumerate(comm.about or []):
        found = resolver.resolve(ref, within=item)
        if found is not None and isinstance(found.resource, Task):
            return references(found.resource.identifier, path=f"{found.path}.identifier")
        if ref.identifier is not None and ref.identifier.value:
            where = f"{item.path}.about[{index}].identifier"
            return references([ref.identifier], path=where)
    raise TranslationError(
        "does not name the escalation it belongs to",
        path=f"{item.path}.about",
        expected="a reference to the escalation Task in the same Bundle, or "
        "Reference.identifier with the trust's case reference (or the hub's escalation "
        f"id, system {ESCALATION_ID_SYSTEM})",
    )


def _method(comm: Communication, *, path: str) -> DiscussionMethod:
    for i, concept in enumerate(comm.medium or []):
        for j, coding in enumerate(concept.coding or []):
            if coding.system == METHOD_SYSTEM:
                where = f"{path}.medium[{i}].coding[{j}].code"
                return enum_value(DiscussionMethod, coding.code, path=where)
            if coding.system == PARTICIPATION_MODE and coding.code in PARTICIPATION_MODE_METHODS:
                return PARTICIPATION_MODE_METHODS[coding.code]
    return DiscussionMethod.OTHER
