"""The connector registry: every ``escalation_hub.connectors`` entry point, loaded and checked.

``load_registry()`` loads them all or raises ``ConnectorLoadError`` naming the entry point and
the cause, so a connector that fails to load stops the hub's start-up instead of losing an
agency's events later. ``default_registry()`` is the process's registry, loaded on first use
(nothing is loaded at import). Each entry point's name must be its connector's ``meta.kind``.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Final

from pydantic import ValidationError

from connectors.base import Connector, ConnectorConfig, ConnectorMeta

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConnectorLoadError",
    "Registry",
    "UnknownConnectorKind",
    "default_registry",
    "load_registry",
]

ENTRY_POINT_GROUP: Final = "escalation_hub.connectors"
logger = logging.getLogger(__name__)


class ConnectorLoadError(RuntimeError):
    """An entry point that does not give a usable connector; start-up must stop."""

    def __init__(self, entry_point: str, cause: str) -> None:
        super().__init__(
            f"connector entry point '{entry_point}' ({ENTRY_POINT_GROUP}) cannot be used: "
            f"{cause}; fix or uninstall the package that provides it"
        )
        self.entry_point = entry_point
        self.cause = cause


class UnknownConnectorKind(LookupError):
    """No installed connector has this kind."""

    def __init__(self, kind: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.known = tuple(sorted(known))
        super().__init__(
            f"no connector of kind '{kind}' is installed; known kinds: {', '.join(self.known)}"
        )


class Registry:
    """The installed connectors by kind, each built once (connectors are stateless)."""

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self._connectors = MappingProxyType(dict(sorted(connectors.items())))

    def get(self, kind: str) -> Connector:
        """The connector of ``kind``; UnknownConnectorKind lists the known kinds."""
        try:
            return self._connectors[kind]
        except KeyError:
            raise UnknownConnectorKind(kind, self._connectors) from None

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._connectors)

    def __iter__(self) -> Iterator[Connector]:
        return iter(self._connectors.values())

    def __len__(self) -> int:
        return len(self._connectors)

    def __contains__(self, kind: object) -> bool:
        return kind in self._connectors


def load_registry(points: Iterable[EntryPoint] | None = None) -> Registry:
    """Load and check every connector entry point (or ``points``); all or ConnectorLoadError."""
    chosen = list(entry_points(group=ENTRY_POINT_GROUP) if points is None else points)
    loaded: dict[str, Connector] = {}
    for point in sorted(chosen, key=lambda p: (p.name, p.value)):
        if point.name in loaded:
            raise ConnectorLoadError(
                point.name, "another installed package registers the same kind"
            )
        loaded[point.name] = _load_one(point)
    logger.info("connectors.loaded", extra={"kinds": sorted(loaded), "count": len(loaded)})
    return Registry(loaded)


def _load_one(point: EntryPoint) -> Connector:
    name = f"{point.name} = {point.value}"
    try:
        target = point.load()
    except Exception as exc:  # a plugin's import may raise anything
        raise ConnectorLoadError(name, f"importing it raised {type(exc).__name__}: {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, Connector)):
        raise ConnectorLoadError(name, "it is not a subclass of connectors.base.Connector")
    if inspect.isabstract(target):
        missing = ", ".join(sorted(getattr(target, "__abstractmethods__", ())))
        raise ConnectorLoadError(name, f"it does not implement {missing}")
    _check_meta(name, point.name, target)
    try:
        return target()
    except Exception as exc:  # a plugin's constructor may raise anything
        raise ConnectorLoadError(name, f"building it raised {type(exc).__name__}") from exc


def _check_meta(name: str, kind: str, target: type[Connector]) -> None:
    meta = getattr(target, "meta", None)
    if not isinstance(meta, ConnectorMeta):
        raise ConnectorLoadError(name, "its 'meta' is not a connectors.base.ConnectorMeta")
    try:
        ConnectorMeta.model_validate(meta.model_dump())
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise ConnectorLoadError(name, f"its meta is invalid ({fields})") from None
    if meta.kind != kind:
        raise ConnectorLoadError(
            name, f"the entry point's name must be its meta.kind '{meta.kind}'"
        )
    if not meta.reads or not meta.writes:
        raise ConnectorLoadError(name, "its meta must name the media types it reads and writes")
    config = getattr(target, "config_model", None)
    if not (isinstance(config, type) and issubclass(config, ConnectorConfig)):
        raise ConnectorLoadError(name, "its config_model is not a ConnectorConfig subclass")


_DEFAULT: list[Registry] = []
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process's registry of installed connectors, loaded on first use."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(load_registry())
        return _DEFAULT[0]
