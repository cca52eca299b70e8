"""Webhook fingerprints: one ``webhook-id`` per connector names one body, for good.

Ingest answers a repeated ``webhook-id`` with its first answer. The fingerprint makes sure a
repeat really is a repeat: the SHA-256 of the first signed body stored under a connector's
webhook id, claimed in the SAME transaction that stores the events and the answer. So:

* the same id with another body is refused (409) and stores nothing;
* a request that fails (any refusal, a crash) rolls its claim back with everything else, so
  a corrected body may reuse the id; there is no claim to release or renew;
* concurrent requests under one id serialise on the fingerprint's primary key (PostgreSQL
  waits for the first to commit or roll back; SQLite has one writer at a time): exactly one
  stores, the others find its fingerprint.

Only hashes are stored, never bodies.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Final

from sqlalchemy import Connection, bindparam, select

from gateway.store.db import insert_or_nothing
from gateway.store.models_security import WebhookFingerprint

__all__ = ["REUSED", "Claim", "claim"]

REUSED: Final = (
    "webhook-id reused with a different body: this id was first signed for other content, "
    "and nothing was stored now; resend the original body unchanged, or send new content "
    "under a new webhook-id"
)

_TABLE = WebhookFingerprint.__table__
_KEY = ("connector_id", "webhook_id")
_STORED: Final = select(_TABLE.c.body_sha256).where(
    _TABLE.c.connector_id == bindparam("connector_id"),
    _TABLE.c.webhook_id == bindparam("webhook_id"),
)


class Claim(Enum):
    """What the fingerprint table says about a signed (connector, webhook-id, body)."""

    NEW = "new"  # first time: claimed by this transaction
    REPEAT = "repeat"  # same body as before: an idempotent retry
    CONFLICT = "conflict"  # a different body under the same id: refuse


def claim(
    conn: Connection, *, connector_id: str, webhook_id: str, digest: str, now: datetime
) -> Claim:
    """Claim ``digest`` for (connector, webhook id) in the caller's transaction, unless a
    fingerprint is there; then compare with it."""
    insert = insert_or_nothing(
        WebhookFingerprint, conn.dialect.name, key=_KEY, returning=(_TABLE.c.webhook_id,)
    )
    values = {
        "connector_id": connector_id,
        "webhook_id": webhook_id,
        "body_sha256": digest,
        "created_at": now,
    }
    if conn.execute(insert, values).first() is not None:
        return Claim.NEW
    stored = conn.execute(_STORED, values).scalar()
    return Claim.REPEAT if stored == digest else Claim.CONFLICT
