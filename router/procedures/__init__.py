"""Each partnership's escalation procedure as versioned data (ARCHITECTURE.md, "Procedures").

Pure: reads this package's own data files through importlib.resources, nothing else.

Files in this package:

* ``<id>.toml``: one version of procedure ``<id>`` (the version is the ``version`` key inside);
* ``<id>@<version>.toml``: another version of the same procedure, side by side, e.g.
  ``northamptonshire@1.1.0.toml`` next to ``northamptonshire.toml`` (which holds 1.0.0). The
  version in the name must equal the ``version`` key. A published version is never edited or
  removed: an escalation keeps the version it started under (invariant 7);
* ``sources/<name>.txt``: the verbatim seed texts the rulebooks quote.

``load(id)`` without a version returns the highest version. TOML has no null, so a stage
whose timescale is ``"none"`` (or a ``total_maximum = "none"``) loads as ``None``.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from pydantic import ValidationError

from schemas.procedure import Procedure

__all__ = [
    "ProcedureFileError",
    "UnknownProcedureError",
    "available",
    "load",
    "source_text",
]

_DATA_FILE = re.compile(r"^(?P<id>[a-z][a-z0-9_-]+)(?:@(?P<version>\d+\.\d+\.\d+))?\.toml$")
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.txt$")
_NONE = "none"


class UnknownProcedureError(LookupError):
    """No procedure (or no such version of it) ships with this package."""


class ProcedureFileError(ValueError):
    """A packaged procedure file is malformed: a bug in the data, not in the caller."""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _with_nulls(raw: dict[str, Any]) -> dict[str, Any]:
    """Map the TOML stand-in ``"none"`` to None where the model allows null."""
    if raw.get("total_maximum") == _NONE:
        raw["total_maximum"] = None
    for stage in raw.get("stages", ()):
        if isinstance(stage, dict) and stage.get("timescale") == _NONE:
            stage["timescale"] = None
    return raw


def _parse(entry: Traversable, file_id: str, file_version: str | None) -> Procedure:
    name = entry.name
    try:
        procedure = Procedure.model_validate(_with_nulls(tomllib.loads(entry.read_text("utf-8"))))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ProcedureFileError(f"procedure file {name}: {exc}") from exc
    if procedure.id != file_id:
        raise ProcedureFileError(f"procedure file {name}: id is {procedure.id!r}, not {file_id!r}")
    if file_version is not None and procedure.version != file_version:
        raise ProcedureFileError(
            f"procedure file {name}: version is {procedure.version!r}, not {file_version!r}"
        )
    return procedure


@cache
def _catalogue() -> dict[str, dict[str, Procedure]]:
    """Every packaged procedure, by id and version."""
    catalogue: dict[str, dict[str, Procedure]] = {}
    for entry in sorted(files(__name__).iterdir(), key=lambda e: e.name):
        match = _DATA_FILE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        procedure = _parse(entry, match["id"], match["version"])
        versions = catalogue.setdefault(procedure.id, {})
        if procedure.version in versions:
            raise ProcedureFileError(
                f"procedure file {entry.name}: {procedure.id} {procedure.version} is defined twice"
            )
        versions[procedure.version] = procedure
    return catalogue


def available() -> list[tuple[str, str]]:
    """Every packaged (id, version), sorted by id then version."""
    return [
        (procedure_id, version)
        for procedure_id, versions in sorted(_catalogue().items())
        for version in sorted(versions, key=_version_key)
    ]


def load(procedure_id: str, version: str | None = None) -> Procedure:
    """The procedure ``procedure_id`` at ``version`` (default: its highest version)."""
    catalogue = _catalogue()
    versions = catalogue.get(procedure_id)
    if versions is None:
        known = ", ".join(sorted(catalogue)) or "(none)"
        raise UnknownProcedureError(f"unknown procedure {procedure_id!r}; known: {known}")
    if version is None:
        return versions[max(versions, key=_version_key)]
    try:
        return versions[version]
    except KeyError:
        known = ", ".join(sorted(versions, key=_version_key))
        raise UnknownProcedureError(
            f"procedure {procedure_id!r} has no version {version!r}; known: {known}"
        ) from None


@cache
def _read_source(name: str) -> str:
    if _SOURCE_NAME.match(name) is None:
        raise UnknownProcedureError(f"not a source text name: {name!r}")
    entry = files(__name__).joinpath("sources", name)
    if not entry.is_file():
        raise UnknownProcedureError(f"no source text {name!r} in this package")
    return entry.read_text("utf-8")


def source_text(procedure_id: str, version: str | None = None, *, name: str | None = None) -> str:
    """The verbatim seed text a procedure encodes (its ``source``), or another named one.

    ``name`` picks a companion text in ``sources/``, e.g. ``northamptonshire-flowchart.txt``.
    """
    source = load(procedure_id, version).source
    if name is None:
        prefix, _, name = source.partition("/")
        if prefix != "sources":
            raise ProcedureFileError(f"procedure {procedure_id}: source {source!r} not in sources/")
    return _read_source(name)
