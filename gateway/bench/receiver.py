"""Lean receiving case systems, in a process of their own: verify, decrypt, timestamp.

One asyncio server on loopback answers every benchmark agency at ``/r/{agency_id}``. Like
``connectors.simulator.CaseSystem`` it uses only what an agency would (standardwebhooks to
verify, joserfc to decrypt with the agency's private key), but imports each key once and
keeps no documents: per update it records the agency, the receipt time
(``time.monotonic_ns()``, comparable with the load generator's), the escalation id, the
sequence and the effect. ``/null`` answers 200 and does nothing (the client's own ceiling).
Receivers must not be the bottleneck: their floor is measured and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.bench.http1 import serve_connection

__all__ = ["Receipt", "ReceiverProcess"]

Receipt = tuple[str, int, str, int, str]  # agency, received ns, escalation id, sequence, effect


@dataclass
class _Agency:
    keys: KeySet
    webhook: Webhook | None = None


class _Receivers:
    """The state of the receiver process (one event loop thread, one control thread)."""

    def __init__(self, private_jwks: Mapping[str, Mapping[str, Any]]) -> None:
        self.agencies = {
            f"/r/{agency_id}".encode(): _Agency(KeySet.import_key_set({"keys": [dict(jwk)]}))
            for agency_id, jwk in private_jwks.items()
        }
        self.receipts: list[Receipt] = []
        self.refused: dict[str, int] = {}
        self.seen: set[str] = set()

    def handle(self, path: bytes, headers: Mapping[str, str], body: bytes) -> int:
        if path == b"/null":
            return 200
        agency = self.agencies.get(path)
        if agency is None or agency.webhook is None:
            return self._refuse("unknown-path", 404)
        try:
            agency.webhook.verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError:
            return self._refuse("signature", 401)
        try:
            document = json.loads(jwe.decrypt_compact(body, agency.keys).plaintext or b"{}")
        except (JoseError, ValueError):
            return self._refuse("decrypt", 400)
        webhook_id = headers.get("webhook-id", "")
        if webhook_id not in self.seen:  # repeat deliveries carry the same id
            self.seen.add(webhook_id)
            self.receipts.append(
                (
                    path.decode()[3:],
                    time.monotonic_ns(),
                    str(document.get("escalation_id", "")),
                    int(document.get("sequence", 0) or 0),
                    str(document.get("effect", "")),
                )
            )
        return 200

    def _refuse(self, why: str, status: int) -> int:
        self.refused[why] = self.refused.get(why, 0) + 1
        return status


def _control(conn: Connection, state: _Receivers, stop: threading.Event) -> None:
    """Commands from the benchmark: secrets, count, take, stop."""
    while True:
        command, argument = conn.recv()
        if command == "secrets":
            for agency_id, secret in argument.items():
                state.agencies[f"/r/{agency_id}".encode()].webhook = Webhook(secret)
            conn.send(True)
        elif command == "count":
            conn.send((len(state.receipts), dict(state.refused)))
        elif command == "take":
            taken, state.receipts = state.receipts, []
            conn.send(taken)
        else:
            stop.set()
            conn.send(True)
            return


def _serve(conn: Connection, port: int, private_jwks: Mapping[str, Mapping[str, Any]]) -> None:
    state = _Receivers(private_jwks)
    stop = threading.Event()

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: serve_connection(r, w, state.handle), "127.0.0.1", port, backlog=512
        )
        conn.send("started")
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    threading.Thread(target=_control, args=(conn, state, stop), daemon=True).start()
    asyncio.run(main())


class ReceiverProcess:
    """The benchmark agencies' case systems on ``127.0.0.1:port``, in a spawned process."""

    def __init__(self, port: int, private_jwks: Mapping[str, Mapping[str, Any]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = port
        self._conn, child = context.Pipe()
        self._process: Any = context.Process(
            target=_serve, args=(child, port, dict(private_jwks)), name="eh-bench-recv", daemon=True
        )

    def url(self, agency_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/r/{agency_id}"

    def __enter__(self) -> ReceiverProcess:
        self._process.start()
        if not self._conn.poll(30) or self._conn.recv() != "started":
            raise RuntimeError(f"the benchmark receivers did not start on port {self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            self._ask("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        if not self._conn.poll(60):
            raise TimeoutError(f"the benchmark receivers did not answer '{command}'")
        return self._conn.recv()

    def set_secrets(self, secrets: Mapping[str, str]) -> None:
        """Each agency's signing secret (known once its connector is registered)."""
        self._ask("secrets", dict(secrets))

    def count(self) -> tuple[int, dict[str, int]]:
        """How many updates were filed, and how many refused (by reason)."""
        count, refused = self._ask("count")
        return int(count), dict(refused)

    def take(self) -> list[Receipt]:
        """The receipts so far (and forget them)."""
        taken: list[Receipt] = self._ask("take")
        return taken

    def wait_for(self, expected: int, *, timeout: float) -> int:
        """Poll until ``expected`` updates are filed or ``timeout`` passes; the count."""
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            count, _ = self.count()
            if count >= expected:
                return count
            time.sleep(0.05)
        return count
