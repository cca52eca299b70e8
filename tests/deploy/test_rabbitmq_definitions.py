# (kombu leaves most functions unannotated; see gateway/bus/topology.py)
"""deploy/rabbitmq/definitions.json declares exactly what the hub declares, and loads.

The hub declares its exchanges and queues on every start (``Topology.declare``); RabbitMQ
answers PRECONDITION_FAILED, and the hub does not start, if a queue already exists with other
arguments. So the definitions must equal the Topology for the default prefix and partitions,
argument for argument. The last test imports them into the real RabbitMQ (a vhost and user
of its own, removed afterwards) and declares the Topology there as the hub's user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.messaging import Producer

from gateway.bus.topology import DEFAULT_DELIVERY_LIMIT, Topology
from gateway.settings import Settings
from tests.conftest import in_ci
from tests.deploy.manifests import DEFINITIONS, DEPLOY, compose, definitions, k8s_documents

PLACEHOLDER = "__AMQP_PASSWORD__"


def default_topology() -> Topology:
    fields = Settings.model_fields
    prefix, partitions = fields["bus_prefix"].default, fields["router_partitions"].default
    return Topology(prefix, partitions, amqp=True, delivery_limit=DEFAULT_DELIVERY_LIMIT)


def test_the_queues_are_those_the_hub_declares_with_the_same_arguments() -> None:
    topology = default_topology()
    wanted = {
        q.name: {
            "durable": q.durable,
            "auto_delete": q.auto_delete,
            "arguments": getattr(q, "queue_arguments", None),
        }
        for q in [topology.dead_letter_queue, *topology.all_queues()]
    }
    queues = {
        q["name"]: {k: q[k] for k in ("durable", "auto_delete", "arguments")}
        for q in definitions()["queues"]
    }
    assert queues == wanted


def spec_bindings() -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = definitions()["bindings"]
    return bindings


def test_the_exchanges_and_bindings_are_those_the_hub_declares() -> None:
    topology = default_topology()
    exchanges = {(e["name"], e["type"], e["durable"]) for e in definitions()["exchanges"]}
    assert exchanges == {
        (x.name, x.type, x.durable) for x in (topology.exchange, topology.dead_letter_exchange)
    }
    bindings = {
        (b["source"], b["destination"], b["routing_key"]) for b in definitions()["bindings"]
    }
    queues = [topology.dead_letter_queue, *topology.all_queues()]
    assert bindings == {(q.exchange.name, q.name, q.routing_key) for q in queues}


def test_everything_lives_in_one_vhost_the_hubs_user_may_use_for_its_prefix_only() -> None:
    spec = definitions()
    vhosts = {v["name"] for v in spec["vhosts"]}
    assert len(vhosts) == 1
    for kind in ("queues", "exchanges", "bindings", "policies", "permissions"):
        assert {item["vhost"] for item in spec[kind]} == vhosts, kind
    [user], [grant] = spec["users"], spec["permissions"]
    assert user["password"] == PLACEHOLDER  # rendered at start, never a real one in git
    assert grant["user"] == user["name"]
    names = [q["name"] for q in spec["queues"]] + [x["name"] for x in spec["exchanges"]]
    for right in ("configure", "write", "read"):
        assert all(re.match(grant[right], name) for name in names), right
        assert not re.match(grant[right], "amq.default"), right


def test_every_queue_gets_exactly_one_policy_and_policies_leave_arguments_alone() -> None:
    spec = definitions()
    for queue in spec["queues"]:
        matching = [p["name"] for p in spec["policies"] if re.search(p["pattern"], queue["name"])]
        assert len(matching) == 1, f"{queue['name']}: {matching}"
    for policy in spec["policies"]:
        assert policy["apply-to"] == "queues"
        assert not {"delivery-limit", "dead-letter-exchange"} & set(policy["definition"])


def test_compose_and_kubernetes_use_the_prefix_partitions_and_vhost_of_the_definitions() -> None:
    spec = definitions()
    partitions = sum(1 for q in spec["queues"] if ".decide." in q["name"])
    prefixes = {q["name"].split(".")[0] for q in spec["queues"]}
    [config] = [d for d in k8s_documents() if d["kind"] == "ConfigMap"]
    hub = compose()["services"]["gateway"]["environment"]
    for settings in (config["data"], hub):
        assert {settings["EH_BUS_PREFIX"]} == prefixes
        assert int(settings["EH_ROUTER_PARTITIONS"]) == partitions
    vhost, user = spec["vhosts"][0]["name"], spec["users"][0]["name"]
    assert hub["EH_BROKER_URL"].startswith(f"amqp://{user}:")
    assert hub["EH_BROKER_URL"].endswith(f"@rabbitmq:5672/{vhost}")


def test_compose_renders_the_password_where_rabbitmq_conf_loads_the_definitions() -> None:
    broker = compose()["services"]["rabbitmq"]
    script = " ".join(broker["entrypoint"])
    assert f"s|{PLACEHOLDER}|" in script
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    loaded = re.search(r"^definitions\.local\.path\s*=\s*(\S+)", conf, re.MULTILINE)
    assert loaded is not None
    assert f"> {loaded.group(1)}" in script
    mounts = {m.split(":")[0]: m.split(":")[1] for m in broker["volumes"]}
    assert mounts["./rabbitmq/definitions.json"] in script
    assert mounts["./rabbitmq/rabbitmq.conf"].startswith("/etc/rabbitmq/conf.d/")


def _ctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=False, text=True
    )
    assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr}"
    return done.stdout


@pytest.fixture
def imported(amqp_url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The definitions imported under a vhost and user of this test; their amqp URL."""
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not installed here; the definitions were compared above"
        if in_ci():
            pytest.fail(f"{message}; CI must import them (it runs beside RabbitMQ)")
        pytest.skip(message)
    name, password = f"ehdef{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    text = DEFINITIONS.read_text().replace('"escalation-hub"', json.dumps(name))
    # rabbitmqctl reads the file as the rabbitmq user: a readable file of its own in /tmp.
    handle, path = tempfile.mkstemp(prefix="eh-definitions-", suffix=".json")
    with os.fdopen(handle, "w") as f:
        f.write(text.replace(PLACEHOLDER, password))
    os.chmod(path, 0o644)  # a throw-away password for a throw-away vhost
    try:
        _ctl("import_definitions", path)
    finally:
        os.unlink(path)
    host = amqp_url.split("@", 1)[1].split("/", 1)[0]
    try:
        yield f"amqp://{name}:{password}@{host}/{name}", json.loads(text)
    finally:
        _ctl("delete_vhost", name)
        _ctl("delete_user", name)


