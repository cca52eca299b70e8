"""The health connector: HL7 FHIR R4 (JSON), kind ``fhir-r4``.

Inbound, an escalation is a Task (its stage in businessStatus, due date in
restriction.period, history in notes) and a discussion is a Communication; a
transaction, batch or collection Bundle may carry several. Outbound, a stage update is the
escalation Task and a notification is a Communication. Parsing and building use the
``fhir.resources`` models (``R4B``, whose Task and Communication are R4's). The profile, its
code systems and the mapping tables are in ``docs/connector-fhir.md``.
"""

from __future__ import annotations

from typing import ClassVar, Final

from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.resource import Resource

from connectors.base import (
    Connector,
    ConnectorMeta,
    InboundContext,
    OutboundDocument,
    OutboundRecord,
    Rendered,
    TranslationError,
)
from connectors.fhir_codes import ESCALATION_CODE, ESCALATION_SYSTEM
from connectors.fhir_inbound import Translator
from connectors.fhir_outbound import notification_communication, stage_update_task
from connectors.fhir_parse import MEDIA_TYPES, parse_document
from connectors.fhir_readback import parse_outbound
from schemas.envelope import AgencyEvent
from schemas.updates import Notification, StageUpdate

__all__ = ["ESCALATION_CODE", "ESCALATION_SYSTEM", "FHIR_JSON", "FhirConnector", "parse_outbound"]

FHIR_JSON: Final = "application/fhir+json"


class FhirConnector(Connector):
    """Translates FHIR R4 Tasks and Communications both ways."""

    meta: ClassVar[ConnectorMeta] = ConnectorMeta(
        kind="fhir-r4",
        title="HL7 FHIR R4 (health)",
        version="1.0.0",
        reads=MEDIA_TYPES,
        writes=(FHIR_JSON,),
        description="Escalations as FHIR R4 Task, discussions as Communication; stage updates "
        "as Task and notifications as Communication (fhir.resources R4B models).",
    )

    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        """A Task, Communication or Bundle -> one event per Task and Communication."""
        return Translator(parse_document(body, content_type), context=context).events()

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        """A StageUpdate as a Task, a Notification as a Communication (FHIR JSON)."""
        resource: Resource
        if isinstance(document, StageUpdate):
            resource = stage_update_task(document)
        else:
            resource = notification_communication(document)
        return Rendered(body=resource.model_dump_json().encode("utf-8"), media_type=FHIR_JSON)

    def read_outbound(self, rendered: Rendered) -> OutboundRecord:
        """What a health case system files from one of the hub's Tasks or Communications."""
        document = parse_outbound(rendered.body)
        if isinstance(document, Notification):
            return OutboundRecord(
                effect="notification",
                document_id=document.notification_id,
                escalation_id=document.escalation_id,
                stage=document.stage,
                tier=document.tier,
                clause=document.clause,
            )
        identifiers = document.child.identifiers if document.child else None
        return OutboundRecord(
            effect="stage_update",
            document_id=document.update_id,
            escalation_id=document.escalation_id,
            case_reference=document.recipient_case_reference,
            sequence=document.sequence,
            stage=document.stage,
            tier=document.tier,
            status=document.status.value,
            clause=document.clause,
            carries_child=document.child is not None,
            nhs_number=identifiers.nhs_number if identifiers else None,
        )

    def acknowledge(self, received: Rendered) -> Rendered:
        """An OperationOutcome: 'information' when filed, 'error' naming the path if refused."""
        try:
            record = self.read_outbound(received)
        except TranslationError as exc:
            issue = OperationOutcomeIssue(
                severity="error",
                code="invalid",
                diagnostics=f"{exc.problem}; expected {exc.expected or 'a hub update'}",
                expression=[exc.path],
            )
        else:
            issue = OperationOutcomeIssue(
                severity="information",
                code="informational",
                diagnostics=f"filed {record.effect} {record.document_id}",
            )
        outcome = OperationOutcome(issue=[issue])
        return Rendered(body=outcome.model_dump_json().encode("utf-8"), media_type=FHIR_JSON)
