"""Scale out: one gateway, TWO routers, TWO delivery workers and a scheduler as real processes.

They share one PostgreSQL database and one RabbitMQ (a bus prefix of their own), configured by
EH_* variables exactly as deploy/ runs them. Case systems of three agencies drive 20
escalations at once, six actions each, sent concurrently and interleaved. Router A starts
first, so RabbitMQ makes it the single active consumer of every ``decide`` partition and
router B the standby; once A has decided some events it is killed with SIGKILL, mid-stream,
and B must take its partitions over. The tests then check what every case system filed and
what the database holds.

Which router decided what comes from the routers' own JSON logs (``router.decided`` lines and
their ``n``, the events one message decided); which delivery worker concluded what, from
``delivery.concluded`` lines. The audit log cannot tell: it records the acting agency.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from connectors.client import HubClient
from connectors.simulator import CaseSystem
from gateway.bus.topology import Topology, partition_for
from gateway.demo.stack import stack_settings
from gateway.store.db import make_engine
from gateway.store.models import Delivery, EscalationRow, InboundEvent, OutboxMessage
from security.envelopes import generate_recipient_key
from tests.conftest import fresh_pg_database
from tests.deploy.fleet import Fleet, consumers, delete_topology, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

PARTNERSHIP = "northamptonshire"
ESCALATIONS = 20
ACTIONS = 6
STAGES = [1, 1, 1, 2, 3, 4]  # after raised, acknowledged, plan agreed, three escalations
KILL_AFTER_DECIDED = 25  # events router A decides before it is killed
AGENCIES = {"sc-health": "health", "sc-csc": "social_care", "sc-police": "police"}
OFFICE = "sc-office"  # the partnership's business office: told when stage 4 is reached


@dataclass
class Party:
    id: str
    system: CaseSystem
    client: HubClient


@dataclass
class Run:
    """What the scenario left behind, for the tests to examine."""

    fleet: Fleet
    database_url: str
    parties: dict[str, Party]
    escalation_ids: list[str]
    decided_before_kill: int


def register(fleet: Fleet, parties: dict[str, Party]) -> None:
    """The administrator registers three agencies and the business office; each registers
    a generic connector."""
    admin = {"authorization": f"Bearer {fleet.settings.admin_token.get_secret_value()}"}
    with httpx.Client(base_url=fleet.base_url, headers=admin, timeout=30) as http:
        for agency_id, kind in {**AGENCIES, OFFICE: "business_office"}.items():
            body = {"id": agency_id, "name": agency_id, "kind": kind, "partnerships": [PARTNERSHIP]}
            answer = http.post("/v1/agencies", json=body)
            assert answer.status_code == 201, answer.text
            private, public = generate_recipient_key("EC")
            system = CaseSystem(agency_id, private)
            url = system.start()
            connector = http.post(
                f"/v1/agencies/{agency_id}/connectors",
                json={"kind": "generic", "callback_url": url, "public_jwk": public},
                headers={"authorization": f"Bearer {answer.json()['credential']}"},
            ).json()
            system.secret = connector["signing_secret"]
            client = HubClient(fleet.base_url, connector["id"], connector["signing_secret"])
            parties[agency_id] = Party(agency_id, system, client)


def actor(agency_id: str, role: str) -> dict[str, str]:
    return {"agency_id": agency_id, "name": f"{role} of {agency_id}", "role": role}


def actions(n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Escalation n's six actions (agency, type, data); odd ones are raised by social care."""
    a, b = ("sc-health", "sc-csc") if n % 2 == 0 else ("sc-csc", "sc-health")
    tried = {"at": datetime.now(UTC).isoformat(), "method": "telephone", "summary": "Tried."}
    evidence = {"exhausted": True, "attempts": [tried]}
    raised = {
        "partnership": PARTNERSHIP,
        "raised_by": actor(a, "practitioner"),
        "parties": [
            {"agency_id": i, "kind": kind, "case_reference": f"{i}-{n}"}
            for i, kind in AGENCIES.items()
        ],
        "child": {"identifiers": {"nhs_number": "943 476 5919"}},
        "concern_categories": ["thresholds"],
        "summary": "Referral not considered to meet the threshold.",
    }
    plan = {"summary": "Joint visit.", "agreed_by": [a, b]}
    return [
        (a, "raised", raised),
        (b, "acknowledged", {"by": actor(b, "practitioner")}),
        (b, "plan_agreed", {"by": actor(b, "practitioner"), "plan": plan}),
        (a, "escalated", {"by": actor(a, "line_manager"), "evidence": evidence}),
        (b, "escalated", {"by": actor(b, "senior_manager"), "evidence": evidence}),
        (a, "escalated", {"by": actor(a, "director"), "evidence": evidence}),
    ]


