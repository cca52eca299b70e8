"""The callback URL guard: the hub only pushes to public HTTPS endpoints (no SSRF).

A callback URL must be absolute, carry no user name or password, and name a host whose every
resolved address is globally routable: loopback, private, link-local (e.g. the cloud metadata
address 169.254.169.254), shared, multicast, reserved and unspecified addresses are refused,
also when an IPv6 address carries one (IPv4-mapped, 6to4, NAT64). Only names are resolved
(``socket.getaddrinfo``); no traffic is sent. With ``allow_loopback`` (development and test
only) a loopback host is allowed, over ``http`` too.

``callback_url_pattern`` is the same rule as far as a regular expression can say it (for the
OpenAPI document and the request model): https (or http to a loopback name or address, where
allowed), a host name or IPv4 address, an optional port, then printable ASCII. Whether the
host resolves, and only to public addresses, only resolving can tell.

The guard runs at registration (``check_callback_url``) and again at send time: the delivery
worker's transport (``gateway.services.egress``) vets every address it is about to connect to
with ``vet_addresses`` and connects to the vetted address only, so a name that later resolves
elsewhere (DNS rebinding) is refused before any byte is sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "CallbackUrlError",
    "ForbiddenAddress",
    "IPAddress",
    "Resolver",
    "UnresolvableHost",
    "callback_url_pattern",
    "check_callback_url",
    "refusal",
    "vet_addresses",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
MAX_URL_CHARS = 2000
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LOOPBACK = rf"(?:localhost|127(?:\.{_OCTET}){{3}})"
_PORT = (  # 0 to 65535
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
)
_REST = r"(?:[/?#][\x21-\x7e]*)?"  # path, query, fragment: printable ASCII, no space


class CallbackUrlError(ValueError):
    """The callback URL is refused; the message says why and what to use instead."""


class ForbiddenAddress(CallbackUrlError):
    """The callback host resolves to an address the hub must not reach."""

    def __init__(self, host: str, address: IPAddress, reason: str) -> None:
        super().__init__(
            f"the host {host} resolves to {address}, a {reason} address; "
            "callbacks must reach a public HTTPS endpoint"
        )
        self.host, self.address, self.reason = host, address, reason


class UnresolvableHost(CallbackUrlError):
    """The callback host does not resolve (now): maybe a typo, maybe a passing DNS failure."""


def check_callback_url(
    url: str, *, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo
) -> str:
    """Return the URL if the hub may push to it, else raise CallbackUrlError."""
    parts = _parse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = vet_addresses(
        parts.hostname or "", port, allow_loopback=allow_loopback, resolve=resolve
    )
    loopback_only = all(a.is_loopback for a in addresses)
    if parts.scheme != "https" and not (allow_loopback and loopback_only):
        raise CallbackUrlError("the callback URL must use https://")
    return url


def callback_url_pattern(*, allow_loopback: bool) -> str:
    """The regular expression every callback URL the guard can accept matches."""
    origin = rf"(?:https://{_HOST}|http://{_LOOPBACK})" if allow_loopback else f"https://{_HOST}"
    return rf"^{origin}(?::{_PORT})?{_REST}$"


def vet_addresses(
    host: str, port: int, *, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo
) -> list[IPAddress]:
    """Resolve ``host``; return its addresses if every one may be reached, else raise.

    Raises ForbiddenAddress when any address is refused, UnresolvableHost when the name
    cannot be resolved. Loopback passes only with ``allow_loopback`` (development, test).
    """
    addresses = _resolve(host, port, resolve)
    for address in addresses:
        reason = refusal(address)
        if reason is not None and not (allow_loopback and address.is_loopback):
            raise ForbiddenAddress(host, address, reason)
    return addresses


def refusal(address: IPAddress) -> str | None:
    """Why this address may not receive callbacks, or None when it is public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refusal(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4 or NAT64), which is what it reaches."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.ipv4_mapped or address.sixtofour


def _parse(url: str) -> SplitResult:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise CallbackUrlError(f"the callback URL must be 1 to {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise CallbackUrlError("the callback URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise CallbackUrlError(f"the callback URL cannot be parsed: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise CallbackUrlError("the callback URL must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise CallbackUrlError(
            "the callback URL must not carry a user name or password; the hub signs each request"
        )
    if not parts.hostname:
        raise CallbackUrlError("the callback URL has no host")
    return parts


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(
            f"the host {host} cannot be resolved ({type(exc).__name__}); check the name"
        ) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnresolvableHost(f"the host {host} resolves to no address")
    return addresses
