"""The business office's mailbox: a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Inbox"]


class _Collector:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.inbox.add(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class Inbox:
    """Collects every message it receives; ``wait_for`` blocks until enough have arrived."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._controller = Controller(_Collector(self), hostname=host, port=port)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> int:
        self._controller.start()
        return self.port

    def stop(self) -> None:
        self._controller.stop()

    def add(self, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 20) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
