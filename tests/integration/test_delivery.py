"""Delivery end to end: real HTTP receivers and a real SMTP server on 127.0.0.1, a real store.

Receivers decrypt what they get with their agency's private key and verify the Standard
Webhooks signature with their connector's secret, as a case system would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select

from gateway.bootstrap import Hub, build_hub
from gateway.bus.consumer import PoisonMessage, TransientError
from gateway.services import deadletters
from gateway.services.delivery import Dispatcher, dispatcher_for, handle_deliver
from gateway.services.email import DELIVERY_HEADER, SmtpMailer, message_id_for
from gateway.services.errors import Conflict
from gateway.services.sending import Sender
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.store.models import (
    Agency,
    AuditEntry,
    Base,
    Connector,
    Delivery,
    DeliveryAttempt,
    OutboxMessage,
)
from schemas.escalation import Status
from schemas.people import Child, ChildIdentifiers
from schemas.procedure import Recipient
from schemas.updates import Notification, StageUpdate
from security import envelopes, webhooks
from security.errors import DecryptionError

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CHILD_NAME = "Alexandra"
NHS_NUMBER = "943 476 5919"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server whose answers are scripted per path (default 200)."""

    scripts: dict[str, list[int]] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            script = self.scripts.get(received.path, [])
            status = script.pop(0) if len(script) > 1 else (script[0] if script else 200)
        gate = self.gates.get(received.path)
        if gate is not None:
            gate.wait(timeout=30)
        return status

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.answer(Received(path, headers, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A Receiver serving on 127.0.0.1 until the block ends (its gates opened first)."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    for gate in state.gates.values():
        gate.set()
    server.shutdown()
    server.server_close()
    thread.join()


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses scripted addresses."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.raw.append(envelope.original_content)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def _settings(database_url: str, smtp_port: int) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_keys=SecretStr("k1:" + base64.b64encode(os.urandom(32)).decode()),
        data_key_active="k1",
        pseudonym_key=SecretStr("pseudonym-key-for-tests-only"),
        admin_token=SecretStr("admin-token-for-tests-only"),
        audit_signing_key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
        delivery_attempts=3,
        delivery_backoff_initial=0.01,
        delivery_backoff_max=0.05,
        delivery_timeout=5.0,
        delivery_concurrency=4,
        allow_loopback_callbacks=True,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(
    request: pytest.FixtureRequest, tmp_path: Any, mailbox: tuple[Mailbox, int]
) -> Iterator[Hub]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path}/hub.sqlite3"
    built = build_hub(_settings(url, mailbox[1]))
    Base.metadata.create_all(built.engine)
    yield built
    built.close()


@pytest.fixture
def sqlite_hub(tmp_path: Any, mailbox: tuple[Mailbox, int]) -> Iterator[Hub]:
    built = build_hub(_settings(f"sqlite:///{tmp_path}/hub.sqlite3", mailbox[1]))
    Base.metadata.create_all(built.engine)
    yield built
    built.close()


@pytest.fixture
def dispatcher(hub: Hub) -> Iterator[Dispatcher]:
    running = Dispatcher(hub)
    yield running
    running.close()


@dataclass(frozen=True)
class Party:
    agency_id: str
    connector_id: str
    private_jwk: dict[str, Any]
    secret: str


def add_party(hub: Hub, url: str) -> Party:
    """An agency with one active connector calling back to ``url``."""
    agency_id, connector_id = f"ag-{uuid.uuid4().hex[:8]}", f"cn-{uuid.uuid4().hex[:8]}"
    private_jwk, public_jwk = envelopes.generate_recipient_key("EC")
    secret = webhooks.new_secret()
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
                public_jwk=public_jwk,
                secrets_sealed=hub.sealer.seal([secret], context=f"connector:{connector_id}"),
                status="active",
                created_at=T0,
            )
        )
    return Party(agency_id, connector_id, private_jwk, secret)


def stage_update(party: Party, sequence: int = 1) -> StageUpdate:
    return StageUpdate(
        update_id=f"upd-{uuid.uuid4().hex[:8]}",
        escalation_id="esc-1",
        sequence=sequence,
        partnership="northants",
        procedure_id="northants",
        procedure_version="2024.1",
        recipient_agency_id=party.agency_id,
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
        child=Child(identifiers=ChildIdentifiers(nhs_number=NHS_NUMBER, given_name=CHILD_NAME)),
    )


