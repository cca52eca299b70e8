"""Connectors: registering one for an agency, rotating its signing secret, reading it back.

A connector's ``kind`` must be an installed connector (``GET /v1/connector-kinds`` lists them)
and its ``config`` must fit that kind's config model: the fields are stored in clear, except
``SecretStr`` fields, which are sealed apart and shown masked. The public key must be one
``security`` accepts in the form ``jwk.PublicJwk`` declares, and the callback URL one the
guard in ``urls`` accepts, of the form ``urls.callback_url_pattern`` declares. A connector
or agency of another agency answers 404, as if it did not exist, and is audited (``access``).
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from gateway.api.access import ObjectId, deny, not_visible
from gateway.api.auth import AgencyDep, Caller, CallerDep, HubDep, SessionDep
from gateway.api.connector_config import (
    checked_config,
    config_context,
    plugin_of,
    registry_of,
    split_config,
)
from gateway.api.jwk import declared_jwk
from gateway.api.problems import ProblemError, problem_responses
from gateway.api.urls import CallbackUrlError, callback_url_pattern, check_callback_url
from gateway.bootstrap import Hub
from gateway.services import deadletters
from gateway.store import audit
from gateway.store.models import Agency, Connector
from security.envelopes import validate_public_jwk
from security.errors import KeyMaterialError
from security.webhooks import new_secret

__all__ = [
    "ConnectorCreated",
    "ConnectorEnabled",
    "ConnectorIn",
    "ConnectorKind",
    "ConnectorOut",
    "SecretRotated",
    "connector_secrets",
    "router",
    "secrets_context",
]

logger = logging.getLogger(__name__)
router = APIRouter(tags=["connectors"], responses=problem_responses(422))
KEPT_SECRETS = 2  # the new secret and the one before it, so senders can switch over


class ConnectorIn(BaseModel):
    """A connector: how the hub reaches the agency's case system and encrypts for it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "kind": "social-care",
                "callback_url": "https://case-system.nctrust.example/escalation-hub",
                "public_jwk": {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": "eaSYHEcQB7IWdU4--j4uuZ7zuq-t4DP4geQDWYvrz7Q",
                    "y": "O2Af0fpK0-rINngILxyXbZdYiFDA7ux5i00rXFjYFPU",
                    "use": "enc",
                },
                "config": {"partnership": "northamptonshire", "organisations": {"RP1": "nhft"}},
            }
        },
    )

    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]+$", max_length=64)] = (
        "generic"
    )
    callback_url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    public_jwk: dict[str, Any] = Field(description="The public encryption key (RSA or EC JWK).")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the connector kind (see GET /v1/connector-kinds).",
    )


class ConnectorKind(BaseModel):
    """An installed connector: what it reads and writes, and the config it takes."""

    kind: str
    title: str
    version: str
    reads: list[str]
    writes: list[str]
    description: str
    config_schema: dict[str, Any]


class ConnectorOut(BaseModel):
    """A registered connector, without its secrets."""

    id: str
    agency_id: str
    kind: str
    callback_url: str
    public_jwk: dict[str, Any]
    config: dict[str, Any] = Field(description="The kind's settings; secret fields masked.")
    status: str
    created_at: datetime


class ConnectorCreated(ConnectorOut):
    """The new connector and its signing secret: shown once."""

    signing_secret: str = Field(description="Standard Webhooks secret ('whsec_...'), shown once.")


class SecretRotated(BaseModel):
    """The new signing secret (shown once); the previous one stays valid until the next rotation."""

    connector_id: str
    signing_secret: str
    valid_secrets: int = Field(description="How many secrets verify signatures now.")


class ConnectorEnabled(ConnectorOut):
    """The connector, active again, and how many of its dead letters went back in its queue."""

    replayed: int = Field(
        default=0,
        description="Dead letters of this connector put back to pending (replay=true only).",
    )


def secrets_context(connector_id: str) -> str:
    """The sealing context of a connector's secrets."""
    return f"connector:{connector_id}"


def connector_secrets(hub: Hub, row: Connector) -> list[str]:
    """The connector's signing secrets, newest first."""
    unsealed: list[str] = hub.sealer.unseal(row.secrets_sealed, context=secrets_context(row.id))
    return unsealed


def _out(row: Connector) -> ConnectorOut:
    return ConnectorOut(
        id=row.id,
        agency_id=row.agency_id,
        kind=row.kind,
        callback_url=row.callback_url,
        public_jwk=row.public_jwk,
        config=dict(row.config or {}),
        status=row.status,
        created_at=row.created_at,
    )


def _owned(
    session: Session, hub: Hub, caller: Caller, connector_id: str, *, lock: bool = False
) -> Connector:
    """The connector if the caller owns it (or is the administrator); else 404, audited."""
    row = session.get(Connector, connector_id, with_for_update=lock)
    if row is not None and not (caller.is_admin or caller.agency_id == row.agency_id):
        deny(session, hub, caller, "connector", connector_id=row.id)
        row = None
    if row is None:
        raise not_visible("connector", "connector_id")
    return row


def _validate(body: ConnectorIn, hub: Hub) -> dict[str, Any]:
    """The public key to store, once the key and the callback URL are both taken; else 422."""
    given = {name: value for name, value in body.public_jwk.items() if value is not None}
    try:
        validate_public_jwk(given)  # security's reasons first: they say what to do
        key = declared_jwk(given)  # then the form the OpenAPI document declares
    except KeyMaterialError as exc:
        raise ProblemError(422, "Unusable public key", str(exc), field="public_jwk") from None
    loopback = hub.settings.allow_loopback_callbacks
    try:
        check_callback_url(body.callback_url, allow_loopback=loopback)
        if not re.fullmatch(callback_url_pattern(allow_loopback=loopback), body.callback_url):
            raise CallbackUrlError(
                "the callback URL must be https://, a host name or IPv4 address, an optional "
                "port, then a path in printable ASCII (no spaces)"
            )
    except CallbackUrlError as exc:
        raise ProblemError(422, "Callback URL refused", str(exc), field="callback_url") from None
    return key


