"""The goals as ratios measured in one run, the markdown table, and the result files.

Goals (issue 5/5), each a ratio of two figures of the same run:

* ``ingest``: the gateway's 202 rate >= 0.6 x the slowest floor it passes through (the bare
  HTTP endpoint, and the store's commit floor at the better of 1 and N threads);
* ``e2e``: events delivered to all three parties per second >= 0.5 x (bare HTTP rate / 4),
  since each event costs one request in and three out;
* ``router_crypto``: router rate with encryption (sealing + the JWE of its updates) >= 0.8 x
  the rate without;
* ``scale:*``: at the largest number stored >= 0.9 x at the smallest (for sweeps: the inverse
  ratio of times);
* ``p99_100``: p99 from the 202 to a receiver at 100 events/s < 100 ms (embedded);
* ``memory``: RSS grows < 10 % from the end of the soak's first third to its end.

``judge_budget`` sets the CPU budget (``gateway.bench.budget``: the least CPU one fanned-out
event can cost) against the CPU per event or request the ``e2e`` and ``ingest`` goals allow.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["goals", "judge_budget", "markdown", "rejudge_budget", "write_results"]


def _goal(
    name: str, where: str, value: float | None, target: float, *, below: bool = False
) -> dict[str, Any]:
    passed = value is not None and (value < target if below else value >= target)
    return {"goal": name, "where": where, "value": value, "target": target,
            "comparison": "<" if below else ">=", "pass": passed}  # fmt: skip


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _at(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the run, with its measured ratio (or value) and pass/fail."""
    found: list[dict[str, Any]] = []
    http = _at(results, "floors", "http", "rate")
    for profile, data in results.get("profiles", {}).items():
        commit = max((_at(data, "floors", "db_commit", k, "rate") or 0.0) for k in ("one", "many"))
        floor = min(v for v in (http, commit) if v) if http or commit else None
        sizes = sorted(data.get("stored", {}), key=int)
        for size in sizes:
            run = data["stored"][size]
            where = f"{profile}, {int(size):,} stored"
            ingest = _at(run, "ingest_gateway", "rate")
            found.append(_goal("ingest >= 0.6 x slowest floor", where, _ratio(ingest, floor), 0.6))
            e2e = _at(run, "burst", "e2e_rate")
            found.append(_goal("e2e >= 0.5 x (HTTP / 4)", where,
                               _ratio(e2e, http / 4 if http else None), 0.5))  # fmt: skip
            if profile == "embedded":
                p99 = _at(run, "latency", "100", "delivery", "p99_ms")
                missing = _at(run, "latency", "100", "missing_deliveries")
                found.append(_goal("p99 202->receiver at 100/s (ms)", where,
                                   p99 if not missing else None, 100.0, below=True))  # fmt: skip
        router = _at(data, "stored", sizes[0], "router") if sizes else None
        if router:
            ratio = _ratio(_at(router, "sealed_jwe", "rate"), _at(router, "plain", "rate"))
            found.append(_goal("router with encryption >= 0.8 x without", profile, ratio, 0.8))
        if len(sizes) > 1:
            found.extend(_scale(profile, data["stored"][sizes[0]], data["stored"][sizes[-1]]))
        growth = _at(data, "memory", "growth_after_warm")
        if growth is not None:
            found.append(_goal("memory growth after warm-up", profile, growth, 0.10, below=True))
    return found


def _scale(profile: str, small: dict[str, Any], big: dict[str, Any]) -> list[dict[str, Any]]:
    where = f"{profile}, {big['stored']:,} vs {small['stored']:,}"
    pairs = {
        "scale: e2e rate": ("burst", "e2e_rate"),
        "scale: ingest rate": ("ingest_gateway", "rate"),
        "scale: router rate": ("router", "sealed", "rate"),
    }
    found = [
        _goal(f"{name} >= 0.9 x", where, _ratio(_at(big, *path), _at(small, *path)), 0.9)
        for name, path in pairs.items()
    ]
    for kind in ("idle_ms", "due_ms"):
        ratio = _ratio(_at(small, "sweep", kind), _at(big, "sweep", kind))
        found.append(_goal(f"scale: sweep ({kind[:-3]}) speed >= 0.9 x", where, ratio, 0.9))
    return found


