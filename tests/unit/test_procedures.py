"""The packaged procedures: they load, quote their sources verbatim, and encode the seeds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import router.procedures as procedures
from router.procedures import ProcedureFileError, UnknownProcedureError, load, source_text
from schemas.common import Flag, TimeUnit
from schemas.procedure import NotificationRule, Procedure, Recipient, RecipientAgency, Trigger

IDS = ["buckinghamshire", "gloucestershire", "northamptonshire", "northumberland"]
SEEDS = Path("/work/shared/seeds")
SEED_OF = {
    "northamptonshire.txt": "000_b208bbba862ecc4c.txt",
    "buckinghamshire.txt": "001_67aba6fbfad13c1b.txt",
    "gloucestershire.txt": "002_36d109bc50da7c42.txt",
    "northamptonshire-flowchart.txt": "003_d2b3cb8a9e50dd6c.txt",
    "northumberland.txt": "004_fab2bdc820d5598e.txt",
}
WD, CAL = TimeUnit.WORKING_DAYS, TimeUnit.CALENDAR_DAYS


def normalise(text: str) -> str:
    """Collapse whitespace and drop markdown emphasis (``**bold**``, ``*italic*``)."""
    return " ".join(text.replace("*", "").split())


def quoted(procedure: Procedure) -> Iterator[tuple[str, str | None]]:
    """(where, quote) for every quotable part of a procedure."""
    for s in procedure.stages:
        yield f"stage {s.number}", s.quote
        if s.timescale is not None:
            yield f"stage {s.number} timescale", s.timescale.quote
        if s.tiers is not None:
            yield f"stage {s.number} tiers", s.tiers.quote
            yield f"stage {s.number} tier timescale", s.tiers.timescale.quote
        for i, rule in enumerate(s.notifications):
            yield f"stage {s.number} notification {i}", rule.quote
    for i, rule in enumerate(procedure.flag_rules):
        yield f"flag rule {i}", rule.quote
    for i, rule in enumerate(procedure.resolution_rules):
        yield f"resolution rule {i}", rule.quote
    if procedure.total_maximum is not None:
        yield "total maximum", procedure.total_maximum.quote
    for reading in procedure.readings:
        yield f"reading {reading.topic!r}", reading.quote


def notifications(procedure: Procedure, stage: int, recipient: Recipient) -> list[NotificationRule]:
    return [n for n in procedure.stage(stage).notifications if n.recipient is recipient]


# --- every procedure ------------------------------------------------------------------------


def test_four_procedures_ship_at_version_one() -> None:
    assert procedures.available() == [(pid, "1.0.0") for pid in IDS]


@pytest.mark.parametrize("procedure_id", IDS)
def test_every_procedure_loads_with_its_own_id(procedure_id: str) -> None:
    procedure = load(procedure_id)
    assert procedure.id == procedure_id
    assert procedure.version == "1.0.0"
    assert procedure.source == f"sources/{procedure_id}.txt"


@pytest.mark.parametrize("procedure_id", IDS)
def test_every_quote_occurs_verbatim_in_the_source_text(procedure_id: str) -> None:
    source = normalise(source_text(procedure_id))
    parts = list(quoted(load(procedure_id)))
    missing = [where for where, quote in parts if quote is None]
    assert missing == [], f"parts without a quote: {missing}"
    wrong = [(where, q) for where, q in parts if q is not None and normalise(q) not in source]
    assert wrong == []


@pytest.mark.parametrize("procedure_id", IDS)
def test_every_stage_timescale_and_rule_names_its_clause(procedure_id: str) -> None:
    procedure = load(procedure_id)
    for stage in procedure.stages:
        assert stage.clause.strip()
        assert stage.timescale is None or stage.timescale.clause
        assert stage.tiers is None or stage.tiers.timescale.clause
    rules = [n for s in procedure.stages for n in s.notifications]
    rules += [*procedure.flag_rules, *procedure.resolution_rules]
    assert all(rule.clause.strip() and rule.reason.strip() for rule in rules)
    assert procedure.total_maximum is None or procedure.total_maximum.clause
    assert procedure.readings, "every procedure has ambiguous points to record"


@pytest.mark.parametrize("procedure_id", IDS)
def test_house_rules_the_text_does_not_state_are_written_down_as_readings(
    procedure_id: str,
) -> None:
    """decide() asks every procedure for evidence and lets a shorter agreed timescale win:
    a procedure either cites the clause that says so or records the reading."""
    procedure = load(procedure_id)
    topics = " | ".join(r.topic for r in procedure.readings)
    assert procedure.evidence_required_clause or re.search(r"evidence|before stage", topics)
    assert procedure.shorter_timescale_clause or re.search(r"agreed.*timescale", topics)


@pytest.mark.parametrize("procedure_id", IDS)
def test_every_notice_to_a_partys_role_says_whose_and_a_reading_of_its_clause_says_why(
    procedure_id: str,
) -> None:
    """The default (every party) is never left to chance: each rule for a role other than the
    business office names its recipient_agency, and a reading of the same clause explains it."""
    procedure = load(procedure_id)
    rules = [n for s in procedure.stages for n in s.notifications]
    rules += [*procedure.flag_rules, *procedure.resolution_rules]
    for rule in rules:
        if rule.recipient is Recipient.BUSINESS_OFFICE:
            continue
        assert "recipient_agency" in rule.model_fields_set, rule.clause
        said = f"recipient_agency = {rule.recipient_agency.value}"
        why = [r for r in procedure.readings if r.clause == rule.clause and said in r.choice]
        assert why, f"no reading of {rule.clause} says {said}"


@pytest.mark.parametrize("procedure_id", IDS)
def test_clauses_name_their_partnership(procedure_id: str) -> None:
    procedure = load(procedure_id)
    clauses = [s.clause for s in procedure.stages] + [r.clause for r in procedure.readings]
    assert all(c.startswith(procedure_id.capitalize()) for c in clauses)


@pytest.mark.parametrize("name", sorted(SEED_OF))
def test_source_texts_are_verbatim_copies_of_the_seeds(name: str) -> None:
    seed = SEEDS / SEED_OF[name]
    if not seed.exists():
        pytest.skip(f"seed {seed} not available here")
    procedure_id = name.removesuffix(".txt").removesuffix("-flowchart")
    assert source_text(procedure_id, name=name) == seed.read_text("utf-8")


def test_load_is_cached() -> None:
    assert load("gloucestershire") is load("gloucestershire", "1.0.0")


def test_unknown_procedure_error_lists_the_known_ids() -> None:
    with pytest.raises(UnknownProcedureError, match="known: buckinghamshire, gloucestershire"):
        load("kent")


def test_unknown_version_error_lists_the_known_versions() -> None:
    with pytest.raises(UnknownProcedureError, match=r"no version '9\.9\.9'; known: 1\.0\.0"):
        load("northumberland", "9.9.9")


def test_source_names_cannot_leave_the_sources_folder() -> None:
    with pytest.raises(UnknownProcedureError):
        source_text("northamptonshire", name="../northamptonshire.toml")


# --- versioned files ------------------------------------------------------------------------


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the loader at a scratch folder holding a copy of northamptonshire.toml."""
    packaged = Path(procedures.__file__).parent / "northamptonshire.toml"
    (tmp_path / "northamptonshire.toml").write_text(packaged.read_text("utf-8"), "utf-8")
    monkeypatch.setattr(procedures, "files", lambda _package: tmp_path)
    procedures._catalogue.cache_clear()
    yield tmp_path
    procedures._catalogue.cache_clear()


