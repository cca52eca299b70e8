"""``escalation-hub procedures`` and ``escalation-hub deadline`` through the real CLI entry."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest

from gateway.cli import main
from router.procedures import load
from schemas.procedure import Procedure

IDS = ["buckinghamshire", "gloucestershire", "northamptonshire", "northumberland"]
# Thursday before Easter 2026: Good Friday 3 April and Easter Monday 6 April are bank holidays.
THURSDAY_BEFORE_EASTER = "2026-04-02T15:00:00+01:00"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def deadline_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "deadline", *argv, "--json")
    assert (code, err) == (0, "")
    result: dict[str, Any] = json.loads(out)
    return result


# --- procedures -----------------------------------------------------------------------------


def test_list_shows_the_four_procedures_with_version_and_stage_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "procedures", "list")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:] if line and not line.startswith(" ")]
    assert [row[0] for row in rows] == IDS
    assert all(row[1] == "1.0.0" for row in rows)
    assert "sources/northumberland.txt" in out


def test_list_json_gives_one_object_per_procedure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "procedures", "list", "--json")
    assert code == 0
    assert [(p["id"], p["stages"]) for p in json.loads(out)] == list(
        zip(IDS, [3, 4, 5, 4], strict=True)
    )


def test_show_prints_stages_timescales_clauses_rules_and_readings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "procedures", "show", "northamptonshire")
    assert code == 0
    for text in [
        "Northamptonshire\n",
        "flowchart Stage 4",
        "2 working days",
        "from stage entry",
        "each further",
        "management tier",
        "Stage notifications",
        "immediately",
        "Northamptonshire Recording and Communication",
        "Readings",
        "48 hours",
    ]:
        assert text in out


def section(out: str, start: str, end: str) -> str:
    return out[out.index(start) : out.index(end)]


def stage_tables(out: str) -> str:
    """The stage table and the stage notifications table of ``procedures show``."""
    return section(out, "stage  title", "Flag rules")


def test_show_gives_each_stage_timescale_its_own_clause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, bucks, _ = run(capsys, "procedures", "show", "buckinghamshire")
    _, glos, _ = run(capsys, "procedures", "show", "gloucestershire")
    assert stage_tables(bucks).count("[Buckinghamshire 2.4.24]") == 3
    stages = section(glos, "stage  title", "Stage notifications")
    for clause in ["2.1(d)", "2.2(g)", "2.3(g)", "2.4(e)"]:
        assert f"[Gloucestershire {clause}]" in stages
    tier_row = stages[stages.index("each further") :]
    assert "[Gloucestershire 2.3(g)]" in tier_row
    assert "2.3(d)" in tier_row


def test_show_gives_each_stage_notification_its_clause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, "procedures", "show", "gloucestershire")
    notes = section(out, "Stage notifications", "Flag rules")
    rows = [line.split() for line in notes.splitlines()[3:] if line[:1].isdigit()]
    assert [(row[0], row[1]) for row in rows] == [
        ("1", "designated_safeguarding_lead"),
        ("3", "business_office"),
        ("4", "business_office"),
    ]
    assert "Gloucestershire 2.3(e)" in notes
    assert "Gloucestershire 2.4(b)" in notes
    assert "immediately" in notes.split("Gloucestershire 2.4(b)")[1]


@pytest.mark.parametrize("procedure_id", IDS)
def test_show_fits_the_stage_tables_in_a_100_column_terminal(
    capsys: pytest.CaptureFixture[str], procedure_id: str
) -> None:
    _, out, _ = run(capsys, "procedures", "show", procedure_id)
    too_wide = [line for line in stage_tables(out).splitlines() if len(line) > 100]
    assert too_wide == []


def test_show_prints_under_each_role_whose_role_holder_is_notified(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, "procedures", "show", "gloucestershire")
    notes = section(out, "Stage notifications", "Flag rules")
    flag_rules = section(out, "Flag rules", "Resolution rules")
    lines = flag_rules.splitlines()
    roles = ("designated_safeguarding_lead", "independent_reviewing_officer")
    under = {
        line.split()[0]: below.strip() for line, below in pairwise(lines) if line.startswith(roles)
    }
    assert under["designated_safeguarding_lead"].startswith("(acting agency only)")
    assert under["independent_reviewing_officer"].startswith("(all parties)")
    assert "(each party's own)" in notes
    # The business office rows (stages 3 and 4) carry no such line: it is the partnership's.
    assert "(all parties)" not in notes
    assert notes.count("(each party's own)") == 1


def test_show_prints_conditions_total_maximum_and_missing_timescales(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, glos, _ = run(capsys, "procedures", "show", "gloucestershire")
    _, northumberland, _ = run(capsys, "procedures", "show", "northumberland")
    flag_rules = glos[glos.index("Flag rules") : glos.index("Resolution rules")]
    assert "independent_reviewing_officer" in flag_rules
    assert "any of child_protection_plan," in flag_rules
    assert "looked_after; stage >= 2" in flag_rules
    assert "total maximum: 20 calendar days from raised" in northumberland
    assert "Senior manager to" in northumberland
    assert "none" in northumberland


def test_show_json_dumps_the_procedure_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "procedures", "show", "buckinghamshire", "--json")
    assert code == 0
    assert Procedure.model_validate_json(out) == load("buckinghamshire")


def test_show_unknown_procedure_lists_the_known_ids(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "procedures", "show", "kent")
    assert (code, out) == (2, "")
    assert "kent" in err
    assert all(pid in err for pid in IDS)


# --- deadline -------------------------------------------------------------------------------


def test_northamptonshire_stage_one_deadline_skips_good_friday_and_easter_monday(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = deadline_json(
        capsys, "--procedure", "northamptonshire", "--stage", "1", "--from", THURSDAY_BEFORE_EASTER
    )
    assert result["due"] == "2026-04-08T15:00:00+01:00"
    assert result["due_utc"] == "2026-04-08T14:00:00+00:00"
    assert (result["amount"], result["unit"]) == (2, "working_days")
    assert result["clause"] == "Northamptonshire flowchart Stage 1"
    assert (result["procedure"], result["version"], result["stage"]) == (
        "northamptonshire",
        "1.0.0",
        1,
    )
    assert result["calendar_version"].startswith("gb-eng/")


def test_a_closure_day_pushes_the_deadline_later(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--procedure", "northamptonshire", "--stage", "1", "--from", THURSDAY_BEFORE_EASTER]
    plain = deadline_json(capsys, *args)
    closed = deadline_json(capsys, *args, "--closure-day", "2026-04-07")
    assert closed["due"] == "2026-04-09T15:00:00+01:00"
    assert closed["calendar_version"] != plain["calendar_version"]
    assert closed["closure_days"] == ["2026-04-07"]


def test_calendar_days_count_weekends_and_holidays(capsys: pytest.CaptureFixture[str]) -> None:
    result = deadline_json(
        capsys, "--procedure", "northumberland", "--stage", "2", "--from", THURSDAY_BEFORE_EASTER
    )
    assert result["due"] == "2026-04-12T15:00:00+01:00"
    assert result["unit"] == "calendar_days"


def test_tier_step_uses_the_per_tier_timescale(capsys: pytest.CaptureFixture[str]) -> None:
    result = deadline_json(
        capsys,
        "--procedure",
        "gloucestershire",
        "--stage",
        "3",
        "--tier-step",
        "--from",
        "2026-04-02T09:00:00Z",
    )
    assert result["tier_step"] is True
    assert result["due"] == "2026-04-13T10:00:00+01:00"
    assert result["clause"] == "Gloucestershire 2.3(g)"


def test_text_output_gives_due_in_london_and_utc(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "deadline",
        *("--procedure", "northamptonshire", "--stage", "1", "--from", THURSDAY_BEFORE_EASTER),
    )
    assert code == 0
    assert "2026-04-08T15:00:00+01:00 (Europe/London)" in out
    assert "2026-04-08T14:00:00+00:00" in out
    assert "2 working days" in out
    assert "Northamptonshire flowchart Stage 1" in out


def test_naive_from_is_refused_with_exit_two(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "deadline",
        *("--procedure", "northamptonshire", "--stage", "1", "--from", "2026-04-02T15:00:00"),
    )
    assert (code, out) == (2, "")
    assert "--from" in err
    assert "+01:00" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--procedure", "kent", "--stage", "1"], "known: buckinghamshire, gloucestershire"),
        (["--procedure", "northamptonshire", "--stage", "6"], "valid stages: 1-5"),
        (["--procedure", "northumberland", "--stage", "3"], "has no fixed timescale"),
        (["--procedure", "northumberland", "--stage", "4"], "has no fixed timescale"),
        (["--procedure", "gloucestershire", "--stage", "1", "--tier-step"], "stages with tiers: 3"),
        (["--procedure", "gloucestershire", "--stage", "1", "--closure-day", "x"], "--closure-day"),
    ],
)
def test_bad_requests_exit_two_with_a_message_naming_valid_values(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run(capsys, "deadline", *argv, "--from", THURSDAY_BEFORE_EASTER)
    assert (code, out) == (2, "")
    assert expected in err


def test_an_unparseable_from_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "deadline", "--procedure", "gloucestershire", "--stage", "1", "--from", "soon"
    )
    assert code == 2
    assert "--from" in err
