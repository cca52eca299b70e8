"""Outbound HTTP for deliveries: the send-time SSRF guard, pinned to the address it vetted.

A callback URL is checked at registration, but DNS can change afterwards (or answer one
address to the check and another to the connection: DNS rebinding). So the delivery client
resolves the host itself when it opens a connection, refuses the connection when any address
is forbidden (``gateway.api.urls.vet_addresses``: loopback only with
``EH_ALLOW_LOOPBACK_CALLBACKS``), and connects to a vetted address. The URL keeps its host
name, so the ``Host`` header, TLS SNI and certificate checks are the name's, as usual; only
the TCP connection is pinned. A refusal raises ``ForbiddenAddress`` out of the client before
any byte is sent. Environment proxies are ignored (``trust_env=False``): a proxy would connect
on our behalf to an address we never vetted.

Exceptions from ``httpx.Client`` with this transport::

    ForbiddenAddress            a resolved address is forbidden (not an httpx error: nothing
                                was sent; the attempt is fatal)
    httpx.HTTPError             everything else, as httpx maps it; a name that does not
    └── httpx.ConnectError      resolve is a ConnectError (retriable: DNS failures pass)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from gateway.api.urls import (
    CallbackUrlError,
    ForbiddenAddress,
    Resolver,
    UnresolvableHost,
    check_callback_url,
    vet_addresses,
)
from gateway.settings import Settings

__all__ = ["GuardedBackend", "GuardedTransport", "guarded_client", "send_time_refusal"]

logger = logging.getLogger(__name__)


def send_time_refusal(
    url: str, *, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo
) -> str | None:
    """Why the hub must not send to ``url`` now (resolved afresh), or None when it may."""
    try:
        check_callback_url(url, allow_loopback=allow_loopback, resolve=resolve)
    except ForbiddenAddress as exc:
        return (
            f"the callback host {exc.host} now resolves to {exc.address}, which is refused "
            f"(a {exc.reason} address); the agency must register a public HTTPS URL, then replay"
        )
    except UnresolvableHost:
        return None  # the attempt resolves again and retries while the name does not resolve
    except CallbackUrlError as exc:
        return f"the callback URL is refused at send time: {exc}"
    return None


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that vets and pins every TCP connection it opens."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        resolve: Resolver = socket.getaddrinfo,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._resolve = resolve
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve ``host``, refuse forbidden addresses, connect to the first vetted one."""
        try:
            addresses = vet_addresses(
                host, port, allow_loopback=self._allow_loopback, resolve=self._resolve
            )
        except UnresolvableHost as exc:  # perhaps passing: an ordinary, retriable failure
            raise httpcore.ConnectError(str(exc)) from None
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in dict.fromkeys(addresses):  # each address once, in resolver order
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # vet_addresses never returns an empty list
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Refused: deliveries go over TCP to vetted addresses only."""
        raise httpcore.ConnectError("unix sockets are not used for deliveries")

    def sleep(self, seconds: float) -> None:
        """Sleep as the inner backend does."""
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through a ``GuardedBackend``."""

    def __init__(self, *, backend: GuardedBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError(  # fail at start-up, never send unguarded
                f"httpx {httpx.__version__} builds its transport differently: update "
                "gateway/services/egress.py before delivering"
            )
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_client(settings: Settings, *, resolve: Resolver = socket.getaddrinfo) -> httpx.Client:
    """The delivery worker's HTTP client: guarded, pinned, no redirects, no env proxies."""
    size = settings.delivery_concurrency
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    backend = GuardedBackend(allow_loopback=settings.allow_loopback_callbacks, resolve=resolve)
    return httpx.Client(
        transport=GuardedTransport(backend=backend, limits=limits),
        timeout=httpx.Timeout(settings.delivery_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "escalation-hub"},
    )