def _write_version(folder: Path, file_name: str, version: str) -> None:
    text = (folder / "northamptonshire.toml").read_text("utf-8")
    (folder / file_name).write_text(text.replace('version = "1.0.0"', f'version = "{version}"'))


def test_a_new_version_sits_beside_the_old_one_and_becomes_the_default(package_dir: Path) -> None:
    _write_version(package_dir, "northamptonshire@1.1.0.toml", "1.1.0")
    _write_version(package_dir, "northamptonshire@1.10.0.toml", "1.10.0")
    assert procedures.available() == [
        ("northamptonshire", "1.0.0"),
        ("northamptonshire", "1.1.0"),
        ("northamptonshire", "1.10.0"),
    ]
    assert load("northamptonshire").version == "1.10.0"
    assert load("northamptonshire", "1.0.0").version == "1.0.0"


def test_a_versioned_file_name_must_match_the_version_inside(package_dir: Path) -> None:
    _write_version(package_dir, "northamptonshire@1.1.0.toml", "1.2.0")
    with pytest.raises(ProcedureFileError, match=re.escape("version is '1.2.0', not '1.1.0'")):
        procedures.available()


def test_the_same_version_cannot_be_defined_twice(package_dir: Path) -> None:
    _write_version(package_dir, "northamptonshire@1.0.0.toml", "1.0.0")
    with pytest.raises(ProcedureFileError, match="defined twice"):
        load("northamptonshire")


