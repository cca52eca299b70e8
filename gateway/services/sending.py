"""One delivery's send: prepared from its row, attempted, recorded, concluded.

``Sender.prepare`` unseals the document and builds the one call that sends it (a webhook:
rendered in the connector's format, encrypted for its agency, signed; an e-mail: composed from
the Notification). ``Sender.attempt`` makes one attempt and records it in its own short
transaction (a success is concluded in that same transaction); ``Sender.conclude`` ends a
delivery that did not succeed (dead, or refused before any attempt). Before each webhook
the callback host is resolved again and refused when it now names an address an agency must
not reach (dead letter, nothing sent); the HTTP client (``gateway.services.egress``) vets once
more and pins the address it connects to, against DNS rebinding.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import httpx
from pydantic import ValidationError
from sqlalchemy import Connection, bindparam, insert, select, update

from gateway.api.urls import Resolver
from gateway.bootstrap import Hub
from gateway.metrics import DELIVERIES, DELIVERY_SECONDS
from gateway.services import deadletters
from gateway.services.attempts import Attempt, Verdict, WebhookRequest, post_webhook, send_email
from gateway.services.egress import send_time_refusal
from gateway.services.email import Mailer, compose
from gateway.services.rendering import Renderer, RenderError, render
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, DeliveryAttempt
from schemas.updates import Notification
from security import envelopes, webhooks
from security.errors import SecurityError

__all__ = ["Job", "Sender"]

logger = logging.getLogger(__name__)
_ACTOR: Final = "delivery"
_REASONS: Final[dict[Verdict | None, str]] = {
    Verdict.RETRY: "exhausted",
    Verdict.FATAL: "fatal",
    Verdict.GONE: "gone",
}

Job = tuple[str, Callable[[], Attempt]]  # the channel, and the call that sends once

# Statements built once (building one costs about as much as running it on SQLite).
_PREPARE: Final = (
    select(
        Delivery.id,
        Delivery.status,
        Delivery.channel,
        Delivery.target,
        Delivery.connector_id,
        Delivery.document_sealed,
        Connector.id.label("c_id"),
        Connector.status.label("c_status"),
        Connector.kind,
        Connector.callback_url,
        Connector.public_jwk,
        Connector.secrets_sealed,
    )
    .outerjoin_from(Delivery, Connector, Connector.id == Delivery.connector_id)
    .where(Delivery.id == bindparam("id_"))
)
_INSERT_ATTEMPT: Final = insert(DeliveryAttempt)
_COUNT_ATTEMPT: Final = (
    update(Delivery)
    .where(Delivery.id == bindparam("id_"))
    .values(
        attempts=Delivery.attempts + 1,
        last_status=bindparam("status_"),
        last_error=bindparam("error_"),
    )
)
_SUCCEED: Final = (
    _COUNT_ATTEMPT.where(Delivery.status == "pending")
    .values(status="succeeded", finished_at=bindparam("finished_"))
    .returning(Delivery.id, Delivery.escalation_id, Delivery.channel, Delivery.attempts)
)


@dataclass(frozen=True)
class _Pending:
    """What sending a pending delivery needs of its row."""

    id: str
    channel: str
    target: str
    connector_id: str | None
    document_sealed: bytes


@dataclass(frozen=True)
class _Target:
    """What sending needs of the delivery's connector."""

    id: str
    status: str
    kind: str
    callback_url: str
    public_jwk: dict[str, Any]
    secrets_sealed: bytes


@dataclass(frozen=True)
class _Done:
    """A delivery that just succeeded, as its audit entry names it."""

    id: str
    escalation_id: str
    channel: str
    attempts: int


