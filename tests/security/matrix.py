"""The authorisation matrix: every route of the live OpenAPI document, tried by every attacker.

Routes come from ``/v1/openapi.json`` at run time, so a new route cannot escape: each path
parameter must have a real object id here (``PATH_IDS``) and each route with a body a valid
body (``BODIES``), or the sweep fails saying what to add. Attackers use bearer tokens, except
on the signed events route, where the credential is the connector's signing secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy import select

from gateway.store.models import Delivery
from security.webhooks import new_secret, sign
from tests.security.world import FOREIGN_OFFICE, OFFICE, OUTSIDER, World

__all__ = [
    "ADMIN_ROUTES",
    "CATALOGUES",
    "COLLECTIONS",
    "INSIDERS",
    "PUBLIC_ROUTES",
    "SIGNED_ROUTES",
    "TENANTS",
    "Attacker",
    "Attempt",
    "Route",
    "attackers",
    "path_ids",
    "routes",
    "sweep",
]

Route = tuple[str, str]  # (method, path template) as the OpenAPI document spells them

PUBLIC_ROUTES: Final[frozenset[Route]] = frozenset(
    {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
)
ADMIN_ROUTES: Final[frozenset[Route]] = frozenset(
    {
        ("post", "/v1/agencies"),
        ("get", "/v1/dead-letters"),
        ("post", "/v1/dead-letters/{delivery_id}/replay"),
    }
)
SIGNED_ROUTES: Final[frozenset[Route]] = frozenset(
    {("post", "/v1/connectors/{connector_id}/events")}
)
#: Lists that answer 200 to anyone authenticated, with only what the caller may see.
COLLECTIONS: Final[frozenset[Route]] = frozenset({("get", "/v1/escalations")})
#: The hub's own catalogues (no tenant's data): any authenticated caller may read them.
CATALOGUES: Final[frozenset[Route]] = frozenset({("get", "/v1/connector-kinds")})

TENANTS: Final[dict[str, str]] = {
    "agency that is no party": OUTSIDER,
    "other partnership's business office": FOREIGN_OFFICE,
}
#: Agencies with a legitimate interest elsewhere, who still may not use administrator routes.
INSIDERS: Final[dict[str, str]] = {"party agency": "nhft", "own business office": OFFICE}
_MALFORMED: Final = "malformed"


@dataclass(frozen=True)
class Attacker:
    """Who attacks: a bearer token and, for the signed route, a signing secret (or none)."""

    name: str
    token: str | None
    secret: str | None
    actor: str | None = None  # how the audit log names an authenticated attacker


def attackers(world: World) -> list[Attacker]:
    """Anonymous callers, tenants of other objects, and insiders (administrator routes only)."""
    found = [
        Attacker("no credential", None, None),
        Attacker("malformed token", "not-a-credential", _MALFORMED),
        Attacker("unknown credential", f"ehk_{'0' * 16}_{'0' * 64}", new_secret()),
    ]
    for name, agency_id in (*TENANTS.items(), *INSIDERS.items()):
        member = world.members[agency_id]
        found.append(Attacker(name, member.credential, member.secret, member.actor))
    return found


@dataclass(frozen=True)
class Attempt:
    """One request of the sweep and what came back (the body as text)."""

    route: Route
    attacker: str
    actor: str | None
    status: int
    content_type: str
    body: str
    audited: int  # access_denied entries naming the attacker that this request added


def routes(world: World) -> list[Route]:
    """Every (method, path) of the live OpenAPI document."""
    document = world.http().get("/v1/openapi.json").json()
    return sorted(
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    )


def path_ids(world: World) -> dict[str, str]:
    assert world.stack.hub is not None
    with world.stack.hub.sessions() as session:
        delivery = session.scalars(
            select(Delivery.id).where(Delivery.escalation_id == world.escalation_id).limit(1)
        ).first()
    assert delivery is not None, "the world's escalation has no delivery yet"
    return {
        "agency_id": "nhft",
        "connector_id": world.members["nhft"].connector_id,
        "escalation_id": world.escalation_id,
        "partnership_id": "northamptonshire",
        "delivery_id": delivery,
    }


def _agency_body(world: World) -> dict[str, Any]:
    return {
        "id": f"made-{uuid.uuid4().hex[:12]}",
        "name": "An agency an attacker tries to register",
        "kind": "other",
        "partnerships": ["northamptonshire"],
    }


def _connector_body(world: World) -> dict[str, Any]:
    member = world.members["nhft"]
    return {"kind": "generic", "callback_url": member.system.url, "public_jwk": member.public_jwk}


BODIES: Final[dict[Route, Callable[[World], dict[str, Any]]]] = {
    ("post", "/v1/agencies"): _agency_body,
    ("post", "/v1/agencies/{agency_id}/connectors"): _connector_body,
}
#: Routes that take no body (an action on the object the path names).
_NO_BODY: Final = frozenset(
    {
        ("post", "/v1/connectors/{connector_id}/rotate-secret"),
        ("post", "/v1/connectors/{connector_id}/enable"),
        ("post", "/v1/dead-letters/{delivery_id}/replay"),
        *SIGNED_ROUTES,
    }
)


def sweep(world: World, who: Sequence[Attacker]) -> list[Attempt]:
    """Send every non-public route once per attacker (insiders: administrator routes only)."""
    ids = path_ids(world)
    found: list[Attempt] = []
    for route in routes(world):
        if route in PUBLIC_ROUTES:
            continue
        url = _url(route, ids)
        for attacker in who:
            if route in ADMIN_ROUTES or attacker.name not in INSIDERS:
                found.append(_attempt(world, route, url, attacker))
    return found


def _url(route: Route, ids: dict[str, str]) -> str:
    path = route[1]
    for name in _parameters(path):
        assert name in ids, f"{route}: add a real '{name}' to PATH_IDS in tests/security/matrix.py"
        path = path.replace("{" + name + "}", ids[name])
    return path


def _parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _attempt(world: World, route: Route, url: str, attacker: Attacker) -> Attempt:
    actors = _actors(attacker.actor)
    before = world.audit_count("access_denied", actors)
    response = _send(world, route, url, attacker)
    after = world.audit_count("access_denied", actors)
    return Attempt(
        route,
        attacker.name,
        attacker.actor,
        response.status_code,
        response.headers.get("content-type", ""),
        response.text,
        after - before,
    )


def _actors(actor: str | None) -> list[str]:
    """The names an audit entry may give the attacker: 'agency:<id>' (API) or '<id>' (ingest)."""
    if actor is None:
        return []
    return [actor, actor.removeprefix("agency:")]


def _send(world: World, route: Route, url: str, attacker: Attacker) -> httpx.Response:
    method, _ = route
    client = world.http(None if route in SIGNED_ROUTES else attacker.token)
    if route in SIGNED_ROUTES:
        return client.post(url, content=b"[]", headers=_signed(attacker.secret, b"[]"))
    if method == "get":
        return client.get(url)
    if route in BODIES:
        return client.request(method.upper(), url, json=BODIES[route](world))
    assert route in _NO_BODY, f"{route}: add a valid body to BODIES in tests/security/matrix.py"
    return client.request(method.upper(), url)


def _signed(secret: str | None, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers by ``secret``; none without one; a bad signature if malformed."""
    if secret is None:
        return {"content-type": "application/json"}
    headers = sign([secret if secret != _MALFORMED else new_secret()], _msg_id(), _now(), body)
    if secret == _MALFORMED:
        headers["webhook-signature"] = "v1,not*base64"
    return {**headers, "content-type": "application/json"}


def _msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _now() -> datetime:
    return datetime.now(UTC)