def test_a_file_must_hold_the_procedure_its_name_says(package_dir: Path) -> None:
    (package_dir / "northamptonshire.toml").rename(package_dir / "kent.toml")
    with pytest.raises(ProcedureFileError, match="id is 'northamptonshire', not 'kent'"):
        load("kent")


# --- Northamptonshire -----------------------------------------------------------------------


def test_northamptonshire_has_five_stages_from_professional_to_partnership() -> None:
    titles = [s.title for s in load("northamptonshire").stages]
    assert titles[0] == "Direct Professional to Professional Discussion"
    assert titles[4] == "Partnership Resolution"
    assert len(titles) == 5


def test_northamptonshire_stage_one_is_two_working_days_with_acknowledgement_and_plan() -> None:
    stage = load("northamptonshire").stage(1)
    assert stage.timescale is not None
    assert (stage.timescale.amount, stage.timescale.unit) == (2, WD)
    assert {o.value for o in stage.produces} == {"acknowledgement", "plan_of_action"}


def test_northamptonshire_director_stage_is_two_working_days() -> None:
    stage = load("northamptonshire").stage(4)
    assert stage.timescale is not None
    assert (stage.timescale.amount, stage.timescale.unit) == (2, WD)


def test_northamptonshire_senior_managers_repeat_through_tiers_five_working_days_each() -> None:
    procedure = load("northamptonshire")
    stage = procedure.stage(3)
    assert stage.tiers is not None
    assert (stage.tiers.timescale.amount, stage.tiers.timescale.unit) == (5, WD)
    assert stage.tiers.max_tiers is None
    assert [s.number for s in procedure.stages if s.tiers is not None] == [3]


def test_northamptonshire_notifies_the_business_office_at_director_and_partnership_stage() -> None:
    procedure = load("northamptonshire")
    notified = [
        s.number
        for s in procedure.stages
        for n in s.notifications
        if n.recipient == "business_office"
    ]
    assert notified == [4, 5]
    assert all(n.trigger is Trigger.STAGE_ENTRY for s in procedure.stages for n in s.notifications)
    assert notifications(procedure, 5, Recipient.BUSINESS_OFFICE)[0].immediate


def test_northamptonshire_offers_mediation_within_five_working_days_of_notification() -> None:
    stage = load("northamptonshire").stage(5)
    assert stage.timescale is not None
    assert (stage.timescale.amount, stage.timescale.unit) == (5, WD)
    assert stage.timescale.measured_from == "stage_entry"
    assert "mediation_offer" in stage.produces


