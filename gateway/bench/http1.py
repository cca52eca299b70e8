"""Just enough HTTP/1.1 over asyncio streams for the load generator and the receivers.

Loopback only, keep-alive, ``Content-Length`` bodies (and chunked answers on the client side).
Kept this small so that neither the client nor the receivers are the bottleneck they measure.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

__all__ = [
    "Handler",
    "build_request",
    "loopback_host",
    "read_response",
    "serve_connection",
]

Handler = Callable[[bytes, Mapping[str, str], bytes], Awaitable[int] | int]
_MAX_HEADER_LINES = 100


def loopback_host(url: str) -> tuple[str, int]:
    """The (host, port) of an ``http://`` URL on loopback; anything else is refused."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or parts.port is None:
        raise ValueError(f"the benchmark only speaks plain http with a port, not {url!r}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the benchmark only targets loopback (127.0.0.0/8, ::1), not {host!r}")
    return host, parts.port


def build_request(
    host: str, port: int, path: str, body: bytes, headers: Mapping[str, str]
) -> bytes:
    """A complete POST request (head and body) ready to write on a kept-alive connection."""
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    found: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return found
        name, _, value = line.decode("latin-1").partition(":")
        found[name.strip().lower()] = value.strip()
    raise ValueError(f"more than {_MAX_HEADER_LINES} header lines")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one response: (status, body)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    status = int(status_line.split()[1])
    headers = await _headers(reader)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, await _chunked(reader)
    length = int(headers.get("content-length", "0"))
    return status, (await reader.readexactly(length)) if length else b""


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readline()


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Answer requests on one kept-alive connection until the client closes it."""
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            path = request_line.split(b" ")[1]
            headers = await _headers(reader)
            length = int(headers.get("content-length", "0"))
            body = (await reader.readexactly(length)) if length else b""
            try:
                outcome = handler(path, headers, body)
                status = outcome if isinstance(outcome, int) else await outcome
            except Exception:  # noqa: BLE001 - a benchmark receiver answers 500, never dies
                status = 500
            writer.write(b"HTTP/1.1 %d -\r\ncontent-length: 0\r\n\r\n" % status)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()
