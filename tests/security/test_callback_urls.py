"""Callback URLs (SSRF guard): refused at registration, and again at send time.

Registration runs on a hub in test mode with loopback callbacks NOT allowed (the production
rule); addresses no agency may make the hub reach are refused with 422 naming
``callback_url``. At send time, a connector whose URL now points at loopback (DNS rebinding,
or a row written before the guard) gets no connection at all: its delivery dies unsent, and
a listener on loopback counts zero connections, whatever spelling of loopback is used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from gateway.store.models import Connector, Delivery
from tests.security.conftest import Attacks
from tests.security.listener import Listener
from tests.security.world import World, event, raised_data, running_world

PUBLIC = "https://93.184.215.14/escalation-hub"  # a globally routable literal: no DNS needed


def registration_refusals() -> dict[str, str]:
    """URLs a connector may not register on a production-rule hub, by what they reach."""
    return {
        "loopback literal": "http://127.0.0.1:8080/hub",
        "loopback name": "https://localhost/hub",
        "loopback name with a trailing dot": "https://localhost./hub",
        "loopback, short form": "https://127.1/hub",
        "loopback, hexadecimal": "https://0x7f000001/hub",
        "IPv6 loopback": "https://[::1]/hub",
        "IPv4-mapped loopback": "https://[::ffff:127.0.0.1]/hub",
        "private 10/8": "https://10.0.0.1/hub",
        "private 192.168/16": "https://192.168.1.10/hub",
        "private 172.16/12": "https://172.16.5.4/hub",
        "cloud metadata (link-local)": "http://169.254.169.254/latest/meta-data/",
        "shared address space 100.64/10": "https://100.64.0.1/hub",
        "unspecified 0.0.0.0": "https://0.0.0.0/hub",
        "multicast": "https://224.0.0.1/hub",
        "IPv6 unique local": "https://[fd00::1]/hub",
        "6to4 carrying 10.0.0.1": "https://[2002:a00:1::]/hub",
        "NAT64 carrying 10.0.0.1": "https://[64:ff9b::a00:1]/hub",
        "user and password in the URL": "https://user:pass@93.184.215.14/hub",
        "plain http to a public address": "http://93.184.215.14/hub",
        "file scheme": "file:///etc/passwd",
        "gopher scheme": "gopher://93.184.215.14/_hub",
        "control characters": "https://93.184.215.14/\r\nHost: internal",
    }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Members registered on a loopback-friendly hub, then served by a production-rule one."""
    stack = {"allow_loopback_callbacks": False}
    with running_world(stack=stack, raise_escalation=False, callback_url=PUBLIC) as built:
        yield built


def test_callback_urls_reaching_internal_addresses_are_refused_at_registration(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhft"]
    client = world.http(member.credential)
    urls = registration_refusals()
    refused = 0
    for url in urls.values():
        body = {"kind": "generic", "callback_url": url, "public_jwk": member.public_jwk}
        answer = client.post(f"/v1/agencies/{member.id}/connectors", json=body)
        refused += answer.status_code == 422 and "callback_url" in answer.text
    attacks.record(
        "callbacks",
        "registering internal or malformed callback URLs",
        tried=len(urls),
        refused=refused,
    )
    assert refused == len(urls)
    body = {"kind": "generic", "callback_url": PUBLIC, "public_jwk": member.public_jwk}
    assert client.post(f"/v1/agencies/{member.id}/connectors", json=body).status_code == 201


def _point(world: World, url: str) -> None:
    """Rewrite every connector's callback URL in the database (what DNS rebinding achieves)."""
    assert world.stack.hub is not None
    with world.stack.hub.sessions() as session:
        session.execute(update(Connector).values(callback_url=url))
        session.commit()


def _dead(world: World, since: datetime, timeout: float = 30) -> list[str]:
    """The webhook deliveries, once every one of them is dead again after ``since``."""
    assert world.stack.hub is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.stack.hub.sessions() as session:
            rows = session.scalars(select(Delivery).where(Delivery.channel == "webhook")).all()
        done = [r for r in rows if r.status == "dead" and r.finished_at and r.finished_at >= since]
        if rows and len(done) == len(rows):
            return [r.id for r in rows]
        time.sleep(0.05)
    raise AssertionError("deliveries to a rebound callback URL did not end as dead letters")


def _replay_to(world: World, deliveries: list[str], url: str) -> None:
    """Point every connector at ``url``, replay the dead deliveries, wait until dead again."""
    since = datetime.now(UTC)
    _point(world, url)
    admin = world.http(world.stack.admin_token)
    for delivery in deliveries:
        replay = admin.post(f"/v1/dead-letters/{delivery}/replay")
        assert replay.status_code == 202, replay.text
    _dead(world, since)


def _loopback(v4: int, v6: int) -> list[str]:
    """Ways to write a loopback callback URL, the first one the plainest."""
    hosts = ["127.0.0.1", "localhost", "localhost.", "127.1", "0x7f000001", "[::ffff:127.0.0.1]"]
    return [f"http://{host}:{v4}/hub" for host in hosts] + [f"http://[::1]:{v6}/hub"]


def test_a_callback_that_now_reaches_loopback_gets_no_connection_at_send_time(
    world: World, attacks: Attacks
) -> None:
    v4, v6 = Listener("127.0.0.1"), Listener("::1")
    spellings = _loopback(v4.port, v6.port)
    try:
        since = datetime.now(UTC)
        _point(world, spellings[0])
        answer = world.post_events(world.members["nhft"], event("raised", raised_data("nhft")))
        assert answer.status_code == 202, answer.text
        deliveries = _dead(world, since)
        for url in spellings[1:]:
            _replay_to(world, deliveries, url)
        connections = v4.connections + v6.connections
    finally:
        v4.close()
        v6.close()
    tried = len(deliveries) * len(spellings)
    attacks.record(
        "callbacks",
        f"delivering to a callback rebound to loopback ({len(spellings)} spellings)",
        tried=tried,
        refused=tried if connections == 0 else 0,
    )
    assert connections == 0