def test_northamptonshire_business_office_hears_resolved_examples_for_learning() -> None:
    procedure = load("northamptonshire")
    (rule,) = procedure.resolution_rules
    assert (rule.recipient, rule.trigger) == (Recipient.BUSINESS_OFFICE, Trigger.RESOLUTION)
    assert rule.clause == "Northamptonshire Recording and Communication"


def test_northamptonshire_names_its_evidence_recording_and_shorter_timescale_clauses() -> None:
    procedure = load("northamptonshire")
    assert procedure.evidence_required_clause == "Northamptonshire The Process"
    assert procedure.recording_clause == "Northamptonshire Recording and Communication"
    assert procedure.shorter_timescale_clause is not None
    assert procedure.total_maximum is None
    assert procedure.flag_rules == ()


def test_northamptonshire_flowchart_stage_quotes_also_occur_in_the_later_flowchart_copy() -> None:
    procedure = load("northamptonshire")
    copy = normalise(source_text("northamptonshire", name="northamptonshire-flowchart.txt"))
    stage_quotes = [s.quote for s in procedure.stages]
    stage_quotes += [s.timescale.quote for s in procedure.stages if s.timescale is not None]
    assert all(q is not None and normalise(q) in copy for q in stage_quotes)


# --- Buckinghamshire ------------------------------------------------------------------------


def test_buckinghamshire_was_updated_on_6_november_2019() -> None:
    assert load("buckinghamshire").effective_from == date(2019, 11, 6)


def test_buckinghamshire_has_three_stages_of_five_working_days() -> None:
    procedure = load("buckinghamshire")
    assert [s.number for s in procedure.stages] == [1, 2, 3]
    for stage in procedure.stages:
        assert stage.timescale is not None
        assert (stage.timescale.amount, stage.timescale.unit) == (5, WD)
        assert stage.timescale.clause == "Buckinghamshire 2.4.24"


def test_buckinghamshire_total_maximum_is_fifteen_calendar_days_from_raising() -> None:
    total = load("buckinghamshire").total_maximum
    assert total is not None
    assert (total.amount, total.unit, total.measured_from) == (15, CAL, "raised")


def test_buckinghamshire_stage_two_is_the_agencys_designated_person() -> None:
    stage = load("buckinghamshire").stage(2)
    assert stage.clause == "Buckinghamshire 2.4.15"
    assert "designated_safeguarding_lead" in stage.actors


def test_buckinghamshire_senior_officer_stage_notifies_the_business_office() -> None:
    procedure = load("buckinghamshire")
    (rule,) = notifications(procedure, 3, Recipient.BUSINESS_OFFICE)
    assert (rule.trigger, rule.clause) == (Trigger.STAGE_ENTRY, "Buckinghamshire 2.4.24")
    assert not notifications(procedure, 1, Recipient.BUSINESS_OFFICE)
    assert not notifications(procedure, 2, Recipient.BUSINESS_OFFICE)


def test_buckinghamshire_life_threatening_non_involvement_informs_business_office_at_once() -> None:
    procedure = load("buckinghamshire")
    (rule,) = [r for r in procedure.flag_rules if r.recipient is Recipient.BUSINESS_OFFICE]
    assert rule.immediate
    assert rule.clause == "Buckinghamshire 2.4.25"
    both = frozenset({Flag.LIFE_THREATENING, Flag.AGENCY_NON_INVOLVEMENT})
    assert rule.condition.holds(both, stage=1)
    assert not rule.condition.holds(frozenset({Flag.LIFE_THREATENING}), stage=1)
    assert not rule.condition.holds(frozenset({Flag.AGENCY_NON_INVOLVEMENT}), stage=1)


