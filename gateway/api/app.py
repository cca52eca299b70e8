"""The FastAPI application: ``create_app(hub)`` wires routes, problem handlers and limits.

Nothing connects here: the Hub arrives built, and requests reach the database only through it.
Middleware, outermost first: ``CatchUnexpected`` (500 problem), ``RateLimit`` (429 per
connector, before anything is read), ``BodyLimit`` (413), then the routes. (A ``webhook-id``
reused for a different body is refused by ingest itself, in the transaction that would
store it: ``gateway.services.fingerprints``.)
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.registry import Registry
from gateway.api import document, problems
from gateway.api.problems import CatchUnexpected, ProblemError, instance_of, problem_response
from gateway.api.ratelimit import RateLimit, TokenBuckets
from gateway.api.routes_admin import router as admin_router
from gateway.api.routes_connectors import router as connectors_router
from gateway.api.routes_events import router as events_router
from gateway.api.routes_ops import router as ops_router
from gateway.api.routes_overview import router as overview_router
from gateway.api.routes_reads import router as reads_router
from gateway.bootstrap import Hub

__all__ = ["BodyLimit", "create_app"]

DESCRIPTION = """\
Keeps multi-agency child-safeguarding escalations in sync across the case systems of
social care, health and police.

* **Administrator** (`Authorization: Bearer <admin token>`): registers agencies.
* **Agencies** (`Authorization: Bearer ehk_...`): register connectors, read the escalations
  they are party to; a business office reads its partnerships' escalations.
* **Connectors** send events signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`,
  `webhook-signature`); the `webhook-id` is the idempotency key.

Every error is `application/problem+json` (RFC 9457).
"""


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by Content-Length and by count."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            instance = instance_of(scope)
            response = problem_response(413, "Content too large", self._detail(), instance=instance)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ProblemError(413, "Content too large", self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"the request body is over {self.limit} bytes; send a smaller one"


def create_app(
    hub: Hub,
    *,
    on_accepted: Callable[[], None] | None = None,
    broker_ready: Callable[[], bool] | None = None,
    rate_limits: TokenBuckets | None = None,
    connectors: Registry | None = None,
) -> FastAPI:
    """The hub's HTTP API around one Hub; ``on_accepted`` pokes the outbox relay after 202s.

    ``rate_limits`` defaults to the per-connector buckets of ``gateway.api.ratelimit``;
    ``connectors`` to the installed registry (loaded on first use).
    """
    app = FastAPI(
        title="escalation-hub",
        version="1",
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    app.state.hub = hub
    app.state.on_accepted = on_accepted
    app.state.broker_ready = broker_ready
    if connectors is not None:
        app.state.connectors = connectors
    problems.install(app)
    document.install(app, hub)  # after problems: declares on top of its document
    for router in (
        admin_router,
        connectors_router,
        events_router,
        reads_router,
        overview_router,
        ops_router,
    ):
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=hub.settings.max_body_bytes)
    app.add_middleware(RateLimit, buckets=rate_limits or TokenBuckets())
    app.add_middleware(CatchUnexpected)  # added last: the outermost
    return app
