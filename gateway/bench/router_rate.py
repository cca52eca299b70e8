"""The router's rate on its own, with and without encryption, on the benchmark database.

Events are stored through the gateway's own service (``ingest.accept``) and then decided by
the router worker's own handler (``routing.handle_decide``), one call per event as the worker
does, timed without the bus or HTTP. Three variants, each on new escalations (a ``raised``
then a ``discussion_recorded`` each, both fanned out to three parties):

* ``plain``: the ``Sealer`` swapped for one that only serialises (no AES-GCM at rest);
* ``sealed``: the hub as it runs (state, event bodies and delivery documents sealed);
* ``sealed_jwe``: ``sealed`` plus what encryption the router's output costs downstream: the
  JWE envelope (ECDH-ES+A256KW, A256GCM) and signature of each of its stage updates.

``decide_only`` is the pure ``router.decide`` on the same events (no store), for reference.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from gateway.bench.documents import StateTemplate, discussion_event, raised_event, trio
from gateway.bench.hubs import Registered
from gateway.bench.stats import rate
from gateway.bootstrap import Hub
from gateway.services import ingest
from gateway.services.rendering import render
from gateway.services.routing import handle_decide
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, OutboxMessage
from gateway.store.sealing import Sealer
from router import procedures
from router.decide import decide
from schemas.envelope import agency_event_adapter
from schemas.escalation import Escalation
from security import envelopes, webhooks

__all__ = ["PlainSealer", "decide_only", "router_rates"]


class PlainSealer(Sealer):
    """Serialises like the real sealer, without encrypting (for the 'plain' variant only)."""

    def seal(self, document: Any, *, context: str) -> bytes:
        return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()

    def unseal(self, blob: bytes, *, context: str) -> Any:
        return json.loads(blob)

    def seal_bytes(self, data: bytes, *, context: str) -> bytes:
        return data

    def unseal_bytes(self, blob: bytes, *, context: str) -> bytes:
        return blob


ROUNDS = 5  # the variants take turns, so a drift (WAL growth, a busy neighbour) hits both


def router_rates(hub: Hub, registered: dict[str, Registered], *, count: int) -> dict[str, Any]:
    """Events decided per second by ``handle_decide``: plain, sealed, sealed + JWE.

    ``count`` escalations per variant, in ``ROUNDS`` alternating rounds (plain, then sealed,
    then the envelopes of that round's sealed updates), each variant's time summed."""
    plain = dataclasses.replace(hub, sealer=PlainSealer(hub.sealer.ring))
    seconds_plain = seconds_sealed = seconds_jwe = 0.0
    envelopes_made, done = 0, 0
    for index in range(ROUNDS):
        size = (count * (index + 1)) // ROUNDS - done
        done += size
        if size == 0:
            continue
        took, _ = _decide_run(plain, registered, size, tag=f"plain{index}")
        seconds_plain += took
        took, created = _decide_run(hub, registered, size, tag=f"sealed{index}")
        seconds_sealed += took
        seconds_jwe += _envelopes(hub, created)
        envelopes_made += len(created)
    _mark_published(hub)  # this phase's outbox rows are not for a later phase's relay
    events = 2 * count
    return {
        "events": events,
        "plain": {"seconds": round(seconds_plain, 3), "rate": rate(events, seconds_plain)},
        "sealed": {"seconds": round(seconds_sealed, 3), "rate": rate(events, seconds_sealed)},
        "sealed_jwe": {
            "seconds": round(seconds_sealed + seconds_jwe, 3),
            "rate": rate(events, seconds_sealed + seconds_jwe),
            "envelopes": envelopes_made,
            "envelope_seconds": round(seconds_jwe, 3),
        },
    }


def _decide_run(
    hub: Hub, registered: dict[str, Registered], count: int, *, tag: str
) -> tuple[float, list[str]]:
    """Store ``count`` raised, decide them; store a discussion on each, decide; time both."""
    now = datetime.now(UTC)
    ids = [_store(hub, registered, raised_event(trio(0)[i % 3], f"rr-{tag}-r{i}", now), None)
           for i in range(count)]  # fmt: skip
    seconds = _decide_all(hub, ids, f"{tag}-1")
    for index, escalation_id in enumerate(ids):
        event = discussion_event(trio(0)[(index + 1) % 3], f"rr-{tag}-d{index}", escalation_id, now)
        _store(hub, registered, event, escalation_id)
    seconds += _decide_all(hub, ids, f"{tag}-2")
    with hub.sessions() as session:
        created = session.scalars(select(Delivery.id).where(Delivery.escalation_id.in_(ids))).all()
    return seconds, list(created)


def _store(
    hub: Hub, registered: dict[str, Registered], document: dict[str, Any], subject: str | None
) -> str:
    agency_id = document["data"].get("raised_by", document["data"].get("by"))["agency_id"]
    accepted = ingest.accept(
        hub,
        connector_id=registered[agency_id].connector_id,
        agency_id=agency_id,
        webhook_id=f"msg_{document['id']}",
        events=[agency_event_adapter.validate_python(document)],
    )
    return str(accepted.body["accepted"][0]["escalation_id"])


def _decide_all(hub: Hub, ids: list[str], tag: str) -> float:
    started = time.perf_counter()
    for escalation_id in ids:
        handle_decide(hub, f"bench:{tag}:{escalation_id}", {"escalation_id": escalation_id})
    return time.perf_counter() - started


def _envelopes(hub: Hub, delivery_ids: list[str]) -> float:
    """Seconds to unseal, render, encrypt (JWE) and sign each delivery, as delivery does."""
    with hub.sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))).all()
        connectors = {c.id: c for c in session.scalars(select(Connector)).all()}
    started = time.perf_counter()
    for row in rows:
        connector = connectors[row.connector_id or ""]
        document = hub.sealer.unseal(row.document_sealed, context=f"delivery:{row.id}")
        body, media_type = render(connector.kind, document)
        token = envelopes.encrypt_for(connector.public_jwk, body, content_type=media_type)
        secrets = hub.sealer.unseal(connector.secrets_sealed, context=f"connector:{connector.id}")
        webhooks.sign(secrets, row.id, datetime.now(UTC), token.encode())
    return time.perf_counter() - started


def _mark_published(hub: Hub) -> None:
    with transaction(hub.sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.published_at.is_(None))
            .values(published_at=datetime.now(UTC))
        )


def decide_only(count: int) -> dict[str, Any]:
    """Pure ``router.decide`` calls per second (a discussion on a stage-1 escalation)."""
    now = datetime.now(UTC)
    template = StateTemplate(now)
    state = Escalation.model_validate_json(template.render("e-1", now, now))
    event = agency_event_adapter.validate_python(discussion_event(trio(0)[1], "d", "e-1", now))
    procedure = procedures.load(state.procedure_id, state.procedure_version)
    started = time.perf_counter()
    for _ in range(count):
        decide(state, event, procedure, now)
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": round(seconds, 3), "rate": rate(count, seconds)}
