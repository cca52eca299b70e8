"""A simulated agency case system: receives the hub's updates, decrypts, verifies, files, answers.

It uses what an agency would: joserfc for the JWE, standardwebhooks for the signature, and
its own native format (the connector's ``read_outbound``) to file each update under its own
case reference; it answers in that format (the connector's ``acknowledge``). It never uses
the hub's gateway code, so it proves that what the hub sends interoperates.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.base import Connector, OutboundRecord, Rendered, TranslationError
from connectors.generic import GenericConnector

__all__ = ["HUB_JWE", "UNFILED", "CaseSystem", "Received"]

UNFILED: Final = "(no case reference)"
#: What the hub encrypts with: ECDH-ES+A256KW or RSA-OAEP-256 keys, A256GCM content, up to
#: 1 MiB of plaintext. joserfc's default registry refuses RSA-OAEP-256 (not "recommended")
#: and ciphertexts over 64 KB, so an agency must name the algorithms it accepts.
HUB_JWE: Final = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"])
HUB_JWE.max_ciphertext_length = (4 * 1024 * 1024 + 2) // 3  # base64url of 1 MiB


@dataclass(frozen=True)
class Received:
    """One update as the case system filed it: the native document and how it read it."""

    webhook_id: str
    media_type: str
    body: bytes
    record: OutboundRecord | None = None

    @property
    def document(self) -> Any:
        """The native document: parsed JSON, or the text of any other format."""
        if self.media_type.endswith(("/json", "+json")):
            return json.loads(self.body)
        return self.body.decode("utf-8", "replace")


@dataclass
class CaseSystem:
    """An HTTP receiver on loopback with the agency's private key, secret and native format."""

    name: str
    private_jwk: Mapping[str, Any]
    secret: str = ""
    connector: Connector = field(default_factory=GenericConnector)
    received: list[Received] = field(default_factory=list)
    filed: dict[str, list[Received]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    deliveries: int = 0
    fail_next: list[int] = field(default_factory=list)  # status codes to answer first
    on_receive: Callable[[Received], None] | None = None
    answers: dict[str, Rendered] = field(default_factory=dict)  # webhook id -> native answer

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
        """Verify, decrypt, read and file one request; the HTTP status to answer.

        The native answer to a filed document is kept in ``answers`` by webhook id.
        """
        with self._lock:
            self.deliveries += 1
            if self.fail_next:
                return self.fail_next.pop(0)
        try:
            Webhook(self.secret).verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError:
            return self._refuse("signature", 401)
        try:
            keys = KeySet.import_key_set({"keys": [dict(self.private_jwk)]})
            token = jwe.decrypt_compact(body, keys, registry=HUB_JWE)
        except (JoseError, ValueError):
            return self._refuse("decryption", 400)
        media_type = str(token.protected.get("cty", "application/json"))
        rendered = Rendered(token.plaintext or b"", media_type)
        try:
            record: OutboundRecord | None = self.connector.read_outbound(rendered)
        except TranslationError:
            return self._refuse("document", 422)
        except NotImplementedError:
            record = None
        webhook_id = headers.get("webhook-id", "")
        answer = self.connector.acknowledge(rendered)
        with self._lock:
            self.answers[webhook_id] = answer
        self._file(Received(webhook_id, media_type, rendered.body, record))
        return 200

    def _refuse(self, why: str, status: int) -> int:
        with self._lock:
            self.refused.append(why)
        return status

    def _file(self, item: Received) -> None:
        with self._lock:
            if item.webhook_id not in self._seen:  # repeat deliveries carry the same id
                self._seen.add(item.webhook_id)
                self.received.append(item)
                reference = (item.record.case_reference if item.record else None) or UNFILED
                self.filed.setdefault(reference, []).append(item)
                if self.on_receive is not None:
                    self.on_receive(item)
            self._lock.notify_all()


def _handler_for(system: CaseSystem) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = system.accept(headers, body)
            answer = system.answers.get(headers.get("webhook-id", "")) if status == 200 else None
            self.send_response(status)
            payload = answer.body if answer is not None else b""
            if answer is not None:
                self.send_header("content-type", answer.media_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the demo prints what matters

    return Handler
