"""The connector registry: every entry point loaded and checked, or start-up stops."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

import pytest

from connectors.base import Connector, ConnectorMeta, OutboundDocument, Rendered
from connectors.generic import GenericConnector
from connectors.registry import (
    ENTRY_POINT_GROUP,
    ConnectorLoadError,
    UnknownConnectorKind,
    load_registry,
)
from connectors.social_care import SocialCareConnector

MODULE = "eh_test_plugins"


class Echo(Connector):
    meta: ClassVar[ConnectorMeta] = ConnectorMeta(
        kind="echo", title="Echo", version="0.1.0", reads=("text/plain",), writes=("text/plain",)
    )

    def translate_inbound(self, body: bytes, content_type: str, *, context: Any) -> list[Any]:
        return []

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        return Rendered(b"", "text/plain")


class Unfinished(Connector):
    meta: ClassVar[ConnectorMeta] = Echo.meta


class Exploding(Echo):
    def __init__(self) -> None:
        raise RuntimeError("needs a licence server")


class NoWrites(Echo):
    meta: ClassVar[ConnectorMeta] = Echo.meta.model_copy(update={"writes": ()})


@pytest.fixture(autouse=True)
def plugins() -> Iterator[None]:
    """A module of plugin classes that entry points can name."""
    module = types.ModuleType(MODULE)
    for cls in (Echo, Unfinished, Exploding, NoWrites):
        setattr(module, cls.__name__, cls)
    module.NotAConnector = dict  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    yield
    del sys.modules[MODULE]


def point(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{MODULE}:{target}", group=ENTRY_POINT_GROUP)


def test_the_installed_connectors_include_the_generic_and_social_care_ones() -> None:
    installed = {p.name: p.value for p in entry_points(group=ENTRY_POINT_GROUP)}

    assert installed["generic"] == "connectors.generic:GenericConnector"
    assert installed["social-care"] == "connectors.social_care:SocialCareConnector"


def test_a_registry_gives_each_connector_by_kind_built_once() -> None:
    generic = EntryPoint("generic", "connectors.generic:GenericConnector", ENTRY_POINT_GROUP)
    social = EntryPoint(
        "social-care", "connectors.social_care:SocialCareConnector", ENTRY_POINT_GROUP
    )

    registry = load_registry([social, generic, point("echo", "Echo")])

    assert registry.kinds() == ("echo", "generic", "social-care")
    assert isinstance(registry.get("generic"), GenericConnector)
    assert isinstance(registry.get("social-care"), SocialCareConnector)
    assert registry.get("echo") is registry.get("echo")


def test_an_unknown_kind_is_refused_listing_the_known_ones() -> None:
    registry = load_registry([point("echo", "Echo")])

    with pytest.raises(
        UnknownConnectorKind, match="no connector of kind 'fax' is installed; known kinds: echo"
    ):
        registry.get("fax")


@pytest.mark.parametrize(
    ("entry", "cause"),
    [
        (EntryPoint("gone", "eh_missing_module:Gone", ENTRY_POINT_GROUP), "ModuleNotFoundError"),
        (point("echo", "NotAConnector"), "not a subclass of connectors.base.Connector"),
        (point("echo", "Unfinished"), "does not implement render_outbound, translate_inbound"),
        (point("echo", "Exploding"), "building it raised RuntimeError"),
        (point("echo", "NoWrites"), "must name the media types it reads and writes"),
        (point("mirror", "Echo"), "the entry point's name must be its meta.kind 'echo'"),
    ],
)
def test_a_connector_that_cannot_be_used_stops_loading_naming_the_entry_point(
    entry: EntryPoint, cause: str
) -> None:
    with pytest.raises(ConnectorLoadError) as failed:
        load_registry([entry])

    assert f"'{entry.name} = {entry.value}'" in str(failed.value)
    assert cause in str(failed.value)


def test_two_packages_registering_one_kind_stop_loading() -> None:
    with pytest.raises(ConnectorLoadError, match="registers the same kind"):
        load_registry([point("echo", "Echo"), point("echo", "Echo")])