def drive(parties: dict[str, Party], n: int, steps: range, escalation_id: str = "") -> str:
    """Send some of escalation n's actions in order, each after the last one's 202."""
    for agency_id, kind, data in actions(n)[steps.start : steps.stop]:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"urn:scale-out:{agency_id}",
            "type": f"uk.escalation-hub.v1.{kind}",
            "time": datetime.now(UTC).isoformat(),
            "agencyref": f"{agency_id}-{n}",
            "data": data,
            **({"subject": escalation_id} if escalation_id else {}),
        }
        escalation_id = send(parties[agency_id].client, event)["accepted"][0]["escalation_id"]
    return escalation_id


def send(client: HubClient, event: dict[str, Any]) -> Any:
    """POST as a case system does: on 429 or 503, wait (Retry-After) and resend the same id."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    for _ in range(20):
        answer = client.send(event, msg_id=msg_id)
        if answer.status_code not in (429, 503):
            break
        time.sleep(min(2.0, float(answer.headers.get("retry-after", "1"))))
    assert answer.status_code == 202, answer.text
    return answer.json()


def decided(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(InboundEvent.decided_at.is_not(None))
        return int(conn.execute(query).scalar_one())


def start_fleet(fleet: Fleet, amqp_url: str) -> None:
    """Migrate; start the gateway and router A; once A holds every partition, the rest."""
    fleet.run("db", "upgrade")
    fleet.start("gateway", "gateway")
    fleet.start("router-a", "router")
    prefix, partitions = fleet.settings.bus_prefix, fleet.settings.router_partitions
    decide = [f"{prefix}.decide.{n}" for n in range(partitions)]
    wait_until("router A consumes", lambda: all(consumers(amqp_url, q) for q in decide))
    roles = {"router-b": "router", "delivery-a": "delivery", "delivery-b": "delivery"}
    for name, role in {**roles, "scheduler": "scheduler"}.items():
        fleet.start(name, role)
    for name in ("router-b", "scheduler"):  # B waits, unseen: RabbitMQ counts the active one
        wait_until(f"{name} started", partial(fleet.started, name))
    wait_until("two delivery workers", lambda: consumers(amqp_url, f"{prefix}.deliver") == 2)
    wait_until("gateway ready", fleet.ready)


def drive_all(fleet: Fleet, parties: dict[str, Party], engine: Engine) -> tuple[list[str], int]:
    """Drive 20 escalations at once and SIGKILL router A mid-stream; the escalation ids and
    the events A had logged as decided."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        opened = [pool.submit(drive, parties, n, range(0, 3)) for n in range(ESCALATIONS)]
        wait_until("router A decides", lambda: decided(engine) >= KILL_AFTER_DECIDED)
        fleet.kill("router-a")
        before_kill = fleet.decided_by("router-a")
        ids = [future.result() for future in opened]
        list(pool.map(lambda n: drive(parties, n, range(3, ACTIONS), ids[n]), range(ESCALATIONS)))
    return ids, before_kill


def scenario(fleet: Fleet, parties: dict[str, Party], database_url: str, amqp_url: str) -> Run:
    """Start the fleet, drive the escalations, and wait until every update is filed."""
    start_fleet(fleet, amqp_url)
    register(fleet, parties)
    engine = make_engine(database_url)
    try:
        ids, before_kill = drive_all(fleet, parties, engine)
        total = ESCALATIONS * ACTIONS
        wait_until("every event decided", lambda: decided(engine) == total)
    finally:
        engine.dispose()
    wanted = total * len(AGENCIES) + ESCALATIONS  # and one stage-4 notice each, to the office
    wait_until(
        "every update filed",
        lambda: sum(len(p.system.received) for p in parties.values()) >= wanted,
    )
    return Run(fleet, database_url, parties, ids, before_kill)


