"""The send-time SSRF guard: each webhook resolves its callback host again, and connects only to
the address it vetted. Names resolve through an injected resolver; the only real connections
go to a receiver on 127.0.0.1, and a spy under the guard refuses any other address, so a
broken guard fails these tests without sending traffic anywhere else.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import SecretStr

from gateway.bootstrap import Hub, build_hub
from gateway.services.delivery import Dispatcher
from gateway.services.egress import GuardedBackend, GuardedTransport
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.store.models import Agency, Base, Connector, Delivery, DeliveryAttempt
from schemas.escalation import Status
from schemas.updates import StageUpdate
from security import envelopes, webhooks

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HOST = "hooks.agency.test"  # .test is reserved: no real DNS answers it


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records the Host header of every request."""

    hosts: list[str] = field(default_factory=list)
    port: int = 0

    def url(self, host: str = HOST) -> str:
        return f"http://{host}:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            state.hosts.append(self.headers.get("host", ""))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


class Resolver:
    """Answers every name with the addresses it is told, and counts the lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


class LoopbackOnly(httpcore.NetworkBackend):
    """Connects to 127.0.0.1 only; records every address it is asked to connect to."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.asked: list[str] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.asked.append(host)
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"the test refuses to connect to {host}")
        return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)


@pytest.fixture
def hub(tmp_path: Any) -> Iterator[Hub]:
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path}/hub.sqlite3",
        data_keys=SecretStr("k1:" + base64.b64encode(os.urandom(32)).decode()),
        data_key_active="k1",
        pseudonym_key=SecretStr("pseudonym-key-for-tests-only"),
        admin_token=SecretStr("admin-token-for-tests-only"),
        audit_signing_key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
        delivery_attempts=2,
        delivery_backoff_initial=0.01,
        delivery_backoff_max=0.02,
        allow_loopback_callbacks=True,
    )
    built = build_hub(settings)
    Base.metadata.create_all(built.engine)
    yield built
    built.close()


@contextmanager
def spied_dispatcher(hub: Hub, resolver: Any, spy: LoopbackOnly) -> Iterator[Dispatcher]:
    """A dispatcher whose guarded client connects through the loopback-only spy."""
    backend = GuardedBackend(allow_loopback=True, resolve=resolver, inner=spy)
    transport = GuardedTransport(backend=backend, limits=httpx.Limits(max_connections=2))
    with httpx.Client(transport=transport, timeout=5, trust_env=False) as client:
        dispatcher = Dispatcher(hub, http_client=client, resolve=resolver)
        try:
            yield dispatcher
        finally:
            dispatcher.close()


def add_connector(hub: Hub, url: str) -> str:
    agency_id, connector_id = f"ag-{uuid.uuid4().hex[:8]}", f"cn-{uuid.uuid4().hex[:8]}"
    with transaction(hub.sessions) as session:
        session.add(
            Agency(
                id=agency_id,
                name="Agency",
                kind="social_care",
                partnerships={"ids": ["northants"]},
                notify_email=None,
                credential_id=f"cred-{agency_id}",
                credential_hash="unused",
                created_at=T0,
            )
        )
        session.flush()
        session.add(
            Connector(
                id=connector_id,
                agency_id=agency_id,
                kind="generic",
                callback_url=url,
                public_jwk=envelopes.generate_recipient_key("EC")[1],
                secrets_sealed=hub.sealer.seal(
                    [webhooks.new_secret()], context=f"connector:{connector_id}"
                ),
                status="active",
                created_at=T0,
            )
        )
    return connector_id


def add_delivery(hub: Hub, connector_id: str, url: str) -> str:
    update = StageUpdate(
        update_id=f"upd-{uuid.uuid4().hex[:8]}",
        escalation_id="esc-1",
        sequence=1,
        partnership="northants",
        procedure_id="northants",
        procedure_version="2024.1",
        recipient_agency_id="ag",
        recipient_case_reference="CASE-1",
        event="stage_changed",
        occurred_at=T0,
        status=Status.OPEN,
        stage=2,
        stage_title="Manager to manager",
        tier=0,
        due=T0 + timedelta(days=3),
        clause="3.2",
        summary="The disagreement moved to stage 2.",
    )
    delivery_id = f"{update.update_id}:{connector_id}"
    with transaction(hub.sessions) as session:
        session.add(
            Delivery(
                id=delivery_id,
                escalation_id="esc-1",
                connector_id=connector_id,
                channel="webhook",
                target=url,
                document_sealed=hub.sealer.seal(
                    update.model_dump(mode="json"), context=f"delivery:{delivery_id}"
                ),
                status="pending",
                created_at=T0,
                finished_at=None,
            )
        )
    return delivery_id


