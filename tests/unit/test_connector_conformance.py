"""The conformance kit fails a connector for each rule it breaks (and passes a good one)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.base import (
    ConnectorConfig,
    ConnectorMeta,
    InboundContext,
    OutboundDocument,
    Rendered,
    TranslationError,
)
from connectors.conformance import Sample, Samples, content_type_for, make_conformance_tests
from connectors.social_care import SocialCareConnector
from schemas.envelope import AgencyEvent, Raised
from schemas.people import Child
from schemas.updates import StageUpdate

SAMPLES = Samples.from_directory(
    Path(__file__).parents[2] / "connectors" / "samples" / "social-care", agency_id="nct-csc"
)
RAISED = next(s for s in SAMPLES.valid if s.name == "raised.json")
UNKNOWN_STEP = next(s for s in SAMPLES.invalid if s.name == "unknown-step-type.json")


def suite(connector: type[SocialCareConnector]) -> Any:
    return make_conformance_tests(connector, SAMPLES)()


class RandomIds(SocialCareConnector):
    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        events = super().translate_inbound(body, content_type, context=context)
        return [e.model_copy(update={"id": uuid.uuid4().hex}) for e in events]


class Echoing(SocialCareConnector):
    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        raise TranslationError(f"cannot read {body[:200]!r}", path="caseNote", expected="text")


class Pathless(SocialCareConnector):
    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        raise TranslationError("something is wrong", path="", expected=None)


class Lenient(SocialCareConnector):
    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        return super().translate_inbound(RAISED.body, content_type, context=context)


class ForgetsReference(SocialCareConnector):
    def render_outbound(self, document: OutboundDocument) -> Rendered:
        if isinstance(document, StageUpdate):
            document = document.model_copy(update={"recipient_case_reference": None})
        return super().render_outbound(document)


class RemembersChild(SocialCareConnector):
    """A stateful bug: keeps the last child it saw and sends it with every update."""

    last: ClassVar[Child | None] = None

    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        events = super().translate_inbound(body, content_type, context=context)
        for event in events:
            if isinstance(event, Raised):
                RemembersChild.last = event.data.child
        return events

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        if isinstance(document, StageUpdate) and document.child is None:
            document = document.model_copy(update={"child": RemembersChild.last})
        return super().render_outbound(document)


class TokenConfig(ConnectorConfig):
    api_token: str = ""


class PlainToken(SocialCareConnector):
    config_model: ClassVar[type[ConnectorConfig]] = TokenConfig


class BadMediaType(SocialCareConnector):
    meta: ClassVar[ConnectorMeta] = SocialCareConnector.meta.model_copy(update={"reads": ("json",)})


def test_the_built_in_social_care_connector_passes_every_check() -> None:
    checks = suite(SocialCareConnector)

    checks.test_meta_is_valid()
    checks.test_secret_config_fields_are_secret_str()
    checks.test_translating_a_sample_twice_gives_the_same_events(RAISED)
    checks.test_a_stage_update_renders_and_reads_back_under_the_own_reference(RAISED)
    checks.test_an_update_without_the_child_carries_none_of_its_identifiers(RAISED)
    checks.test_errors_never_repeat_a_value_of_the_sample(UNKNOWN_STEP)


def test_event_ids_that_change_between_translations_fail() -> None:
    with pytest.raises(AssertionError, match="different events"):
        suite(RandomIds).test_translating_a_sample_twice_gives_the_same_events(RAISED)


def test_an_error_that_repeats_the_document_fails() -> None:
    with pytest.raises(AssertionError, match="repeats the document"):
        suite(Echoing).test_errors_never_repeat_a_value_of_the_sample(UNKNOWN_STEP)


def test_an_error_without_a_path_or_expectation_fails() -> None:
    with pytest.raises(AssertionError, match="name the native path"):
        suite(Pathless).test_an_invalid_sample_fails_naming_its_native_path_and_what_is_expected(
            UNKNOWN_STEP
        )


def test_a_connector_that_accepts_an_invalid_sample_fails() -> None:
    with pytest.raises(AssertionError, match="translated without an error"):
        suite(Lenient).test_an_invalid_sample_fails_naming_its_native_path_and_what_is_expected(
            UNKNOWN_STEP
        )


def test_an_update_that_loses_the_recipients_reference_fails() -> None:
    with pytest.raises(AssertionError, match="own case reference is lost"):
        suite(ForgetsReference).test_a_stage_update_renders_and_reads_back_under_the_own_reference(
            RAISED
        )


def test_an_update_that_carries_a_child_it_was_not_given_fails() -> None:
    checks = suite(RemembersChild)

    with pytest.raises(AssertionError, match="still carries its identifiers"):
        checks.test_an_update_without_the_child_carries_none_of_its_identifiers(RAISED)


def test_a_secret_looking_config_field_that_is_not_secret_str_fails() -> None:
    with pytest.raises(AssertionError, match="'api_token' looks secret"):
        suite(PlainToken).test_secret_config_fields_are_secret_str()


def test_a_meta_with_a_malformed_media_type_fails() -> None:
    with pytest.raises(AssertionError, match="is not a media type"):
        suite(BadMediaType).test_meta_is_valid()


def test_samples_come_from_a_directory_with_invalid_ones_apart(tmp_path: Path) -> None:
    (tmp_path / "invalid").mkdir()
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "invalid-b.xml").write_text("<b/>")
    (tmp_path / "invalid" / "c.json").write_text("[]")
    (tmp_path / "config.json").write_text('{"partnership": "x"}')

    samples = Samples.from_directory(tmp_path)

    assert [s.name for s in samples.valid] == ["a.json"]
    assert [s.name for s in samples.invalid] == ["invalid-b.xml", "c.json"]
    assert samples.config == {"partnership": "x"}
    reads = ("application/fhir+json", "application/xml")
    assert content_type_for(samples.invalid[0], reads) == "application/xml"
    assert content_type_for(samples.valid[0], reads) == "application/fhir+json"
    assert content_type_for(Sample("d.txt", b"", "text/csv"), reads) == "text/csv"
