"""A whole hub on loopback for the demo and the end-to-end tests."""

from __future__ import annotations

import base64
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.registry import default_registry
from gateway.bootstrap import Hub, build_hub
from gateway.demo.inbox import Inbox
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store import migrate
from security.audit import generate_checkpoint_key
from security.credentials import new_credential
from security.keyring import generate_key

__all__ = ["Stack", "free_port", "stack_settings"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Test-mode settings with fresh secrets, quick retries and loopback callbacks allowed."""
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "port": free_port(),
        "admin_token": new_credential("ehadmin")[0],
        "data_keys": "k1:" + base64.b64encode(generate_key()).decode(),
        "pseudonym_key": base64.urlsafe_b64encode(generate_key()).decode(),
        "audit_signing_key": base64.b64encode(generate_checkpoint_key()[0]).decode(),
        "allow_loopback_callbacks": True,
        "delivery_backoff_initial": 0.05,
        "delivery_backoff_max": 0.5,
        "relay_interval": 0.05,
        "scheduler_interval": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


class Stack:
    """Hub (every role), HTTP gateway and business-office SMTP inbox, started and stopped."""

    def __init__(self, **overrides: Any) -> None:
        self._overrides = overrides
        self._tmp = Path(tempfile.mkdtemp(prefix="escalation-hub-"))
        self.inbox = Inbox(port=free_port())
        self.hub: Hub | None = None
        self.runtime: Runtime | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self.hub is not None
        return f"http://127.0.0.1:{self.hub.settings.port}"

    @property
    def admin_token(self) -> str:
        assert self.hub is not None
        return self.hub.settings.admin_token.get_secret_value()

    def __enter__(self) -> Stack:
        default_registry()  # every installed connector loads, or the stack does not start
        self.inbox.start()
        settings = stack_settings(self._tmp, smtp_port=self.inbox.port, **self._overrides)
        migrate.upgrade(settings.sqlalchemy_url)
        self.hub = build_hub(settings)
        self.runtime = Runtime(self.hub)
        self.runtime.start()
        server = self.runtime.make_server()
        self._thread = threading.Thread(target=server.run, name="eh-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the hub's HTTP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.hub is not None:
            self.hub.close()
        self.inbox.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