@router.post(
    "/v1/agencies/{agency_id}/connectors",
    status_code=201,
    summary="Register a connector for an agency",
    responses=problem_responses(401, 404, 422),
)
def register_connector(
    agency_id: ObjectId,
    body: ConnectorIn,
    caller: CallerDep,
    hub: HubDep,
    session: SessionDep,
    request: Request,
) -> ConnectorCreated:
    """Register a connector and return its signing secret, shown once."""
    agency = session.get(Agency, agency_id)
    if agency is not None and not (caller.is_admin or caller.agency_id == agency.id):
        deny(session, hub, caller, "connectors", agency_id=agency.id)
        agency = None
    if agency is None:
        raise not_visible("agency", "agency_id")
    plugin = plugin_of(registry_of(request), body.kind)
    clear, secret_config = split_config(checked_config(plugin, body.config))
    public_jwk = _validate(body, hub)
    connector_id = f"con_{secrets.token_hex(10)}"
    secret, now = new_secret(), hub.clock()
    row = Connector(
        id=connector_id,
        agency_id=agency_id,
        kind=body.kind,
        callback_url=body.callback_url,
        public_jwk=public_jwk,
        secrets_sealed=hub.sealer.seal([secret], context=secrets_context(connector_id)),
        status="active",
        created_at=now,
        config=clear,
        config_secrets_sealed=hub.sealer.seal(secret_config, context=config_context(connector_id))
        if secret_config
        else None,
    )
    session.add(row)
    audit.append(
        session,
        at=now,
        action="connector_registered",
        actor=caller.actor,
        escalation_id=None,
        detail={"agency_id": agency_id, "connector_id": connector_id, "kind": body.kind},
    )
    session.commit()
    logger.info("connector registered", extra={"agency_id": agency_id, "connector_id": row.id})
    return ConnectorCreated(**_out(row).model_dump(), signing_secret=secret)


@router.post(
    "/v1/connectors/{connector_id}/rotate-secret",
    summary="Rotate a connector's signing secret",
    responses=problem_responses(401, 403, 404),
)
def rotate_secret(
    connector_id: ObjectId, caller: AgencyDep, hub: HubDep, session: SessionDep
) -> SecretRotated:
    """Add a new signing secret; the previous one stays valid until the next rotation."""
    row = _owned(session, hub, caller, connector_id, lock=True)  # rotations must not interleave
    secret = new_secret()
    kept = [secret, *connector_secrets(hub, row)][:KEPT_SECRETS]
    row.secrets_sealed = hub.sealer.seal(kept, context=secrets_context(row.id))
    audit.append(
        session,
        at=hub.clock(),
        action="connector_secret_rotated",
        actor=caller.actor,
        escalation_id=None,
        detail={"connector_id": row.id, "valid_secrets": len(kept)},
    )
    session.commit()
    logger.info("connector secret rotated", extra={"connector_id": row.id})
    return SecretRotated(connector_id=row.id, signing_secret=secret, valid_secrets=len(kept))


@router.post(
    "/v1/connectors/{connector_id}/enable",
    summary="Enable a connector again (after its endpoint answered 410 Gone)",
    responses=problem_responses(401, 404),
)
def enable_connector(
    connector_id: ObjectId,
    caller: CallerDep,
    hub: HubDep,
    session: SessionDep,
    request: Request,
    replay: Annotated[
        bool,
        Query(
            description="Also replay every dead letter of this connector, in the same step: "
            "they go out in the order they were decided, before anything decided later."
        ),
    ] = False,
) -> ConnectorEnabled:
    """Mark a connector active; with replay=true also put its dead letters back in order."""
    row = _owned(session, hub, caller, connector_id, lock=True)
    if row.status != "active":
        row.status = "active"
        audit.append(
            session,
            at=hub.clock(),
            action="connector_enabled",
            actor=caller.actor,
            escalation_id=None,
            detail={"connector_id": row.id},
        )
    replayed = 0
    if replay:  # in this transaction: no update decided from now on can overtake them
        replayed = deadletters.replay_connector(session, row.id, at=hub.clock(), actor=caller.actor)
    session.commit()
    on_accepted = request.app.state.on_accepted
    if replayed and on_accepted is not None:
        on_accepted()  # the lane's poke is waiting in the outbox
    return ConnectorEnabled(**_out(row).model_dump(), replayed=replayed)


@router.get(
    "/v1/connectors/{connector_id}",
    summary="Read a connector (without secrets)",
    responses=problem_responses(401, 404),
)
def read_connector(
    connector_id: ObjectId, caller: CallerDep, hub: HubDep, session: SessionDep
) -> ConnectorOut:
    """Return a connector to its agency or the administrator; secrets are never shown again."""
    return _out(_owned(session, hub, caller, connector_id))


@router.get(
    "/v1/connector-kinds",
    summary="List the installed connector kinds",
    responses=problem_responses(401),
)
def list_kinds(caller: CallerDep, request: Request) -> list[ConnectorKind]:
    """Every installed connector: media types read and written, and its config's JSON Schema."""
    return [
        ConnectorKind(
            kind=plugin.meta.kind,
            title=plugin.meta.title,
            version=plugin.meta.version,
            reads=list(plugin.meta.reads),
            writes=list(plugin.meta.writes),
            description=plugin.meta.description,
            config_schema=plugin.config_model.model_json_schema(),
        )
        for plugin in registry_of(request)
    ]
