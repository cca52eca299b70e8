"""The children's social care connector: workflow events in, workflow updates out (JSON).

Inbound, one ``WorkflowEvent`` per request becomes one common event: the workflow step type
and the event type say which action (see ``STEP_ACTIONS``), the ``caseId`` becomes the
``agencyref``, ``hubReference`` (when the system kept the hub's id) the ``subject``, and the
event id is the system's own ``eventId``, so a repeated document is the same event. Partner
agencies' codes become hub agency ids through ``config.organisations``. Outbound, a stage update
becomes a ``PartnerStageUpdate`` filed under the recipient's ``caseId``; a notification a
``PartnerNotification``. Errors name the native field, e.g. ``step.stepType``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final

from pydantic import ValidationError

from connectors import social_care_build as build
from connectors import social_care_native as n
from connectors.base import (
    Connector,
    ConnectorConfig,
    ConnectorMeta,
    InboundContext,
    OutboundDocument,
    OutboundRecord,
    Rendered,
    TranslationError,
)
from connectors.generic import parse_json
from connectors.json_problems import json_problems
from connectors.social_care_native import SocialCareConfig
from schemas.envelope import PREFIX, AgencyEvent, agency_event_adapter
from schemas.errors import field_path
from schemas.updates import Notification, StageUpdate

__all__ = ["SocialCareConfig", "SocialCareConnector"]

JSON: Final = "application/json"


class SocialCareConnector(Connector):
    """Children's social care case-management systems (workflow steps, case notes, persons)."""

    meta: ClassVar[ConnectorMeta] = ConnectorMeta(
        kind="social-care",
        title="Children's social care workflow events (JSON)",
        version="1.0.0",
        reads=(JSON,),
        writes=(JSON,),
        description="Workflow steps, case notes and person statuses, in both directions.",
    )
    config_model: ClassVar[type[ConnectorConfig]] = SocialCareConfig

    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        """One workflow event -> one common event, or TranslationError at its native field."""
        native = _validated(parse_json(body))
        action = build.action_of(native)
        config = _config(context.config)
        data = build.BUILDERS[action](native, context.agency_id, config)
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": native.event_id,
            "source": f"urn:{config.system}:{context.agency_id}",
            "type": PREFIX + action,
            "time": native.occurred_at,
            "agencyref": native.case_id,
            "data": data,
        }
        if native.hub_reference is not None:
            envelope["subject"] = native.hub_reference
        try:
            return [agency_event_adapter.validate_python(envelope)]
        except ValidationError as exc:
            where = ", ".join(field_path(e["loc"]) for e in exc.errors()[:3])
            raise TranslationError(
                f"the document translates to an event the common schema refuses (at {where})",
                path="(body)",
                expected="a workflow event whose fields meet the limits in docs/connectors.md",
            ) from None

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        """A ``PartnerStageUpdate`` or ``PartnerNotification`` (JSON)."""
        if isinstance(document, StageUpdate):
            native: n.PartnerStageUpdate | n.PartnerNotification = _stage_update(document)
        else:
            native = _notification(document)
        body = json.dumps(n.dump(native), sort_keys=True, separators=(",", ":"))
        return Rendered(body=body.encode("utf-8"), media_type=JSON)

    def read_outbound(self, rendered: Rendered) -> OutboundRecord:
        """Read a ``PartnerStageUpdate`` or ``PartnerNotification`` as the case system files it."""
        document = parse_json(rendered.body)
        kind = document.get("eventType") if isinstance(document, dict) else None
        try:
            if kind == "PartnerStageUpdate":
                return _record_of_update(n.PartnerStageUpdate.model_validate(document))
            if kind == "PartnerNotification":
                return _record_of_notification(n.PartnerNotification.model_validate(document))
        except ValidationError as exc:
            raise TranslationError.of(json_problems(exc), title="Invalid update") from None
        raise TranslationError(
            "not a document the hub sends to social care",
            path="eventType",
            expected="PartnerStageUpdate or PartnerNotification",
        )

    def acknowledge(self, received: Rendered) -> Rendered:
        """``{"status": "ACCEPTED", "messageId": ..., "caseId": ...}`` (JSON)."""
        try:
            document = json.loads(received.body)
        except (ValueError, UnicodeDecodeError):
            document = {}
        known = document if isinstance(document, dict) else {}
        ack = n.Ack(message_id=known.get("messageId"), case_id=known.get("caseId"))
        return Rendered(body=json.dumps(n.dump(ack)).encode("utf-8"), media_type=JSON)


