# (kombu leaves most functions unannotated; see gateway/bus/topology.py)
"""The hub's roles as real processes, configured from EH_* variables as deploy/ runs them.

``Fleet`` starts ``escalation-hub serve --role ROLE`` subprocesses (the command every
container of deploy/ runs), each writing its JSON log to ``{logs}/{name}.log``, and reads
those logs back. ``consumers`` and ``delete_topology`` look at and clean up the broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kombu.connection import Connection

from gateway.bus.topology import Topology
from gateway.settings import Settings

__all__ = ["CLI", "Fleet", "consumers", "delete_topology", "settings_env", "wait_until"]

CLI = Path(sys.executable).with_name("escalation-hub")
GUARD = 90.0  # seconds: only stops a broken run from hanging, never a speed claim


def wait_until(what: str, predicate: Callable[[], bool], *, guard: float = GUARD) -> None:
    """Wait for a condition; the guard only stops a broken run from hanging."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached before the {guard:.0f} s hang guard")
        time.sleep(0.05)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings that were set (others keep their defaults) as the EH_* environment a
    container gets; secrets in clear, for a child process."""
    env: dict[str, str] = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, list | tuple | dict | set):
            text = json.dumps(sorted(value) if isinstance(value, set) else value)
        else:
            text = str(value)
        env[f"EH_{name.upper()}"] = text
    return env


@dataclass
class Fleet:
    """The hub's processes, each logging JSON to its own file; stopped with SIGTERM."""

    settings: Settings
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("EH_")}
        return {**keep, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}

    def run(self, *args: str) -> str:
        """Run one CLI command to its end; its output, or an assertion naming what failed."""
        done = subprocess.run(
            [str(CLI), *args], env=self.env(), capture_output=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"escalation-hub {' '.join(args)}: {done.stderr.decode()}"
        return done.stdout.decode()

    def start(self, name: str, role: str) -> None:
        """Start ``escalation-hub serve --role ROLE`` as the process called ``name``."""
        with (self.logs / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [str(CLI), "serve", "--role", role], env=self.env(), stdout=log, stderr=log
            )

    def kill(self, name: str) -> None:
        """SIGKILL: no goodbye to RabbitMQ or PostgreSQL, as in a node failure."""
        self.procs[name].kill()
        self.procs[name].wait(timeout=15)

    def log(self, name: str) -> list[dict[str, Any]]:
        """The JSON log entries of a process (a line cut short by a kill is skipped)."""
        entries = []
        for line in (self.logs / f"{name}.log").read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the start-up banner, or a line cut short
                continue
            if isinstance(entry, dict) and "event" in entry:
                entries.append(entry)
        return entries

    def started(self, name: str) -> bool:
        return any(e["event"] == "runtime.started" for e in self.log(name))

    def decided_by(self, name: str) -> int:
        """Events a router process decided (the sum of ``n`` of its ``router.decided``)."""
        return sum(int(e.get("n", 0)) for e in self.log(name) if e["event"] == "router.decided")

    def concluded_by(self, name: str) -> int:
        """Deliveries a delivery process concluded (succeeded or dead)."""
        return sum(1 for e in self.log(name) if e["event"] == "delivery.concluded")

    def ready(self) -> bool:
        """Whether the gateway answers ``/readyz`` with 200."""
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGTERM every process still running; SIGKILL any that does not stop in 15 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def consumers(amqp_url: str, queue: str) -> int:
    """Active consumers of a queue (a single-active-consumer queue counts only its active one)."""
    with Connection(amqp_url) as connection:
        try:
            declared = connection.default_channel.queue_declare(queue, passive=True)
        except connection.channel_errors:  # not declared yet
            return 0
        return int(declared.consumer_count)


def delete_topology(amqp_url: str, topology: Topology) -> None:
    """Delete a topology's queues and exchanges from the broker."""
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        for queue in [*topology.all_queues(), topology.dead_letter_queue]:
            channel.queue_delete(queue.name)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            channel.exchange_delete(exchange.name)
