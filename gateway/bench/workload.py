"""The requests of a phase: signed agency events, built before the measured window.

A phase's events are a mix, as a running partnership sends them: a share of ``raised``
(each opens a new escalation) and, for the rest, ``discussion_recorded`` on escalations
chosen at random among those stored (so at 1,000,000 stored, most touch cold rows). Each
request is signed with its agency's connector secret (Standard Webhooks, as
``connectors.client`` does) and has its own ``webhook-id`` and event id.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.client import signed_headers
from gateway.bench.documents import AGENCIES, discussion_event, raised_event
from gateway.bench.http1 import build_request, loopback_host
from gateway.bench.hubs import Registered

__all__ = ["Workload"]


@dataclass
class Workload:
    """Builds signed requests for the registered agencies against stored escalations."""

    registered: dict[str, Registered]
    stored_sample: Sequence[tuple[str, int]] = field(repr=False)  # (escalation id, group)
    raised_share: float = 0.2
    rng: random.Random = field(
        default_factory=lambda: random.Random(secrets.randbits(64))  # noqa: S311 - not secrets
    )

    def requests(self, base_url: str, count: int, *, path: str | None = None) -> list[bytes]:
        """``count`` raw signed requests to the hub at ``base_url`` (or to ``path`` there)."""
        host, port = loopback_host(base_url)
        tag = secrets.token_hex(4)
        now = datetime.now(UTC)
        by_group: dict[int, list[str]] = {}
        for escalation_id, group in self.stored_sample:
            by_group.setdefault(group, []).append(escalation_id)
        built = []
        for index in range(count):
            agency = AGENCIES[index % len(AGENCIES)]
            connector = self.registered[agency.id]
            event_id = f"bench-{tag}-{index}"
            stored = by_group.get(agency.group)
            if not stored or self.rng.random() < self.raised_share:
                event = raised_event(agency, event_id, now)
            else:
                subject = self.rng.choice(stored)
                event = discussion_event(agency, event_id, subject, now)
            body = json.dumps(event, separators=(",", ":")).encode()
            headers = signed_headers(connector.secret, body, msg_id=f"msg_{tag}_{index}")
            target = path or f"/v1/connectors/{connector.connector_id}/events"
            built.append(build_request(host, port, target, body, headers))
        return built
