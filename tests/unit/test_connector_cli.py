"""``escalation-hub connectors list|check``: what agency IT teams run against their samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples"
POLICE_RAISED = SAMPLES / "police-xml" / "raised.xml"
ANOTHER_FORCE = SAMPLES / "police-xml" / "invalid" / "another-forces-record.xml"
#: Refused only as some senders: its force code maps to an agency of the samples' config.
SENDER_DEPENDENT = {ANOTHER_FORCE.name}


def police_config(tmp_path: Path) -> Path:
    """A real force's config: its own code (34) mapped to its own hub agency id."""
    config = tmp_path / "config.json"
    organisations = {"34": "nhants-police", "RP1": "nhft", "NCT": "nct-csc"}
    config.write_text(
        json.dumps({"partnership": "northamptonshire", "organisations": organisations})
    )
    return config


def test_list_names_every_installed_connector_with_its_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["connectors", "list", "--json"]) == 0

    listed = {m["kind"]: m for m in json.loads(capsys.readouterr().out)}
    assert {"generic", "social-care", "fhir-r4", "police-xml"} <= set(listed)
    assert listed["social-care"]["reads"] == ["application/json"]


def test_check_prints_the_common_events_a_sample_becomes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = SAMPLES / "social-care" / "raised.json"

    assert main(["connectors", "check", "social-care", "--sample", str(sample)]) == 0

    out = capsys.readouterr()
    [event] = json.loads(out.out)
    assert event["type"] == "uk.escalation-hub.v1.raised"
    assert event["agencyref"] == "CS-004512"
    assert event["data"]["raised_by"]["agency_id"] == "sample-agency"
    assert "using the connector config in" in out.err


def test_check_says_exactly_why_a_sample_cannot_be_translated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = SAMPLES / "social-care" / "invalid" / "unmapped-partner.json"

    code = main(["connectors", "check", "social-care", "--sample", str(sample), "--agency", "x1"])

    err = capsys.readouterr().err
    assert code == 1
    assert "at partnerAgencies[0].code: this organisation code is not mapped" in err
    assert "expected: a code listed in the connector's config.organisations" in err
    assert "Y02345" not in err


def test_check_refuses_a_media_type_the_kind_does_not_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = SAMPLES / "social-care" / "raised.json"

    code = main(
        [
            "connectors",
            "check",
            "social-care",
            "--sample",
            str(sample),
            "--content-type",
            "text/xml",
        ]
    )

    assert code == 1
    assert "reads application/json, not text/xml" in capsys.readouterr().err


def test_check_names_the_known_kinds_for_an_unknown_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sample = tmp_path / "doc.json"
    sample.write_text("{}")

    assert main(["connectors", "check", "telex", "--sample", str(sample)]) == 2
    assert "known kinds: " in capsys.readouterr().err


def test_check_explains_a_config_that_does_not_fit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"organisations": "RP1"}')
    sample = SAMPLES / "social-care" / "raised.json"

    code = main(
        ["connectors", "check", "social-care", "--sample", str(sample), "--config", str(config)]
    )

    assert code == 1
    assert "at config.organisations:" in capsys.readouterr().err


def test_check_never_guesses_the_sender_and_hints_at_the_agency_the_code_maps_to(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = police_config(tmp_path)
    argv = ["connectors", "check", "police-xml", "--sample", str(POLICE_RAISED)]

    refused = main([*argv, "--config", str(config)])
    err = capsys.readouterr().err
    accepted = main([*argv, "--config", str(config), "--agency", "nhants-police"])
    out = capsys.readouterr()

    assert refused == 1
    assert "at /SafeguardingEscalationRecord/Force/@code:" in err
    assert "--agency nhants-police" in err
    assert accepted == 0, out.err
    [event] = json.loads(out.out)
    assert event["data"]["raised_by"]["agency_id"] == "nhants-police"


def test_check_as_another_agency_hints_at_the_agency_the_record_comes_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = police_config(tmp_path)
    argv = ["connectors", "check", "police-xml", "--sample", str(POLICE_RAISED)]

    code = main([*argv, "--config", str(config), "--agency", "x1"])

    err = capsys.readouterr().err
    assert code == 1
    assert "at /SafeguardingEscalationRecord/Force/@code:" in err
    assert "hint: the problem at /SafeguardingEscalationRecord/Force/@code" in err
    assert "--agency nhants-police" in err
    assert "checked as" not in err


def test_a_faulty_record_sent_as_its_force_shows_its_own_fault(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = police_config(tmp_path)
    sample = SAMPLES / "police-xml" / "invalid" / "bad-nhs-number.xml"
    argv = ["connectors", "check", "police-xml", "--sample", str(sample), "--config", str(config)]

    code = main([*argv, "--agency", "nhants-police"])

    err = capsys.readouterr().err
    assert code == 1
    problems = [line for line in err.splitlines() if line.startswith("  at ")]
    assert problems == ["  at /SafeguardingEscalationRecord/Subject/NHSNumber: is not valid"]
    assert "hint:" not in err


def test_another_forces_record_is_refused_with_the_default_sender(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["connectors", "check", "police-xml", "--sample", str(ANOTHER_FORCE)]

    assert main(argv) == 1
    refused = capsys.readouterr().err

    assert "at /SafeguardingEscalationRecord/Force/@code:" in refused
    assert "--agency nhft" in refused


def _shipped(valid: bool) -> list[tuple[str, Path]]:
    found = []
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        where = folder if valid else folder / "invalid"
        found += [
            (folder.name, sample)
            for sample in sorted(where.glob("*.*"))
            if sample.name != "config.json"
        ]
    return found


@pytest.mark.parametrize(
    ("kind", "sample"), _shipped(valid=True), ids=lambda v: getattr(v, "name", v)
)
def test_every_shipped_valid_sample_checks_clean_with_the_default_options(
    kind: str, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["connectors", "check", kind, "--sample", str(sample)])

    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)


@pytest.mark.parametrize(
    ("kind", "sample"), _shipped(valid=False), ids=lambda v: getattr(v, "name", v)
)
def test_every_shipped_invalid_sample_is_refused_for_its_own_fault_with_the_default_options(
    kind: str, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error an integrator sees is the one the sample demonstrates, not the sender's id."""
    code = main(["connectors", "check", kind, "--sample", str(sample)])

    err = capsys.readouterr().err
    assert code == 1
    reasons = [line for line in err.splitlines() if line.startswith("  at ")]
    expectations = [line for line in err.splitlines() if line.startswith("    expected: ")]
    assert reasons
    assert len(expectations) == len(reasons), "every problem must say what is expected"
    assert "/Force/@code" not in err or sample.name in SENDER_DEPENDENT
    assert ("hint:" in err) == (sample.name in SENDER_DEPENDENT)


def test_check_works_in_a_production_install_without_pytest() -> None:
    """pytest is a development dependency; ``connectors check`` must not need it."""
    sample = SAMPLES / "social-care" / "raised.json"
    script = (
        "import sys; sys.modules['pytest'] = None\n"  # any 'import pytest' now fails
        "from gateway.cli import main\n"
        f"args = ['connectors', 'check', 'social-care', '--sample', {str(sample)!r}]\n"
        "raise SystemExit(main(args))"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["type"] == "uk.escalation-hub.v1.raised"