def notification() -> Notification:
    return Notification(
        notification_id=f"ntf-{uuid.uuid4().hex[:8]}",
        escalation_id="esc-1",
        partnership="northants",
        recipient=Recipient.BUSINESS_OFFICE,
        reason="Stage 5 reached: the business office convenes the panel.",
        clause="5.1",
        stage=5,
        tier=0,
        immediate=True,
        occurred_at=T0,
    )


def add_delivery(
    hub: Hub,
    document: StageUpdate | Notification,
    *,
    party: Party | None = None,
    address: str | None = None,
    at: datetime = T0,
) -> str:
    base = document.update_id if isinstance(document, StageUpdate) else document.notification_id
    suffix = party.connector_id if party else f"email:{uuid.uuid4().hex[:8]}"
    delivery_id = f"{base}:{suffix}"  # the router's form: stable, the receiver's de-dup key
    with transaction(hub.sessions) as session:
        connector = session.get(Connector, party.connector_id) if party else None
        session.add(
            Delivery(
                id=delivery_id,
                escalation_id=document.escalation_id,
                connector_id=party.connector_id if party else None,
                channel="webhook" if party else "email",
                target=connector.callback_url if connector else str(address),
                document_sealed=hub.sealer.seal(
                    document.model_dump(mode="json"), context=f"delivery:{delivery_id}"
                ),
                status="pending",
                created_at=at,
                finished_at=None,
            )
        )
    return delivery_id


def delivery(hub: Hub, delivery_id: str) -> Delivery:
    with hub.sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def attempt_codes(hub: Hub, delivery_id: str) -> list[int | None]:
    with hub.sessions() as session:
        query = select(DeliveryAttempt.status_code).where(
            DeliveryAttempt.delivery_id == delivery_id
        )
        return list(session.scalars(query.order_by(DeliveryAttempt.pk)))


def audit_actions(hub: Hub, delivery_id: str) -> list[str]:
    with hub.sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        return [e.action for e in entries if e.detail.get("delivery_id") == delivery_id]


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.01)


def test_a_stage_update_arrives_encrypted_for_its_agency_alone_and_signed(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party, other = add_party(hub, receiver.url("/a")), add_party(hub, receiver.url("/b"))
    update = stage_update(party)
    delivery_id = add_delivery(hub, update, party=party)

    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)

    [got] = receiver.on("/a")
    assert got.headers["content-type"] == "application/jose"
    now = datetime.now(UTC)
    assert webhooks.verify([party.secret], got.headers, got.body, now=now) == delivery_id
    plaintext, header = envelopes.decrypt(party.private_jwk, got.body.decode())
    assert header["cty"] == "application/json"
    assert StageUpdate.model_validate_json(plaintext) == update
    assert CHILD_NAME.encode() not in got.body
    with pytest.raises(DecryptionError):
        envelopes.decrypt(other.private_jwk, got.body.decode())
    row = delivery(hub, delivery_id)
    assert (row.status, row.attempts, row.last_status) == ("succeeded", 1, 200)
    assert row.finished_at is not None
    assert audit_actions(hub, delivery_id) == ["delivered"]


def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times_then_succeeds(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/flaky"))
    receiver.scripts["/flaky"] = [500, 503, 200]
    delivery_id = add_delivery(hub, stage_update(party), party=party)

    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)

    assert [r.headers["webhook-id"] for r in receiver.on("/flaky")] == [delivery_id] * 3
    assert delivery(hub, delivery_id).status == "succeeded"
    assert delivery(hub, delivery_id).attempts == 3
    assert attempt_codes(hub, delivery_id) == [500, 503, 200]


def test_a_permanently_failing_receiver_ends_dead_and_replay_after_the_fix_delivers(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/down?token=s3cr3t"))
    receiver.scripts["/down"] = [500]
    delivery_id = add_delivery(hub, stage_update(party), party=party)

    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)

    row = delivery(hub, delivery_id)
    assert (row.status, row.attempts, row.last_status) == ("dead", 3, 500)
    assert row.last_error == "HTTP 500 Internal Server Error"
    with hub.sessions() as session:
        listed = [d for d in deadletters.list_dead(session, limit=500) if d.id == delivery_id]
    assert [(d.target_host, d.attempts, d.last_status) for d in listed] == [("127.0.0.1", 3, 500)]

    receiver.scripts["/down"] = [200]
    deadletters.replay(hub, delivery_id, actor="admin")
    with hub.sessions() as session:
        poke = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.message_id == f"deliver:{delivery_id}:replay:1"
            )
        ).one()
    handle_deliver(hub, poke.message_id, poke.payload, dispatcher=dispatcher)
    assert dispatcher.wait_idle(timeout=30)

    assert delivery(hub, delivery_id).status == "succeeded"
    assert attempt_codes(hub, delivery_id) == [500, 500, 500, 200]
    assert audit_actions(hub, delivery_id) == ["dead_letter", "replay", "delivered"]
    with pytest.raises(Conflict, match="not dead"):
        deadletters.replay(hub, delivery_id, actor="admin")


