"""The generic connector: the common schema itself, one event or a batch, both ways."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import InboundContext, MalformedDocument, TranslationError
from connectors.conformance import Samples, make_conformance_tests
from connectors.conformance_checks import NOTIFICATION
from connectors.generic import MAX_DEPTH, GenericConnector
from schemas.envelope import AgencyEvent

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples" / "generic"
CONTEXT = InboundContext("sample-agency", "con_1", datetime.now(UTC), max_events=2)

TestGenericConformance = make_conformance_tests(GenericConnector, Samples.from_directory(SAMPLES))


def _translate(body: bytes) -> list[AgencyEvent]:
    return GenericConnector().translate_inbound(body, "application/json", context=CONTEXT)


def test_a_batch_translates_to_its_events_in_order() -> None:
    events = _translate((SAMPLES / "batch.json").read_bytes())

    assert [e.id for e in events] == ["evt-20260302-0002", "evt-20260303-0003"]


def test_every_invalid_field_of_a_batch_is_named_with_its_index_and_never_its_value() -> None:
    good = json.loads((SAMPLES / "raised.json").read_text())
    bad = json.loads((SAMPLES / "invalid" / "wrong-field.json").read_text())

    with pytest.raises(TranslationError) as refused:
        _translate(json.dumps([good, bad]).encode())

    fields = {p.field: (p.problem, p.expected) for p in refused.value.problems}
    assert set(fields) == {"[1].data.parties", "[1].data.child.identifiers.nhs_number"}
    assert fields["[1].data.parties"] == ("is not a JSON array", "a JSON array")
    assert refused.value.title == "Invalid event"
    assert "not a number" not in str([p.model_dump() for p in refused.value.problems])


@pytest.mark.parametrize("body", [b"[]", b"null", b"[1, 2, 3]"])
def test_an_empty_or_oversized_batch_or_no_object_is_refused_at_the_body(body: bytes) -> None:
    with pytest.raises(TranslationError) as refused:
        _translate(body)

    assert (refused.value.path, refused.value.title) == ("(body)", "Invalid batch")


def test_json_nested_too_deeply_is_refused_without_recursing() -> None:
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)

    with pytest.raises(TranslationError) as refused:
        _translate(deep)

    assert refused.value.title == "JSON too deep"


def test_json_that_does_not_parse_is_malformed_with_its_position() -> None:
    with pytest.raises(MalformedDocument) as refused:
        _translate(b'{"id":\n NaN}')

    assert refused.value.title == "Malformed JSON"
    assert "NaN" in refused.value.problem  # the JSON constant named, never a value of the body


def test_an_update_is_rendered_as_compact_json_with_sorted_keys() -> None:
    rendered = GenericConnector().render_outbound(NOTIFICATION)

    assert rendered.media_type == "application/json"
    assert rendered.body.startswith(b'{"clause":')
    assert b", " not in rendered.body


def test_a_broken_rule_of_the_schema_is_said_in_its_own_words_with_what_to_do() -> None:
    event = json.loads((SAMPLES / "raised.json").read_text())
    event["data"]["raised_by"]["agency_id"] = "nobody-we-know"

    with pytest.raises(TranslationError) as refused:
        _translate(json.dumps(event).encode())

    [problem] = refused.value.problems
    assert problem.problem == "raised_by.agency_id must be one of the parties"
    assert problem.expected
    assert "nobody-we-know" not in f"{problem.problem} {problem.expected}"
