"""A rig: hub processes, three agencies with recording case systems, a ledger and a stream.

``running_rig`` starts the hub processes of a layout (name -> roles; no roles = every role),
registers the agencies, and tears everything down afterwards, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ledger import Ledger, LedgerReport
from tests.support.processes import HubProcess
from tests.support.receivers import Behaviour, RecordingCaseSystem, healthy
from tests.support.traffic import AnswerLog, Member, Sender, Stream, register_members

__all__ = ["AGENCIES", "ONE_PROCESS", "SERVERS", "Rig", "readiness", "running_rig", "wait_until"]

AGENCIES = {"rel-health": "health", "rel-csc": "social_care", "rel-police": "police"}
ONE_PROCESS: Mapping[str, Sequence[str]] = {"hub": ()}
SERVERS: Mapping[str, Sequence[str]] = {
    "gateway": ("gateway",),
    "router": ("router",),
    "delivery": ("delivery",),
    "scheduler": ("scheduler",),
}


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(every)
    return condition()


def readiness(base_url: str, timeout: float = 10) -> tuple[int | None, list[str], str | None]:
    """``/readyz``: its status (None without an answer), what it names as down, Retry-After."""
    try:
        response = httpx.get(f"{base_url}/readyz", timeout=timeout)
    except httpx.HTTPError:
        return None, [], None
    down = response.json().get("down", []) if response.status_code == 503 else []
    return response.status_code, list(down), response.headers.get("retry-after")


@dataclass
class Rig:
    """A running hub (one or more processes) and the agencies that talk to it."""

    env: dict[str, str]
    hubs: dict[str, HubProcess]
    members: dict[str, Member] = field(default_factory=dict)
    log: AnswerLog = field(default_factory=AnswerLog)
    ledger: Ledger = field(default_factory=lambda: Ledger(tuple(AGENCIES)))

    @property
    def systems(self) -> dict[str, RecordingCaseSystem]:
        return {agency_id: m.system for agency_id, m in self.members.items()}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['EH_PORT']}"

    @property
    def admin_token(self) -> str:
        return self.env["EH_ADMIN_TOKEN"]

    def admin(self) -> httpx.Client:
        """An HTTP client with the administrator's token (close it after use)."""
        auth = {"authorization": f"Bearer {self.admin_token}"}
        return httpx.Client(base_url=self.base_url, headers=auth, timeout=10)

    def sender(self, seconds: float = 120) -> Sender:
        return Sender(self.log, deadline=time.monotonic() + seconds)

    def stream(
        self,
        *,
        escalations: int,
        actions: int,
        pause: float = 0.0,
        seconds: float = 120,
        actors: Sequence[str] | None = None,
    ) -> Stream:
        """A stream of ``escalations * (actions + 1)`` events (not started)."""
        return Stream(
            self.members,
            self.ledger,
            self.sender(seconds),
            escalations=escalations,
            actions=actions,
            pause=pause,
            actors=actors,
        )

    def pending_deliveries(self) -> int:
        """Deliveries of the ledger's escalations the hub still holds as pending (history)."""
        pending = 0
        with self.admin() as admin:
            for escalation_id in {e.escalation_id for e in self.ledger.accepted}:
                history = admin.get(f"/v1/escalations/{escalation_id}/history").json()
                pending += sum(1 for d in history["deliveries"] if d["status"] == "pending")
        return pending

    def in_flight(self) -> int:
        """Stage updates owed for the events accepted so far and not yet filed."""
        return len(self.ledger.check(self.systems).lost)

    def complete(self, timeout: float = 60, settle: float = 1.0) -> LedgerReport:
        """Wait until every accepted event reached every party; then a little longer, so
        that late duplicates would show; the final ledger check."""
        self.ledger.wait_complete(self.systems, timeout)
        time.sleep(settle)
        return self.ledger.check(self.systems)


@contextmanager
def running_rig(
    workdir: Path,
    env: dict[str, str],
    *,
    layout: Mapping[str, Sequence[str]] = ONE_PROCESS,
    behaviours: Mapping[str, Behaviour] | None = None,
) -> Iterator[Rig]:
    """Start the layout's hub processes, register the agencies; stop everything afterwards."""
    with ExitStack() as stack:
        hubs = {
            name: HubProcess(env, roles=roles, name=name, workdir=workdir)
            for name, roles in layout.items()
        }
        for hub in hubs.values():
            stack.callback(hub.stop, timeout=10)
            hub.start()
        rig = Rig(env, hubs)
        chosen = behaviours or {}
        systems = {
            agency_id: (kind, RecordingCaseSystem(agency_id, chosen.get(agency_id, healthy)))
            for agency_id, kind in AGENCIES.items()
        }
        for _, system in systems.values():
            stack.callback(system.stop)
        rig.members = register_members(rig.base_url, rig.admin_token, systems)
        for member in rig.members.values():
            stack.callback(member.client.close)
        yield rig
