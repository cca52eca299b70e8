"""Rendering: a delivery's document as the bytes and media type its receiver expects.

A ``Renderer`` takes the connector kind and the common-schema document (a StageUpdate or
Notification as JSON) and returns ``(body, media type)``. By default the recipient connector
kind's own ``render_outbound`` renders it (``render_native``), looked up in the connector
registry; a renderer registered for a kind overrides that. The media type travels as the JWE's
``cty``. A document that is not a stage update or notification, an uninstalled kind, or a
rendering a connector refuses is a ``RenderError``: a permanent failure (a dead letter that an
operator can replay once the cause is fixed). A registry that fails to load is not: it stops
the worker, and the delivery stays pending.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from connectors.base import OutboundDocument, TranslationError
from connectors.registry import Registry, UnknownConnectorKind, default_registry

__all__ = [
    "COMMON_MEDIA_TYPE",
    "RenderError",
    "Renderer",
    "render",
    "render_common",
    "render_native",
]

Renderer = Callable[[str, dict[str, Any]], tuple[bytes, str]]

COMMON_MEDIA_TYPE: Final = "application/json"
_DOCUMENT: TypeAdapter[OutboundDocument] = TypeAdapter(OutboundDocument)


class RenderError(ValueError):
    """A document cannot be rendered for a connector kind (a permanent delivery failure)."""


def render_common(connector_kind: str, document: dict[str, Any]) -> tuple[bytes, str]:
    """Render the common schema JSON, whatever the connector kind (UTF-8, sorted keys)."""
    _check_effect(connector_kind, document)
    try:
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"the document is not plain JSON: {type(exc).__name__}") from None
    return body.encode("utf-8"), COMMON_MEDIA_TYPE


def render_native(
    connector_kind: str, document: dict[str, Any], *, registry: Registry | None = None
) -> tuple[bytes, str]:
    """Render with the kind's connector: its native document and media type."""
    _check_effect(connector_kind, document)
    try:
        model = _DOCUMENT.validate_python(document)
    except ValidationError as exc:  # locations only: a value may be a child's name
        where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        raise RenderError(
            f"the document is not a valid stage update or notification ({where})"
        ) from None
    try:
        connector = (registry or default_registry()).get(connector_kind)
    except UnknownConnectorKind as exc:
        raise RenderError(f"{exc}; install it, then replay the dead letter") from None
    try:
        rendered = connector.render_outbound(model)
    except TranslationError as exc:
        raise RenderError(
            f"the '{connector_kind}' connector cannot render this document at {exc.path}: "
            f"{exc.problem}"
        ) from None
    if rendered.media_type not in connector.meta.writes:
        raise RenderError(
            f"the '{connector_kind}' connector rendered a media type its meta.writes does not "
            "list; fix the connector"
        )
    return rendered.body, rendered.media_type


def render(
    connector_kind: str,
    document: dict[str, Any],
    *,
    renderers: Mapping[str, Renderer] | None = None,
    registry: Registry | None = None,
) -> tuple[bytes, str]:
    """Render with the kind's own renderer if one is registered, else its connector's."""
    renderer = (renderers or {}).get(connector_kind)
    if renderer is not None:
        return renderer(connector_kind, document)
    return render_native(connector_kind, document, registry=registry)


def _check_effect(connector_kind: str, document: Any) -> None:
    if not isinstance(document, dict) or not isinstance(document.get("effect"), str):
        raise RenderError(
            f"the document for a '{connector_kind}' connector is not a common-schema effect "
            "(a JSON object with 'effect'); check the router's delivery rows"
        )