def judge_budget(budget: dict[str, Any]) -> list[dict[str, Any]]:
    """The CPU per item each goal allows against the budget's minimum.

    ``e2e``: 0.5 x (HTTP / 4) events/s, each costing ``event_ms`` in the hub, a receipt per
    delivery in the receivers and a send in the load generator; ``ingest``: 0.6 x the slower of
    the bare-HTTP and commit floors, each request costing ``intake_ms`` and a send. On one core
    (the hub's Python, under the GIL) the allowance is that core's time per item; on every
    core, the machine's time per item less what the receivers and the load generator spend.
    """
    rates, others, cores = budget["rates"], budget["others_ms"], budget["cores"]
    receiver, client = others["receiver_per_delivery"], others["client_per_request"]
    outside = None if receiver is None else budget["deliveries"] * receiver + client
    floor = min(rate for rate in (rates["http"], rates["commit"]) if rate)
    return [
        _fit(
            "e2e >= 0.5 x (HTTP / 4)", 0.5 * rates["http"] / 4, budget["event_ms"], outside, cores
        ),
        _fit("ingest >= 0.6 x slowest floor", 0.6 * floor, budget["intake_ms"], client, cores),
    ]


def _fit(
    goal: str, target: float, least: float, outside: float | None, cores: int
) -> dict[str, Any]:
    one = 1000 / target
    every = None if outside is None else (cores * 1000 - target * outside) / target
    return {"goal": goal, "target_rate": round(target, 1), "minimum_ms": round(least, 4),
            "allowed_ms_one_core": round(one, 4),
            "allowed_ms_all_cores": None if every is None else round(every, 4),
            "fits_one_core": least <= one,
            "fits_all_cores": every is not None and least <= every}  # fmt: skip


