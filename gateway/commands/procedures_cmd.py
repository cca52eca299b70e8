"""``escalation-hub procedures list|show``: the packaged escalation procedures, readably."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from router.procedures import UnknownProcedureError, available, load
from schemas.common import TimeUnit
from schemas.procedure import (
    Condition,
    NotificationRule,
    Procedure,
    Recipient,
    RecipientAgency,
    Stage,
    Tiers,
    Timescale,
)

__all__ = ["describe_timescale", "register", "table"]

_UNIT_NAMES = {
    TimeUnit.WORKING_DAYS: ("working day", "working days"),
    TimeUnit.CALENDAR_DAYS: ("calendar day", "calendar days"),
    TimeUnit.HOURS: ("hour", "hours"),
}
_FROM = {"stage_entry": "stage entry", "raised": "raised"}
# Under a recipient role: whose role-holder it is, hence whose case systems are sent it.
_WHOSE = {
    RecipientAgency.ACTING: "(acting agency only)",
    RecipientAgency.RAISER: "(raising agency only)",
    RecipientAgency.EACH_PARTY: "(each party's own)",
    RecipientAgency.ALL_PARTIES: "(all parties)",
}
# Wrap widths that keep the stage tables within 100 columns beside the widest role (28
# characters) and recipient (30); a clause column of 17 fits "Northamptonshire flowchart".
_STAGE_HEADERS = ("stage", "title", "who acts", "timescale", "clause")
_STAGE_WIDTHS = {"title": 18, "timescale": 24, "clause": 17}
_NOTE_WIDTHS = {"condition": 21, "clause": 24}


def register(sub: Any) -> None:
    p = sub.add_parser("procedures", help="list and show the packaged escalation procedures")
    psub = p.add_subparsers(dest="procedures_command", metavar="ACTION", required=True)
    lst = psub.add_parser("list", help="every procedure: id, version, title, stages, source")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(handler=_list)
    show = psub.add_parser("show", help="one procedure's stages, rules and readings")
    show.add_argument("procedure_id", metavar="ID", help="e.g. northamptonshire")
    show.add_argument("--version", metavar="X.Y.Z", help="default: the highest version")
    show.add_argument("--json", action="store_true", help="dump the procedure model as JSON")
    show.set_defaults(handler=_show)


# --- formatting, shared with deadline_cmd ---------------------------------------------------


def describe_timescale(timescale: Timescale | None) -> str:
    """E.g. '5 working days', '15 calendar days', '48 hours'; 'none' without a timescale."""
    if timescale is None:
        return "none"
    one, many = _UNIT_NAMES[timescale.unit]
    return f"{timescale.amount} {one if timescale.amount == 1 else many}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table; cells may hold several lines."""
    split_rows = [[cell.splitlines() or [""] for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in split_rows:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    out = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    for row in split_rows:
        for n in range(max(len(lines) for lines in row)):
            out.append(_line([lines[n] if n < len(lines) else "" for lines in row], widths))
    return "\n".join(out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "-"


def _condition(condition: Condition) -> str:
    parts = []
    if condition.flags_any:
        parts.append("any of " + ", ".join(condition.flags_any))
    if condition.flags_all:
        parts.append("all of " + ", ".join(condition.flags_all))
    if condition.flags_none:
        parts.append("none of " + ", ".join(condition.flags_none))
    if condition.min_stage is not None:
        parts.append(f"stage >= {condition.min_stage}")
    if condition.min_tier is not None:
        parts.append(f"tier >= {condition.min_tier}")
    return "; ".join(parts) or "always"


def _cited(clause: str | None) -> list[str]:
    """A timescale's own clause in brackets, wrapped to the timescale column."""
    return textwrap.wrap(f"[{clause}]", _STAGE_WIDTHS["timescale"]) if clause else []


def _timed(timescale: Timescale | None) -> str:
    """'5 working days', 'from stage entry', then the timescale's own clause."""
    if timescale is None:
        return "none"
    lines = [describe_timescale(timescale), f"from {_FROM[timescale.measured_from]}"]
    return "\n".join(lines + _cited(timescale.clause))


def _stage_row(stage: Stage) -> list[str]:
    return [
        str(stage.number),
        _wrap(stage.title, _STAGE_WIDTHS["title"]),
        "\n".join(stage.actors) or "-",
        _timed(stage.timescale),
        _wrap(stage.clause, _STAGE_WIDTHS["clause"]),
    ]


def _tier_row(number: int, tiers: Tiers) -> list[str]:
    """The row under a stage that repeats through management tiers."""
    limit = "no limit" if tiers.max_tiers is None else f"up to {tiers.max_tiers}"
    each = tiers.timescale
    return [
        str(number),
        _wrap(f"each further management tier ({limit})", _STAGE_WIDTHS["title"]),
        f"as stage {number}",
        "\n".join([f"{describe_timescale(each)} each", *_cited(each.clause)]),
        _wrap(tiers.clause, _STAGE_WIDTHS["clause"]),
    ]


def _stage_rows(stage: Stage) -> list[list[str]]:
    tiers = [] if stage.tiers is None else [_tier_row(stage.number, stage.tiers)]
    return [_stage_row(stage), *tiers]


def _recipient(rule: NotificationRule) -> str:
    """The role, and under it whose (none for the business office, the partnership's own)."""
    if rule.recipient is Recipient.BUSINESS_OFFICE:
        return rule.recipient.value
    return f"{rule.recipient.value}\n{_WHOSE[rule.recipient_agency]}"


def _when(rule: NotificationRule) -> str:
    when = rule.trigger.value.replace("_", " ")
    return f"{when}\nimmediately" if rule.immediate else when


def _notification_rows(stage: Stage) -> list[list[str]]:
    return [
        [
            str(stage.number),
            _recipient(rule),
            _when(rule),
            _wrap(_condition(rule.condition), _NOTE_WIDTHS["condition"]),
            _wrap(rule.clause, _NOTE_WIDTHS["clause"]),
        ]
        for rule in stage.notifications
    ]


def _stage_notifications(procedure: Procedure) -> str:
    rows = [row for stage in procedure.stages for row in _notification_rows(stage)]
    if not rows:
        return "(none)"
    return table(["stage", "recipient", "when", "condition", "clause"], rows)


def _rules_table(rules: Sequence[NotificationRule]) -> str:
    if not rules:
        return "(none)"
    rows = [
        [
            _recipient(r),
            r.trigger.value.replace("_", " ") + (" (immediately)" if r.immediate else ""),
            _wrap(_condition(r.condition), 36),
            _wrap(r.reason, 50),
            _wrap(r.clause, 30),
        ]
        for r in rules
    ]
    return table(["recipient", "when", "condition", "why", "clause"], rows)


def _render(procedure: Procedure) -> str:
    return "\n".join(
        [
            f"{procedure.id} {procedure.version}: {procedure.title}",
            f"partnership: {procedure.partnership}",
            f"source: {procedure.source}; effective from {procedure.effective_from.isoformat()}",
            "",
            table(_STAGE_HEADERS, [row for s in procedure.stages for row in _stage_rows(s)]),
            "",
            "Stage notifications",
            _stage_notifications(procedure),
            "",
            "Flag rules",
            _rules_table(procedure.flag_rules),
            "",
            "Resolution rules",
            _rules_table(procedure.resolution_rules),
            "",
            *_footer(procedure),
            "",
            "Readings",
            _readings_table(procedure),
        ]
    )


def _footer(procedure: Procedure) -> list[str]:
    total = procedure.total_maximum
    total_text = "none stated"
    if total is not None:
        total_text = f"{describe_timescale(total)} from {_FROM[total.measured_from]}"
        total_text += f" [{total.clause}]"
    clauses = [
        ("shorter agreed timescale wins", procedure.shorter_timescale_clause),
        ("evidence that the previous stage was exhausted", procedure.evidence_required_clause),
        ("recording", procedure.recording_clause),
        ("natural resolution seen through", procedure.natural_resolution_seen_through),
    ]
    closures = ", ".join(d.isoformat() for d in procedure.closure_days) or "none"
    return [
        f"total maximum: {total_text}",
        *(f"{label}: {clause or '-'}" for label, clause in clauses),
        f"closure days: {closures}",
    ]


def _readings_table(procedure: Procedure) -> str:
    if not procedure.readings:
        return "(none)"
    rows = [
        [_wrap(r.topic, 24), _wrap(r.choice, 72), _wrap(r.clause, 28)] for r in procedure.readings
    ]
    return table(["topic", "choice", "clause"], rows)


# --- handlers -------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    procedures = [load(pid, version) for pid, version in available()]
    if args.json:
        print(json.dumps([_summary(p) for p in procedures], indent=2))
        return 0
    rows = [[p.id, p.version, _wrap(p.title, 60), str(len(p.stages)), p.source] for p in procedures]
    print(table(["id", "version", "title", "stages", "source"], rows))
    return 0


def _summary(procedure: Procedure) -> dict[str, Any]:
    return {
        "id": procedure.id,
        "version": procedure.version,
        "title": procedure.title,
        "stages": len(procedure.stages),
        "source": procedure.source,
    }


def _show(args: argparse.Namespace) -> int:
    try:
        procedure = load(args.procedure_id, args.version)
    except UnknownProcedureError as exc:
        print(f"escalation-hub procedures show: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(procedure.model_dump_json(indent=2))
    else:
        print(_render(procedure))
    return 0
