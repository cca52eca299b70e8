"""Helpers for the API tests: a real hub on a real database behind a real uvicorn server.

No tests here; the test_api_* modules import these functions and build their fixtures on them.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.api import create_app
from gateway.bootstrap import Hub, build_hub
from gateway.settings import Settings
from gateway.store.models import Base
from security.envelopes import generate_recipient_key
from security.webhooks import sign

__all__ = [
    "ADMIN",
    "CHILD_NAME",
    "NHS_NUMBER",
    "PUBLIC_JWK",
    "LiveServer",
    "agency_headers",
    "make_hub",
    "post_signed",
    "raised_event",
    "register_agency",
    "register_connector",
    "serve",
]

ADMIN_TOKEN = "test-admin-" + "a1" * 16
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NHS_NUMBER = "943 476 5919"  # a valid test number (mod 11)
CHILD_NAME = "Zebedee"
PUBLIC_JWK = generate_recipient_key("EC")[1]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def make_hub(url: str, *, create_tables: bool = True, **overrides: Any) -> Hub:
    """A hub on ``url`` with fresh test secrets (and the tables created)."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": url,
        "admin_token": ADMIN_TOKEN,
        "data_keys": f"k1:{_key()}",
        "data_key_active": "k1",
        "pseudonym_key": _key(),
        "audit_signing_key": _key(),
        "allow_loopback_callbacks": True,
        **overrides,
    }
    hub = build_hub(Settings(**values))
    if create_tables:
        Base.metadata.create_all(hub.engine)
    return hub


class LiveServer:
    """uvicorn serving an app on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start on 127.0.0.1")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@contextmanager
def serve(
    hub: Hub,
    *,
    on_accepted: Callable[[], None] | None = None,
    broker_ready: Callable[[], bool] | None = None,
) -> Iterator[httpx.Client]:
    """An httpx client talking to create_app(hub) over a real socket."""
    app = create_app(hub, on_accepted=on_accepted, broker_ready=broker_ready)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def agency_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_agency(
    client: httpx.Client,
    agency_id: str,
    *,
    kind: str = "health",
    partnerships: tuple[str, ...] = ("northamptonshire",),
) -> str:
    """Register an agency as the administrator; return its credential."""
    body = {"id": agency_id, "name": f"Agency {agency_id}", "kind": kind}
    response = client.post(
        "/v1/agencies", json={**body, "partnerships": list(partnerships)}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["credential"]
    return token


def register_connector(
    client: httpx.Client,
    agency_id: str,
    token: str,
    *,
    callback_url: str = "http://127.0.0.1:9/hook",
) -> tuple[str, str]:
    """Register a connector for an agency with its own credential; return (id, secret)."""
    response = client.post(
        f"/v1/agencies/{agency_id}/connectors",
        json={"kind": "generic", "callback_url": callback_url, "public_jwk": PUBLIC_JWK},
        headers=agency_headers(token),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], created["signing_secret"]


def raised_event(
    raiser: str, other: str, *, event_id: str = "evt-1", partnership: str = "northamptonshire"
) -> dict[str, Any]:
    """A valid 'raised' CloudEvent from ``raiser`` against ``other``, with a child's identity."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"urn:test:{raiser}",
        "type": "uk.escalation-hub.v1.raised",
        "time": "2026-03-02T09:30:00Z",
        "agencyref": f"REF-{raiser}",
        "data": {
            "partnership": partnership,
            "raised_by": {"agency_id": raiser, "name": "Pat Practitioner", "role": "practitioner"},
            "parties": [
                {"agency_id": raiser, "kind": "health"},
                {"agency_id": other, "kind": "social_care", "case_reference": "SC-77"},
            ],
            "child": {
                "identifiers": {"nhs_number": NHS_NUMBER, "given_name": CHILD_NAME},
            },
            "concern_categories": ["communication"],
            "summary": "Disagreement about the threshold for a strategy discussion.",
        },
    }


def post_signed(
    client: httpx.Client,
    connector_id: str,
    secret: str,
    document: Any,
    *,
    webhook_id: str = "wh-1",
    at: datetime | None = None,
) -> httpx.Response:
    """POST a document (or raw bytes) to the connector's events, signed as a Standard Webhook."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = sign([secret], webhook_id, at or datetime.now(UTC), body)
    headers["content-type"] = "application/json"
    return client.post(f"/v1/connectors/{connector_id}/events", content=body, headers=headers)
