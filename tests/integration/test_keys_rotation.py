"""Data key rotation without downtime, on SQLite and PostgreSQL: a running hub keeps reading and
writing while its rows move to the new key; ``keys status|reencrypt|retire|rotate`` as an
operator runs them."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.api import create_app
from gateway.bootstrap import Hub, build_hub
from gateway.cli import main
from gateway.demo.stack import Stack
from gateway.services import rekey
from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.db import transaction
from gateway.store.models import Agency, Connector, Delivery, EscalationRow, InboundEvent
from security.keyring import KeyRing
from tests.conftest import fresh_pg_database
from tests.integration.test_api_helpers import (
    ADMIN,
    LiveServer,
    agency_headers,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
)

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
K1, K2, K0 = (base64.b64encode(os.urandom(32)).decode() for _ in range(3))
OLD_RING, NEW_RING = f"k1:{K1}", f"k1:{K1},k2:{K2}"
SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own (counts are per database)."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path}/hub.sqlite3"
        migrate.upgrade(database)
        yield database
        return
    with fresh_pg_database() as database:
        migrate.upgrade(database)
        yield database


def hub_on(url: str, ring: str, active: str) -> Hub:
    return make_hub(
        url,
        create_tables=False,
        data_keys=ring,
        data_key_active=active,
        audit_signing_key=SIGNING_KEY,
    )


def use_cli_env(monkeypatch: pytest.MonkeyPatch, url: str, ring: str, active: str) -> None:
    """The environment a production operator's shell would have."""
    values = {
        "EH_ENVIRONMENT": "production",
        "EH_DATABASE_URL": url,
        "EH_DATA_KEYS": ring,
        "EH_DATA_KEY_ACTIVE": active,
        "EH_ADMIN_TOKEN": "admin-token-for-tests-only",
        "EH_PSEUDONYM_KEY": "pseudonym-key-for-tests-only",
        "EH_AUDIT_SIGNING_KEY": SIGNING_KEY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def seed(hub: Hub, tag: str, *, garbage: bool = False) -> None:
    """One row in every sealed column, sealed under the hub's active key."""
    seal = hub.sealer.seal
    with transaction(hub.sessions) as session:
        session.add(
            Agency(
                id=f"ag-{tag}",
                name="A",
                kind="health",
                partnerships={"ids": []},
                notify_email=None,
                credential_id=f"cred-{tag}",
                credential_hash="x",
                created_at=T0,
            )
        )
        session.flush()
        session.add(
            Connector(
                id=f"cn-{tag}",
                agency_id=f"ag-{tag}",
                kind="generic",
                callback_url="https://x",
                public_jwk={},
                secrets_sealed=seal(["whsec_x"], context=f"connector:cn-{tag}"),
                config={},
                config_secrets_sealed=seal({"token": "t"}, context=f"connector-config:cn-{tag}"),
                status="active",
                created_at=T0,
            )
        )
        state = (
            b"not a sealed blob at all"
            if garbage
            else seal({"id": f"esc-{tag}"}, context=f"escalation:esc-{tag}")
        )
        session.add(
            EscalationRow(
                id=f"esc-{tag}",
                partnership="p",
                procedure_id="p",
                procedure_version="1",
                state_sealed=state,
                opened_at=T0,
                updated_at=T0,
            )
        )
        session.flush()
        session.add(
            InboundEvent(
                source="urn:t",
                event_id=f"evt-{tag}",
                event_type="raised",
                escalation_id=f"esc-{tag}",
                seq=1,
                body_sealed=seal({"n": tag}, context=f"inbound:urn:t#evt-{tag}"),
                received_at=T0,
            )
        )
        session.add(
            Delivery(
                id=f"dl-{tag}",
                escalation_id=f"esc-{tag}",
                connector_id=f"cn-{tag}",
                channel="webhook",
                target="https://x",
                document_sealed=seal({"d": tag}, context=f"delivery:dl-{tag}"),
                created_at=T0,
            )
        )


def unseal_everything(hub: Hub) -> int:
    """Unseal every sealed value with its own context; return how many there are."""
    done = 0
    with hub.sessions() as session:
        for column in rekey.SEALED_COLUMNS:
            query = select(
                column.key.label("key"), column.blob.label("blob"), *column.context_columns
            )
            for row in session.execute(query.where(column.blob.is_not(None))):
                hub.sealer.unseal_bytes(row.blob, context=column.context(row))
                done += 1
    return done


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


class World:
    """Two agencies with connectors on a running hub; raises escalations and reads them."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.token = register_agency(client, "nhft")
        register_agency(client, "nncc", kind="social_care")
        self.connector = register_connector(client, "nhft", self.token)
        self.escalations: list[str] = []

    def raise_one(self, n: int, client: httpx.Client | None = None) -> str:
        answer = post_signed(
            client or self.client,
            *self.connector,
            raised_event("nhft", "nncc", event_id=f"evt-{n}"),
            webhook_id=f"wh-{n}",
        )
        assert answer.status_code == 202, answer.text
        escalation_id: str = answer.json()["accepted"][0]["escalation_id"]
        self.escalations.append(escalation_id)
        return escalation_id

    def state(self, escalation_id: str, client: httpx.Client | None = None) -> Any:
        answer = (client or self.client).get(
            f"/v1/escalations/{escalation_id}", headers=agency_headers(self.token)
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["state"]


def test_a_running_hub_keeps_reading_and_writing_while_its_rows_move_to_the_new_key(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = ADMIN["Authorization"].split()[1]
    common = {"database_url": url, "admin_token": admin, "audit_signing_key": SIGNING_KEY}
    with Stack(data_keys=OLD_RING, data_key_active="k1", bus_prefix=_prefix(), **common) as old:
        client = httpx.Client(base_url=old.base_url, timeout=10)
        world = World(client)
        for n in range(3):
            world.raise_one(n)
        eventually(lambda: all(world.state(e) for e in world.escalations))
        client.close()

    # Rolling restart: one process on step 1 (new ring, old active), the hub on step 2.
    step_one = hub_on(url, NEW_RING, "k1")
    with (
        Stack(data_keys=NEW_RING, data_key_active="k2", bus_prefix=_prefix(), **common) as new,
        LiveServer(create_app(step_one)) as reader_server,
        httpx.Client(base_url=new.base_url, timeout=10) as client,
        httpx.Client(base_url=reader_server.url, timeout=10) as reader,
    ):
        assert new.hub is not None
        world.client = client
        old_ones, failures, reads = list(world.escalations), [], [0]
        stop = threading.Event()

        def keep_reading() -> None:
            while not stop.is_set():
                for escalation_id in old_ones:
                    for http in (client, reader):
                        try:
                            world.state(escalation_id, http)
                            reads[0] += 1
                        except AssertionError as exc:
                            failures.append(str(exc))

        thread = threading.Thread(target=keep_reading)
        thread.start()

        def write_more(_batch: rekey.Batch) -> None:
            if len(world.escalations) < 8:  # new escalations while old rows are re-sealed
                world.raise_one(len(world.escalations))

        try:
            rekey.reencrypt(new.hub, size=1, actor="test", on_batch=write_more)
            eventually(lambda: all(world.state(e) for e in world.escalations))
            fresh = world.escalations[3:]
            assert all(world.state(e, reader) for e in fresh)  # step 1 reads what step 2 sealed
        finally:
            stop.set()
            thread.join()
        rekey.reencrypt(new.hub, size=50, actor="test")  # whatever the deliveries added since

    assert failures == []
    assert reads[0] > 0
    with step_one.sessions() as session:
        counts = rekey.count_by_key(session)
    assert all("k1" not in found for found in counts.values()), counts
    step_one.close()

    use_cli_env(monkeypatch, url, NEW_RING, "k2")
    code, _, err = cli(capsys, "keys", "retire", "k1", "--output", str(tmp_path / "ring.env"))
    assert code == 0, err
    assert (tmp_path / "ring.env").read_text().strip() == f"EH_DATA_KEYS=k2:{K2}"
    only_new = hub_on(url, f"k2:{K2}", "k2")
    try:
        assert unseal_everything(only_new) > 0  # nothing needs k1 any more
    finally:
        only_new.close()


def test_status_counts_sealed_rows_per_key_id_from_their_headers(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = hub_on(url, OLD_RING, "k1"), hub_on(url, NEW_RING, "k2")
    seed(old, "a")
    seed(old, "b")
    seed(new, "c", garbage=True)
    old.close()
    new.close()
    use_cli_env(monkeypatch, url, NEW_RING, "k2")

    code, out, _ = cli(capsys, "keys", "status", "--json")

    assert code == 0
    status = json.loads(out)
    assert (status["active"], status["ring"]) == ("k2", ["k1", "k2"])
    assert status["rows"] == {
        "escalations.state_sealed": {"k1": 2, "(not a key ring blob)": 1},
        "inbound_events.body_sealed": {"k1": 2, "k2": 1},
        "connectors.secrets_sealed": {"k1": 2, "k2": 1},
        "connectors.config_secrets_sealed": {"k1": 2, "k2": 1},
        "deliveries.document_sealed": {"k1": 2, "k2": 1},
    }
    code, out, _ = cli(capsys, "keys", "status")
    assert "inbound_events.body_sealed: k1=2, k2=1" in out
    assert "11 row(s) are under other keys" in out
    assert K1 not in out
    assert K2 not in out


def test_retire_refuses_while_rows_use_the_key_and_succeeds_after_reencrypt(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeding = hub_on(url, OLD_RING, "k1")
    seed(seeding, "a")
    seeding.close()
    use_cli_env(monkeypatch, url, NEW_RING, "k2")
    output = tmp_path / "ring.env"

    refused = cli(capsys, "keys", "retire", "k1", "--output", str(output))
    active = cli(capsys, "keys", "retire", "k2", "--output", str(output))
    moved = cli(capsys, "keys", "reencrypt", "--batch", "2")
    retired = cli(capsys, "keys", "retire", "k1", "--output", str(output))

    assert refused[0] == 1
    assert "5 row(s) still use key 'k1'" in refused[2]
    assert active[0] == 1
    assert "is the active key" in active[2]
    assert moved[0] == 0
    assert "done: 5 row(s) re-sealed under k2" in moved[1]
    assert retired[0] == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_text() == f"EH_DATA_KEYS=k2:{K2}\n"


def test_reencrypt_is_idempotent_and_leaves_rows_it_cannot_unseal_unchanged(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for ring, active, tag in ((OLD_RING, "k1", "a"), (f"k0:{K0}", "k0", "lost")):
        seeding = hub_on(url, ring, active)
        seed(seeding, tag)
        seeding.close()
    use_cli_env(monkeypatch, url, NEW_RING, "k2")
    hub = hub_on(url, NEW_RING, "k2")
    lost = select(Delivery.document_sealed).where(Delivery.id == "dl-lost")
    with hub.sessions() as session:
        before = session.scalar(lost)

    first = cli(capsys, "keys", "reencrypt")
    second = cli(capsys, "keys", "reencrypt")

    assert first[0] == 1
    assert "done: 5 row(s) re-sealed" in first[1]
    assert "5 row(s) could not be unsealed" in first[2]
    assert second[0] == 1
    assert "done: 0 row(s) re-sealed" in second[1]
    with hub.sessions() as session:
        assert session.scalar(lost) == before
        assert rekey.count_by_key(session)["deliveries.document_sealed"] == {"k0": 1, "k2": 1}
    hub.close()


def test_the_background_rekeyer_moves_every_row_and_stays_off_with_one_key(url: str) -> None:
    seeding = hub_on(url, OLD_RING, "k1")
    seed(seeding, "a")
    assert not rekey.Rekeyer(seeding).needed
    seeding.close()
    hub = hub_on(url, NEW_RING, "k2")
    rekeyer = rekey.Rekeyer(hub, size=1, pause=0.01, idle=0.05)
    rekeyer.start()
    try:
        eventually(lambda: rekeyer.passes >= 1)
    finally:
        rekeyer.stop()
    with hub.sessions() as session:
        counts = rekey.count_by_key(session)
    hub.close()
    assert all(set(found) == {"k2"} for found in counts.values()), counts


def test_rotate_outside_development_writes_new_values_to_a_0600_file_and_shows_ids_only(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_cli_env(monkeypatch, sqlite_url, OLD_RING, "k1")
    output = tmp_path / "rotation.env"

    code, out, err = cli(capsys, "keys", "rotate", "--key-id", "k2", "--output", str(output))

    assert code == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    values = dict(
        line.split("=", 1) for line in output.read_text().splitlines() if not line.startswith("#")
    )
    assert values["EH_DATA_KEY_ACTIVE"] == "k2"
    assert values["EH_DATA_KEYS"].startswith(f"{OLD_RING},k2:")
    assert KeyRing.from_env_string(values["EH_DATA_KEYS"], active="k2").key_ids == ("k1", "k2")
    assert out == ""
    assert "keeping EH_DATA_KEY_ACTIVE=k1" in err
    assert "keys retire k1" in err
    assert K1 not in err
    assert values["EH_DATA_KEYS"][-44:] not in err

    again = cli(capsys, "keys", "rotate", "--output", str(output))
    assert again[0] == 1
    assert "already exists" in again[2]


def test_rotate_outside_development_prints_the_secret_only_when_asked(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_cli_env(monkeypatch, sqlite_url, OLD_RING, "k1")

    unasked = cli(capsys, "keys", "rotate")
    asked = cli(capsys, "keys", "rotate", "--print-secret")

    assert unasked[0] == 2
    assert "--output FILE" in unasked[2]
    assert unasked[1] == ""
    assert asked[0] == 0
    assert f"EH_DATA_KEYS={OLD_RING},k" in asked[1]


def dev_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("EH_DATA_KEYS", "EH_DATA_KEY_ACTIVE", "EH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EH_ENVIRONMENT", "development")
    monkeypatch.setenv("EH_DATA_DIR", str(tmp_path / "var"))
    migrate.upgrade(f"sqlite:///{tmp_path / 'var' / 'escalation-hub.sqlite3'}")
    return tmp_path / "var" / "dev-secrets.json"


def test_rotate_in_development_adds_a_key_to_the_dev_secrets_file_and_makes_it_active(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_file = dev_env(monkeypatch, tmp_path)
    cli(capsys, "keys", "status")  # the first run creates the development secrets
    first = json.loads(secrets_file.read_text())

    code, out, _ = cli(capsys, "keys", "rotate")
    status = cli(capsys, "keys", "status", "--json")[1]

    stored = json.loads(secrets_file.read_text())
    assert code == 0
    assert "added dev-2, now active" in out
    assert stored["data_keys"].startswith(first["data_keys"] + ",dev-2:")
    assert stored["data_key_active"] == "dev-2"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert first["data_keys"].split(":", 1)[1] not in out
    assert json.loads(status)["active"] == "dev-2"


def test_a_hub_started_after_a_development_rotation_seals_under_the_new_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_env(monkeypatch, tmp_path)
    cli(capsys, "keys", "rotate")

    hub = build_hub(Settings())
    try:
        assert hub.sealer.ring.active_key_id == "dev-2"
    finally:
        hub.close()


def _prefix() -> str:
    return f"k{uuid.uuid4().hex[:10]}"
