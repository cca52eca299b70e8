"""The OpenAPI document: what only the built hub knows, declared where the models cannot.

FastAPI writes the document from the route models; ``install`` wraps ``app.openapi`` so that
the first time the document is asked for it also declares what this hub accepts:

- ``AgencyIn.partnerships``: the ids of the loaded procedures (``router.procedures``);
- ``ConnectorIn``: one form per installed connector kind (its ``kind`` and its ``config``
  schema), the public key (``jwk.PublicJwk``) and this deployment's callback URL pattern
  (``urls.callback_url_pattern``: http only to loopback, and only where that is allowed);
- the events body, per media type an installed connector reads: the common schema (one agency
  CloudEvent, or a batch of 1 to ``max_batch``) for the generic connector's media types, and
  for a native media type the connector kinds that read it.

Nothing is read before that first request: procedures and the connector registry load then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from fastapi import FastAPI
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from connectors.base import Connector as ConnectorPlugin
from connectors.registry import Registry, default_registry
from gateway.api.jwk import PublicJwk
from gateway.api.urls import callback_url_pattern
from gateway.bootstrap import Hub
from router import procedures
from schemas.envelope import AgencyEvent

__all__ = ["EVENTS_PATH", "GENERIC", "declare", "install"]

GENERIC: Final = "generic"  # ConnectorIn.kind's default: the common schema itself
EVENTS_PATH: Final = "/v1/connectors/{connector_id}/events"
_REF: Final = "#/components/schemas/{model}"
_COMMON: Final = "Common."  # prefix of the common schema's components (schemas/)
#: A character that is not Unicode White_Space, which pydantic strips (Rust's ``str::trim``).
_NOT_ONLY_SPACE: Final = (
    "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def install(app: FastAPI, hub: Hub) -> None:
    """Declare this hub's partnerships, connector kinds and media types in ``app.openapi()``."""
    generate = app.openapi
    declared: list[dict[str, Any]] = []  # the document declared into (FastAPI caches it)

    def openapi() -> dict[str, Any]:
        spec = generate()
        if not any(spec is done for done in declared):
            registry = getattr(app.state, "connectors", None)
            declare(
                spec,
                partnerships=sorted({pid for pid, _ in procedures.available()}),
                registry=registry if isinstance(registry, Registry) else default_registry(),
                max_batch=hub.settings.max_batch,
                allow_loopback=hub.settings.allow_loopback_callbacks,
            )
            declared[:] = [spec]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def declare(
    spec: dict[str, Any],
    *,
    partnerships: Sequence[str],
    registry: Iterable[ConnectorPlugin],
    max_batch: int,
    allow_loopback: bool,
) -> None:
    """Write the hub's own declarations into a FastAPI OpenAPI document (in place)."""
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    plugins = list(registry)
    agency = schemas["AgencyIn"]["properties"]["partnerships"]
    agency["items"] = {"type": "string", "enum": list(partnerships)}
    agency["description"] = "Ids of the partnerships whose procedures this hub has loaded."
    _connector_in(schemas, plugins, allow_loopback)
    body = spec["paths"][EVENTS_PATH]["post"]["requestBody"]
    body["content"] = _events_content(schemas, plugins, max_batch, body["content"])


def _add(schemas: dict[str, Any], name: str, schema: dict[str, Any], prefix: str = "") -> str:
    """Put ``schema`` (and its $defs) into the components; return the reference to it."""
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas[prefix + def_name] = definition
    schemas[name] = schema
    return _REF.format(model=name)


