"""Request dependencies: the Hub, a database session, and who is calling.

Who is calling: the administrator's token or an agency's credential, as ``Bearer`` tokens.

The administrator's token is ``Settings.admin_token`` (compared in constant time). An agency's
token is ``ehk_<id>_<secret>`` from ``security.credentials``: the id finds its row, the salted
hash stored there verifies the secret. A missing or wrong token gets a 401 problem with a
``WWW-Authenticate`` challenge; the token itself is never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.access import deny
from gateway.api.problems import ProblemError, route_template
from gateway.bootstrap import Hub
from gateway.store.models import Agency
from security.credentials import credential_id, verify_credential
from security.errors import CredentialError

__all__ = [
    "ADMIN",
    "BUSINESS_OFFICE",
    "CREDENTIAL_PREFIX",
    "AdminDep",
    "AgencyDep",
    "Caller",
    "CallerDep",
    "HubDep",
    "SessionDep",
    "authenticate",
    "get_hub",
    "get_session",
    "require_admin",
    "require_agency",
]

CREDENTIAL_PREFIX = "ehk"
ADMIN = "admin"
BUSINESS_OFFICE = "business_office"
_CHALLENGE = 'Bearer realm="escalation-hub"'

_bearer = HTTPBearer(
    auto_error=False,
    description="The administrator's token, or an agency credential ('ehk_...') shown once.",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the administrator or one agency (maybe a business office)."""

    role: Literal["admin", "agency"]
    agency_id: str | None = None
    agency_kind: str | None = None
    partnerships: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_business_office(self) -> bool:
        return self.agency_kind == BUSINESS_OFFICE

    @property
    def actor(self) -> str:
        """The name written to the audit log: 'admin' or 'agency:<id>'."""
        return ADMIN if self.is_admin else f"agency:{self.agency_id}"


def get_hub(request: Request) -> Hub:
    """The Hub that create_app stored on the application."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def get_session(hub: HubDep) -> Iterator[Session]:
    """One session per request; routes commit what they write, the rest is rolled back."""
    with hub.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "Unauthorized",
        detail,
        field="Authorization",
        headers={"WWW-Authenticate": _CHALLENGE},
    )


def authenticate(
    hub: HubDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Resolve the Bearer token to a Caller, or answer 401."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send 'Authorization: Bearer <token>' with your agency credential")
    token = credentials.credentials
    admin = hub.settings.admin_token.get_secret_value().encode()
    if hmac.compare_digest(token.encode(), admin):
        return Caller(role="admin")
    agency = _agency_for(hub, token)
    if agency is None:
        raise _unauthorized("the token is not a current credential; ask the administrator")
    return Caller(
        role="agency",
        agency_id=agency.id,
        agency_kind=agency.kind,
        partnerships=frozenset(agency.partnerships.get("ids", ())),
    )


def _agency_for(hub: Hub, token: str) -> Agency | None:
    """The agency whose stored hash matches this token, looked up by the token's id."""
    try:
        token_id = credential_id(token)
    except CredentialError:
        return None
    with hub.reads() as session:
        agency = session.scalars(select(Agency).where(Agency.credential_id == token_id)).first()
    if agency is None or not verify_credential(token, agency.credential_hash):
        return None
    return agency


CallerDep = Annotated[Caller, Depends(authenticate)]


def require_admin(caller: CallerDep, hub: HubDep, session: SessionDep, request: Request) -> Caller:
    """Only the administrator; anyone else authenticated gets 403, audited as access_denied."""
    if not caller.is_admin:
        route = f"{request.method} {route_template(request.scope)}"
        deny(session, hub, caller, "administrator route", route=route)
        raise ProblemError(403, "Forbidden", "only the hub administrator may do this")
    return caller


def require_agency(caller: CallerDep) -> Caller:
    """Only an agency's own credential (not the administrator's token)."""
    if caller.is_admin:
        raise ProblemError(403, "Forbidden", "use the agency's own credential, not the admin token")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
AgencyDep = Annotated[Caller, Depends(require_agency)]
