"""The health connector: FHIR R4 Task and Communication in, Task and Communication out."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.communication import Communication as R5Communication
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.task import Task
from fhir.resources.task import Task as R5Task
from pydantic import ValidationError

from connectors import fhir_codes as codes
from connectors.base import (
    ConnectorConfig,
    InboundContext,
    MalformedDocument,
    Rendered,
    TranslationError,
)
from connectors.conformance import Samples, make_conformance_tests
from connectors.fhir import FhirConnector, parse_outbound
from connectors.fhir_inputs import INPUT_CODES
from schemas.actions import DiscussionMethod, OutcomeKind
from schemas.common import ConcernCategory, Flag
from schemas.envelope import (
    AgencyEvent,
    DiscussionRecorded,
    Escalated,
    EventType,
    Raised,
    Resolved,
)
from schemas.escalation import Status
from schemas.people import Child, ChildIdentifiers, Role
from schemas.procedure import Recipient
from schemas.updates import Notification, Prompt, StageUpdate

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples" / "fhir-r4"
OFFICIAL = Path(__file__).parent / "fixtures" / "fhir"
CONFIG = ConnectorConfig.model_validate(json.loads((SAMPLES / "config.json").read_text()))
AGENCY = "nhft"
CONTEXT = InboundContext(
    agency_id=AGENCY,
    connector_id="con_1",
    received_at=datetime(2026, 3, 2, tzinfo=UTC),
    config=CONFIG,
)
AT = datetime(2026, 3, 9, 11, 0, tzinfo=UTC)
#: The profile's own codes and systems, which an error may name without echoing the document.
VOCABULARY = frozenset(
    {
        *(v for k, v in vars(codes).items() if k.isupper() and isinstance(v, str)),
        *codes.TASK_STATUSES,
        *codes.TASK_INTENTS,
        *codes.ACTION_CODES,
        *INPUT_CODES,
        *(role.value for role in Role),
        *(category.value for category in ConcernCategory),
        *(flag.value for flag in Flag),
        *(kind.value for kind in OutcomeKind),
        *(method.value for method in DiscussionMethod),
        "Task",
        "Communication",
        "Patient",
        "PractitionerRole",
        "Organization",
        "discussion",
        "official",
    }
)

TestFhirConformance = make_conformance_tests(
    FhirConnector, Samples.from_directory(SAMPLES, agency_id=AGENCY, vocabulary=VOCABULARY)
)


def _sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return document


def _translate(
    document: dict[str, Any] | bytes, content_type: str = "application/fhir+json"
) -> list[AgencyEvent]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return FhirConnector().translate_inbound(body, content_type, context=CONTEXT)


def _one(document: dict[str, Any]) -> AgencyEvent:
    [event] = _translate(document)
    return event


def _refused(
    document: dict[str, Any] | bytes, content_type: str = "application/fhir+json"
) -> TranslationError:
    with pytest.raises(TranslationError) as refused:
        _translate(document, content_type)
    return refused.value


def _said(error: TranslationError) -> str:
    return " ".join(f"{p.field} {p.problem} {p.expected}" for p in error.problems) + str(error)


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": codes.INPUT_SYSTEM, "code": code}]}, **value}


def _kitchen_sink(status: str, action: str | None) -> dict[str, Any]:
    """A Task carrying what every action needs, so only status and businessStatus decide."""
    task = _sample("raised-task.json")
    task["status"] = status
    task["businessStatus"] = (
        {"coding": [{"system": codes.ESCALATION_SYSTEM, "code": action}]} if action else None
    )
    task["note"] = [{"authorString": "Jo Nurse", "text": "What happened, in words."}]
    task["input"] += [
        _input("attempt", valueAnnotation={"time": "2026-03-04T14:00:00Z", "text": "A call."}),
        _input("exhausted", valueBoolean=True),
        _input("outcome", valueCode="agreed"),
        _input("written-confirmation", valueBoolean=True),
    ]
    return {k: v for k, v in task.items() if v is not None}


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        ("requested", None, EventType.RAISED),
        ("ready", "raised", EventType.RAISED),
        ("accepted", None, EventType.ACKNOWLEDGED),
        ("received", "acknowledged", EventType.ACKNOWLEDGED),
        ("in-progress", "plan-agreed", EventType.PLAN_AGREED),
        ("in-progress", "escalated", EventType.ESCALATED),
        ("accepted", "flags-changed", EventType.FLAGS_CHANGED),
        ("completed", None, EventType.RESOLVED),
        ("cancelled", None, EventType.WITHDRAWN),
    ],
)
def test_task_status_and_business_status_map_to_the_agency_action(
    status: str, action: str | None, expected: EventType
) -> None:
    assert _one(_kitchen_sink(status, action)).type is expected


@pytest.mark.parametrize(
    ("status", "action", "path", "words"),
    [
        ("draft", None, "Task.businessStatus", "not yet an escalation"),
        ("in-progress", None, "Task.businessStatus", "must say what happened"),
        ("rejected", None, "Task.businessStatus", "no refusal"),
        ("on-hold", None, "Task.businessStatus", "cannot be paused"),
        ("entered-in-error", None, "Task.businessStatus", "keeps every record"),
        ("completed", "escalated", "Task.status", "does not fit businessStatus"),
        ("done", None, "Task.status", "not a FHIR R4 TaskStatus"),
        ("in-progress", "finished", "Task.businessStatus.coding[0].code", "not a code"),
    ],
)
def test_a_status_that_is_no_action_is_refused_saying_what_to_send(
    status: str, action: str | None, path: str, words: str
) -> None:
    error = _refused(_kitchen_sink(status, action))
    assert (error.path, words in error.problem) == (path, True)
    assert error.expected


@pytest.mark.parametrize("status", codes.TASK_STATUSES)
def test_every_r4_task_status_without_an_action_code_maps_or_is_refused_clearly(
    status: str,
) -> None:
    task = _kitchen_sink(status, None)
    if status in codes.DEFAULT_ACTION:
        assert _one(task).type is codes.DEFAULT_ACTION[status]
    else:
        error = _refused(task)
        assert (error.path, bool(error.problem), bool(error.expected)) == (
            "Task.businessStatus",
            True,
            True,
        )


@pytest.mark.parametrize(
    ("status", "task_status"),
    [
        (Status.OPEN, "in-progress"),
        (Status.SEEING_THROUGH, "in-progress"),
        (Status.RESOLVED, "completed"),
        (Status.WITHDRAWN, "cancelled"),
    ],
)
def test_the_hub_status_maps_to_task_status_and_reads_back_exactly(
    status: Status, task_status: str
) -> None:
    rendered = FhirConnector().render_outbound(_update(status=status))
    assert json.loads(rendered.body)["status"] == task_status
    back = parse_outbound(rendered.body)
    assert isinstance(back, StageUpdate)
    assert back.status is status


def test_a_raised_task_becomes_raised_with_the_child_parties_and_concerns() -> None:
    event = _one(_sample("raised-task.json"))

    assert isinstance(event, Raised)
    assert (event.id, event.source, event.agencyref, event.subject) == (
        "Task/esc-4711/_history/1",
        "urn:fhir-r4:nhft",
        "SG-2026-0042",
        None,
    )
    assert event.time == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    data = event.data
    assert (data.partnership, data.raised_by.name, data.raised_by.role) == (
        "northamptonshire",
        "Jo Nurse",
        Role.PRACTITIONER,
    )
    assert [(p.agency_id, p.case_reference) for p in data.parties] == [
        ("nhft", "SG-2026-0042"),
        ("nct-csc", None),
    ]
    assert data.child.identifiers == ChildIdentifiers(
        nhs_number="9434765919",
        given_name="Sam",
        family_name="Example",
        date_of_birth=date(2015, 6, 1),
    )
    assert data.concern_categories == (ConcernCategory.THRESHOLDS, ConcernCategory.LEVELS_OF_NEED)
    assert data.flags == (Flag.CHILD_PROTECTION_PLAN,)


def test_an_escalation_carries_its_evidence_the_stage_asked_for_and_the_actor_role() -> None:
    event = _one(_sample("escalated-task.json"))

    assert isinstance(event, Escalated)
    assert event.subject == "0b7f5c1e-8a43-4c1d-9a55-2f1f6b0e9d10"
    assert (event.data.by.name, event.data.by.role) == ("Pat Manager", Role.LINE_MANAGER)
    assert event.data.to_stage == 2
    evidence = event.data.evidence
    assert evidence.exhausted is True
    assert [(a.at.day, a.method) for a in evidence.attempts] == [
        (4, DiscussionMethod.TELEPHONE),
        (6, DiscussionMethod.OTHER),
    ]


def test_a_completed_task_resolves_with_the_outcome_confirmed_in_writing() -> None:
    event = _one(_sample("resolved-task.json"))

    assert isinstance(event, Resolved)
    outcome = event.data.outcome
    assert (outcome.kind, outcome.written_confirmation, outcome.agreed_by) == (
        OutcomeKind.AGREED,
        True,
        ("nct-csc",),
    )
    assert outcome.learning_points == ("Share threshold decisions in writing.",)


def test_a_bundle_raises_and_records_the_discussion_under_the_same_case_reference() -> None:
    raised, discussion = _translate(_sample("raised-with-discussion-bundle.json"))

    assert (raised.type, discussion.type) == (EventType.RAISED, EventType.DISCUSSION_RECORDED)
    assert raised.agencyref == discussion.agencyref == "SG-2026-0077"
    assert isinstance(raised, Raised)
    assert raised.data.raised_by.role is Role.NAMED_PROFESSIONAL  # the PractitionerRole entry
    assert raised.data.child.identifiers is not None
    assert raised.data.child.identifiers.nhs_number == "9434765919"  # the Patient entry


def test_a_discussion_about_the_hub_escalation_id_names_the_escalation() -> None:
    comm = _sample("discussion-communication.json")
    comm["about"] = [{"identifier": {"system": codes.ESCALATION_ID_SYSTEM, "value": "esc-9"}}]
    event = _one(comm)
    assert (event.subject, event.agencyref, event.type) == (
        "esc-9",
        None,
        EventType.DISCUSSION_RECORDED,
    )


@pytest.mark.parametrize(
    ("system", "code", "method"),
    [
        (codes.PARTICIPATION_MODE, "PHONE", DiscussionMethod.TELEPHONE),
        (codes.PARTICIPATION_MODE, "VIDEOCONF", DiscussionMethod.VIRTUAL_MEETING),
        (codes.PARTICIPATION_MODE, "WRITTEN", DiscussionMethod.OTHER),
        (codes.METHOD_SYSTEM, "face_to_face", DiscussionMethod.FACE_TO_FACE),
    ],
)
def test_the_communication_medium_gives_the_discussion_method(
    system: str, code: str, method: DiscussionMethod
) -> None:
    comm = _sample("discussion-communication.json")
    comm["medium"] = [{"coding": [{"system": system, "code": code}]}]
    event = _one(comm)
    assert isinstance(event, DiscussionRecorded)
    assert event.data.method is method
    assert (event.data.by.name, event.data.held_at.hour) == ("Jo Nurse", 14)


def test_the_same_version_gives_the_same_ids_and_a_new_version_a_new_one() -> None:
    task = _sample("acknowledged-task.json")
    assert [e.model_dump() for e in _translate(task)] == [e.model_dump() for e in _translate(task)]

    task["meta"] = {"versionId": "3"}
    assert _one(task).id == "Task/esc-4712/_history/3"
    task["meta"] = {"lastUpdated": "2026-03-03T11:00:00+01:00"}
    assert _one(task).id == "Task/esc-4712/_history/2026-03-03T10:00:00.000000Z"
    del task["meta"], task["id"], task["lastModified"]
    digest = _one(task).id
    assert digest.startswith("Task/sha256-")
    assert _one(task).id == digest
    task["note"][0]["text"] = "Received; calling tomorrow instead."
    assert _one(task).id != digest


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("bad-nhs-number.json", "Task.contained[0].identifier[0].value"),
        ("discussion-not-completed.json", "Communication.status"),
        ("escalated-without-attempts.json", "Task.input"),
        ("in-progress-without-action.json", "Task.businessStatus"),
        ("missing-code.json", "Task.code"),
        ("not-fhir-datetime.json", "Task.lastModified"),
        ("resolved-without-written-confirmation.json", "Task.input"),
        ("unknown-business-status.json", "Task.businessStatus.coding[0].code"),
        ("unknown-organisation.json", "Task.owner.identifier.value"),
        ("wrong-resource-type.json", "resourceType"),
    ],
)
def test_each_invalid_sample_is_refused_at_its_fhir_path(name: str, path: str) -> None:
    error = _refused((SAMPLES / "invalid" / name).read_bytes())
    assert error.path == path
    assert error.expected


def test_an_unknown_organisation_code_names_the_path_and_the_registered_codes() -> None:
    error = _refused((SAMPLES / "invalid" / "unknown-organisation.json").read_bytes())
    assert (error.path, error.expected) == (
        "Task.owner.identifier.value",
        "a code registered in the connector's organisations",
    )
    assert "ZZZ99" not in _said(error)


def test_a_practitioner_role_may_name_a_contained_practitioner() -> None:
    task = _sample("raised-task.json")
    practitioner = {"resourceType": "Practitioner", "id": "jo", "name": [{"text": "Jo Nurse RN"}]}
    task["contained"].append(practitioner)
    task["contained"][1]["practitioner"] = {"reference": "#jo"}
    event = _one(task)
    assert isinstance(event, Raised)
    assert event.data.raised_by.name == "Jo Nurse RN"


def test_an_owner_organisation_resource_is_mapped_by_its_ods_identifier() -> None:
    task = _sample("raised-task.json")
    organisation = {
        "resourceType": "Organization",
        "id": "other",
        "identifier": [
            {"system": "https://example.org/local", "value": "local-1"},
            {"system": codes.ODS_SYSTEM, "value": "NHPOL"},
        ],
    }
    task["contained"].append(organisation)
    task["owner"] = {"reference": "#other"}
    event = _one(task)
    assert isinstance(event, Raised)
    assert [p.agency_id for p in event.data.parties] == ["nhft", "nhants-police"]

    organisation["identifier"] = [{"system": codes.ODS_SYSTEM, "value": "X1"}]
    assert _refused(task).path == "Task.contained[2].identifier[0].value"


def test_errors_never_carry_the_childs_identifiers_even_from_the_models() -> None:
    task = _sample("raised-task.json")
    task["contained"][0]["name"] = [{"given": "Zebedee", "family": ["Quill"]}]  # wrong types
    error = _refused(task)
    assert error.path.startswith("Task.contained[0].name[0]")
    assert {(p.field, p.expected) for p in error.problems} == {
        ("Task.contained[0].name[0].given", "a JSON array"),
        ("Task.contained[0].name[0].family", "a JSON string"),
    }
    assert "Zebedee" not in _said(error)
    assert "Quill" not in _said(error)

    task["contained"][0]["name"] = [{"given": ["Zebedee"], "family": "Quill"}]
    task["contained"][0]["identifier"][0]["value"] = "9434765918"
    error = _refused(task)
    assert "9434765918" not in _said(error)
    assert "Zebedee" not in _said(error)


@pytest.mark.parametrize("name", ["task-example1.json", "task-example6.json"])
def test_official_r4_task_examples_parse_and_are_refused_as_not_escalations(name: str) -> None:
    body = (OFFICIAL / name).read_bytes()
    assert Task.model_validate_json(body).status  # the R4 example is valid FHIR
    error = _refused(body)
    assert (error.path, error.problem) == (
        "Task.code",
        "does not identify a professional-disagreement escalation",
    )
    assert codes.ESCALATION_SYSTEM in (error.expected or "")
    assert "Chalmers" not in _said(error)
    assert "20170201" not in _said(error)


def test_the_r5_models_would_refuse_the_r4_examples_which_is_why_r4b_is_used() -> None:
    with pytest.raises(ValidationError):
        R5Task.model_validate_json((OFFICIAL / "task-example1.json").read_bytes())
    with pytest.raises(ValidationError):
        R5Communication.model_validate_json((OFFICIAL / "communication-example.json").read_bytes())


def test_the_official_r4_communication_example_parses_and_is_refused_for_its_missing_about() -> (
    None
):
    body = (OFFICIAL / "communication-example.json").read_bytes()
    assert Communication.model_validate_json(body).status == "completed"
    error = _refused(body)
    assert error.path == "Communication.about"
    assert "potassium" not in _said(error)
    assert "2345678901" not in _said(error)


@pytest.mark.parametrize(
    ("coding", "path"),
    [
        ({"system": "http://snomed.info/sct", "code": "225319009"}, "Task.code"),
        ({"system": codes.ESCALATION_SYSTEM, "code": "raised"}, "Task.code.coding[0].code"),
    ],
)
def test_a_task_coded_as_anything_else_is_not_an_escalation(
    coding: dict[str, str], path: str
) -> None:
    task = _sample("raised-task.json")
    task["code"] = {"coding": [coding]}
    assert _refused(task).path == path


def test_an_official_example_carrying_our_code_becomes_an_escalation_action() -> None:
    task = json.loads((OFFICIAL / "task-example6.json").read_bytes())
    task["code"] = {"coding": [{"system": codes.ESCALATION_SYSTEM, "code": codes.ESCALATION_CODE}]}
    task["note"][0]["authorString"] = "Dr Adam Careful"
    task["input"] = [
        _input("outcome", valueCode="agreed"),
        _input("written-confirmation", valueBoolean=True),
    ]
    event = _one(task)
    assert isinstance(event, Resolved)
    assert (event.agencyref, event.id) == (
        "20170201-001",
        "Task/example6/_history/2016-10-31T08:45:05.000000Z",
    )


@pytest.mark.parametrize(
    ("document", "content_type", "path"),
    [
        (b"{}", "text/xml", "Content-Type"),
        (b"{}", "application/fhir+json; fhirVersion=3.0", "Content-Type"),
        (b"[1, 2]", "application/json", "(body)"),
        (b'{"resourceType": "Bundle", "type": "searchset"}', "application/json", "Bundle.type"),
        (
            b'{"resourceType": "Bundle", "type": "collection", "entry": '
            b'[{"resource": {"resourceType": "Observation"}}]}',
            "application/fhir+json",
            "Bundle.entry[0].resource.resourceType",
        ),
        (b'{"resourceType": "Bundle", "type": "batch"}', "application/fhir+json", "Bundle.entry"),
        (
            b'{"resourceType": "Bundle", "type": "batch", "entry": '
            b'[{"resource": {"resourceType": ["Task"]}}]}',
            "application/fhir+json",
            "Bundle.entry[0].resource.resourceType",
        ),
        (
            b'{"resourceType": "Bundle", "type": "collection", "entry": '
            b'[{"resource": {"resourceType": {"name": "Task"}}}]}',
            "application/fhir+json",
            "Bundle.entry[0].resource.resourceType",
        ),
        (b'{"resourceType": ["Task"]}', "application/fhir+json", "resourceType"),
    ],
)
def test_documents_that_are_not_escalation_resources_are_refused(
    document: bytes, content_type: str, path: str
) -> None:
    assert _refused(document, content_type).path == path


def test_broken_json_is_malformed_with_its_position_and_never_quoted() -> None:
    with pytest.raises(MalformedDocument) as refused:
        _translate(b'{"resourceType": "Task", "note": [{"text": "Zebedee Quill"}')
    assert refused.value.position is not None
    assert refused.value.position["line"] == 1
    assert "Zebedee" not in str(refused.value)


def test_a_contained_resource_of_an_unknown_type_is_refused_not_crashed() -> None:
    task = _sample("raised-task.json")
    task["contained"].append({"resourceType": "Nonsense", "id": "x"})
    assert _refused(task).path == "Task.contained"


def test_a_misspelt_input_type_of_the_profile_is_refused() -> None:
    task = _sample("escalated-task.json")
    task["input"].append(_input("exhausetd", valueBoolean=True))
    assert _refused(task).path == "Task.input[3].type.coding[0].code"


def test_an_unknown_role_code_names_the_practitioner_role_coding() -> None:
    task = _sample("raised-task.json")
    task["contained"][1]["code"][0]["coding"][0]["code"] = "headteacher"
    assert _refused(task).path == "Task.contained[1].code[0].coding[0].code"


def test_more_resources_than_the_hub_accepts_in_one_request_are_refused() -> None:
    comm = _sample("discussion-communication.json")
    entries = [{"resource": {**comm, "id": f"d{i}"}} for i in range(CONTEXT.max_events + 1)]
    error = _refused({"resourceType": "Bundle", "type": "collection", "entry": entries})
    assert error.path == "Bundle.entry"


def test_a_hub_update_sent_back_unchanged_is_not_mistaken_for_an_agency_action() -> None:
    rendered = FhirConnector().render_outbound(_update(status=Status.WITHDRAWN))
    error = _refused(rendered.body)
    assert (error.path, error.problem) == ("Task.note", "does not say who acted")


def _update(*, status: Status = Status.OPEN, child: Child | None = None) -> StageUpdate:
    return StageUpdate(
        update_id="esc-1:7:nhft",
        escalation_id="0b7f5c1e-8a43-4c1d-9a55-2f1f6b0e9d10",
        sequence=7,
        partnership="northamptonshire",
        procedure_id="northamptonshire",
        procedure_version="1.0.0",
        recipient_agency_id=AGENCY,
        recipient_case_reference="SG-2026-0042",
        event="stage_changed",
        occurred_at=AT,
        status=status,
        stage=2,
        stage_title="Direct Manager to Manager Discussion",
        tier=1,
        due=AT + timedelta(days=7),
        clause="Northamptonshire flowchart Stage 2",
        summary="nct-csc escalated to stage 2.",
        prompt=Prompt(role=Role.LINE_MANAGER, text="Contact your counterpart's line manager."),
        child=child,
    )


CHILD = Child(
    identifiers=ChildIdentifiers(
        nhs_number="943 476 5919",
        local_ids={"mosaic": "M-77", "https://nhft.example.nhs.uk/Id/rio": "RIO-9"},
        given_name="Sam",
        family_name="Example",
        date_of_birth=date(2015, 6, 1),
    ),
    pseudonyms=("nhs:abc123",),
)


def test_a_stage_update_is_a_task_with_stage_due_date_owner_and_case_reference() -> None:
    task = json.loads(FhirConnector().render_outbound(_update()).body)

    assert task["resourceType"] == "Task"
    assert task["meta"]["versionId"] == "7"
    assert task["businessStatus"] == {
        "coding": [
            {
                "system": codes.STAGE_SYSTEM,
                "code": "stage-2",
                "display": "Direct Manager to Manager Discussion",
            }
        ],
        "text": "Stage 2: Direct Manager to Manager Discussion",
    }
    assert task["restriction"]["period"]["end"] == "2026-03-16T11:00:00Z"
    assert task["identifier"][0] == {
        "use": "official",
        "system": codes.CASE_REFERENCE_SYSTEM,
        "value": "SG-2026-0042",
    }
    assert task["owner"] == {"reference": "#prompted", "display": "Line manager"}
    assert [n["text"] for n in task["note"]][1] == "Northamptonshire flowchart Stage 2"
    assert "contained" in task
    assert "for" not in task
    assert all(r["resourceType"] != "Patient" for r in task["contained"])


def test_a_stage_update_with_the_child_reads_back_whole_and_renders_the_same_bytes() -> None:
    update = _update(child=CHILD)
    connector = FhirConnector()
    rendered = connector.render_outbound(update)

    assert rendered == connector.render_outbound(update)
    assert json.loads(rendered.body)["for"] == {"reference": "#child"}
    identifiers = CHILD.identifiers
    assert identifiers is not None
    digits = identifiers.model_copy(update={"nhs_number": "9434765919"})
    assert parse_outbound(rendered.body) == update.model_copy(
        update={"child": CHILD.model_copy(update={"identifiers": digits})}
    )
    record = connector.read_outbound(rendered)
    assert (record.carries_child, record.nhs_number, record.case_reference) == (
        True,
        "9434765919",
        "SG-2026-0042",
    )


def test_a_notification_is_a_communication_to_the_recipient_role() -> None:
    note = Notification(
        notification_id="esc-1:9:business_office:0",
        escalation_id="esc-1",
        partnership="northamptonshire",
        recipient=Recipient.BUSINESS_OFFICE,
        reason="The escalation reached director level.",
        clause="Northamptonshire flowchart Stage 4",
        stage=4,
        tier=0,
        immediate=True,
        occurred_at=AT,
    )
    rendered = FhirConnector().render_outbound(note)
    comm = json.loads(rendered.body)

    assert (rendered.media_type, comm["resourceType"], comm["priority"]) == (
        "application/fhir+json",
        "Communication",
        "urgent",
    )
    assert comm["recipient"] == [{"reference": "#recipient", "display": "Business office"}]
    assert parse_outbound(rendered.body) == note


def test_the_case_system_answers_with_an_operation_outcome() -> None:
    connector = FhirConnector()
    filed = json.loads(connector.acknowledge(connector.render_outbound(_update())).body)
    assert filed["resourceType"] == "OperationOutcome"
    assert filed["issue"][0]["severity"] == "information"

    patient = b'{"resourceType": "Patient", "name": [{"family": "Quill"}]}'
    refused = connector.acknowledge(Rendered(patient, "application/fhir+json"))
    issue = json.loads(refused.body)["issue"][0]
    assert (issue["severity"], issue["expression"]) == ("error", ["resourceType"])
    assert b"Quill" not in refused.body


def test_the_connector_is_registered_under_its_kind() -> None:
    [found] = [e for e in entry_points(group="escalation_hub.connectors") if e.name == "fhir-r4"]
    assert found.load() is FhirConnector
    assert FhirConnector.meta.kind == "fhir-r4"
    assert FhirConnector.meta.reads == ("application/fhir+json", "application/json")


@pytest.mark.parametrize(
    ("element", "value", "path", "words"),
    [
        (
            "executionPeriod",
            {"start": "2026-02-30T09:00:00Z"},
            "Task.executionPeriod.start",
            "date",
        ),
        ("restriction", {"repetitions": -1}, "Task.restriction.repetitions", "range"),
    ],
)
def test_an_impossible_date_or_number_says_what_fhir_r4_expects_there(
    element: str, value: dict[str, Any], path: str, words: str
) -> None:
    task = _sample("raised-task.json")
    task[element] = value
    error = _refused(task)
    assert error.path == path
    assert words in (error.expected or "")
    assert "valid for this FHIR R4 element" not in (error.expected or "")
