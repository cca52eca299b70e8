"""``escalation-hub connectors list|check``: the installed connectors, and a sample tried out.

``check`` needs no hub, database or network: it translates a native document exactly as the
gateway would and prints the common events (JSON, on stdout), or why it cannot (the native
path, the problem and what is expected, on stderr, exit code 1).

The gateway knows the sender from the connector's registration; ``check`` takes it from
``--agency`` (default ``sample-agency``), never guesses it. When a document is refused for its
own sender code, which the config's ``organisations`` maps to an agency other than the sender
(a police ``<Force code>`` mapped to the force's own hub id), the refusal ends with a hint
naming the ``--agency`` to pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.base import (
    Connector,
    ConnectorConfig,
    InboundContext,
    MalformedDocument,
    TranslationError,
)
from connectors.conformance import Sample, content_type_for
from connectors.registry import ConnectorLoadError, Registry, UnknownConnectorKind, load_registry
from gateway.commands.procedures_cmd import table
from schemas.envelope import AgencyEvent
from schemas.errors import describe

__all__ = ["register"]

EXIT_FAILED = 1
EXIT_USAGE = 2
#: The sender when --agency is not given.
DEFAULT_AGENCY = "sample-agency"


def register(sub: Any) -> None:
    p = sub.add_parser("connectors", help="list the installed connectors; check a sample document")
    psub = p.add_subparsers(dest="connectors_command", metavar="ACTION", required=True)
    lst = psub.add_parser("list", help="every installed connector: kind, title, version, formats")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(handler=_list)
    check = psub.add_parser(
        "check",
        help="translate a sample native document and show the common events it becomes",
        description="Translate FILE as connector KIND would at the gateway; print the common "
        "events as JSON, or exactly why it cannot be translated (exit code 1).",
    )
    check.add_argument("kind", metavar="KIND", help="a connector kind, e.g. social-care")
    check.add_argument("--sample", metavar="FILE", type=Path, required=True)
    check.add_argument("--content-type", metavar="TYPE", help="default: from the file's suffix")
    check.add_argument(
        "--agency",
        metavar="ID",
        default=DEFAULT_AGENCY,
        help="the sender's hub agency id, as the connector is registered "
        f"(default: {DEFAULT_AGENCY})",
    )
    check.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="the connector config (JSON); default: the samples directory's config.json, if any",
    )
    check.set_defaults(handler=_check)


def _registry() -> Registry | None:
    try:
        return load_registry()
    except ConnectorLoadError as exc:
        print(f"escalation-hub: {exc}", file=sys.stderr)
        return None


def _list(args: argparse.Namespace) -> int:
    registry = _registry()
    if registry is None:
        return EXIT_FAILED
    metas = [connector.meta for connector in registry]
    if args.json:
        print(json.dumps([m.model_dump(mode="json") for m in metas], indent=2))
        return 0
    rows = [(m.kind, m.title, m.version, "\n".join(m.reads), "\n".join(m.writes)) for m in metas]
    print(table(("kind", "title", "version", "reads", "writes"), rows))
    return 0


def _check(args: argparse.Namespace) -> int:
    registry = _registry()
    if registry is None:
        return EXIT_FAILED
    try:
        connector = registry.get(args.kind)
        body = args.sample.read_bytes()
    except UnknownConnectorKind as exc:
        print(f"escalation-hub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"escalation-hub: cannot read the sample: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    media_type = args.content_type or content_type_for(
        Sample.from_file(args.sample), connector.meta.reads
    )
    if media_type not in connector.meta.reads:
        reads = ", ".join(connector.meta.reads)
        print(f"a '{args.kind}' connector reads {reads}, not {media_type}", file=sys.stderr)
        return EXIT_FAILED
    config = _config(connector, args)
    if config is None:
        return EXIT_FAILED
    return _translate(_Check(connector, body, media_type, config, args.sample), args.agency)


def _config(connector: Connector, args: argparse.Namespace) -> ConnectorConfig | None:
    """The config to translate with: --config, else the samples directory's config.json."""
    path: Path | None = args.config or _samples_config(args.sample)
    if args.config is None and path is not None:
        print(f"using the connector config in {path}", file=sys.stderr)
    try:
        values = json.loads(path.read_text()) if path is not None else {}
        return connector.config_model.model_validate(values)
    except OSError as exc:
        print(f"escalation-hub: cannot read the config: {exc.strerror}", file=sys.stderr)
    except ValueError as exc:  # JSON syntax, or a pydantic ValidationError
        print(f"the config does not fit connector kind '{connector.meta.kind}':", file=sys.stderr)
        problems = describe(exc) if isinstance(exc, ValidationError) else []
        for problem in problems:
            print(f"  at config.{problem.field}: {problem.problem}", file=sys.stderr)
        if not problems:
            print(f"  it is not JSON: {exc}", file=sys.stderr)
    return None


