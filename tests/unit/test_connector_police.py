"""The police connector: RMS-style XML records in, police XML stage updates out, parsed safely."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    ConnectorConfig,
    InboundContext,
    MalformedDocument,
    Rendered,
    TranslationError,
)
from connectors.conformance import Samples, make_conformance_tests
from connectors.police import PoliceXmlConnector, parse_outbound
from connectors.police_xml import MAX_BYTES, MAX_DEPTH
from connectors.registry import ENTRY_POINT_GROUP, load_registry
from schemas.envelope import (
    DiscussionRecorded,
    Escalated,
    EventType,
    FlagsChanged,
    PlanAgreed,
    Raised,
    Resolved,
)
from schemas.escalation import Status
from schemas.people import Child, ChildIdentifiers, Role
from schemas.procedure import Recipient
from schemas.updates import Notification, Prompt, StageUpdate

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples" / "police-xml"
CONFIG = ConnectorConfig.model_validate(json.loads((SAMPLES / "config.json").read_text()))
FORCE = "nhants-police"
CONTEXT = InboundContext(
    agency_id=FORCE, connector_id="con_1", received_at=datetime.now(UTC), config=CONFIG
)
RECORD = "/SafeguardingEscalationRecord"
NS = 'xmlns="urn:escalation-hub:police:v1" schemaVersion="1"'

TestPoliceXmlConformance = make_conformance_tests(
    PoliceXmlConnector, Samples.from_directory(SAMPLES, agency_id=FORCE)
)


def _translate(body: bytes, context: InboundContext = CONTEXT) -> list[Any]:
    return PoliceXmlConnector().translate_inbound(body, "application/xml", context=context)


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _refused(body: bytes, context: InboundContext = CONTEXT) -> TranslationError:
    with pytest.raises(TranslationError) as refused:
        _translate(body, context)
    return refused.value


def _record(*elements: str, action: str = "Acknowledged", record_id: str = "R-1") -> bytes:
    """A minimal record of ``action`` with extra ``elements``."""
    return (
        f'<SafeguardingEscalationRecord {NS}><Force code="34"/>'
        f"<OccurrenceReference>34/12345/26</OccurrenceReference><RecordId>{record_id}</RecordId>"
        f"<RecordedAt>2026-03-02T09:30:00Z</RecordedAt><Action>{action}</Action>"
        f'<Officer collarNumber="4521" role="Practitioner"/>{"".join(elements)}'
        "</SafeguardingEscalationRecord>"
    ).encode()


def _raised_with(subject: str = "<Forename>Sentinel-Forename</Forename>", **swap: str) -> bytes:
    parts = {
        "partners": '<Agency code="NCT" type="SocialCare"/>',
        "category": "Thresholds",
        "narrative": "Sentinel narrative about the family",
    }
    parts.update(swap)
    return _record(
        f"<Subject>{subject}</Subject>",
        f"<PartnerAgencies>{parts['partners']}</PartnerAgencies>",
        f"<ConcernCategories><Category>{parts['category']}</Category></ConcernCategories>",
        f"<Narrative>{parts['narrative']}</Narrative>",
        action="Raised",
    )


# --- inbound: mapping ---------------------------------------------------------------------


def test_a_raised_record_opens_an_escalation_under_the_forces_own_occurrence_reference() -> None:
    [event] = _translate(_sample("raised.xml"))

    assert isinstance(event, Raised)
    assert (event.id, event.agencyref, event.subject) == (
        "NICHE-SER-000123.v1",
        "34/12345/26",
        None,
    )
    assert event.source == "urn:police-xml:nhants-police"
    assert event.time == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    data = event.data
    assert (data.partnership, data.raised_by.name, data.raised_by.role) == (
        "northamptonshire",
        "DS 4521 Jo Bloggs",
        Role.PRACTITIONER,
    )
    parties = {p.agency_id: (p.kind.value, p.case_reference) for p in data.parties}
    assert parties == {
        FORCE: ("police", "34/12345/26"),
        "nct-csc": ("social_care", "NCT-CASE-77"),
        "nhft": ("health", "RIO-123"),
    }
    identifiers = data.child.identifiers
    assert identifiers is not None
    assert identifiers.local_ids == {"pnc": "26/123456A", "nhants-police-nominal": "N-0049912"}
    assert (identifiers.nhs_number, identifiers.date_of_birth) == ("943 476 5919", date(2015, 4, 1))
    assert [c.value for c in data.concern_categories] == ["thresholds", "need_for_action"]
    assert [f.value for f in data.flags] == ["immediate_risk_of_harm"]
    assert data.agreed_timescale is not None
    assert (data.agreed_timescale.amount, data.agreed_timescale.unit.value) == (1, "working_days")


def test_each_action_maps_its_own_elements_to_the_common_schema() -> None:
    [plan] = _translate(_sample("plan-agreed.xml"))
    [talk] = _translate(_sample("discussion-recorded.xml"))
    [up] = _translate(_sample("escalated.xml"))
    [done] = _translate(_sample("resolved.xml"))
    [flags] = _translate(_sample("flags-changed.xml"))

    assert isinstance(plan, PlanAgreed)
    assert [(a.owner_agency, a.due) for a in plan.data.plan.actions] == [
        ("nct-csc", date(2026, 3, 6)),
        (FORCE, date(2026, 3, 5)),
    ]
    assert plan.data.plan.agreed_by == (FORCE, "nct-csc")
    assert isinstance(talk, DiscussionRecorded)
    assert [(p.agency_id, p.role) for p in talk.data.participants] == [
        ("nct-csc", Role.PRACTITIONER),
        (FORCE, Role.PRACTITIONER),
    ]
    assert isinstance(up, Escalated)
    assert (up.data.to_stage, up.data.evidence.exhausted, up.data.by.role) == (
        2,
        True,
        Role.LINE_MANAGER,
    )
    assert [a.with_agencies for a in up.data.evidence.attempts] == [
        ("nct-csc",),
        ("nct-csc", "nhft"),
    ]
    assert isinstance(done, Resolved)
    assert (done.data.outcome.kind.value, done.data.outcome.written_confirmation) == (
        "agreed",
        True,
    )
    assert isinstance(flags, FlagsChanged)
    assert ([f.value for f in flags.data.set], [f.value for f in flags.data.cleared]) == (
        ["child_protection_plan"],
        ["immediate_risk_of_harm"],
    )


def test_a_record_carrying_the_hubs_escalation_id_names_it_as_the_subject() -> None:
    [event] = _translate(_sample("acknowledged.xml"))

    assert (event.type, event.subject, event.agencyref) == (
        EventType.ACKNOWLEDGED,
        "esc_01HZX3K4Q9",
        "34/20417/26",
    )


def test_an_export_becomes_one_event_per_record_in_document_order() -> None:
    events = _translate(_sample("export.xml"))

    assert [(e.id, e.type.short) for e in events] == [
        ("NICHE-SER-000131.v1", "acknowledged"),
        ("NICHE-SER-000132.v1", "discussion_recorded"),
    ]


def test_event_ids_come_from_record_id_and_version_never_from_the_clock() -> None:
    later = InboundContext(FORCE, "con_2", datetime(2030, 1, 1, tzinfo=UTC), CONFIG)
    retimed = _sample("withdrawn.xml").replace(b"2026-03-12T08:15:00Z", b"2026-03-13T08:15:00Z")
    revised = _sample("withdrawn.xml").replace(b'version="2"', b'version="3"')

    assert _translate(_sample("withdrawn.xml"))[0].id == "ATH-ESC-26-000044.v2"
    assert _translate(_sample("withdrawn.xml"), later)[0].id == "ATH-ESC-26-000044.v2"
    assert _translate(retimed)[0].id == "ATH-ESC-26-000044.v2"
    assert _translate(revised)[0].id == "ATH-ESC-26-000044.v3"


def test_the_forces_own_code_need_not_be_configured() -> None:
    partners_only = ConnectorConfig(organisations={"NCT": "nct-csc"})
    context = InboundContext(FORCE, "con_1", datetime.now(UTC), partners_only)

    [event] = _translate(_sample("plan-agreed.xml"), context)

    assert event.data.by.agency_id == FORCE
    assert event.data.plan.agreed_by == (FORCE, "nct-csc")


def test_the_connectors_partnership_is_used_when_a_raised_record_names_none() -> None:
    [event] = _translate(_raised_with())
    bare = InboundContext(FORCE, "con_1", datetime.now(UTC), ConnectorConfig())

    assert event.data.partnership == "northamptonshire"
    assert _refused(_raised_with(), bare).path == f"{RECORD}/Partnership"


def test_an_export_repeating_a_record_version_is_refused_at_the_repeat() -> None:
    record = _record().decode().replace(f" {NS}", "")
    body = f"<SafeguardingEscalationExport {NS}>{record}{record}</SafeguardingEscalationExport>"

    error = _refused(body.encode())

    assert error.path == "/SafeguardingEscalationExport/SafeguardingEscalationRecord[2]/RecordId"


def test_an_export_over_the_hubs_batch_limit_is_refused() -> None:
    records = "".join(_record(record_id=f"R-{i}").decode().replace(f" {NS}", "") for i in range(3))
    body = f"<SafeguardingEscalationExport {NS}>{records}</SafeguardingEscalationExport>"
    small = InboundContext(FORCE, "con_1", datetime.now(UTC), CONFIG, max_events=2)

    assert len(_translate(body.encode())) == 3
    assert _refused(body.encode(), small).path == "/SafeguardingEscalationExport"


# --- inbound: refusals --------------------------------------------------------------------

INVALID = {
    "another-forces-record.xml": f"{RECORD}/Force/@code",
    "bad-nhs-number.xml": f"{RECORD}/Subject/NHSNumber",
    "element-for-another-action.xml": f"{RECORD}/Outcome",
    "missing-officer.xml": f"{RECORD}/Officer",
    "time-without-offset.xml": f"{RECORD}/RecordedAt",
    "unknown-action.xml": f"{RECORD}/Action",
    "unmapped-partner.xml": f"{RECORD}/PartnerAgencies/Agency[2]/@code",
    "wrong-namespace.xml": RECORD,
    "not-well-formed.xml": "(body)",
    "billion-laughs.xml": "(body)",
    "xxe-file.xml": "(body)",
    "xxe-parameter-entity.xml": "(body)",
    "dtd-only.xml": "(body)",
    "external-dtd.xml": "(body)",
}


def test_every_invalid_sample_is_listed_here_with_its_path() -> None:
    assert sorted(p.name for p in (SAMPLES / "invalid").glob("*.xml")) == sorted(INVALID)


@pytest.mark.parametrize(("name", "path"), sorted(INVALID.items()))
def test_an_invalid_sample_is_refused_at_its_native_path(name: str, path: str) -> None:
    error = _refused((SAMPLES / "invalid" / name).read_bytes())

    assert (error.path, bool(error.expected)) == (path, True)


@pytest.mark.parametrize(
    "name", ["billion-laughs.xml", "xxe-file.xml", "dtd-only.xml", "external-dtd.xml"]
)
def test_a_document_with_a_dtd_is_refused_before_any_entity_is_declared(name: str) -> None:
    error = _refused((SAMPLES / "invalid" / name).read_bytes())

    assert isinstance(error, MalformedDocument)
    assert "DTDs are refused" in error.problem
    assert "lol" not in str(error)
    assert "root:" not in str(error)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that records every request made to it."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY leak "leaked">')

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_external_entities_and_dtds_are_never_fetched(listener: tuple[str, list[str]]) -> None:
    url, requests = listener
    documents = [
        f'<!DOCTYPE r SYSTEM "{url}/dtd"><r/>',
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p"> %p;]><r/>',
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/x">]><r>&x;</r>',
    ]

    for document in documents:
        assert "DTDs are refused" in _refused(document.encode()).problem
    assert requests == []


def test_an_entity_reference_without_a_dtd_is_not_well_formed() -> None:
    error = _refused(_record("<Narrative>&secret;</Narrative>"))

    assert isinstance(error, MalformedDocument)
    assert "undefined entity" in error.problem


@pytest.mark.parametrize("encoding", [b"UTF-7", b"Shift_JIS", b"x-no-such-encoding"])
def test_a_declared_encoding_the_parser_cannot_read_is_malformed(encoding: bytes) -> None:
    body = _record().replace(
        b"<Safeguarding", b'<?xml version="1.0" encoding="%s"?><Safeguarding' % encoding, 1
    )

    error = _refused(body)

    assert isinstance(error, MalformedDocument)
    assert error.path == "(body)"


def test_a_document_over_the_size_limit_is_refused_unparsed() -> None:
    padding = b"<!--" + b"x" * MAX_BYTES + b"-->"

    error = _refused(padding + _record())

    assert isinstance(error, MalformedDocument)
    assert (error.path, "bytes, over the limit" in error.problem) == ("(body)", True)


def test_elements_nested_past_the_depth_limit_are_refused_where_it_is_exceeded() -> None:
    deep = b"<a>" * 50_000 + b"</a>" * 50_000

    error = _refused(deep)

    assert isinstance(error, MalformedDocument)
    assert error.path == "/" + "/".join(["a"] * (MAX_DEPTH + 1))


def test_a_body_not_declared_as_xml_is_refused() -> None:
    connector = PoliceXmlConnector()

    with pytest.raises(TranslationError) as refused:
        connector.translate_inbound(_record(), "application/json", context=CONTEXT)

    assert refused.value.path == "Content-Type"


SENTINEL_CASES = {
    "<NHSNumber>Sentinel-Nhs-Number</NHSNumber>": f"{RECORD}/Subject/NHSNumber",
    "<DOB>Sentinel-Date</DOB>": f"{RECORD}/Subject/DOB",
    "<PNCId>Sentinel-Pnc</PNCId>": f"{RECORD}/Subject/PNCId",
    f"<Forename>{'Sentinel-Forename' * 20}</Forename>": f"{RECORD}/Subject",
    "<Forename>x</Forename><Nickname>Sentinel-Nick</Nickname>": f"{RECORD}/Subject/Nickname",
}


@pytest.mark.parametrize(("subject", "path"), sorted(SENTINEL_CASES.items()))
def test_errors_about_the_child_never_repeat_what_was_sent(subject: str, path: str) -> None:
    error = _refused(_raised_with(subject))

    assert error.path == path
    assert "sentinel" not in f"{error} {error.expected} {error.title}".lower()


@pytest.mark.parametrize(
    ("swap", "path"),
    [
        ({"narrative": "Sentinel-Narrative " * 1200}, f"{RECORD}/Narrative"),
        ({"category": "Sentinel-Category"}, f"{RECORD}/ConcernCategories/Category[1]"),
        ({"partners": '<Agency code="Sentinel-Code" type="Health"/>'}, "Agency[1]/@code"),
        ({"partners": '<Agency code="NCT" type="Sentinel-Kind"/>'}, "Agency[1]/@type"),
    ],
)
def test_errors_about_the_record_never_repeat_what_was_sent(
    swap: dict[str, str], path: str
) -> None:
    error = _refused(_raised_with(**swap))

    assert error.path.endswith(path)
    assert "sentinel" not in f"{error} {error.expected} {error.title}".lower()


# --- outbound -----------------------------------------------------------------------------

AT = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
CHILD = Child(
    identifiers=ChildIdentifiers(
        nhs_number="943 476 5919",
        local_ids={"pnc": "26/123456A", "rio": "RIO-1"},
        given_name="Jamie",
        family_name="Testchild",
        date_of_birth=date(2015, 4, 1),
    ),
    pseudonyms=("nhs:abc", "local:rio:def"),
)


def _update(**changes: Any) -> StageUpdate:
    update = StageUpdate(
        update_id="upd-7",
        escalation_id="esc-1",
        sequence=3,
        partnership="northamptonshire",
        procedure_id="northamptonshire",
        procedure_version="1.0.0",
        recipient_agency_id=FORCE,
        recipient_case_reference="34/12345/26",
        event="stage_changed",
        occurred_at=AT,
        status=Status.OPEN,
        stage=2,
        stage_title="Line manager to line manager",
        tier=1,
        due=datetime(2026, 6, 3, 9, 0, tzinfo=UTC),
        clause="NSCP 4.2",
        summary="The disagreement moved to stage 2.",
        prompt=Prompt(role=Role.LINE_MANAGER, text="Contact the trust's team manager."),
    )
    return update.model_copy(update=changes)


NOTICE = Notification(
    notification_id="ntf-1",
    escalation_id="esc-1",
    partnership="northamptonshire",
    recipient=Recipient.BUSINESS_OFFICE,
    reason="The escalation reached director level.",
    clause="NSCP 4.4",
    stage=4,
    tier=0,
    immediate=True,
    occurred_at=AT,
)


def test_a_stage_update_renders_as_police_xml_under_the_forces_own_reference() -> None:
    rendered = PoliceXmlConnector().render_outbound(_update())
    text = rendered.body.decode()

    assert rendered.media_type == "application/xml"
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<SafeguardingStageUpdate')
    for element in (
        "<OccurrenceReference>34/12345/26</OccurrenceReference>",
        '<Stage number="2" tier="1">Line manager to line manager</Stage>',
        "<Due>2026-06-03T10:00:00+01:00</Due>",
        "<Status>Open</Status>",
        "<Event>StageChanged</Event>",
        "<Clause>NSCP 4.2</Clause>",
        '<Prompt role="LineManager">',
    ):
        assert element in text
    assert "<Subject>" not in text


def test_the_child_is_rendered_only_when_the_update_carries_it() -> None:
    text = PoliceXmlConnector().render_outbound(_update(child=CHILD)).body.decode()

    assert "<PNCId>26/123456A</PNCId>" in text
    assert '<LocalId scheme="rio">RIO-1</LocalId>' in text
    assert "<NHSNumber>943 476 5919</NHSNumber>" in text


def test_markup_in_text_is_escaped_by_the_library() -> None:
    update = _update(summary='</Summary><Subject>&"x"', stage_title="A < B & C")

    rendered = PoliceXmlConnector().render_outbound(update)

    assert b"</Summary><Subject>" not in rendered.body
    assert parse_outbound(rendered.body) == update


def test_characters_xml_cannot_carry_become_the_replacement_character() -> None:
    rendered = PoliceXmlConnector().render_outbound(_update(summary="bell\x07 and \ud800"))

    back = parse_outbound(rendered.body)

    assert isinstance(back, StageUpdate)
    assert back.summary == "bell\ufffd and \ufffd"


@pytest.mark.parametrize(
    "document",
    [
        _update(),
        _update(child=CHILD),
        _update(due=None, prompt=None, recipient_case_reference=None, event="deadline_breached"),
        _update(child=Child(pseudonyms=("nhs:abc",)), status=Status.SEEING_THROUGH),
        NOTICE,
    ],
    ids=["update", "with-child", "bare", "pseudonyms-only", "notification"],
)
def test_what_render_writes_parse_outbound_reads_back_unchanged(
    document: StageUpdate | Notification,
) -> None:
    assert parse_outbound(PoliceXmlConnector().render_outbound(document).body) == document


def test_a_case_system_reads_its_update_and_answers_with_an_xml_receipt() -> None:
    connector = PoliceXmlConnector()
    rendered = connector.render_outbound(_update(child=CHILD))

    record = connector.read_outbound(rendered)
    receipt = connector.acknowledge(rendered).body.decode()
    refusal = connector.acknowledge(Rendered(b"<!DOCTYPE x><x/>", "application/xml"))

    assert (record.document_id, record.case_reference, record.nhs_number) == (
        "upd-7",
        "34/12345/26",
        "943 476 5919",
    )
    assert "<Status>Received</Status><DocumentId>upd-7</DocumentId>" in receipt
    assert b"<Status>Refused</Status>" in refusal.body


def test_parse_outbound_refuses_entity_bombs_too() -> None:
    bomb = (SAMPLES / "invalid" / "billion-laughs.xml").read_bytes()

    with pytest.raises(MalformedDocument):
        parse_outbound(bomb)


def test_the_connector_is_installed_under_its_kind() -> None:
    points = [p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == "police-xml"]

    assert isinstance(load_registry(points).get("police-xml"), PoliceXmlConnector)