def test_a_gone_receiver_disables_its_connector_and_later_updates_die_unsent(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/gone"))
    receiver.scripts["/gone"] = [410]
    first = add_delivery(hub, stage_update(party, 1), party=party)
    second = add_delivery(hub, stage_update(party, 2), party=party)

    dispatcher.submit(first)
    dispatcher.submit(second)
    assert dispatcher.wait_idle(timeout=30)

    assert len(receiver.on("/gone")) == 1
    with hub.sessions() as session:
        connector = session.get(Connector, party.connector_id)
        assert connector is not None
        assert connector.status == "disabled"
    assert (delivery(hub, first).status, delivery(hub, first).attempts) == ("dead", 1)
    assert (delivery(hub, second).status, delivery(hub, second).attempts) == ("dead", 0)
    assert "disabled" in (delivery(hub, second).last_error or "")
    with pytest.raises(Conflict, match="re-enable it"):
        deadletters.replay(hub, first, actor="admin")


def test_updates_held_for_a_gone_receiver_go_out_in_order_once_enabled_with_replay(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/back"))
    receiver.scripts["/back"] = [410, 200]  # gone once, then back
    updates = [add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3)]
    dispatcher.submit(updates[0])
    assert dispatcher.wait_idle(timeout=30)
    assert [delivery(hub, d).status for d in updates] == ["dead"] * 3
    assert dead_reasons(hub, updates) == ["gone", "connector_disabled", "connector_disabled"]

    with transaction(hub.sessions) as session:  # what POST .../enable?replay=true does
        connector = session.get(Connector, party.connector_id, with_for_update=True)
        assert connector is not None
        connector.status = "active"
        replayed = deadletters.replay_connector(session, connector.id, at=T0, actor="admin")
    with hub.sessions() as session:
        query = select(OutboxMessage.message_id, OutboxMessage.payload)
        pokes = [(m, p) for m, p in session.execute(query) if any(u in m for u in updates)]
    assert replayed == 3
    assert pokes == [(f"deliver:{updates[0]}:replay:1", {"delivery_id": updates[0]})]  # one
    handle_deliver(hub, pokes[0][0], pokes[0][1], dispatcher=dispatcher)
    assert dispatcher.wait_idle(timeout=30)

    assert [r.headers["webhook-id"] for r in receiver.on("/back")] == [updates[0], *updates]
    assert [delivery(hub, d).status for d in updates] == ["succeeded"] * 3
    assert audit_actions(hub, updates[1]) == ["dead_letter", "replay", "delivered"]


def test_a_delivery_refused_as_disabled_stays_pending_if_its_connector_was_enabled_meanwhile(
    hub: Hub, dispatcher: Dispatcher, receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/raced"))
    delivery_id = add_delivery(hub, stage_update(party), party=party)
    # The lane read the connector as disabled; an enable (and its replay) committed before
    # the refusal was written: writing it now would leave a dead letter nobody replays.
    refusal = deadletters.ConnectorDisabled(party.connector_id)
    unused = SmtpMailer(host="127.0.0.1", port=9, sender="hub@hub.example", timeout=1.0)
    with httpx.Client() as http:
        Sender(hub, http=http, mailer=unused).conclude(delivery_id, None, refusal=refusal)

    assert delivery(hub, delivery_id).status == "pending"
    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)
    assert delivery(hub, delivery_id).status == "succeeded"


def dead_reasons(hub: Hub, delivery_ids: list[str]) -> list[str]:
    with hub.sessions() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "dead_letter").order_by(AuditEntry.seq)
        )
        reasons = {e.detail["delivery_id"]: e.detail["reason"] for e in entries}
    return [reasons[d] for d in delivery_ids]


