"""Case systems that record every delivery attempt and fail on purpose when told to.

``RecordingCaseSystem`` is the simulator (``connectors.simulator.CaseSystem``: verify, decrypt,
file once per ``webhook-id``) behind an HTTP server of its own that also records each attempt
(when, which webhook id, the how-many-th for that id, what it answered) and asks a
``Behaviour`` how to answer: a status, headers such as Retry-After, and a delay before the
answer (longer than the hub's timeout makes a timeout, after the update was filed).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.simulator import CaseSystem, Received
from security.envelopes import generate_recipient_key

__all__ = [
    "Arrival",
    "Behaviour",
    "RecordingCaseSystem",
    "Reply",
    "always",
    "fail_first",
    "healthy",
    "spread",
]


@dataclass(frozen=True)
class Reply:
    """How to answer one attempt; ``file`` also files a failed one (then the answer is lost)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    file: bool = False


Behaviour = Callable[[str, int], Reply]  # (webhook id, attempt number for that id) -> Reply


def healthy(_webhook_id: str, _attempt: int) -> Reply:
    return Reply()


def always(reply: Reply) -> Behaviour:
    return lambda _webhook_id, _attempt: reply


def fail_first(times: int, reply: Reply) -> Behaviour:
    """Answer ``reply`` to the first ``times`` attempts of every webhook id, then 200."""
    return lambda _webhook_id, attempt: reply if attempt <= times else Reply()


def spread(values: list[float]) -> str:
    """'min / median / max' of some seconds, for the report."""
    if not values:
        return "-"
    ordered = sorted(values)
    middle = ordered[len(ordered) // 2]
    return f"{ordered[0]:.2f} / {middle:.2f} / {ordered[-1]:.2f} s"


@dataclass(frozen=True)
class Arrival:
    """One request as it reached the case system."""

    order: int  # position among every arrival at every RecordingCaseSystem
    at: float  # time.monotonic()
    webhook_id: str
    attempt: int
    status: int


_ORDER = iter(range(1, 1 << 62))
_ORDER_LOCK = threading.Lock()


def _next_order() -> int:
    with _ORDER_LOCK:
        return next(_ORDER)


class RecordingCaseSystem(CaseSystem):
    """The simulated case system, recording every attempt; ``behaviour`` may be swapped live."""

    def __init__(self, name: str, behaviour: Behaviour = healthy) -> None:
        private, public = generate_recipient_key("EC")
        super().__init__(name=name, private_jwk=private)
        self.public_jwk = public
        self.behaviour = behaviour
        self.arrivals: list[Arrival] = []
        self.first_filed: dict[str, float] = {}  # webhook id -> when it was filed
        self.filed_attempt: dict[str, int] = {}  # webhook id -> the attempt that filed it
        self._attempts: Counter[str] = Counter()
        self._http: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._http is not None, "start() the case system first"
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/hub/updates"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._http = ThreadingHTTPServer((host, port), _handler_for(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def respond(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Record the attempt, ask the behaviour, file the update if it is to be filed."""
        webhook_id = headers.get("webhook-id", "")
        with self._lock:
            self._attempts[webhook_id] += 1
            attempt = self._attempts[webhook_id]
        at = time.monotonic()
        reply = self.behaviour(webhook_id, attempt)
        if 200 <= reply.status < 300 or reply.file:
            status = self.accept(headers, body)
            if status != 200:
                reply = Reply(status)
            with self._lock:
                self.first_filed.setdefault(webhook_id, at)
                self.filed_attempt.setdefault(webhook_id, attempt)
        with self._lock:
            self.arrivals.append(Arrival(_next_order(), at, webhook_id, attempt, reply.status))
        return reply

    def attempts_of(self, webhook_id: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.webhook_id == webhook_id]

    def gaps(self, after: int) -> list[float]:
        """Seconds from attempt ``after`` of each webhook id to its next attempt."""
        with self._lock:
            times = {(a.webhook_id, a.attempt): a.at for a in self.arrivals}
        return [
            times[(w, n + 1)] - at
            for (w, n), at in times.items()
            if n == after and (w, n + 1) in times
        ]

    def updates(self) -> list[Received]:
        """Filed stage updates (not notifications), each webhook id once, in filing order."""
        with self._lock:
            return [r for r in self.received if r.document.get("effect") == "stage_update"]

    @property
    def repeats(self) -> int:
        """Attempts after the one that filed an update: repeats, carrying the same webhook id."""
        with self._lock:
            return sum(self._attempts[w] - n for w, n in self.filed_attempt.items())


def _handler_for(system: RecordingCaseSystem) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = system.respond(headers, body)
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:  # the hub gave up waiting (a timeout we caused on purpose)
                return

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