def deliver(dispatcher: Dispatcher, hub: Hub, url: str) -> Delivery:
    """Register a connector at ``url``, deliver one update to it, return the finished row."""
    connector_id = add_connector(hub, url)
    delivery_id = add_delivery(hub, connector_id, url)
    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)
    with hub.sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def attempts(hub: Hub, delivery_id: str) -> int:
    with hub.sessions() as session:
        rows = session.query(DeliveryAttempt).filter_by(delivery_id=delivery_id).count()
        return int(rows)


def test_the_delivery_client_connects_to_the_address_it_resolved_and_keeps_the_host_name(
    hub: Hub, receiver: Receiver
) -> None:
    resolver = Resolver(["127.0.0.1"])
    dispatcher = Dispatcher(hub, resolve=resolver)  # the production client, guarded and pinned
    try:
        row = deliver(dispatcher, hub, receiver.url())
    finally:
        dispatcher.close()

    assert row.status == "succeeded"
    assert receiver.hosts == [f"{HOST}:{receiver.port}"]  # the name, though no DNS knows it
    assert resolver.lookups.count(HOST) >= 2  # before the attempt, and to connect


@pytest.mark.parametrize(
    ("address", "reason"), [("169.254.169.254", "link-local"), ("10.1.2.3", "private")]
)
def test_a_host_that_now_resolves_to_a_forbidden_address_is_dead_lettered_unsent(
    hub: Hub, receiver: Receiver, address: str, reason: str
) -> None:
    resolver, spy = Resolver(["127.0.0.1"]), LoopbackOnly()
    with spied_dispatcher(hub, resolver, spy) as dispatcher:
        first = deliver(dispatcher, hub, receiver.url())
        resolver.answers = [[address]]  # the agency's DNS now points somewhere else
        later = deliver(dispatcher, hub, receiver.url())

    assert first.status == "succeeded"
    assert (later.status, later.attempts, attempts(hub, later.id)) == ("dead", 0, 0)
    assert f"now resolves to {address}, which is refused (a {reason} address)" in (
        later.last_error or ""
    )
    assert spy.asked == ["127.0.0.1"]  # the first delivery only: nothing else was dialled
    assert len(receiver.hosts) == 1


def test_a_name_rebound_between_the_check_and_the_connection_is_refused_before_connecting(
    hub: Hub, receiver: Receiver
) -> None:
    resolver, spy = Resolver(["127.0.0.1"], ["10.0.0.7"]), LoopbackOnly()
    with spied_dispatcher(hub, resolver, spy) as dispatcher:
        row = deliver(dispatcher, hub, receiver.url())

    assert (row.status, row.attempts) == ("dead", 1)
    assert "refused at connect" in (row.last_error or "")
    assert "10.0.0.7" in (row.last_error or "")
    assert spy.asked == []
    assert receiver.hosts == []


def test_one_forbidden_address_among_several_answers_refuses_the_host(
    hub: Hub, receiver: Receiver
) -> None:
    resolver, spy = Resolver(["127.0.0.1", "192.168.0.9"]), LoopbackOnly()
    with spied_dispatcher(hub, resolver, spy) as dispatcher:
        row = deliver(dispatcher, hub, receiver.url())

    assert row.status == "dead"
    assert "192.168.0.9, which is refused (a private address)" in (row.last_error or "")
    assert spy.asked == []


def test_a_name_that_does_not_resolve_is_retried_not_dead_lettered_at_once(
    hub: Hub, receiver: Receiver
) -> None:
    lookups: list[str] = []

    def failing(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    spy = LoopbackOnly()
    with spied_dispatcher(hub, failing, spy) as dispatcher:
        row = deliver(dispatcher, hub, receiver.url())

    assert (row.status, row.attempts) == ("dead", 2)  # both attempts spent, then exhausted
    assert "cannot be resolved" in (row.last_error or "")
    assert spy.asked == []


def test_without_loopback_allowed_the_guard_refuses_loopback_at_connect_time() -> None:
    spy = LoopbackOnly()
    backend = GuardedBackend(allow_loopback=False, resolve=Resolver(["127.0.0.1"]), inner=spy)
    transport = GuardedTransport(backend=backend, limits=httpx.Limits())
    with (
        httpx.Client(transport=transport, trust_env=False) as client,
        pytest.raises(ValueError, match=r"127\.0\.0\.1, a loopback address"),
    ):
        client.post(f"http://{HOST}:9/hook", content=b"{}")
    assert spy.asked == []
