"""FHIR R4 -> common events: one event per escalation Task version or discussion Communication.

Event ids are deterministic: ``Task/{id}/_history/{versionId}`` (or meta.lastUpdated, or
Task.lastModified, in that order); a resource with no id or version gets a digest of its
content. A repeat of the same version therefore gets the same id and changes nothing.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from connectors.base import InboundContext, TranslationError
from connectors.fhir_actions import TaskView, action_data
from connectors.fhir_discussion import discussion
from connectors.fhir_inputs import Inputs, aware
from connectors.fhir_parse import Located, Resolver, common_schema
from connectors.fhir_people import People
from connectors.fhir_status import action_of, check_code, hub_note, references
from schemas.envelope import AgencyEvent, EventType, agency_event_adapter
from schemas.people import Actor

__all__ = ["Translator", "event_id"]


def event_id(resource: Resource) -> str:
    """A deterministic event id from the resource id and version (or its content)."""
    kind = resource.get_resource_type()
    meta = resource.meta
    updated = aware(meta.lastUpdated) if meta is not None else None
    modified = aware(getattr(resource, "lastModified", None))
    stamp = updated or modified
    version = (meta.versionId if meta is not None else None) or (
        stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if stamp else None
    )
    if resource.id and version:
        return f"{kind}/{resource.id}/_history/{version}"
    digest = hashlib.sha256(resource.model_dump_json().encode("utf-8")).hexdigest()[:40]
    return f"{kind}/sha256-{digest}"


class Translator:
    """Translates the parsed resources of one request, in document order."""

    def __init__(self, located: list[Located], *, context: InboundContext) -> None:
        self.located, self.context = located, context
        self.resolver = Resolver(located)
        self.people = People(
            resolver=self.resolver,
            agency_id=context.agency_id,
            organisations=dict(context.config.organisations),
        )
        self.source = f"urn:fhir-r4:{context.agency_id}"

    def events(self) -> list[AgencyEvent]:
        """One event per Task and Communication (supporting resources yield none)."""
        count = sum(isinstance(i.resource, Task | Communication) for i in self.located)
        if count > self.context.max_events:
            raise TranslationError(
                "has more Tasks and Communications than one request may carry",
                path="Bundle.entry",
                expected=f"at most {self.context.max_events}; send the rest in another Bundle",
            )
        found: list[AgencyEvent] = []
        for item in self.located:
            if isinstance(item.resource, Task):
                found.append(self._task(item, item.resource))
            elif isinstance(item.resource, Communication):
                found.append(self._communication(item, item.resource))
        return found

    def _task(self, item: Located, task: Task) -> AgencyEvent:
        path = item.path
        check_code(task, path=path)
        action, stage = action_of(task, path=path)
        agencyref, subject = references(task.identifier, path=f"{path}.identifier")
        if agencyref is None and (action is EventType.RAISED or subject is None):
            raise TranslationError(
                "has no case reference",
                path=f"{path}.identifier",
                expected="the trust's own case reference: an identifier with a value "
                "(use 'official' if there are several)",
            )
        actor, note = self._actor(item, task, action)
        with common_schema(path):
            view = TaskView(
                item=item,
                task=task,
                people=self.people,
                inputs=Inputs(task, path=path),
                actor=actor,
                note=note,
                agencyref=agencyref,
                stage=stage,
                partnership=self.context.config.partnership,
            )
            data = action_data(action, view)
            updated = task.meta.lastUpdated if task.meta is not None else None
            stamps = (task.lastModified, updated, task.authoredOn)
            when = next(filter(None, map(aware, stamps)), self.context.received_at)
            subject = None if action is EventType.RAISED else subject
            return self._event(action, task, data, when, agencyref=agencyref, subject=subject)

    def _actor(self, item: Located, task: Task, action: EventType) -> tuple[Actor, str | None]:
        """The person acting (latest agency note's author, or the requester on 'raised')."""
        notes = [(i, n) for i, n in enumerate(task.note or []) if not hub_note(n)]
        index, note = notes[-1] if notes else (None, None)
        where = f"{item.path}.note[{index}]"
        text = note.text if note is not None else None
        if note is not None and note.authorReference is not None:
            ref = note.authorReference
            return self.people.actor(ref, within=item, path=f"{where}.authorReference"), text
        if note is not None and note.authorString:
            return self.people.named_actor(note.authorString, path=f"{where}.authorString"), text
        if action is EventType.RAISED and task.requester is not None:
            return self.people.actor(
                task.requester, within=item, path=f"{item.path}.requester"
            ), text
        raise TranslationError(
            "does not say who acted",
            path=f"{item.path}.note",
            expected="a note by the person acting: Annotation.authorString (the name) or "
            "authorReference (a PractitionerRole), with the text of what they did"
            + (" (or Task.requester)" if action is EventType.RAISED else ""),
        )

    def _communication(self, item: Located, comm: Communication) -> AgencyEvent:
        with common_schema(item.path):
            found = discussion(item, comm, people=self.people, resolver=self.resolver)
            return self._event(
                EventType.DISCUSSION_RECORDED,
                comm,
                found.data,
                found.time,
                agencyref=found.agencyref,
                subject=found.subject,
            )

    def _event(
        self,
        action: EventType,
        resource: Resource,
        data: Any,
        when: datetime,
        *,
        agencyref: str | None,
        subject: str | None,
    ) -> AgencyEvent:
        envelope = {
            "type": action.value,
            "id": event_id(resource),
            "source": self.source,
            "time": when,
            "subject": subject,
            "agencyref": agencyref,
            "data": data,
        }
        return agency_event_adapter.validate_python(envelope)
