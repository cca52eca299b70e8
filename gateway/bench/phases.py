"""Measured phases against a running hub: burst, fixed offered loads, memory soak, ingest.

A phase builds and signs its requests first, clears the receivers, then sends (the load
generator's process) and waits until every party has filed every update (bounded). Latency
is from the 202 (the generator's clock) to each receiver's filing (the receivers' clock;
both CLOCK_MONOTONIC on this machine), per delivery and per event (the last of its three).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.bench.cryptotime import CryptoTimer
from gateway.bench.floors import closed_loop_rate
from gateway.bench.loadgen import LoadGenerator, Plan, Sent
from gateway.bench.receiver import Receipt, ReceiverProcess
from gateway.bench.stats import rate, rss_mb, summary_ms
from gateway.bench.workload import Workload

__all__ = ["Driver"]

PARTIES = 3


@dataclass
class Driver:
    """Drives one running hub with the workload; receivers and generator are shared."""

    base_url: str
    workload: Workload
    load: LoadGenerator
    receivers: ReceiverProcess
    drain_seconds: float = 60.0

    def _send(self, plan: Plan) -> tuple[list[Sent], dict[tuple[str, int], int]]:
        self.receivers.take()
        results = self.load.run(plan)
        accepted: dict[tuple[str, int], int] = {}
        for sent in results:
            if sent.status == 202:
                for entry in json.loads(sent.body)["accepted"]:
                    if not entry["duplicate"]:
                        accepted[(entry["escalation_id"], entry["sequence"])] = sent.done_ns
        return results, accepted

    def _drain(self, accepted: dict[tuple[str, int], int]) -> list[Receipt]:
        """This phase's receipts, once all are in or ``drain_seconds`` have passed (receipts
        of an earlier phase, delivered late, are dropped)."""
        expected, got = PARTIES * len(accepted), []
        deadline = time.monotonic() + self.drain_seconds
        while True:
            got += [r for r in self.receivers.take() if (r[2], r[3]) in accepted]
            if len(got) >= expected or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def warm_up(self, count: int) -> None:
        """A few events end to end, so connections, caches and code paths are warm."""
        requests = self.workload.requests(self.base_url, count)
        _, accepted = self._send(Plan(self.base_url, requests, concurrency=4, max_seconds=60))
        self._drain(accepted)

    def burst(self, count: int, *, concurrency: int, max_seconds: float) -> dict[str, Any]:
        """As fast as the hub takes them: intake rate, end-to-end rate, crypto share."""
        requests = self.workload.requests(self.base_url, count)
        plan = Plan(self.base_url, requests, concurrency=concurrency, max_seconds=max_seconds)
        with CryptoTimer() as crypto:
            results, accepted = self._send(plan)
            receipts = self._drain(accepted)
        first = min(s.sent_ns for s in results)
        done = _delivered_events(receipts)
        last = max((r[1] for r in receipts), default=first)
        return {
            "ingest": closed_loop_rate(results, ok=lambda status: status == 202),
            "events": len(accepted),
            "delivered_events": len(done),
            "deliveries": len(receipts),
            "e2e_seconds": round((last - first) / 1e9, 3),
            "e2e_rate": rate(len(done), (last - first) / 1e9),
            "crypto": crypto.shares(),
        }

    def offered(self, events_per_second: float, seconds: float) -> dict[str, Any]:
        """Latency from 202 to filing at a fixed offered load (open loop)."""
        count = max(1, round(events_per_second * seconds))
        requests = self.workload.requests(self.base_url, count)
        plan = Plan(self.base_url, requests, rate=events_per_second, max_seconds=seconds + 30)
        results, accepted = self._send(plan)
        receipts = self._drain(accepted)
        return _latency(events_per_second, results, accepted, receipts)

    def soak(self, events_per_second: float, seconds: float, every: float) -> dict[str, Any]:
        """RSS of this (the hub's) process while the hub runs at a fixed load for a while."""
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not stop.wait(every):
                samples.append((round(time.monotonic() - started, 1), rss_mb()))

        samples.append((0.0, rss_mb()))
        thread = threading.Thread(target=sample, name="eh-bench-rss", daemon=True)
        thread.start()
        try:
            latency = self.offered(events_per_second, seconds)
        finally:
            stop.set()
            thread.join()
        samples.append((round(time.monotonic() - started, 1), rss_mb()))
        return {"latency": latency, **_flatness(samples)}

    def intake(self, count: int, *, concurrency: int, max_seconds: float) -> dict[str, Any]:
        """202s per second (for a hub running the gateway role only)."""
        requests = self.workload.requests(self.base_url, count)
        plan = Plan(self.base_url, requests, concurrency=concurrency, max_seconds=max_seconds)
        return closed_loop_rate(self.load.run(plan), ok=lambda status: status == 202)


def _delivered_events(receipts: Sequence[Receipt]) -> set[tuple[str, int]]:
    seen: dict[tuple[str, int], int] = {}
    for receipt in receipts:
        key = (receipt[2], receipt[3])
        seen[key] = seen.get(key, 0) + 1
    return {key for key, n in seen.items() if n >= PARTIES}


def _latency(
    offered: float,
    results: Sequence[Sent],
    accepted: dict[tuple[str, int], int],
    receipts: Sequence[Receipt],
) -> dict[str, Any]:
    per_delivery = [r[1] - accepted[(r[2], r[3])] for r in receipts]
    last: dict[tuple[str, int], int] = {}
    for r in receipts:
        key = (r[2], r[3])
        last[key] = max(last.get(key, 0), r[1] - accepted[key])
    complete = [v for k, v in last.items() if k in _delivered_events(receipts)]
    sent_seconds = (max(s.sent_ns for s in results) - min(s.sent_ns for s in results)) / 1e9
    return {
        "offered_rate": offered,
        "achieved_rate": rate(len(results) - 1, sent_seconds) if len(results) > 1 else 0.0,
        "accepted": len(accepted),
        "refused": sum(1 for s in results if s.status != 202),
        "missing_deliveries": PARTIES * len(accepted) - len(receipts),
        "ack_202": summary_ms([s.done_ns - s.due_ns for s in results if s.status == 202]),
        "delivery": summary_ms(per_delivery),
        "all_parties": summary_ms(complete),
    }


def _flatness(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """RSS samples, and the growth from the end of the first third (warm) to the end."""
    third = samples[max(1, len(samples) // 3)][1]
    end = samples[-1][1]
    return {
        "rss_mb": samples,
        "rss_warm_mb": third,
        "rss_end_mb": end,
        "growth_after_warm": round((end - third) / third, 4) if third else None,
    }