def test_a_slow_failing_receiver_does_not_hold_up_a_healthy_one(
    sqlite_hub: Hub, receiver: Receiver
) -> None:
    hub = sqlite_hub
    slow, healthy = add_party(hub, receiver.url("/slow")), add_party(hub, receiver.url("/ok"))
    receiver.scripts["/slow"] = [500]
    receiver.gates["/slow"] = threading.Event()
    stuck = add_delivery(hub, stage_update(slow), party=slow)
    updates = [add_delivery(hub, stage_update(healthy, n), party=healthy) for n in range(1, 6)]
    running = Dispatcher(hub)
    try:
        running.submit(stuck)
        eventually(lambda: len(receiver.on("/slow")) == 1)
        for delivery_id in updates:
            running.submit(delivery_id)
        eventually(lambda: all(delivery(hub, d).status == "succeeded" for d in updates))
        assert delivery(hub, stuck).status == "pending"  # still held by its receiver
        receiver.gates["/slow"].set()
        assert running.wait_idle(timeout=30)
    finally:
        running.close()
    assert [r.headers["webhook-id"] for r in receiver.on("/ok")] == updates
    assert delivery(hub, stuck).status == "dead"


def test_the_business_office_email_reaches_a_real_smtp_server_without_child_details(
    hub: Hub, dispatcher: Dispatcher, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    notice = notification()
    delivery_id = add_delivery(hub, notice, address="business.office@northants.example")

    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)

    [message] = box.messages
    assert message[DELIVERY_HEADER] == delivery_id
    assert message["Message-ID"] == message_id_for(delivery_id)  # ':' is no atom: hashed
    assert re.fullmatch(r"<d-[0-9a-f]{40}@escalation-hub\.invalid>", message["Message-ID"])
    assert message["Subject"] == "[escalation-hub] northants esc-1: stage 5 business_office"
    assert f"\r\n{DELIVERY_HEADER}: {delivery_id}\r\n".encode() in box.raw[0]  # verbatim
    text = " ".join(message.get_content().split())
    assert all(part in text for part in (notice.reason, "Clause: 5.1", "Escalation id: esc-1"))
    assert CHILD_NAME.encode() not in box.raw[0]
    assert NHS_NUMBER.encode() not in box.raw[0]
    row = delivery(hub, delivery_id)
    assert (row.status, row.last_status) == ("succeeded", 250)


def test_an_email_whose_document_names_the_child_is_refused_and_never_sent(
    hub: Hub, dispatcher: Dispatcher, mailbox: tuple[Mailbox, int], receiver: Receiver
) -> None:
    party = add_party(hub, receiver.url("/unused"))
    delivery_id = add_delivery(hub, stage_update(party), address="bo@northants.example")

    dispatcher.submit(delivery_id)
    assert dispatcher.wait_idle(timeout=30)

    assert mailbox[0].messages == []
    row = delivery(hub, delivery_id)
    assert (row.status, row.attempts) == ("dead", 0)
    assert row.last_error is not None
    assert "not a Notification" in row.last_error
    assert CHILD_NAME not in row.last_error
    assert NHS_NUMBER not in row.last_error