def rejudge_budget(results: dict[str, Any]) -> None:
    """Judge the run's budget again with the embedded commit floor (the budget commits on
    SQLite), known only after the profiles: the ingest goal's slowest floor may be that."""
    budget = _at(results, "floors", "budget")
    if not budget:
        return
    commits = _at(results, "profiles", "embedded", "floors", "db_commit") or {}
    best = max((c.get("rate") or 0.0 for c in commits.values()), default=0.0)
    budget["rates"]["commit"] = best or budget["rates"]["commit"]
    budget["goals"] = judge_budget(budget)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if abs(value) >= 10 else f"{value:.3g}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def markdown(results: dict[str, Any]) -> str:
    """The README table: floors, the hub's figures per profile and size, and the goals."""
    m = results["machine"]
    lines = [
        f"Run {results['started_at']} ({results['mode']}), {results['seconds']:.0f} s, commit "
        f"{m.get('commit')}: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Python "
        f"{m['python']}; load average {m.get('load_average_start')} -> "
        f"{m.get('load_average_end')}.",
        "",
        "| floor | rate/s |",
        "|---|---:|",
    ]
    for name, path in _FLOORS:
        lines.append(f"| {name} | {_fmt(_at(results, *path))} |")
    for profile, data in results.get("profiles", {}).items():
        for name, key in (("DB commit, 1 thread", "one"), ("DB commit, N threads", "many")):
            lines.append(
                f"| {profile}: {name} | {_fmt(_at(data, 'floors', 'db_commit', key, 'rate'))} |"
            )
        lines.append(
            f"| {profile}: broker publish+consume | {_fmt(_at(data, 'floors', 'broker', 'rate'))} |"
        )
    lines += _budget_lines(_at(results, "floors", "budget"))
    lines += ["", _figures_header(results)]
    for profile, data in results.get("profiles", {}).items():
        for size, run in sorted(data.get("stored", {}).items(), key=lambda kv: int(kv[0])):
            lines.append(_figures_row(profile, int(size), run, results))
    lines += ["", "| goal | where | value | target | pass |", "|---|---|---:|---:|:---:|"]
    for g in results.get("goals", []):
        lines.append(f"| {g['goal']} | {g['where']} | {_fmt(g['value'])} | {g['comparison']} "
                     f"{_fmt(g['target'])} | {'yes' if g['pass'] else '**no**'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _budget_lines(budget: dict[str, Any] | None) -> list[str]:
    """What one fanned-out event cannot cost less than: its parts, total, ceilings, goals."""
    if not budget:
        return []
    lines = ["", "| what one fanned-out event cannot cost less than (CPU) | ms per call | "
             "per event | ms per event |", "|---|---:|---:|---:|"]  # fmt: skip
    for part in budget["parts"].values():
        cost = part["cpu_ms"] * part["per_event"]
        lines.append(f"| {part['what']} | {part['cpu_ms']:.3f} | {part['per_event']} | "
                     f"{cost:.3f} |")  # fmt: skip
    c, n = budget["ceilings"], budget["cores"]
    lines += [
        f"| **minimum per event**: intake {budget['intake_ms']:.3f} + {budget['deliveries']} x "
        f"delivery {budget['delivery_ms']:.3f} | | | **{budget['event_ms']:.3f}** |",
        f"| ceiling, events/s: one core / {n} cores / {n} cores with the receivers | | | "
        f"{_fmt(c['events_one_core'])} / {_fmt(c['events_all_cores'])} / "
        f"{_fmt(c['events_all_cores_with_receivers'])} |",
    ]
    for g in budget.get("goals", []):
        fits = "/".join("yes" if g[k] else "**no**" for k in ("fits_one_core", "fits_all_cores"))
        lines.append(f"| goal {g['goal']} at {_fmt(g['target_rate'])}/s: ms allowed on one "
                     f"core / on {n} cores less the receivers' and client's share, vs the "
                     f"minimum (fits: {fits}) | | | {_fmt(g['allowed_ms_one_core'])} / "
                     f"{_fmt(g['allowed_ms_all_cores'])} vs {g['minimum_ms']:.3f} |")  # fmt: skip
    return lines


_FLOORS = (
    ("bare FastAPI, same JSON body", ("floors", "http", "rate")),
    ("load generator ceiling (null server)", ("floors", "client", "rate")),
    ("receivers (verify + decrypt)", ("floors", "receiver", "rate")),
    ("router.decide alone", ("floors", "decide", "rate")),
)


def _figures_header(results: dict[str, Any]) -> str:
    loads = results.get("options", {}).get("loads", [])
    cols = ["profile", "stored", "seed s", "ingest/s (gateway)", "ingest/s (all roles)",
            "e2e events/s", *[f"p50/p95/p99 ms @{_fmt(x)}/s" for x in loads], "JWE share",
            "sealing share", "router/s plain, sealed, +JWE", "sweep idle/due ms"]  # fmt: skip
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def _figures_row(profile: str, size: int, run: dict[str, Any], results: dict[str, Any]) -> str:
    loads = results.get("options", {}).get("loads", [])
    latency = []
    for x in loads:
        d = _at(run, "latency", f"{x:g}", "delivery") or {}
        missing = _at(run, "latency", f"{x:g}", "missing_deliveries")
        cell = "/".join(_fmt(d.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))
        latency.append(cell + (f" ({missing} missing)" if missing else ""))
    crypto = _at(run, "burst", "crypto") or {}
    router = run.get("router") or {}
    cells = [profile, f"{size:,}", _fmt(_at(run, "seed", "seconds")),
             _fmt(_at(run, "ingest_gateway", "rate")), _fmt(_at(run, "burst", "ingest", "rate")),
             _fmt(_at(run, "burst", "e2e_rate")), *latency,
             _fmt(_at(crypto, "jwe", "share")), _fmt(_at(crypto, "sealing", "share")),
             ", ".join(_fmt(_at(router, k, "rate")) for k in ("plain", "sealed", "sealed_jwe")),
             f"{_fmt(_at(run, 'sweep', 'idle_ms'))} / "
             f"{_fmt(_at(run, 'sweep', 'due_ms'))}"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def write_results(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """``<timestamp>.json``, ``latest.json`` and ``latest.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(results["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=1, sort_keys=True, default=str) + "\n"
    stamped = directory / f"{stamp}.json"
    stamped.write_text(text)
    (directory / "latest.json").write_text(text)
    table = directory / "latest.md"
    table.write_text(markdown(results))
    return stamped, table
