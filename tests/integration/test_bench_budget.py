"""The CPU budget of one fanned-out event: every part is timed, and the sums and verdicts hold.

No figure is checked against a speed: only that each part was really timed (positive CPU,
a real stage update encrypted, a POST answered), that the totals, ceilings and goal verdicts
are the arithmetic the report says they are, and that the workload's connectors together
may send more than the ingest goal asks for.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.api.ratelimit import RATE_PER_SECOND
from gateway.bench.budget import DELIVERIES, PARTS, bare_http_rate, measure
from gateway.bench.documents import AGENCIES, GROUPS, trio
from gateway.bench.report import judge_budget, rejudge_budget


def _budget(**changes: Any) -> dict[str, Any]:
    """A budget as ``measure`` shapes it, with round figures."""
    budget: dict[str, Any] = {
        "cores": 2,
        "deliveries": 3,
        "rates": {"http": 4000.0, "receiver": 4000.0, "client": None, "commit": 1000.0},
        "others_ms": {"receiver_per_delivery": 0.25, "client_per_request": 0.0},
        "event_ms": 2.5,
        "intake_ms": 0.5,
    }
    budget.update(changes)
    return budget


def test_the_goals_allowance_is_the_cores_time_less_the_receivers() -> None:
    e2e, ingest = judge_budget(_budget())
    assert e2e["goal"] == "e2e >= 0.5 x (HTTP / 4)"
    assert e2e["target_rate"] == 500.0
    assert e2e["allowed_ms_one_core"] == 2.0
    assert e2e["allowed_ms_all_cores"] == 3.25  # (2 x 1000 - 500 x 3 x 0.25) / 500
    assert (e2e["fits_one_core"], e2e["fits_all_cores"]) == (False, True)
    assert ingest["goal"] == "ingest >= 0.6 x slowest floor"
    assert ingest["target_rate"] == 600.0  # the commit floor is the slower
    assert ingest["allowed_ms_one_core"] == pytest.approx(1000 / 600, abs=1e-4)
    assert (ingest["fits_one_core"], ingest["fits_all_cores"]) == (True, True)


def test_without_the_receivers_floor_the_shared_allowance_is_unknown() -> None:
    others = {"receiver_per_delivery": None, "client_per_request": 0.0}
    e2e, _ = judge_budget(_budget(others_ms=others))
    assert e2e["allowed_ms_all_cores"] is None
    assert e2e["fits_all_cores"] is False


def test_the_run_judges_the_budget_again_with_the_embedded_commit_floor() -> None:
    budget = _budget(rates={"http": 4000.0, "receiver": 4000.0, "client": None, "commit": None})
    commits = {"one": {"rate": 1500.0}, "many": {"rate": 1200.0}}
    results = {
        "floors": {"budget": budget},
        "profiles": {"embedded": {"floors": {"db_commit": commits}}},
    }
    rejudge_budget(results)
    assert budget["rates"]["commit"] == 1500.0  # the better of one and many threads
    assert budget["goals"][1]["target_rate"] == 900.0


def test_the_budget_times_every_part_and_adds_them_up() -> None:
    budget = measure(
        http_rate=5000.0,
        receiver_rate=4000.0,
        client_rate=50_000.0,
        commit_rate=2000.0,
        rounds=2,
        round_seconds=0.002,
    )
    parts = budget["parts"]
    assert list(parts) == list(PARTS)
    assert parts["http"]["cpu_ms"] == 0.2  # from the rate given, not measured again
    for name, part in parts.items():
        assert part["cpu_ms"] > 0, name
        if name != "http":
            assert part["calls"] >= 2 * 3, name
    assert budget["not_counted"]["render"]["cpu_ms"] > 0
    counts = {name: part["per_event"] for name, part in parts.items()}
    assert counts == {"http": 1, "verify": 1, "validate": 1, "publish_consume": 1,
                      "commit": 1 + DELIVERIES, "seal_unseal": 3, "jwe": 3, "sign": 3,
                      "post": 3}  # fmt: skip
    intake = sum(parts[n]["cpu_ms"] for n in ("http", "verify", "validate", "publish_consume"))
    intake += parts["commit"]["cpu_ms"]
    assert budget["intake_ms"] == pytest.approx(intake, abs=1e-3)
    total = sum(part["cpu_ms"] * part["per_event"] for part in parts.values())
    assert budget["event_ms"] == pytest.approx(total, abs=1e-3)
    assert budget["event_ms"] == pytest.approx(
        budget["intake_ms"] + DELIVERIES * budget["delivery_ms"], abs=1e-3
    )
    ceilings = budget["ceilings"]
    assert ceilings["events_one_core"] == round(1000 / budget["event_ms"], 1)
    shared = budget["cores"] * 1000 / (budget["event_ms"] + 3 * 0.25 + 0.02)
    assert ceilings["events_all_cores_with_receivers"] == pytest.approx(shared, abs=0.1)
    assert [g["target_rate"] for g in budget["goals"]] == [625.0, 1200.0]
    sizes = budget["sizes"]
    assert sizes["jwe_bytes"] > sizes["update_bytes"] > 500  # a real rendered stage update


def test_the_budget_refuses_nonsense_before_measuring() -> None:
    with pytest.raises(ValueError, match="rounds"):
        measure(http_rate=1000.0, rounds=0)
    with pytest.raises(ValueError, match="http_rate"):
        measure(http_rate=-1.0)


def test_without_a_rate_the_bare_http_floor_is_measured() -> None:
    assert bare_http_rate(requests=60) > 0


def test_the_connectors_may_send_more_than_the_ingest_goal_asks() -> None:
    assert len(AGENCIES) == 3 * GROUPS
    assert len({a.id for a in AGENCIES}) == len(AGENCIES)
    assert all(len({a.kind for a in trio(g)}) == 3 for g in range(GROUPS))
    # the goal is 0.6 x the slowest floor, the SQLite commit floor (~2,000/s): ~1,200/s
    assert len(AGENCIES) * RATE_PER_SECOND >= 1_920
