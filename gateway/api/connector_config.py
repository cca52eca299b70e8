"""A connector's kind and config: the installed connector, its settings checked and stored.

Config fields are stored in clear (``connectors.config``) except ``SecretStr`` fields, which
are sealed apart (``connectors.config_secrets_sealed``) and masked wherever the config is shown.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import SecretStr, ValidationError

from connectors.base import Connector as ConnectorPlugin
from connectors.base import ConnectorConfig
from connectors.registry import Registry, UnknownConnectorKind, default_registry
from gateway.api.problems import ProblemError
from gateway.bootstrap import Hub
from gateway.store.models import Connector
from schemas.errors import describe

__all__ = [
    "checked_config",
    "config_context",
    "plugin_of",
    "registry_of",
    "split_config",
    "stored_config",
]


def config_context(connector_id: str) -> str:
    """The sealing context of a connector's secret config fields."""
    return f"connector-config:{connector_id}"


def registry_of(request: Request) -> Registry:
    """The app's connector registry (``app.state.connectors`` if set, else the installed)."""
    registry = getattr(request.app.state, "connectors", None)
    return registry if isinstance(registry, Registry) else default_registry()


def stored_config(hub: Hub, row: Connector, plugin: ConnectorPlugin) -> ConnectorConfig:
    """The connector's config as its kind's model, secrets unsealed; 409 if it no longer fits."""
    values = dict(row.config or {})
    if row.config_secrets_sealed is not None:
        values.update(hub.sealer.unseal(row.config_secrets_sealed, context=config_context(row.id)))
    try:
        return plugin.config_model.model_validate(values)
    except ValidationError as exc:
        fields = sorted({f"config.{p.field}" for p in describe(exc)})
        raise ProblemError(
            409,
            "Connector config outdated",
            f"this connector's config no longer fits its kind '{row.kind}' (version "
            f"{plugin.meta.version}); register the connector again",
            field=fields[0] if fields else "config",
        ) from None


def plugin_of(registry: Registry, kind: str) -> ConnectorPlugin:
    """The installed connector of ``kind``; 422 naming the known kinds otherwise."""
    try:
        return registry.get(kind)
    except UnknownConnectorKind as exc:
        raise ProblemError(
            422,
            "Unknown connector kind",
            f"no connector of this kind is installed; choose one of: {', '.join(exc.known)}",
            field="kind",
            known_kinds=list(exc.known),
        ) from None


def checked_config(plugin: ConnectorPlugin, config: dict[str, Any]) -> ConnectorConfig:
    """``config`` as the kind's model; 422 naming each field at fault (never its value)."""
    try:
        return plugin.config_model.model_validate(config)
    except ValidationError as exc:
        errors = [p.model_copy(update={"field": f"config.{p.field}"}) for p in describe(exc)]
        raise ProblemError(
            422,
            "Invalid connector config",
            f"the config does not fit connector kind '{plugin.meta.kind}'; see 'errors'",
            field=errors[0].field,
            errors=errors,
        ) from None


def split_config(config: ConnectorConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The config in clear (secrets masked) and its SecretStr values apart."""
    secret = {
        name: value.get_secret_value()
        for name in type(config).model_fields
        if isinstance(value := getattr(config, name), SecretStr)
    }
    return config.model_dump(mode="json"), secret
