"""``escalation-hub deadline``: when a stage's timescale falls due, from a given instant.

Exit codes: 0 with the due instant; 2 for bad input (unknown procedure or stage, a --from
without a UTC offset, a bad --closure-day) and for a stage that has no fixed timescale.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from gateway.commands.procedures_cmd import describe_timescale
from router.calendar import LONDON, WorkingCalendar
from router.procedures import UnknownProcedureError, load
from schemas.procedure import Procedure, Stage, Timescale

__all__ = ["register"]

_EXAMPLE = "2026-04-02T15:00:00+01:00"


class _UsageError(Exception):
    """Bad input: the message says what was wrong and what to do."""


@dataclass(frozen=True)
class _Request:
    procedure: Procedure
    stage: Stage
    timescale: Timescale
    start: datetime
    calendar: WorkingCalendar


def register(sub: Any) -> None:
    p = sub.add_parser(
        "deadline",
        help="when a stage's timescale falls due (working days skip weekends and bank holidays)",
        description=(
            "Compute the due instant of one stage's timescale starting at --from. Working days "
            "exclude weekends, England and Wales bank holidays and closure days."
        ),
    )
    p.add_argument("--procedure", required=True, metavar="ID", help="e.g. northamptonshire")
    p.add_argument("--version", metavar="X.Y.Z", help="default: the highest version")
    p.add_argument("--stage", required=True, type=int, metavar="N", help="stage number")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ISO8601",
        help=f"start instant with a UTC offset, e.g. {_EXAMPLE}",
    )
    p.add_argument(
        "--tier-step",
        action="store_true",
        help="a further management tier of the stage: use its per-tier timescale",
    )
    p.add_argument(
        "--closure-day",
        dest="closure_days",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="a non-working day besides the procedure's own (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_deadline)


def _deadline(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except _UsageError as exc:
        print(f"escalation-hub deadline: error: {exc}", file=sys.stderr)
        return 2
    result = _compute(request, tier_step=args.tier_step)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(_render(result))
    return 0


def _request(args: argparse.Namespace) -> _Request:
    try:
        procedure = load(args.procedure, args.version)
    except UnknownProcedureError as exc:
        raise _UsageError(f"--procedure: {exc}") from None
    stage = _stage(procedure, args.stage)
    timescale = _timescale(procedure, stage, tier_step=args.tier_step)
    start = _start(args.start)
    closures = (*procedure.closure_days, *(_closure_day(text) for text in args.closure_days))
    return _Request(procedure, stage, timescale, start, WorkingCalendar(closure_days=closures))


def _stage(procedure: Procedure, number: int) -> Stage:
    if not 1 <= number <= procedure.last_stage:
        raise _UsageError(
            f"--stage: {procedure.id} {procedure.version} has no stage {number}; "
            f"valid stages: 1-{procedure.last_stage}"
        )
    return procedure.stage(number)


def _timescale(procedure: Procedure, stage: Stage, *, tier_step: bool) -> Timescale:
    name = f"stage {stage.number} of {procedure.id} {procedure.version} ({stage.title})"
    if tier_step:
        if stage.tiers is None:
            tiered = [str(s.number) for s in procedure.stages if s.tiers is not None]
            hint = f"stages with tiers: {', '.join(tiered)}" if tiered else "no stage has tiers"
            raise _UsageError(
                f"--tier-step: {name} does not repeat through management tiers; {hint}"
            )
        return stage.tiers.timescale
    if stage.timescale is None:
        why = f": {stage.note}" if stage.note else ""
        raise _UsageError(f"{name} has no fixed timescale [{stage.clause}]{why}")
    return stage.timescale


def _start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(
            f"--from: {text!r} is not an ISO 8601 date and time; e.g. {_EXAMPLE}"
        ) from None
    if start.tzinfo is None or start.utcoffset() is None:
        raise _UsageError(
            f"--from must carry a UTC offset, e.g. {_EXAMPLE} or 2026-04-02T14:00:00Z; got {text!r}"
        )
    return start


def _closure_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"--closure-day: {text!r} is not a date YYYY-MM-DD") from None


def _compute(request: _Request, *, tier_step: bool) -> dict[str, Any]:
    timescale, procedure = request.timescale, request.procedure
    due = request.calendar.add(request.start, timescale.amount, timescale.unit).astimezone(UTC)
    return {
        "procedure": procedure.id,
        "version": procedure.version,
        "stage": request.stage.number,
        "stage_title": request.stage.title,
        "tier_step": tier_step,
        "from": request.start.isoformat(),
        "due": due.astimezone(LONDON).isoformat(),
        "due_utc": due.isoformat(),
        "amount": timescale.amount,
        "unit": timescale.unit.value,
        "measured_from": timescale.measured_from,
        "clause": timescale.clause or request.stage.clause,
        "quote": timescale.quote,
        "calendar_version": request.calendar.version,
        "closure_days": sorted(d.isoformat() for d in request.calendar.closure_days),
    }


def _render(result: dict[str, Any]) -> str:
    measured = "stage entry" if result["measured_from"] == "stage_entry" else "when raised"
    if result["tier_step"]:
        measured = "tier entry"
    timescale = describe_timescale(Timescale(amount=result["amount"], unit=result["unit"]))
    rows = [
        ("procedure", f"{result['procedure']} {result['version']}"),
        ("stage", f"{result['stage']} {result['stage_title']}"),
        ("timescale", f"{timescale} from {measured}"),
        ("clause", result["clause"] + (f': "{result["quote"]}"' if result["quote"] else "")),
        ("from", result["from"]),
        ("due", f"{result['due']} (Europe/London)"),
        ("due (UTC)", result["due_utc"]),
        ("closure days", ", ".join(result["closure_days"]) or "none"),
        ("calendar", result["calendar_version"]),
    ]
    return "\n".join(f"{label:<14}{value}" for label, value in rows)