def test_buckinghamshire_young_person_lacking_capacity_brings_legal_advice_at_last_stage() -> None:
    procedure = load("buckinghamshire")
    (rule,) = [r for r in procedure.flag_rules if r.recipient is Recipient.LEGAL_ADVISER]
    flags = frozenset({Flag.AGED_16_17_LACKING_CAPACITY})
    assert rule.clause == "Buckinghamshire 2.4.12"
    assert rule.condition.holds(flags, stage=procedure.last_stage)
    assert not rule.condition.holds(flags, stage=procedure.last_stage - 1)
    assert not rule.condition.holds(frozenset(), stage=procedure.last_stage)


def test_buckinghamshire_sees_naturally_resolved_disputes_through_and_records_them() -> None:
    procedure = load("buckinghamshire")
    assert procedure.natural_resolution_seen_through == "Buckinghamshire 2.4.11"
    assert procedure.recording_clause == "Buckinghamshire 2.4.8"


def test_buckinghamshire_says_its_stages_are_inferred_without_the_flow_diagram() -> None:
    topics = {r.topic for r in load("buckinghamshire").readings}
    assert {"stages inferred", "total maximum"} <= topics


# --- Gloucestershire ------------------------------------------------------------------------


def test_gloucestershire_stages_one_to_three_are_five_working_days_and_four_is_ten() -> None:
    procedure = load("gloucestershire")
    expected = {1: "2.1(d)", 2: "2.2(g)", 3: "2.3(g)", 4: "2.4(e)"}
    for number, clause in expected.items():
        timescale = procedure.stage(number).timescale
        assert timescale is not None
        assert timescale.unit is WD
        assert timescale.clause == f"Gloucestershire {clause}"
        assert timescale.amount == (10 if number == 4 else 5)


@pytest.mark.parametrize("flag", [Flag.LOOKED_AFTER, Flag.CHILD_PROTECTION_PLAN])
def test_gloucestershire_notifies_iro_from_stage_two_when_child_is_looked_after(flag: Flag) -> None:
    procedure = load("gloucestershire")
    iro = Recipient.INDEPENDENT_REVIEWING_OFFICER
    (rule,) = [r for r in procedure.flag_rules if r.recipient is iro]
    assert (rule.trigger, rule.clause) == (Trigger.FLAG_PRESENT, "Gloucestershire 2.2(d)")
    assert not rule.condition.holds(frozenset({flag}), stage=1)
    assert all(rule.condition.holds(frozenset({flag}), stage=n) for n in (2, 3, 4))
    assert not rule.condition.holds(frozenset({Flag.CROSS_BORDER}), stage=2)
    assert not any(notifications(procedure, n, iro) for n in (1, 2, 3, 4))


def test_gloucestershire_senior_managers_repeat_through_all_tiers() -> None:
    tiers = load("gloucestershire").stage(3).tiers
    assert tiers is not None
    assert tiers.clause == "Gloucestershire 2.3(d)"
    assert (tiers.timescale.amount, tiers.timescale.unit) == (5, WD)


def test_gloucestershire_business_office_gets_monitoring_copy_then_referral() -> None:
    procedure = load("gloucestershire")
    (copy,) = notifications(procedure, 3, Recipient.BUSINESS_OFFICE)
    (referral,) = notifications(procedure, 4, Recipient.BUSINESS_OFFICE)
    assert copy.clause == "Gloucestershire 2.3(e)"
    assert "monitoring purposes only" in copy.reason
    assert referral.clause == "Gloucestershire 2.4(b)"
    assert referral.immediate
    assert "monitoring_form" in procedure.stage(3).produces


def test_gloucestershire_immediate_harm_informs_designated_safeguarding_lead_at_once() -> None:
    lead = Recipient.DESIGNATED_SAFEGUARDING_LEAD
    (rule,) = [r for r in load("gloucestershire").flag_rules if r.recipient is lead]
    assert rule.recipient is Recipient.DESIGNATED_SAFEGUARDING_LEAD
    assert rule.recipient_agency is RecipientAgency.ACTING  # "your agency", not every party's
    assert rule.immediate
    assert rule.clause == "Gloucestershire 1.7"
    assert rule.condition.holds(frozenset({Flag.IMMEDIATE_RISK_OF_HARM}))
    assert not rule.condition.holds(frozenset())


