"""The connector contract: each agency system's translator, both ways.

A connector turns its case system's native documents into common-schema events
(``translate_inbound``) and the hub's stage updates and notifications into native
documents (``render_outbound``). It is pure: no I/O, no clock, no database. Connectors
register through the ``escalation_hub.connectors`` entry-point group; one that fails to
load stops the hub's start-up.

Errors are for the agency's integrator, in the system's own terms: ``TranslationError``
carries the native field path (e.g. ``Task.businessStatus.coding[0].code`` or
``/EscalationRecord/Stage``), what was expected, and never the submitted value::

    TranslationError        the document cannot be translated (the hub answers 422)
    └── MalformedDocument   it is not even well-formed in its media type (the hub answers 400)

Two optional methods let a case system read and answer the hub's documents in its own format
(the simulated case systems and the conformance kit use them): ``read_outbound`` and
``acknowledge``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import AgencyEvent
from schemas.errors import FieldProblem
from schemas.updates import Notification, StageUpdate

__all__ = [
    "Connector",
    "ConnectorConfig",
    "ConnectorMeta",
    "InboundContext",
    "MalformedDocument",
    "OutboundDocument",
    "OutboundRecord",
    "Rendered",
    "TranslationError",
    "essence",
]

OutboundDocument = StageUpdate | Notification


def essence(content_type: str | None) -> str:
    """A Content-Type header's media type, lowercase and without parameters ('' if none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class ConnectorMeta(BaseModel):
    """What a connector is: kind (its registry key), title, version, formats read and written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_-]+$")
    title: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    reads: tuple[str, ...] = Field(description="Media types translate_inbound accepts.")
    writes: tuple[str, ...] = Field(description="Media types render_outbound produces.")
    description: str = ""


class ConnectorConfig(BaseModel):
    """Per-connector settings an agency gives at registration; secrets as ``SecretStr``.

    ``organisations`` maps the codes the native system uses for other agencies (ODS codes,
    force codes, local team codes...) to the hub's agency ids. The hub stores ``SecretStr``
    fields sealed and every other field in clear.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partnership: str | None = Field(
        default=None, description="Partnership used when the native document names none."
    )
    organisations: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class InboundContext:
    """Who is sending: the hub knows it from the connector's registration, not the body.

    ``max_events`` is the most events one request may become (the hub's batch limit).
    """

    agency_id: str
    connector_id: str
    received_at: datetime
    config: ConnectorConfig = field(default_factory=ConnectorConfig)
    max_events: int = 100


@dataclass(frozen=True)
class Rendered:
    """A native document: its bytes and media type."""

    body: bytes
    media_type: str


class OutboundRecord(BaseModel):
    """What a case system files from one outbound document, read back in its own format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effect: Literal["stage_update", "notification"]
    document_id: str = Field(description="The update or notification id (stable on repeats).")
    escalation_id: str
    case_reference: str | None = Field(default=None, description="The recipient's own reference.")
    sequence: int | None = None
    stage: int
    tier: int | None = None
    status: str | None = None
    clause: str | None = None
    carries_child: bool = False
    nhs_number: str | None = None


class TranslationError(ValueError):
    """A native document that cannot be translated: where (native path), what is expected.

    ``more`` carries further problems of the same document; ``title`` a short heading for the
    answer (e.g. "Invalid event"). Neither ever holds a submitted value.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str,
        expected: str | None = None,
        more: Sequence[FieldProblem] = (),
        title: str | None = None,
    ) -> None:
        super().__init__(f"{path}: {problem}")
        self.problem = problem
        self.path = path
        self.expected = expected
        self.more = tuple(more)
        self.title = title

    def as_dict(self) -> Mapping[str, str | None]:
        return {"field": self.path, "problem": self.problem, "expected": self.expected}

    @property
    def problems(self) -> tuple[FieldProblem, ...]:
        """Every problem of the document, the first one first."""
        first = FieldProblem(field=self.path, problem=self.problem, expected=self.expected)
        return (first, *self.more)

    @classmethod
    def of(cls, problems: Sequence[FieldProblem], *, title: str | None = None) -> TranslationError:
        """One error carrying several problems (at least one)."""
        first, *rest = problems
        return cls(first.problem, path=first.field, expected=first.expected, more=rest, title=title)


class MalformedDocument(TranslationError):
    """The body is not a well-formed document of its media type (syntax, encoding, depth)."""

    def __init__(
        self,
        problem: str,
        *,
        path: str = "(body)",
        expected: str | None = None,
        position: Mapping[str, int] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(problem, path=path, expected=expected, title=title)
        self.position = dict(position) if position is not None else None


class Connector(ABC):
    """Base class of every connector. Subclasses set ``meta`` and may set ``config_model``.

    A connector is built with no arguments, once per process, and must be stateless.
    """

    meta: ClassVar[ConnectorMeta]
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    @abstractmethod
    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        """Native document -> common events; the case reference goes in ``agencyref``.

        ``content_type`` is the media type essence (lowercase, no parameters), always one of
        ``meta.reads``. Events that continue an escalation may leave ``subject`` empty: the
        hub finds the escalation from the sending agency's own case reference
        (``agencyref``). Event ids must derive from the native ids, so that the same document
        sent twice gives the same events. Raises TranslationError.
        """

    @abstractmethod
    def render_outbound(self, document: OutboundDocument) -> Rendered:
        """A stage update or notification -> the native document and its media type."""

    def read_outbound(self, rendered: Rendered) -> OutboundRecord:
        """How the case system reads one of ``render_outbound``'s documents (optional).

        Raises TranslationError for a document it cannot read; NotImplementedError when
        the connector does not offer a reader (the conformance kit then checks only that
        the document is well-formed).
        """
        raise NotImplementedError(f"connector '{self.meta.kind}' offers no outbound reader")

    def acknowledge(self, received: Rendered) -> Rendered:
        """The case system's answer to a delivered document; by default a small JSON ack."""
        body = json.dumps({"status": "received"}, separators=(",", ":")).encode()
        return Rendered(body=body, media_type="application/json")
