"""A simulated agency case system: receives the hub's updates, decrypts, verifies, stores.

It uses only standard libraries an agency would use (joserfc for JWE, standardwebhooks for
signatures), never the hub's own code, so it proves that what the hub sends interoperates.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwe
from joserfc.jwk import KeySet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["CaseSystem", "Received"]


@dataclass(frozen=True)
class Received:
    """One update as the case system filed it."""

    webhook_id: str
    media_type: str
    document: dict[str, Any]


@dataclass
class CaseSystem:
    """An HTTP receiver on loopback with the agency's private key and signing secret."""

    name: str
    private_jwk: Mapping[str, Any]
    secret: str = ""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    deliveries: int = 0
    fail_next: list[int] = field(default_factory=list)  # status codes to answer first
    on_receive: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._seen: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the case system first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hub/updates"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self.received), timeout)

    def accept(self, headers: Mapping[str, str], body: bytes) -> int:
        """Verify, decrypt and file one request; the HTTP status to answer."""
        with self._lock:
            self.deliveries += 1
            if self.fail_next:
                return self.fail_next.pop(0)
        try:
            Webhook(self.secret).verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError:
            self.refused.append("signature")
            return 401
        keys = KeySet.import_key_set({"keys": [dict(self.private_jwk)]})
        token = jwe.decrypt_compact(body, keys)
        media_type = str(token.protected.get("cty", "application/json"))
        document = json.loads(token.plaintext or b"{}")
        item = Received(headers.get("webhook-id", ""), media_type, document)
        with self._lock:
            if item.webhook_id not in self._seen:  # repeat deliveries carry the same id
                self._seen.add(item.webhook_id)
                self.received.append(item)
                if self.on_receive is not None:
                    self.on_receive(item)
            self._lock.notify_all()
        return 200


def _handler_for(system: CaseSystem) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = system.accept(headers, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the demo prints what matters

    return Handler