class _AsValidated(GenerateJsonSchema):
    """JSON Schema that also says what pydantic checks after stripping whitespace."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        found = super().str_schema(schema)
        if schema.get("strip_whitespace") and schema.get("min_length"):
            # the length counts after stripping: at least one character that is not stripped
            unstripped = {"pattern": _NOT_ONLY_SPACE}
            if "pattern" in found:
                return {"allOf": [found, unstripped]}
            found = {**found, **unstripped}
        return found


def _json_schema(target: Any, prefix: str = "") -> dict[str, Any]:
    ref = "#/components/schemas/" + prefix + "{model}"
    adapter: TypeAdapter[Any] = TypeAdapter(target)
    schema: dict[str, Any] = adapter.json_schema(ref_template=ref, schema_generator=_AsValidated)
    return schema


def _connector_in(
    schemas: dict[str, Any], plugins: list[ConnectorPlugin], allow_loopback: bool
) -> None:
    """ConnectorIn: the key, the callback URL, and one (kind, config) form per kind."""
    base = schemas["ConnectorIn"]
    props = base["properties"]
    key = _add(schemas, "PublicJwk", _json_schema(PublicJwk))
    props["public_jwk"] = {"$ref": key, "description": props["public_jwk"].get("description")}
    props["callback_url"]["pattern"] = callback_url_pattern(allow_loopback=allow_loopback)
    props["callback_url"]["description"] = (
        "Where the hub POSTs stage updates: https (http only to loopback, in development), a "
        "host name or IPv4 address whose every address is public, an optional port, a path."
    )
    kinds = [plugin.meta.kind for plugin in plugins]
    props["kind"] = {
        "type": "string",
        "enum": kinds,
        "default": GENERIC,
        "description": "An installed connector kind (GET /v1/connector-kinds).",
    }
    described = props["config"].get("description")
    props["config"] = {"type": "object", "default": {}, "description": described}
    if GENERIC not in kinds:
        base["required"] = sorted({*base.get("required", ()), "kind"})
    base["oneOf"] = [_connector_form(schemas, plugin) for plugin in plugins]


def _connector_form(schemas: dict[str, Any], plugin: ConnectorPlugin) -> dict[str, Any]:
    kind = plugin.meta.kind
    prefix = f"Config.{kind}."
    config = _json_schema(plugin.config_model, prefix)
    ref = _add(schemas, f"Config.{kind}", config, prefix)
    required = [] if kind == GENERIC else ["kind"]
    if config.get("required"):
        required.append("config")
    return {
        "title": kind,
        "properties": {"kind": {"const": kind}, "config": {"$ref": ref}},
        "required": required,
    }


def _events_content(
    schemas: dict[str, Any],
    plugins: list[ConnectorPlugin],
    max_batch: int,
    current: dict[str, Any],
) -> dict[str, Any]:
    """Per media type: the common schema for the generic kind's, a note for native ones."""
    event = _add(schemas, _COMMON + "AgencyEvent", _json_schema(AgencyEvent, _COMMON), _COMMON)
    described = "One agency CloudEvent in the common schema, or a batch of them"
    common: dict[str, Any] = {
        "oneOf": [
            {"$ref": event},
            {"type": "array", "items": {"$ref": event}, "minItems": 1, "maxItems": max_batch},
        ],
    }
    example = current.get("application/json", {}).get("example")
    readers: dict[str, list[str]] = {}
    for plugin in plugins:
        for media_type in plugin.meta.reads:
            readers.setdefault(media_type, []).append(plugin.meta.kind)
    content: dict[str, Any] = {}
    for media_type, kinds in sorted(readers.items(), key=lambda item: GENERIC not in item[1]):
        if GENERIC in kinds:
            others = ", ".join(k for k in kinds if k != GENERIC)
            note = f" (connectors of kind {others} read their own format here)" if others else ""
            schema = {"description": f"{described}{note}.", **common}
            content[media_type] = {"schema": schema, **({"example": example} if example else {})}
        else:
            content[media_type] = {"schema": _native(media_type, kinds)}
    return content


def _native(media_type: str, kinds: list[str]) -> dict[str, Any]:
    """A native document: its format is the connector kind's (see its documentation)."""
    described = f"A native document of the {', '.join(kinds)} connector kind(s), as they read it."
    json_like = media_type.endswith(("/json", "+json"))
    return {"type": "object" if json_like else "string", "description": described}
