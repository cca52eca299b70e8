"""The benchmark harness runs end to end at tiny sizes, on both profiles, and writes valid JSON.

No figure is checked against a speed: only that every measurement happened (events were
accepted, delivered to all three receivers, decrypted and verified; the router, the sweep,
the floors and the CPU budget ran) and that the result files are complete and consistent.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.bench import SCHEMA, BenchOptions, run_bench, write_results
from gateway.bench.budget import DELIVERIES, PARTS
from gateway.bench.http1 import loopback_host
from tests.conftest import PG_ADMIN_URL, require_service


def _tiny(profile: str, **changes: Any) -> BenchOptions:
    return dataclasses.replace(BenchOptions().tiny(), profiles=(profile,), stored=(20,), **changes)


def _check_profile(results: dict[str, Any], profile: str) -> None:
    data = results["profiles"][profile]
    assert data["floors"]["db_commit"]["one"]["commits"] > 0
    assert data["floors"]["broker"]["consumed"] == data["floors"]["broker"]["published"] > 0
    for size in ("20",):
        run = data["stored"][size]
        assert run["seed"]["rows"]["escalations"] == int(size)
        burst = run["burst"]
        assert burst["events"] == burst["delivered_events"] == 12
        assert burst["deliveries"] == 36
        assert burst["crypto"]["jwe"]["calls"] >= 36
        latency = run["latency"]["20"]
        assert latency["missing_deliveries"] == 0
        assert latency["delivery"]["n"] == 3 * latency["accepted"]
        assert run["router"]["sealed_jwe"]["envelopes"] == 2 * 3 * 3
        assert run["sweep"]["fed"] == run["sweep"]["expected"] == int(size)
        if profile == "embedded":  # PostgreSQL rightly scans a 20-row table
            assert run["sweep"]["uses_index"], run["sweep"]["explain"]
        assert run["ingest_gateway"]["ok"] == 12


def _check_budget(results: dict[str, Any]) -> None:
    """Every part timed, the totals made of them, the ceilings and both goals judged."""
    budget = results["floors"]["budget"]
    assert list(budget["parts"]) == list(PARTS)
    for name, part in budget["parts"].items():
        assert part["cpu_ms"] > 0, name
        assert part["per_event"] >= 1, name
    assert budget["parts"]["http"]["cpu_ms"] == round(1000 / results["floors"]["http"]["rate"], 4)
    assert budget["parts"]["commit"]["per_event"] == 1 + DELIVERIES
    total = sum(part["cpu_ms"] * part["per_event"] for part in budget["parts"].values())
    assert budget["event_ms"] == pytest.approx(total, abs=1e-3)
    assert budget["intake_ms"] < budget["event_ms"]
    assert budget["sizes"]["jwe_bytes"] > budget["sizes"]["update_bytes"] > 500
    assert all(v is not None and v > 0 for v in budget["ceilings"].values()), budget["ceilings"]
    assert budget["rates"]["commit"] is not None  # judged again with the commit floor
    assert [g["goal"] for g in budget["goals"]] == [
        "e2e >= 0.5 x (HTTP / 4)",
        "ingest >= 0.6 x slowest floor",
    ]
    for goal in budget["goals"]:
        assert isinstance(goal["fits_one_core"], bool)
        assert isinstance(goal["fits_all_cores"], bool)
        assert goal["allowed_ms_all_cores"] is not None


def _check_files(results: dict[str, Any], out: Path) -> None:
    stamped, table = write_results(results, out)
    latest = json.loads((out / "latest.json").read_text())
    assert latest == json.loads(stamped.read_text())
    assert latest["schema"] == SCHEMA
    assert {g["goal"] for g in latest["goals"]} >= {
        "ingest >= 0.6 x slowest floor",
        "e2e >= 0.5 x (HTTP / 4)",
        "router with encryption >= 0.8 x without",
    }
    assert all(isinstance(g["pass"], bool) for g in latest["goals"])
    text = table.read_text()
    assert "| goal |" in text
    assert "what one fanned-out event cannot cost less than" in text
    for what in PARTS.values():
        assert f"| {what} |" in text
    assert "**minimum per event**" in text


def test_the_harness_measures_the_embedded_hub_and_writes_its_results(tmp_path: Path) -> None:
    results = run_bench(_tiny("embedded"), say=lambda line: None)
    floors = results["floors"]
    assert floors["client"]["ok"] == floors["client"]["n"] > 0
    assert floors["receiver"]["ok"] == floors["receiver"]["n"] > 0
    assert floors["http"]["ok"] == floors["http"]["n"] > 0
    _check_profile(results, "embedded")
    _check_budget(results)
    _check_files(results, tmp_path / "results")


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_the_harness_measures_the_hub_on_postgresql_and_rabbitmq(tmp_path: Path) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    results = run_bench(_tiny("servers", pg_url=PG_ADMIN_URL), say=lambda line: None)
    assert results["machine"]["servers"]["postgresql"]
    _check_profile(results, "servers")
    _check_files(results, tmp_path / "results")


def test_the_load_generator_refuses_anything_but_loopback() -> None:
    assert loopback_host("http://127.0.0.1:8080/x") == ("127.0.0.1", 8080)
    for url in ("http://10.0.0.1:80/", "http://example.org:80/", "https://127.0.0.1:443/"):
        with pytest.raises(ValueError, match=r"loopback|plain http"):
            loopback_host(url)
