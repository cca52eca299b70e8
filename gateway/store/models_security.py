"""Tables of the trust layer, on the same ``Base`` (and migrations) as gateway.store.models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import ID, Base

__all__ = ["WebhookFingerprint"]


class WebhookFingerprint(Base):
    """The SHA-256 of the first signed body seen under a connector's webhook id.

    A repeat with the same body is an idempotent retry; a different body under the same id
    is refused (409) before it reaches ingest. Hashes only: never the body itself.
    """

    __tablename__ = "webhook_fingerprints"
    connector_id: Mapped[str] = mapped_column(ID, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)  # for pruning old fingerprints
