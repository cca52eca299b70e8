"""Rendering: a delivery's document as the bytes and media type its receiver expects.

A ``Renderer`` takes the connector kind and the common-schema document (a StageUpdate or
Notification as JSON) and returns ``(body, media type)``. Today every connector receives the
common schema JSON; a connector-native format plugs in by registering a renderer for its kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["COMMON_MEDIA_TYPE", "RenderError", "Renderer", "render", "render_common"]

Renderer = Callable[[str, dict[str, Any]], tuple[bytes, str]]

COMMON_MEDIA_TYPE: Final = "application/json"


class RenderError(ValueError):
    """A document cannot be rendered for a connector kind (a permanent delivery failure)."""


def render_common(connector_kind: str, document: dict[str, Any]) -> tuple[bytes, str]:
    """Render the common schema JSON, whatever the connector kind (UTF-8, sorted keys)."""
    if not isinstance(document, dict) or not isinstance(document.get("effect"), str):
        raise RenderError(
            f"the document for a '{connector_kind}' connector is not a common-schema effect "
            "(a JSON object with 'effect'); check the router's delivery rows"
        )
    try:
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"the document is not plain JSON: {type(exc).__name__}") from None
    return body.encode("utf-8"), COMMON_MEDIA_TYPE


def render(
    connector_kind: str,
    document: dict[str, Any],
    *,
    renderers: Mapping[str, Renderer] | None = None,
) -> tuple[bytes, str]:
    """Render with the kind's own renderer if one is registered, else the common schema."""
    renderer = (renderers or {}).get(connector_kind, render_common)
    return renderer(connector_kind, document)
