"""The callback URL guard: resolution only (IP literals and injected answers), never traffic."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gateway.api.urls import CallbackUrlError, check_callback_url


def _resolving_to(*addresses: str) -> Any:
    """A resolver answering ``addresses`` for any name, as getaddrinfo would."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://127.0.0.1/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://[::1]/", "loopback"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://[2002:a00:1::]/", "private"),
        ("https://[64:ff9b::a9fe:a9fe]/", "link-local"),
        ("https://2130706433/", "loopback"),
        ("https://100.64.0.1/", "non-public"),
    ],
)
def test_non_public_addresses_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlError, match=reason):
        check_callback_url(url, allow_loopback=False)


def test_a_public_https_address_is_accepted() -> None:
    url = "https://93.184.216.34:8443/escalation-hub?tenant=1"

    assert check_callback_url(url, allow_loopback=False) == url


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    resolve = _resolving_to("93.184.216.34", "10.1.2.3")  # one bad answer is enough

    with pytest.raises(CallbackUrlError, match=r"10\.1\.2\.3, a private"):
        check_callback_url("https://cases.example/hook", allow_loopback=False, resolve=resolve)


def test_a_name_that_cannot_be_resolved_is_refused() -> None:
    def fail(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(CallbackUrlError, match="cannot be resolved"):
        check_callback_url("https://nowhere.invalid/", allow_loopback=False, resolve=fail)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:pw@93.184.216.34/", "user name or password"),
        ("https://token@93.184.216.34/", "user name or password"),
        ("ftp://93.184.216.34/", "https"),
        ("http://93.184.216.34/", "must use https"),
        ("https:///path-only", "no host"),
        ("https://93.184.216.34:99999/", "cannot be parsed"),
        ("https://93.184.216.34/a b", "spaces"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(CallbackUrlError, match=message):
        check_callback_url(url, allow_loopback=True)


def test_loopback_is_allowed_over_http_only_when_allowed() -> None:
    assert check_callback_url("http://127.0.0.1:9000/hook", allow_loopback=True)
    assert check_callback_url("http://localhost:9000/hook", allow_loopback=True)
    with pytest.raises(CallbackUrlError, match="loopback"):
        check_callback_url("http://localhost:9000/hook", allow_loopback=False)


def test_allowing_loopback_does_not_allow_private_addresses() -> None:
    with pytest.raises(CallbackUrlError, match="private"):
        check_callback_url("http://10.0.0.1/", allow_loopback=True)
    with pytest.raises(CallbackUrlError, match="link-local"):
        check_callback_url("http://169.254.169.254/", allow_loopback=True)