def test_gloucestershire_shorter_protective_timescale_wins_and_flowchart_is_a_reading() -> None:
    procedure = load("gloucestershire")
    assert procedure.shorter_timescale_clause == "Gloucestershire 2.1(d)"
    assert "flowchart 5 days" in {r.topic for r in procedure.readings}


# --- Northumberland -------------------------------------------------------------------------


def test_northumberland_was_amended_in_february_2014() -> None:
    assert load("northumberland").effective_from == date(2014, 2, 1)


def test_northumberland_days_are_calendar_days() -> None:
    procedure = load("northumberland")
    one, two = procedure.stage(1).timescale, procedure.stage(2).timescale
    assert one is not None
    assert two is not None
    assert (one.amount, one.unit) == (5, CAL)
    assert (two.amount, two.unit, two.measured_from) == (10, CAL, "stage_entry")
    assert procedure.total_maximum is not None
    assert (procedure.total_maximum.amount, procedure.total_maximum.unit) == (20, CAL)
    assert procedure.total_maximum.measured_from == "raised"


def test_northumberland_senior_managers_and_directors_have_no_fixed_timescale() -> None:
    procedure = load("northumberland")
    assert procedure.stage(3).timescale is None
    assert procedure.stage(4).timescale is None
    assert "stage 2 clock" in {r.topic for r in procedure.readings}


def test_northumberland_meeting_for_a_child_on_a_plan_notifies_standards_manager() -> None:
    procedure = load("northumberland")
    (rule,) = notifications(procedure, 2, Recipient.SAFEGUARDING_STANDARDS_MANAGER)
    assert rule.condition.holds(frozenset({Flag.CHILD_PROTECTION_PLAN}), stage=2)
    assert not rule.condition.holds(frozenset(), stage=2)
    assert "independent_chair" in procedure.stage(2).actors


def test_northumberland_senior_managers_seek_designated_professional_advice() -> None:
    (rule,) = notifications(load("northumberland"), 3, Recipient.DESIGNATED_PROFESSIONAL)
    assert rule.trigger is Trigger.STAGE_ENTRY
    assert rule.condition.holds(frozenset(), stage=3)


def test_northumberland_reports_resolutions_at_agency_representative_level_to_the_board() -> None:
    (rule,) = load("northumberland").resolution_rules
    assert (rule.recipient, rule.trigger) == (Recipient.BUSINESS_OFFICE, Trigger.RESOLUTION)
    assert rule.condition.holds(frozenset(), stage=3)
    assert not rule.condition.holds(frozenset(), stage=2)
    assert rule.clause == "Northumberland Appendix 3"


@pytest.mark.parametrize("procedure_id", IDS)
def test_no_seed_asks_to_tell_the_business_office_of_a_withdrawal_and_each_says_so(
    procedure_id: str,
) -> None:
    """No text names a notice when an escalation is withdrawn, even after the business office
    was told of it: none is encoded (there is no withdrawal trigger), and a reading says why."""
    procedure = load(procedure_id)
    (reading,) = [r for r in procedure.readings if "withdraw" in r.topic]
    assert "withdraw" in reading.choice
    assert "notifies no one beyond the parties" in reading.choice


def test_timescale_none_in_toml_stands_for_no_timescale() -> None:
    raw = {"total_maximum": "none", "stages": [{"timescale": "none"}, {"timescale": {}}]}
    assert procedures._with_nulls(raw) == {
        "total_maximum": None,
        "stages": [{"timescale": None}, {"timescale": {}}],
    }


def test_markdown_emphasis_and_whitespace_do_not_hide_a_quote() -> None:
    assert normalise("within **48 hours\n (2 working days)**") == "within 48 hours (2 working days)"
    assert re.fullmatch(r"[^*]*", normalise(source_text("northamptonshire")))