def _queues_with_policies(vhost: str, count: int) -> dict[str, str]:
    """``{queue: policy}`` once the (asynchronous) import has created every queue."""
    deadline = time.monotonic() + 30
    while True:
        lines = _ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "policy")
        found = dict(line.split("\t") for line in lines.splitlines() if "\t" in line)
        if (len(found) == count and all(found.values())) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.rabbitmq
def test_the_definitions_load_and_the_hub_declares_and_uses_its_topology_over_them(
    imported: tuple[str, dict[str, Any]],
) -> None:
    url, spec = imported
    vhost = spec["vhosts"][0]["name"]
    expected = {q["name"]: "" for q in spec["queues"]}
    for policy in spec["policies"]:
        expected |= {q: policy["name"] for q in expected if re.search(policy["pattern"], q)}
    assert _queues_with_policies(vhost, len(expected)) == expected
    topology = default_topology()
    with Connection(url) as connection:
        topology.declare(connection)  # PRECONDITION_FAILED here on any mismatch
        channel = connection.channel()
        Producer(channel).publish(
            {"delivery_id": "d1"}, exchange=topology.exchange, routing_key="deliver"
        )
        [deliver] = topology.queues_for("deliver")
        deadline = time.monotonic() + 10
        while (message := deliver.bind(channel).get(accept=["json"])) is None:
            assert time.monotonic() < deadline, "the published message never reached eh.deliver"
            time.sleep(0.05)
        message.ack()
    assert message.payload == {"delivery_id": "d1"}