def _validated(document: Any) -> n.WorkflowEvent:
    try:
        return n.WorkflowEvent.model_validate(document)
    except ValidationError as exc:
        raise TranslationError.of(json_problems(exc), title="Invalid workflow event") from None


def _config(config: ConnectorConfig) -> SocialCareConfig:
    if isinstance(config, SocialCareConfig):
        return config
    return SocialCareConfig.model_validate(config.model_dump())


def _stage_update(update: StageUpdate) -> n.PartnerStageUpdate:
    """The hub's stage update as the system's ``PartnerStageUpdate``."""
    identifiers = update.child.identifiers if update.child else None
    person = None
    if update.child is not None:
        ids = identifiers
        person = n.PersonView(
            nhs_number=ids.nhs_number if ids else None,
            forename=ids.given_name if ids else None,
            surname=ids.family_name if ids else None,
            date_of_birth=ids.date_of_birth if ids else None,
            local_ids=dict(ids.local_ids) if ids else {},
        )
    task = None
    if update.prompt is not None:
        role = n.ROLES.get(update.prompt.role, update.prompt.role.value.upper())
        task = n.TaskView(assign_to_role=role, text=update.prompt.text)
    return n.PartnerStageUpdate(
        message_id=update.update_id,
        case_id=update.recipient_case_reference,
        hub_reference=update.escalation_id,
        partnership=update.partnership,
        sequence=update.sequence,
        occurred_at=update.occurred_at,
        step=n.StepView(
            status=update.status.value.upper(),
            escalation_stage=update.stage,
            stage_title=update.stage_title,
            management_tier=update.tier,
            due_date=update.due,
            hub_event=update.event,
        ),
        procedure=n.ProcedureView(
            id=update.procedure_id, version=update.procedure_version, clause=update.clause
        ),
        case_note=n.NoteView(text=update.summary),
        task=task,
        person=person,
    )


def _notification(note: Notification) -> n.PartnerNotification:
    """A notification as the system's ``PartnerNotification``."""
    return n.PartnerNotification(
        message_id=note.notification_id,
        hub_reference=note.escalation_id,
        partnership=note.partnership,
        recipient_role=note.recipient.value.upper(),
        reason=note.reason,
        clause=note.clause,
        escalation_stage=note.stage,
        management_tier=note.tier,
        immediate=note.immediate,
        occurred_at=note.occurred_at,
    )


def _record_of_update(update: n.PartnerStageUpdate) -> OutboundRecord:
    """What the case system files from a stage update."""
    return OutboundRecord(
        effect="stage_update",
        document_id=update.message_id,
        escalation_id=update.hub_reference,
        case_reference=update.case_id,
        sequence=update.sequence,
        stage=update.step.escalation_stage,
        tier=update.step.management_tier,
        status=update.step.status.lower(),
        clause=update.procedure.clause,
        carries_child=update.person is not None,
        nhs_number=update.person.nhs_number if update.person else None,
    )


def _record_of_notification(note: n.PartnerNotification) -> OutboundRecord:
    """What the case system files from a notification."""
    return OutboundRecord(
        effect="notification",
        document_id=note.message_id,
        escalation_id=note.hub_reference,
        stage=note.escalation_stage,
        tier=note.management_tier,
        clause=note.clause,
    )
