"""Prometheus metrics of the hub. Labels carry ids of kinds, never content or identifiers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "DECISIONS",
    "DELIVERIES",
    "DELIVERY_SECONDS",
    "INGESTED",
    "INGEST_REFUSED",
    "OUTBOX_COALESCED",
    "OUTBOX_PENDING",
    "REGISTRY",
    "SCHEDULED",
]

REGISTRY = CollectorRegistry(auto_describe=True)

INGESTED = Counter(
    "eh_events_accepted", "Events durably accepted at the gateway.", ["type"], registry=REGISTRY
)
INGEST_REFUSED = Counter(
    "eh_events_refused", "Requests refused at the gateway.", ["reason"], registry=REGISTRY
)
DECISIONS = Counter(
    "eh_decisions", "Router decisions by rule.", ["rule", "accepted"], registry=REGISTRY
)
DELIVERIES = Counter(
    "eh_deliveries",
    "Delivery attempts by channel and outcome.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "eh_delivery_seconds", "Time of one delivery attempt.", ["channel"], registry=REGISTRY
)
SCHEDULED = Counter(
    "eh_deadline_events", "Deadline events fed to the router.", ["kind"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge(
    "eh_outbox_pending", "Outbox messages not yet confirmed by the broker.", registry=REGISTRY
)
OUTBOX_COALESCED = Counter(
    "eh_outbox_coalesced",
    "Outbox messages not sent because a newer one for the same target stood in for them.",
    ["topic"],
    registry=REGISTRY,
)
