"""What an agency's case system needs to talk to the hub: sign and send its documents.

Uses httpx and the standardwebhooks library directly, as an agency integrator would. ``send``
posts common-schema events (the generic connector); ``send_native`` posts a native document
in the media type the agency's connector kind reads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

__all__ = ["HubClient", "signed_headers"]


def signed_headers(
    secret: str,
    body: bytes,
    *,
    msg_id: str | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``: ``webhook-id`` is also the idempotency key."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC).replace(microsecond=0)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": content_type,
    }


class HubClient:
    """Posts signed documents for one connector; the answer is the hub's JSON (202 or problem)."""

    def __init__(self, base_url: str, connector_id: str, secret: str, *, timeout: float = 10):
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self.connector_id = connector_id
        self.secret = secret

    def send(
        self, events: Sequence[dict[str, Any]] | dict[str, Any], *, msg_id: str | None = None
    ) -> httpx.Response:
        """Common-schema CloudEvents (one or a batch), as JSON."""
        return self.send_native(json.dumps(events).encode(), "application/json", msg_id=msg_id)

    def send_native(
        self, body: bytes, content_type: str, *, msg_id: str | None = None
    ) -> httpx.Response:
        """A native document, exactly as the case system produced it."""
        headers = signed_headers(self.secret, body, msg_id=msg_id, content_type=content_type)
        return self._http.post(
            f"/v1/connectors/{self.connector_id}/events", content=body, headers=headers
        )

    def close(self) -> None:
        self._http.close()
