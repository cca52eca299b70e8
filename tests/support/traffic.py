"""Agencies registered on a hub, and a bounded stream of signed events sent as case systems do.

A case system that gets no answer, a 503 or a 409 sends the SAME request again (same
``webhook-id``, freshly signed) until it has a final answer or the deadline passes: that is
what makes a 202 lost in a crash recoverable. Every answer is logged with its timing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.client import HubClient
from tests.support.events import PARTNERSHIP, discussion_event, raised_event
from tests.support.ledger import Ledger
from tests.support.receivers import RecordingCaseSystem

__all__ = [
    "Answer",
    "AnswerLog",
    "Member",
    "Sender",
    "Stream",
    "register_members",
]

RETRIED_STATUS = frozenset({409, 429, 500, 502, 503, 504})
HTTP_TIMEOUT = 10.0


@dataclass
class Member:
    """A registered agency: its connector's client and its case system."""

    agency_id: str
    kind: str
    system: RecordingCaseSystem
    connector_id: str
    token: str
    client: HubClient


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()


def register_members(
    base_url: str, admin_token: str, systems: Mapping[str, tuple[str, RecordingCaseSystem]]
) -> dict[str, Member]:
    """Register each agency (id -> (kind, case system)) and a generic connector to its system."""
    members: dict[str, Member] = {}
    admin = {"authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, headers=admin, timeout=HTTP_TIMEOUT) as http:
        for agency_id, (kind, system) in systems.items():
            body = {"id": agency_id, "name": agency_id, "kind": kind, "partnerships": [PARTNERSHIP]}
            token = _ok(http.post("/v1/agencies", json=body))["credential"]
            connector = _ok(
                http.post(
                    f"/v1/agencies/{agency_id}/connectors",
                    json={
                        "kind": "generic",
                        "callback_url": system.start(),
                        "public_jwk": system.public_jwk,
                    },
                    headers={"authorization": f"Bearer {token}"},
                )
            )
            system.secret = connector["signing_secret"]
            client = HubClient(
                base_url, connector["id"], connector["signing_secret"], timeout=HTTP_TIMEOUT
            )
            members[agency_id] = Member(agency_id, kind, system, connector["id"], token, client)
    return members


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange: when sent and answered (monotonic), the status or the error."""

    sent_at: float
    answered_at: float
    webhook_id: str
    status: int | None
    error: str | None = None
    retry_after: str | None = None


@dataclass
class AnswerLog:
    """Every answer the hub gave (or failed to give), thread-safe."""

    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent at or after ``start`` and answered before ``end``."""
        with self._lock:
            return [a for a in self.answers if a.sent_at >= start and a.answered_at <= end]

    def count(self, status: int | None = None, *, error: bool = False) -> int:
        with self._lock:
            if error:
                return sum(1 for a in self.answers if a.error is not None)
            return sum(1 for a in self.answers if a.status == status)


class Sender:
    """Sends a request until a final answer, retrying the same webhook id like a case system."""

    def __init__(self, log: AnswerLog, *, deadline: float, pause: float = 0.25) -> None:
        self.log = log
        self.deadline = deadline  # time.monotonic() after which it gives up
        self.pause = pause

    def send(
        self, member: Member, events: Sequence[dict[str, Any]], *, webhook_id: str | None = None
    ) -> httpx.Response:
        """The final answer (202 or a refusal); AssertionError if none came before the deadline."""
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        while time.monotonic() < self.deadline:
            sent = time.monotonic()
            try:
                response = member.client.send(list(events), msg_id=webhook_id)
            except httpx.TransportError as exc:
                self.log.add(Answer(sent, time.monotonic(), webhook_id, None, type(exc).__name__))
                time.sleep(self.pause)
                continue
            retry_after = response.headers.get("retry-after")
            answer = Answer(sent, time.monotonic(), webhook_id, response.status_code, None)
            self.log.add(answer if retry_after is None else _with(answer, retry_after))
            if response.status_code not in RETRIED_STATUS:
                return response
            time.sleep(self.pause)
        raise AssertionError(f"request {webhook_id} got no final answer before the deadline")


def _with(answer: Answer, retry_after: str) -> Answer:
    return Answer(
        answer.sent_at, answer.answered_at, answer.webhook_id, answer.status, None, retry_after
    )


class Stream:
    """Raises escalations and records discussions on them from every member, on a few threads.

    Each thread owns some escalations: it raises them, then walks them round-robin, one
    action each per round, the acting agency turning (among ``actors``, default all). Every
    202 goes into the ledger.
    """

    def __init__(
        self,
        members: Mapping[str, Member],
        ledger: Ledger,
        sender: Sender,
        *,
        escalations: int,
        actions: int,
        pause: float = 0.0,
        threads: int = 3,
        actors: Sequence[str] | None = None,
    ) -> None:
        self.parties = {m.agency_id: m.kind for m in members.values()}
        self.members = [m for m in members.values() if actors is None or m.agency_id in actors]
        self.ledger = ledger
        self.sender = sender
        self.escalations = escalations
        self.actions = actions
        self.pause = pause
        self.threads = threads
        self.failures: list[str] = []
        self._workers: list[threading.Thread] = []
        self._gate = threading.Condition()
        self._allowed = self.total
        self._issued = 0

    @property
    def total(self) -> int:
        return self.escalations * (self.actions + 1)

    def allow(self, events: int) -> None:
        """Let the threads send up to ``events`` events in all, then hold (until allowed more)."""
        with self._gate:
            self._allowed = min(events, self.total)
            self._gate.notify_all()

    def start(self) -> None:
        for t in range(self.threads):
            mine = list(range(t, self.escalations, self.threads))
            worker = threading.Thread(target=self._run, args=(mine,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def join(self, timeout: float) -> bool:
        """Wait for every thread; False if one is still running at the timeout."""
        end = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, end - time.monotonic()))
        return not any(w.is_alive() for w in self._workers)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.ledger.accepted) >= count or not any(w.is_alive() for w in self._workers):
                return len(self.ledger.accepted) >= count
            time.sleep(0.02)
        return False

    def _run(self, mine: list[int]) -> None:
        try:
            subjects = {i: self._raise(i) for i in mine}
            for step in range(1, self.actions + 1):
                for i in mine:
                    self._act(i, step, subjects[i])
        except (AssertionError, httpx.HTTPError, ValueError, KeyError) as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    def _member(self, index: int) -> Member:
        return self.members[index % len(self.members)]

    def _raise(self, i: int) -> str:
        member = self._member(i)
        return self._send(member, raised_event(member.agency_id, self.parties, ref=f"E{i}"))

    def _act(self, i: int, step: int, subject: str) -> None:
        member = self._member(i + step)
        self._send(member, discussion_event(member.agency_id, subject, ref=f"E{i}-{step}"))

    def _send(self, member: Member, event: dict[str, Any]) -> str:
        with self._gate:
            if not self._gate.wait_for(lambda: self._issued < self._allowed, timeout=300):
                raise AssertionError("the stream was held for more than 300 s")
            self._issued += 1
        self.ledger.sent(1)
        response = self.sender.send(member, [event])
        if response.status_code != 202:
            raise AssertionError(f"{event['type']} refused: {response.status_code}")
        entries = self.ledger.record(member.agency_id, response.json())
        if self.pause:
            time.sleep(self.pause)
        return entries[0].escalation_id
