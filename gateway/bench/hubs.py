"""The hub under test: the demo's ``Stack`` (every role), or chosen roles only, on loopback.

``hub_settings`` fixes the secrets of one benchmark database, so the seeding, the hub and a
later hub on the same database share one key ring. The intervals are the production
defaults (``Stack`` shortens them for tests); the relay is woken on every commit anyway.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.bench.documents import AGENCIES, PARTNERSHIP
from gateway.bootstrap import Hub, build_hub
from gateway.demo.stack import Stack, stack_settings
from gateway.runtime import ALL_ROLES, Role, Runtime
from gateway.store import migrate
from security.audit import generate_checkpoint_key
from security.keyring import generate_key

__all__ = ["Registered", "RunningHub", "hub_settings", "register_agencies", "running_hub"]


def hub_settings(
    database_url: str, *, broker_url: str = "memory://", bus_prefix: str | None = None
) -> dict[str, Any]:
    """Settings overrides for one benchmark database (fresh secrets, production intervals)."""
    return {
        "database_url": database_url,
        "broker_url": broker_url,
        "bus_prefix": bus_prefix or f"bench{secrets.token_hex(4)}",
        "data_keys": "k1:" + base64.b64encode(generate_key()).decode(),
        "pseudonym_key": base64.urlsafe_b64encode(generate_key()).decode(),
        "audit_signing_key": base64.b64encode(generate_checkpoint_key()[0]).decode(),
        "relay_interval": 0.2,
        "scheduler_interval": 5.0,
    }


@dataclass(frozen=True)
class RunningHub:
    """What a phase needs of a running hub."""

    hub: Hub
    base_url: str
    admin_token: str
    runtime: Runtime


@contextmanager
def running_hub(
    overrides: dict[str, Any], roles: frozenset[Role] = ALL_ROLES
) -> Iterator[RunningHub]:
    """Every role: the demo's ``Stack``. Fewer: the same parts, started with those roles."""
    if roles == ALL_ROLES:
        with Stack(**overrides) as stack:
            assert stack.hub is not None
            assert stack.runtime is not None
            yield RunningHub(stack.hub, stack.base_url, stack.admin_token, stack.runtime)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="escalation-hub-bench-"))
    settings = stack_settings(data_dir, **overrides)
    migrate.upgrade(settings.sqlalchemy_url)
    hub = build_hub(settings)
    runtime = Runtime(hub, roles)
    runtime.start()
    server = runtime.make_server()
    thread = threading.Thread(target=server.run, name="eh-bench-http", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        token = settings.admin_token.get_secret_value()
        yield RunningHub(hub, f"http://127.0.0.1:{settings.port}", token, runtime)
    finally:
        runtime.stop()
        thread.join(timeout=10)
        hub.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_started(server: Any, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the benchmark hub's HTTP server did not start")
        time.sleep(0.02)


@dataclass(frozen=True)
class Registered:
    """One benchmark agency's connector: where to send events, and how to sign them."""

    agency_id: str
    connector_id: str
    secret: str


def register_agencies(
    base_url: str, admin_token: str, callbacks: dict[str, str], public_jwks: dict[str, Any]
) -> dict[str, Registered]:
    """Register the benchmark agencies and their connectors through the hub's own API."""
    registered: dict[str, Registered] = {}
    admin = {"authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for agency in AGENCIES:
            body = {"id": agency.id, "name": agency.name, "kind": agency.kind}
            answer = _ok(
                http.post(
                    "/v1/agencies", headers=admin, json={**body, "partnerships": [PARTNERSHIP]}
                )
            )
            own = {"authorization": f"Bearer {answer['credential']}"}
            connector = _ok(
                http.post(
                    f"/v1/agencies/{agency.id}/connectors",
                    headers=own,
                    json={
                        "kind": "generic",
                        "callback_url": callbacks[agency.id],
                        "public_jwk": public_jwks[agency.id],
                    },
                )
            )
            registered[agency.id] = Registered(
                agency.id, connector["id"], connector["signing_secret"]
            )
    return registered


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response.json()
