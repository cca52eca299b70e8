"""Operations: liveness, readiness, Prometheus metrics, and dead letters (administrator)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.access import ID_PATTERN, ObjectId
from gateway.api.auth import AdminDep, HubDep, SessionDep
from gateway.api.problems import RETRY_AFTER, ProblemError, problem_responses
from gateway.bootstrap import Hub
from gateway.metrics import REGISTRY
from gateway.services import deadletters
from gateway.services.errors import NotFound

__all__ = ["DeadLetterPage", "DeadLetterView", "Health", "Replayed", "database_ready", "router"]

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, Literal["up", "not checked"]] = {}


class DeadLetterView(BaseModel):
    """A dead delivery: ids, the target's host and counts; never the document."""

    id: str
    escalation_id: str
    channel: str
    target_host: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime


class DeadLetterPage(BaseModel):
    items: list[DeadLetterView]
    next_after: str | None = None


class Replayed(BaseModel):
    delivery_id: str
    status: Literal["pending"] = "pending"


def database_ready(hub: Hub) -> bool:
    """True if the database answers ``SELECT 1`` (a raw connection: no write lock taken)."""
    driver_error = hub.engine.dialect.loaded_dbapi.Error
    try:
        connection = hub.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()
    except (SQLAlchemyError, driver_error) as exc:
        logger.warning("readiness: database down", extra={"error": type(exc).__name__})
        return False
    return True


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    """Answer 200 without touching anything."""
    return Health()


@router.get(
    "/readyz",
    summary="Readiness: the database and the broker answer",
    responses=problem_responses(503),
)
async def readyz(request: Request, hub: HubDep) -> Health:
    """200 when the database (and the broker, when checked) answer; else 503 naming them."""
    broker_ready: Callable[[], bool] | None = request.app.state.broker_ready
    checks: dict[str, bool | None] = {
        "database": await run_in_threadpool(database_ready, hub),
        "broker": None if broker_ready is None else await run_in_threadpool(broker_ready),
    }
    down = sorted(name for name, ok in checks.items() if ok is False)
    if down:
        raise ProblemError(
            503,
            "Not ready",
            f"not reachable: {', '.join(down)}",
            down=down,
            headers={"Retry-After": RETRY_AFTER},
        )
    return Health(checks={k: "not checked" if ok is None else "up" for k, ok in checks.items()})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
)
def metrics() -> Response:
    """The hub's metrics in the Prometheus text format 0.0.4."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)


@router.get(
    "/v1/dead-letters",
    tags=["dead letters"],
    summary="List dead letters",
    responses=problem_responses(401, 403, 422),
)
def list_dead_letters(
    caller: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=ID_PATTERN,
            description="'next_after' of the previous page: the page starts after that delivery.",
        ),
    ] = None,
) -> DeadLetterPage:
    """Deliveries that exhausted their attempts, oldest first."""
    found = deadletters.list_dead(session, limit=limit, after=after)
    items = [DeadLetterView.model_validate(d, from_attributes=True) for d in found]
    return DeadLetterPage(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.post(
    "/v1/dead-letters/{delivery_id}/replay",
    tags=["dead letters"],
    status_code=202,
    summary="Replay a dead letter",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def replay_dead_letter(
    delivery_id: ObjectId, request: Request, caller: AdminDep, hub: HubDep
) -> Replayed:
    """Put a dead delivery back in the queue; it is attempted again with the same id."""
    try:
        deadletters.replay(hub, delivery_id, actor=caller.actor)
    except NotFound:  # its message quotes the id; a problem never repeats a path's value
        detail = "no such delivery; check 'delivery_id' against GET /v1/dead-letters"
        raise ProblemError(404, "Not found", detail, field="delivery_id") from None
    on_accepted: Callable[[], None] | None = request.app.state.on_accepted
    if on_accepted is not None:
        on_accepted()  # a new outbox row is waiting
    return Replayed(delivery_id=delivery_id)