@pytest.fixture(scope="module")
def run(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The scenario, once for every test below; processes, queues and database removed after."""
    logs = tmp_path_factory.mktemp("scale-out")
    prefix = f"so{uuid.uuid4().hex[:8]}"
    with fresh_pg_database() as database_url:
        settings = stack_settings(
            logs, database_url=database_url, broker_url=amqp_url, bus_prefix=prefix
        )
        fleet = Fleet(settings, logs)
        parties: dict[str, Party] = {}
        try:
            yield scenario(fleet, parties, database_url, amqp_url)
        finally:
            fleet.stop()
            for party in parties.values():
                party.system.stop()
                party.client.close()
            delete_topology(amqp_url, Topology.from_settings(settings))


def stage_updates(run: Run, agency_id: str) -> list[dict[str, Any]]:
    """The stage updates a party's case system filed, in the order they arrived."""
    received = run.parties[agency_id].system.received
    return [r.document for r in received if r.document.get("effect") == "stage_update"]


def test_every_party_files_every_update_of_every_escalation_exactly_once(run: Run) -> None:
    wanted = {(e, s) for e in run.escalation_ids for s in range(1, ACTIONS + 1)}
    for agency_id in AGENCIES:
        party = run.parties[agency_id]
        filed = Counter((u["escalation_id"], u["sequence"]) for u in stage_updates(run, agency_id))
        assert set(filed) == wanted
        assert max(filed.values()) == 1  # one webhook id per update and party
        assert party.system.refused == []


def test_the_business_office_hears_once_of_each_escalation_reaching_stage_4(run: Run) -> None:
    notices = [r.document for r in run.parties[OFFICE].system.received]
    assert sorted(n["escalation_id"] for n in notices) == sorted(run.escalation_ids)
    assert {(n["effect"], n["stage"]) for n in notices} == {("notification", 4)}


def test_every_party_sees_the_same_stages_in_sequence_order(run: Run) -> None:
    for escalation_id in run.escalation_ids:
        seen = set()
        for agency_id in AGENCIES:
            mine = [u for u in stage_updates(run, agency_id) if u["escalation_id"] == escalation_id]
            ordered = sorted(mine, key=lambda u: u["sequence"])
            seen.add(tuple((u["sequence"], u["stage"], u["status"]) for u in ordered))
        assert seen == {tuple((s, stage, "open") for s, stage in enumerate(STAGES, start=1))}


def test_every_party_receives_each_escalations_updates_in_sequence_order(run: Run) -> None:
    for agency_id in AGENCIES:
        arrived: dict[str, list[int]] = {}
        for update in stage_updates(run, agency_id):
            arrived.setdefault(update["escalation_id"], []).append(update["sequence"])
        out_of_order = {e: s for e, s in arrived.items() if s != sorted(s)}
        assert out_of_order == {}, f"{agency_id} received out of order: {out_of_order}"


def test_the_database_holds_every_event_decided_and_nothing_left_undone(run: Run) -> None:
    engine = make_engine(run.database_url)
    with engine.connect() as conn:
        seqs = conn.execute(select(EscalationRow.applied_seq, EscalationRow.next_seq)).all()
        outcomes = conn.execute(select(InboundEvent.outcome)).scalars().all()
        unsent = conn.execute(
            select(func.count()).where(OutboxMessage.published_at.is_(None))
        ).scalar_one()
        statuses = Counter(conn.execute(select(Delivery.status)).scalars())
    engine.dispose()
    assert sorted(tuple(s) for s in seqs) == [(ACTIONS, ACTIONS + 1)] * ESCALATIONS
    assert [o for o in outcomes if o is None or o.startswith("undecidable")] == []
    assert unsent == 0
    assert set(statuses) == {"succeeded"}


def test_both_routers_decided_and_the_standby_took_over_after_the_kill(run: Run) -> None:
    a, b = run.fleet.decided_by("router-a"), run.fleet.decided_by("router-b")
    assert run.fleet.procs["router-a"].returncode == -signal.SIGKILL
    assert run.decided_before_kill >= 1
    assert b >= ESCALATIONS * (ACTIONS - 3)  # all accepted after the kill, in every partition
    lines = [e for e in run.fleet.log("router-b") if e["event"] == "router.decided" and e["n"]]
    partitions = run.fleet.settings.router_partitions
    took = {partition_for(line["escalation_id"], partitions) for line in lines}
    assert took == {partition_for(e, partitions) for e in run.escalation_ids}
    assert a + b <= ESCALATIONS * ACTIONS  # none decided twice (A's last lines may be lost)


def test_both_delivery_workers_delivered_updates(run: Run) -> None:
    assert run.fleet.concluded_by("delivery-a") >= 1
    assert run.fleet.concluded_by("delivery-b") >= 1