def _samples_config(sample: Path) -> Path | None:
    """config.json beside the sample, or beside its ``invalid/`` directory."""
    folders = [sample.parent] + ([sample.parent.parent] if sample.parent.name == "invalid" else [])
    found = [folder / "config.json" for folder in folders if (folder / "config.json").is_file()]
    return found[0] if found and found[0] != sample else None


_Outcome = list[AgencyEvent] | TranslationError


@dataclass(frozen=True)
class _Check:
    """One sample, translated as the gateway would for a given sending agency."""

    connector: Connector
    body: bytes
    media_type: str
    config: ConnectorConfig
    sample: Path

    def as_sender(self, agency: str) -> _Outcome:
        context = InboundContext(agency, "con_check", datetime.now(UTC), self.config)
        try:
            return self.connector.translate_inbound(self.body, self.media_type, context=context)
        except TranslationError as exc:
            return exc

    def without_codes_of(self, agency: str) -> _Check:
        """The same check with no code of ``agency`` in the config's organisations."""
        kept = {code: a for code, a in self.config.organisations.items() if a != agency}
        return replace(self, config=self.config.model_copy(update={"organisations": kept}))


def _translate(check: _Check, sender: str) -> int:
    result = check.as_sender(sender)
    if not isinstance(result, TranslationError):
        return _print_events(result)
    _print_error(check, result)
    owners = _senders_by_code(check, sender, result)
    if owners:
        _hint_agency(result.path, sorted(owners))
    return EXIT_FAILED


def _senders_by_code(check: _Check, sender: str, refused: TranslationError) -> dict[str, _Outcome]:
    """The config's agencies whose code the document uses for its own sender.

    Agency A qualifies when ``refused`` is about A's code alone: sent as A, the document
    fares otherwise than as ``sender`` (it translates, or stops at another problem), and
    exactly as it fares as ``sender`` once the config maps no code to A. That is a police
    ``<Force code>`` mapped to the force's own hub id, refused as "another agency" for any
    other sender; not a document that merely names A as a partner (as A it names itself).
    A document that is not even well-formed fails alike for every sender: not tried again.
    """
    if isinstance(refused, MalformedDocument):
        return {}
    found: dict[str, _Outcome] = {}
    for agency in sorted(set(check.config.organisations.values()) - {sender}):
        outcome = check.as_sender(agency)
        unmapped = check.without_codes_of(agency).as_sender(sender)
        if not _alike(outcome, refused) and _alike(outcome, unmapped):
            found[agency] = outcome
    return found


def _alike(one: _Outcome, other: _Outcome) -> bool:
    """Both translate, or both stop at the same problem."""
    if isinstance(one, TranslationError) and isinstance(other, TranslationError):
        return (one.path, one.problem) == (other.path, other.problem)
    return not isinstance(one, TranslationError) and not isinstance(other, TranslationError)


def _hint_agency(path: str, agencies: list[str]) -> None:
    named = ", ".join(f"'{a}'" for a in agencies)
    print(
        f"hint: the problem at {path} is the sender's own code, which config.organisations "
        f"maps to {named}. Pass --agency with the sender's own hub agency id, e.g. "
        f"--agency {agencies[0]}",
        file=sys.stderr,
    )


def _print_error(check: _Check, exc: TranslationError) -> None:
    kind = check.connector.meta.kind
    print(f"{check.sample} cannot be translated as '{kind}' ({check.media_type}):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  at {problem.field}: {problem.problem}", file=sys.stderr)
        if problem.expected:
            print(f"    expected: {problem.expected}", file=sys.stderr)
    if isinstance(exc, MalformedDocument) and exc.position:
        print(f"  position: {exc.position}", file=sys.stderr)


def _print_events(events: list[AgencyEvent]) -> int:
    print(json.dumps([e.model_dump(mode="json", exclude_none=True) for e in events], indent=2))
    for event in events:
        finds = f"escalation {event.subject}" if event.subject else f"agencyref {event.agencyref}"
        if event.type.short == "raised":
            finds = "a new escalation"
        print(f"{event.type.short} {event.id}: applies to {finds}", file=sys.stderr)
    return 0
