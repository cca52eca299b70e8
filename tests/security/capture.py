"""Capture everything the hub emits while a story runs: log records and HTTP traffic.

``LogCapture`` is a logging handler that keeps each record's formatted message, its extras
(everything a ``logger.info(..., extra={...})`` added) and any formatted exception. It is put
on the root logger and on uvicorn's loggers (which do not propagate), all at DEBUG.
``HttpCapture`` wraps ``httpx.Client.send`` for the whole process, so it sees the story's
requests to the hub and the hub's answers, and the hub's own deliveries to case systems.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

__all__ = ["Exchange", "HttpCapture", "LogCapture", "capturing_logs"]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "kombu", "amqp")
_QUIET = ("sqlalchemy",)  # statement logging: sealed blobs and ids only, and very verbose


class LogCapture(logging.Handler):
    """Keeps a text for each record: message, extras and exception, as a log shipper would."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.name, record.levelname, record.getMessage()]
        parts += [f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STANDARD]
        if record.exc_info:
            parts.append(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.records.append(" ".join(parts))


@contextmanager
def capturing_logs() -> Iterator[LogCapture]:
    """Capture every logger's records at DEBUG; restore levels and handlers afterwards."""
    handler = LogCapture()
    saved: list[tuple[logging.Logger, int]] = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        if name in ("", "uvicorn", "uvicorn.access"):
            logger.addHandler(handler)
    for name in _QUIET:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.setLevel(level)
            logger.removeHandler(handler)


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its answer as text (a streamed answer's body is not read)."""

    method: str
    url: str
    request_headers: str
    request_body: str
    status: int
    response_headers: str
    response_body: str


@dataclass
class HttpCapture:
    """Every exchange made through any ``httpx.Client`` while installed."""

    exchanges: list[Exchange] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = httpx.Client.send

        def send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            response = original(client, request, **kwargs)
            body = "" if kwargs.get("stream") else response.text
            self.exchanges.append(
                Exchange(
                    request.method,
                    str(request.url),
                    str(dict(request.headers)),
                    _text(request),
                    response.status_code,
                    str(dict(response.headers)),
                    body,
                )
            )
            return response

        monkeypatch.setattr(httpx.Client, "send", send)


def _text(request: httpx.Request) -> str:
    try:
        return request.content.decode("utf-8", "replace")
    except httpx.RequestNotRead:
        return ""