def test_smtp_5xx_dead_letters_at_once_and_4xx_is_retried_until_exhausted(
    hub: Hub, dispatcher: Dispatcher, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    box.refuse["nobody@northants.example"] = "550 5.1.1 No such mailbox"
    box.refuse["busy@northants.example"] = "451 4.3.0 Try again later"
    refused = add_delivery(hub, notification(), address="nobody@northants.example")
    busy = add_delivery(hub, notification(), address="busy@northants.example")

    dispatcher.submit(refused)
    dispatcher.submit(busy)
    assert dispatcher.wait_idle(timeout=30)

    assert attempt_codes(hub, refused) == [550]
    assert attempt_codes(hub, busy) == [451, 451, 451]
    assert delivery(hub, refused).status == delivery(hub, busy).status == "dead"
    assert box.messages == []


def test_recover_redispatches_pending_deliveries_and_leaves_finished_ones_alone(
    sqlite_hub: Hub, receiver: Receiver
) -> None:
    hub = sqlite_hub
    party = add_party(hub, receiver.url("/r"))
    pending = [
        add_delivery(hub, stage_update(party, n), party=party, at=T0 + timedelta(minutes=n))
        for n in (1, 2, 3)
    ]
    done = add_delivery(hub, stage_update(party, 4), party=party)
    with transaction(hub.sessions) as session:
        row = session.get(Delivery, done)
        assert row is not None
        row.status = "succeeded"

    running = Dispatcher(hub)
    try:
        assert running.recover() == 3
        assert running.wait_idle(timeout=30)
    finally:
        running.close()

    assert [r.headers["webhook-id"] for r in receiver.on("/r")] == pending
    assert all(delivery(hub, d).status == "succeeded" for d in pending)


def test_a_repeated_poke_delivers_once(sqlite_hub: Hub, receiver: Receiver) -> None:
    hub = sqlite_hub
    party = add_party(hub, receiver.url("/once"))
    delivery_id = add_delivery(hub, stage_update(party), party=party)
    for n in range(3):
        handle_deliver(hub, f"deliver:{delivery_id}:{n}", {"delivery_id": delivery_id})
    shared = dispatcher_for(hub)
    try:
        assert shared.wait_idle(timeout=30)
        handle_deliver(hub, "deliver:again", {"delivery_id": delivery_id})
        assert shared.wait_idle(timeout=30)
        with pytest.raises(PoisonMessage, match="delivery_id"):
            handle_deliver(hub, "deliver:bad", {"id": delivery_id})
        with pytest.raises(PoisonMessage, match="no stored delivery"):
            handle_deliver(hub, "deliver:unknown", {"delivery_id": "never-stored"})
    finally:
        shared.close()
    assert len(receiver.on("/once")) == 1
    with pytest.raises(TransientError, match="stopping"):
        handle_deliver(hub, "deliver:late", {"delivery_id": delivery_id}, dispatcher=shared)


def test_a_poke_naming_its_lane_works_the_lane_without_looking_the_row_up(
    sqlite_hub: Hub, receiver: Receiver
) -> None:
    hub = sqlite_hub
    party = add_party(hub, receiver.url("/hinted"))
    delivery_id = add_delivery(hub, stage_update(party), party=party)
    shared = dispatcher_for(hub)
    try:
        lane = f"connector:{party.connector_id}"
        handle_deliver(hub, "deliver:hinted", {"delivery_id": "coalesced-away", "lane": lane})
        assert shared.wait_idle(timeout=30)
        with pytest.raises(PoisonMessage, match="no stored delivery"):  # not a lane: looked up
            handle_deliver(hub, "deliver:bad-lane", {"delivery_id": "nope", "lane": "x:\n"})
    finally:
        shared.close()
    assert [r.headers.get("webhook-id") for r in receiver.on("/hinted")] == [delivery_id]


def test_dead_letters_page_oldest_first_and_show_hosts_only(
    sqlite_hub: Hub, receiver: Receiver
) -> None:
    hub = sqlite_hub
    party = add_party(hub, receiver.url("/p?key=top-secret"))
    late = add_delivery(hub, stage_update(party, 9), party=party, at=T0 + timedelta(hours=1))
    alike = sorted(add_delivery(hub, stage_update(party, n), party=party) for n in (1, 2, 3))
    add_delivery(hub, stage_update(party, 4), party=party)  # pending: not listed
    with transaction(hub.sessions) as session:
        for delivery_id in [late, *alike]:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            row.status, row.last_status = "dead", 404
    with hub.sessions() as session:
        first = deadletters.list_dead(session, limit=2)
        rest = deadletters.list_dead(session, limit=2, after=first[-1].id)
    assert [d.id for d in first + rest] == [*alike, late]  # same instant: by id
    assert {d.target_host for d in first + rest} == {"127.0.0.1"}
    assert "top-secret" not in json.dumps([vars(d) for d in first + rest], default=str)


def test_a_loopback_callback_is_refused_unless_loopback_is_allowed(
    tmp_path: Any, mailbox: tuple[Mailbox, int], receiver: Receiver
) -> None:
    settings = _settings(f"sqlite:///{tmp_path}/strict.sqlite3", mailbox[1])
    hub = build_hub(settings.model_copy(update={"allow_loopback_callbacks": False}))
    Base.metadata.create_all(hub.engine)
    running = Dispatcher(hub)
    try:
        party = add_party(hub, receiver.url("/internal"))
        delivery_id = add_delivery(hub, stage_update(party), party=party)
        running.submit(delivery_id)
        assert running.wait_idle(timeout=30)
        row = delivery(hub, delivery_id)
    finally:
        running.close()
        hub.close()
    assert receiver.on("/internal") == []
    assert (row.status, row.attempts) == ("dead", 0)
    assert "127.0.0.1, which is refused" in (row.last_error or "")