class Sender:
    """Prepares, attempts and concludes single deliveries; the Delivery row is the truth."""

    def __init__(
        self,
        hub: Hub,
        *,
        http: httpx.Client,
        mailer: Mailer,
        renderers: Mapping[str, Renderer] | None = None,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        self._hub = hub
        self._http = http
        self._mailer = mailer
        self._renderers = dict(renderers or {})
        self._resolve = resolve

    def prepare(self, delivery_id: str) -> Job | None:
        """The send of a pending delivery; None if it is not pending; Undeliverable if never."""
        with self._hub.reader.connect() as conn:  # a snapshot; no lock while encrypting
            found = conn.execute(_PREPARE, {"id_": delivery_id}).first()
        if found is None or found.status != "pending":
            return None
        row = _Pending(
            found.id, found.channel, found.target, found.connector_id, found.document_sealed
        )
        connector = None
        if found.c_id is not None:
            connector = _Target(
                found.c_id,
                found.c_status,
                found.kind,
                found.callback_url,
                found.public_jwk,
                found.secrets_sealed,
            )
        try:
            document = self._hub.sealer.unseal(row.document_sealed, context=f"delivery:{row.id}")
            if row.channel == "webhook":
                return row.channel, self._webhook(connector, row, document)
            if row.channel == "email":
                return row.channel, self._email(row, document)
        except ValidationError as exc:  # locations only: an input value may be a child's name
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise deadletters.Undeliverable(
                f"the document is not a {exc.title} (wrong fields: {where})"
            ) from None
        except (SecurityError, RenderError, ValueError) as exc:
            raise deadletters.Undeliverable(f"{type(exc).__name__}: {exc}") from None
        raise deadletters.Undeliverable(f"channel '{row.channel}' is neither webhook nor email")

    def attempt(self, delivery_id: str, channel: str, send: Callable[[], Attempt]) -> Attempt:
        """Send once and record the attempt (and the row's counters) in one transaction; an
        attempt that succeeded concludes the delivery in that same transaction."""
        at = self._hub.clock()
        result = send()
        DELIVERIES.labels(channel, result.verdict.value).inc()
        DELIVERY_SECONDS.labels(channel).observe(result.seconds)
        succeeded = result.verdict is Verdict.OK
        with self._hub.engine.begin() as conn:  # Core, no session: this runs for every attempt
            conn.execute(
                _INSERT_ATTEMPT,
                {
                    "delivery_id": delivery_id,
                    "attempted_at": at,
                    "status_code": result.status,
                    "error": result.error,
                    "duration_ms": round(result.seconds * 1000),
                },
            )
            counts = {"id_": delivery_id, "status_": result.status, "error_": result.error}
            done = self._succeeded(conn, counts) if succeeded else None
            if done is None:
                conn.execute(_COUNT_ATTEMPT, counts)
        if done is not None:
            fields = {"delivery_id": delivery_id, "attempts": done.attempts}
            logger.info("delivery.concluded", extra={**fields, "status": "succeeded"})
        return result

    def _succeeded(self, conn: Connection, counts: dict[str, Any]) -> _Done | None:
        """Count the attempt and end the (still pending) delivery as succeeded, audited; None
        if the row is no longer pending (then only the attempt is counted)."""
        at = self._hub.clock()
        found = conn.execute(_SUCCEED, {**counts, "finished_": at}).first()
        if found is None:
            return None
        done = _Done(str(found[0]), str(found[1]), str(found[2]), int(found[3]))
        deadletters.audit_delivered(conn, done, at=at, actor=_ACTOR)
        return done

    def conclude(
        self,
        delivery_id: str,
        last: Attempt | None,
        *,
        refusal: deadletters.Undeliverable | None = None,
        reason: str | None = None,
    ) -> None:
        """Succeed on an OK attempt, else dead-letter (``reason`` overrides the verdict's).

        A delivery refused because its connector is disabled stays pending if the connector has
        been enabled meanwhile: its lane sends it next (an enable's replay never misses it).
        """
        at = self._hub.clock()
        disabled = isinstance(refusal, deadletters.ConnectorDisabled)
        with transaction(self._hub.sessions) as session:
            row = session.get(Delivery, delivery_id, with_for_update=True)
            if row is None or row.status != "pending":
                return
            if disabled and deadletters.enabled_again(session, row):
                return
            if last is not None and last.verdict is Verdict.OK:
                deadletters.mark_succeeded(session, row, at=at, actor=_ACTOR)
            else:
                fallback = deadletters.DISABLED if disabled else "refused"
                why = reason or _REASONS.get(last.verdict if last else None, fallback)
                error = str(refusal) if refusal else None
                deadletters.mark_dead(session, row, at=at, actor=_ACTOR, reason=why, error=error)
            status, attempts = row.status, row.attempts
        logger.info(
            "delivery.concluded",
            extra={"delivery_id": delivery_id, "status": status, "attempts": attempts},
        )

    def _webhook(
        self, connector: _Target | None, row: _Pending, document: dict[str, Any]
    ) -> Callable[[], Attempt]:
        if connector is None:
            raise deadletters.Undeliverable(f"connector {row.connector_id} is not registered")
        if connector.status != "active":
            raise deadletters.ConnectorDisabled(connector.id)
        self._check_target(connector.callback_url)
        body, media_type = render(connector.kind, document, renderers=self._renderers)
        token = envelopes.encrypt_for(connector.public_jwk, body, content_type=media_type).encode()
        secrets = self._hub.sealer.unseal(
            connector.secrets_sealed, context=f"connector:{connector.id}"
        )
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise deadletters.Undeliverable(f"connector {connector.id} has no signing secrets")
        webhooks.sign(secrets, row.id, self._hub.clock(), token)  # refuses bad ids and secrets now
        request = WebhookRequest(connector.callback_url, row.id, token, tuple(secrets))
        return partial(post_webhook, self._http, request, now=self._hub.clock)

    def _check_target(self, url: str) -> None:
        """Resolve the callback host again now; dead-letter it if it names a forbidden address."""
        allow = self._hub.settings.allow_loopback_callbacks
        refused = send_time_refusal(url, allow_loopback=allow, resolve=self._resolve)
        if refused is not None:
            raise deadletters.Undeliverable(refused)

    def _email(self, row: _Pending, document: dict[str, Any]) -> Callable[[], Attempt]:
        notification = Notification.model_validate(document)  # forbids fields it does not know
        sender = self._hub.settings.smtp_sender
        message = compose(notification, delivery_id=row.id, sender=sender, to=row.target)
        return partial(send_email, self._mailer, message, to=row.target)
