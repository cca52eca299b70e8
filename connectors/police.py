"""The police connector: records-management XML in, police XML stage updates out.

Reads ``<SafeguardingEscalationRecord>`` documents (and ``<SafeguardingEscalationExport>``
batches of them) in the style of a police RMS export (Niche, Athena, Connect): force code,
occurrence reference, record id, officer collar number, PNC id. Parsing is defused: DTDs,
entities and external references are refused, and size and depth are limited. The format
is described in docs/connector-police.md.

Modules: ``police_xml`` (safe parsing, paths), ``police_record`` (a record's header and
vocabulary), ``police_actions`` (one builder per action), ``police_inbound`` (records ->
events), ``police_outbound`` (updates -> XML and back).
"""

from __future__ import annotations

from typing import ClassVar, Final
from xml.etree.ElementTree import Element, SubElement

from connectors.base import (
    Connector,
    ConnectorMeta,
    InboundContext,
    OutboundDocument,
    OutboundRecord,
    Rendered,
    TranslationError,
)
from connectors.police_inbound import translate
from connectors.police_outbound import MEDIA_TYPE, parse_outbound, render, serialise
from connectors.police_xml import MEDIA_TYPES, NAMESPACE, SCHEMA_VERSION
from schemas.envelope import AgencyEvent
from schemas.updates import StageUpdate

__all__ = ["ACKNOWLEDGEMENT", "NAMESPACE", "PoliceXmlConnector", "parse_outbound"]

ACKNOWLEDGEMENT: Final = "SafeguardingAcknowledgement"


class PoliceXmlConnector(Connector):
    """Police records-management XML, both ways (kind ``police-xml``)."""

    meta: ClassVar[ConnectorMeta] = ConnectorMeta(
        kind="police-xml",
        title="Police records-management XML",
        version="1.0.0",
        reads=MEDIA_TYPES,
        writes=(MEDIA_TYPE,),
        description=(
            "Safeguarding escalation records exported from a police records-management "
            "system (force code, occurrence reference, officer collar number, PNC id) in "
            f"the {NAMESPACE} XML format; stage updates go back in the same style."
        ),
    )

    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        """A police record or export -> one common-schema event per record, in order."""
        return translate(body, content_type, context=context)

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        """A stage update or notification -> a police XML document (application/xml)."""
        return render(document)

    def read_outbound(self, rendered: Rendered) -> OutboundRecord:
        """What a force's RMS files from one of our documents. Raises TranslationError."""
        document = parse_outbound(rendered.body)
        if not isinstance(document, StageUpdate):
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
        """A small XML receipt: the document id filed, or where the document was refused."""
        root = Element(ACKNOWLEDGEMENT, {"xmlns": NAMESPACE, "schemaVersion": SCHEMA_VERSION})
        try:
            record = self.read_outbound(received)
        except TranslationError as exc:
            SubElement(root, "Status").text = "Refused"
            SubElement(root, "Problem", {"path": exc.path}).text = exc.problem
        else:
            SubElement(root, "Status").text = "Received"
            SubElement(root, "DocumentId").text = record.document_id
        return serialise(root)
