"""The children's social care connector: workflow events in, workflow updates out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import InboundContext, MalformedDocument, Rendered, TranslationError
from connectors.conformance import Samples, make_conformance_tests
from connectors.social_care import SocialCareConnector
from connectors.social_care_native import SocialCareConfig
from schemas.envelope import Escalated, PlanAgreed, Raised
from schemas.escalation import Status
from schemas.people import Child, ChildIdentifiers, Role
from schemas.updates import Prompt, StageUpdate

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples" / "social-care"
CONFIG = SocialCareConfig.model_validate(json.loads((SAMPLES / "config.json").read_text()))
CONTEXT = InboundContext(
    agency_id="nct-csc", connector_id="con_1", received_at=datetime.now(UTC), config=CONFIG
)

TestSocialCareConformance = make_conformance_tests(
    SocialCareConnector, Samples.from_directory(SAMPLES, agency_id="nct-csc")
)


def _sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return document


def _translate(document: dict[str, Any], context: InboundContext = CONTEXT) -> Any:
    body = json.dumps(document).encode()
    [event] = SocialCareConnector().translate_inbound(body, "application/json", context=context)
    return event


def test_a_started_disagreement_step_raises_with_every_partner_under_its_own_reference() -> None:
    event = _translate(_sample("raised.json"))

    assert isinstance(event, Raised)
    assert (event.id, event.agencyref, event.subject) == ("WFE-20260302-000101", "CS-004512", None)
    assert event.source == "urn:lcs:nct-csc"
    references = {p.agency_id: (p.kind.value, p.case_reference) for p in event.data.parties}
    assert references == {
        "nct-csc": ("social_care", "CS-004512"),
        "nhft": ("health", "NHFT-RIO-77812"),
        "nhants-police": ("police", "NP-PPN-2026-0457"),
    }
    identifiers = event.data.child.identifiers
    assert identifiers is not None
    assert (identifiers.nhs_number, identifiers.local_ids) == ("943 476 5919", {"lcs": "P1234567"})
    assert [f.value for f in event.data.flags] == ["child_protection_plan"]  # CIN is not a flag
    assert event.data.raised_by.role is Role.PRACTITIONER
    assert event.data.partnership == "northamptonshire"


def test_an_escalation_step_carries_its_evidence_stage_and_the_manager_role() -> None:
    event = _translate(_sample("escalation.json"))

    assert isinstance(event, Escalated)
    assert event.data.to_stage == 3
    assert event.data.by.role is Role.SENIOR_MANAGER
    assert event.data.evidence.exhausted
    assert event.data.evidence.attempts[0].with_agencies == ("nhft",)


def test_an_action_plan_is_agreed_by_the_sender_and_the_mapped_partners() -> None:
    event = _translate(_sample("action-plan.json"))

    assert isinstance(event, PlanAgreed)
    assert event.data.plan.agreed_by == ("nct-csc", "nhft")
    assert [a.owner_agency for a in event.data.plan.actions] == ["nct-csc", "nhft"]


def test_the_hub_reference_when_the_system_kept_it_becomes_the_subject() -> None:
    event = _translate(_sample("discussion.json"))

    assert event.subject == "7d0f1c8e-2b6a-4d8e-9a51-3c2f0e6b9a10"
    assert event.type.short == "discussion_recorded"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"eventType": "WorkflowStepReopened"}, "eventType"),
        ({"worker": {"workerId": "W-1", "name": "A B", "role": "JANITOR"}}, "worker.role"),
        ({"concerns": ["THRESHOLDS", "NOT_A_CONCERN"]}, "concerns[1]"),
        ({"concerns": []}, "concerns"),
        ({"partnerAgencies": []}, "partnerAgencies"),
        (
            {"step": {"stepId": "S-1", "stepType": "PROFESSIONAL_DISAGREEMENT", "status": "DONE"}},
            "step.status",
        ),
        ({"person": None}, "person"),
        ({"occurredAt": "2026-03-02T09:30:00"}, "occurredAt"),
    ],
)
def test_a_refusal_names_the_native_field_and_what_is_expected(
    change: dict[str, Any], path: str
) -> None:
    document = {**_sample("raised.json"), **change}

    with pytest.raises(TranslationError) as refused:
        _translate(document)

    assert refused.value.path == path
    assert refused.value.expected


@pytest.mark.parametrize(
    ("change", "path", "problem", "expected"),
    [
        ({"partnerAgencies": "RP1"}, "partnerAgencies", "is not a JSON array", "a JSON array"),
        ({"person": ["P1"]}, "person", "is not a JSON object", "a JSON object"),
        (
            {"worker": {"workerId": 7, "name": "x", "role": "TEAM_MANAGER"}},
            "worker.workerId",
            "is not a JSON string",
            "a JSON string",
        ),
        (
            {"person": {"personId": "P1", "dateOfBirth": "2015-13-01"}},
            "person.dateOfBirth",
            "is not a date",
            "YYYY-MM-DD",
        ),
        (
            {"step": {"stepId": "S-1", "stepType": "X", "attemptsExhausted": "maybe"}},
            "step.attemptsExhausted",
            "is not true or false",
            "true or false",
        ),
        (
            {"step": {"stepId": "S-1", "stepType": "X", "escalationStage": 11}},
            "step.escalationStage",
            "is out of range",
            "at most 10",
        ),
        ({"caseId": ""}, "caseId", "is empty", "at least 1 character"),
        ({"schemaVersion": "2.0"}, "schemaVersion", "is not a value this field takes", "'1.0'"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_refused_in_json_terms_saying_what_to_send(
    change: dict[str, Any], path: str, problem: str, expected: str
) -> None:
    document = {**_sample("raised.json"), **change}

    with pytest.raises(TranslationError) as refused:
        _translate(document)

    [found] = [p for p in refused.value.problems if p.field == path]
    assert (found.problem, expected in (found.expected or "")) == (problem, True)
    said = " ".join(f"{p.problem} {p.expected}" for p in refused.value.problems)
    for python_word in ("tuple", "dictionary", "instance of", "Input should"):
        assert python_word not in said


def test_a_body_that_is_not_a_json_object_is_refused_at_the_body() -> None:
    with pytest.raises(TranslationError) as refused:
        SocialCareConnector().translate_inbound(b"[1, 2]", "application/json", context=CONTEXT)

    assert (refused.value.path, refused.value.problem) == ("(body)", "is not a JSON object")
    assert refused.value.expected


def test_a_raise_needs_a_partnership_from_the_config() -> None:
    context = InboundContext("nct-csc", "con_1", datetime.now(UTC), SocialCareConfig())

    with pytest.raises(TranslationError) as refused:
        _translate(_sample("raised.json"), context)

    assert refused.value.path == "(connector config).partnership"


def test_a_body_that_is_not_json_is_malformed_with_its_position() -> None:
    with pytest.raises(MalformedDocument) as refused:
        SocialCareConnector().translate_inbound(
            b'{"eventId": }', "application/json", context=CONTEXT
        )

    assert refused.value.position == {"line": 1, "column": 13, "offset": 12}


def _update(**changes: Any) -> StageUpdate:
    values: dict[str, Any] = {
        "update_id": "upd-1",
        "escalation_id": "esc-1",
        "sequence": 4,
        "partnership": "northamptonshire",
        "procedure_id": "northamptonshire",
        "procedure_version": "1.0.0",
        "recipient_agency_id": "nct-csc",
        "recipient_case_reference": "CS-004512",
        "event": "escalated",
        "occurred_at": datetime(2026, 3, 6, 10, tzinfo=UTC),
        "status": Status.OPEN,
        "stage": 3,
        "stage_title": "Senior managers",
        "tier": 0,
        "due": None,
        "clause": "Stage 3",
        "summary": "Escalated to stage 3.",
        "prompt": Prompt(role=Role.SENIOR_MANAGER, text="Arrange a senior managers' meeting."),
    }
    return StageUpdate(**{**values, **changes})


def test_a_stage_update_is_a_workflow_update_under_the_recipients_case_id() -> None:
    rendered = SocialCareConnector().render_outbound(_update())
    document = json.loads(rendered.body)

    assert rendered.media_type == "application/json"
    assert (document["eventType"], document["caseId"], document["hubReference"]) == (
        "PartnerStageUpdate",
        "CS-004512",
        "esc-1",
    )
    assert document["step"]["escalationStage"] == 3
    assert document["step"]["status"] == "OPEN"
    assert document["task"] == {
        "assignToRole": "SERVICE_MANAGER",
        "text": "Arrange a senior managers' meeting.",
    }
    assert "person" not in document


def test_only_an_update_with_the_child_carries_a_person() -> None:
    child = Child(identifiers=ChildIdentifiers(nhs_number="943 476 5919", given_name="Sam"))
    connector = SocialCareConnector()

    record = connector.read_outbound(connector.render_outbound(_update(child=child)))

    assert record.carries_child
    assert record.nhs_number == "943 476 5919"
    assert (record.case_reference, record.sequence, record.status) == ("CS-004512", 4, "open")


def test_the_case_system_acknowledges_with_the_message_and_case_ids() -> None:
    connector = SocialCareConnector()
    ack = connector.acknowledge(connector.render_outbound(_update()))

    assert json.loads(ack.body) == {
        "status": "ACCEPTED",
        "messageId": "upd-1",
        "caseId": "CS-004512",
    }
    assert (
        connector.acknowledge(Rendered(b"not json", "application/json")).body
        == b'{"status": "ACCEPTED"}'
    )


def test_reading_a_document_that_is_not_the_hubs_names_event_type() -> None:
    with pytest.raises(TranslationError) as refused:
        SocialCareConnector().read_outbound(Rendered(b'{"eventType": "Other"}', "application/json"))

    assert refused.value.path == "eventType"
