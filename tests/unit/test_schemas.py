"""The common schema v1: envelopes, validation errors for people, committed JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.cli import main
from schemas.envelope import EventType, agency_event_adapter, event_adapter
from schemas.errors import describe
from schemas.export import render, schemas_by_file

REPO = Path(__file__).resolve().parents[2]


def raised_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:agency:nhc-social-care",
        "type": EventType.RAISED.value,
        "time": "2026-03-02T09:30:00Z",
        "agencyref": "CSC-123",
        "data": {
            "partnership": "northamptonshire",
            "raised_by": {"agency_id": "health", "name": "A Nurse", "role": "practitioner"},
            "parties": [
                {"agency_id": "health", "kind": "health"},
                {"agency_id": "csc", "kind": "social_care"},
            ],
            "child": {"identifiers": {"nhs_number": "943 476 5919", "given_name": "Sam"}},
            "concern_categories": ["thresholds"],
            "summary": "Referral not considered to meet the threshold.",
        },
    }
    event.update(overrides)
    return event


def test_a_raised_event_parses_into_its_own_envelope_type() -> None:
    event = agency_event_adapter.validate_python(raised_event())
    assert event.type is EventType.RAISED
    assert event.data.parties[1].agency_id == "csc"


def test_hub_facts_are_not_accepted_as_agency_events() -> None:
    fact = raised_event(type=EventType.STAGE_CHANGED.value)
    with pytest.raises(ValidationError):
        agency_event_adapter.validate_python(fact)
    with pytest.raises(ValidationError):  # the data does not fit a stage change either
        event_adapter.validate_python(fact)


def test_validation_errors_name_the_field_path_and_what_is_expected() -> None:
    bad = raised_event()
    bad["data"]["parties"][1]["agency_id"] = "Not An Id!"
    del bad["data"]["summary"]
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    problems = {p.field: p for p in describe(caught.value)}
    assert set(problems) == {"data.parties[1].agency_id", "data.summary"}
    assert problems["data.summary"].expected == "a value (this field is required)"
    assert "^[a-z0-9]" in (problems["data.parties[1].agency_id"].expected or "")


def test_validation_errors_never_echo_the_submitted_value() -> None:
    bad = raised_event(time="2026-03-02T09:30:00")  # naive: refused
    bad["data"]["child"]["identifiers"]["nhs_number"] = "12345"
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    rendered = json.dumps([p.model_dump() for p in describe(caught.value)])
    assert "12345" not in rendered
    assert "time" in rendered
    assert "offset" in rendered


def test_the_raiser_must_be_one_of_the_parties() -> None:
    bad = raised_event()
    bad["data"]["raised_by"]["agency_id"] = "police"
    with pytest.raises(ValidationError, match=r"raised_by\.agency_id must be one of the parties"):
        agency_event_adapter.validate_python(bad)


def test_a_raiser_who_is_not_a_party_is_reported_at_the_raisers_agency_id() -> None:
    bad = raised_event()
    bad["data"]["raised_by"]["agency_id"] = "police"
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    (problem,) = describe(caught.value)
    assert problem.field == "data.raised_by.agency_id"
    assert "one of the parties" in (problem.expected or "")
    assert "police" not in problem.model_dump_json()
    # pydantic's own location is precise, so every reader of the error finds the field
    assert [e["loc"][1:] for e in caught.value.errors()] == [("data", "raised_by", "agency_id")]
    assert "Sam" not in str(caught.value)  # the input is not the whole raise, child and all


def test_an_agency_listed_twice_is_reported_at_its_second_listing() -> None:
    bad = raised_event()
    bad["data"]["parties"][1]["agency_id"] = "health"
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    (problem,) = describe(caught.value)
    assert problem.field == "data.parties[1].agency_id"
    assert problem.expected


@pytest.mark.parametrize(
    ("where", "sent", "expected"),
    [
        (("time",), "2026-13-45 noon", "an ISO 8601 date-time with a UTC offset, e.g. 2026-"),
        (("time",), ["2026-04-02"], "an ISO 8601 date-time with a UTC offset"),
        (("data", "agreed_timescale", "amount"), "five-ish", "a whole number"),
        (("data", "agreed_timescale", "amount"), 2.5, "a whole number"),
        (("data", "agreed_timescale", "amount"), 400, "a number of at most 366"),
    ],
)
def test_number_and_date_time_errors_say_what_is_expected_without_the_value(
    where: tuple[str, ...], sent: object, expected: str
) -> None:
    bad = raised_event()
    bad["data"]["agreed_timescale"] = {"amount": 2, "unit": "working_days"}
    *parents, last = where
    target = bad
    for key in parents:
        target = target[key]
    target[last] = sent
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    (problem,) = describe(caught.value)
    assert problem.field == ".".join(where)
    assert (problem.expected or "").startswith(expected)
    assert str(sent) not in problem.model_dump_json()


def test_unknown_fields_are_refused_rather_than_silently_dropped() -> None:
    bad = raised_event()
    bad["data"]["sumary"] = "typo"
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(bad)
    assert [p.field for p in describe(caught.value)] == ["data.sumary"]


def test_narratives_and_identifiers_are_marked_sensitive_in_the_json_schema() -> None:
    text = json.dumps(schemas_by_file()["agency-event.json"])
    assert text.count('"x-sensitive": true') >= 5


def test_schema_export_writes_one_file_per_schema_equal_to_the_committed_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "json"
    assert main(["schema", "export", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(schemas_by_file())
    assert capsys.readouterr().out.splitlines() == [str(out / n) for n in schemas_by_file()]
    committed = REPO / "schemas" / "json"
    for name in written:
        assert (out / name).read_text("utf-8") == (committed / name).read_text("utf-8")


@pytest.mark.parametrize("name", sorted(schemas_by_file()))
def test_committed_json_schema_is_current(name: str) -> None:
    committed = REPO / "schemas" / "json" / name
    assert committed.exists(), f"run `make schema` to write {committed}"
    assert committed.read_text(encoding="utf-8") == render(schemas_by_file()[name]), (
        f"{committed} is stale: run `make schema` and commit the result"
    )


def test_an_unknown_event_type_is_named_without_repeating_what_was_sent() -> None:
    with pytest.raises(ValidationError) as caught:
        agency_event_adapter.validate_python(raised_event(type="uk.nhs.secret-993"))
    (problem,) = describe(caught.value)
    assert problem.field == "type"
    assert problem.problem == "unknown value"
    assert "uk.escalation-hub.v1.raised" in (problem.expected or "")
    assert "secret-993" not in problem.model_dump_json()
