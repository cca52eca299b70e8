"""RFC 9457 ``application/problem+json`` for every error the API answers, its own or FastAPI's.

ProblemError (an HTTPException, so FastAPI's body parsing lets it through unchanged)
├── raised by routes and dependencies with a title, a detail, and the field or header at fault
handlers installed by ``install``:
├── ProblemError            -> its own document
├── services Refused        -> its ``problem()`` document (status from the refusal)
├── RequestValidationError  -> 422 with ``errors: [{field, problem, expected}]``, never the input
├── HTTPException           -> 404 unknown route, 405 (keeps ``Allow``), any other status;
│                              FastAPI's own 400 for a body it cannot decode (not UTF-8, too
│                              deep) -> the same 422 as a body that is not JSON, naming '(body)'
├── database unreachable    -> 503 with Retry-After (SQLAlchemy Operational/Interface/pool timeout)
and CatchUnexpected, the outermost middleware: any other error -> 500, logged without its message

A problem never repeats a value the caller sent: details name the parameter or field instead,
and ``instance`` is the request path only on routes without path parameters (``instance_of``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.services.errors import Refused
from schemas.errors import FieldProblem, field_path

__all__ = [
    "PROBLEM_JSON",
    "RETRY_AFTER",
    "CatchUnexpected",
    "Problem",
    "ProblemError",
    "install",
    "instance_of",
    "problem_response",
    "problem_responses",
    "route_template",
]

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/{model}"
RETRY_AFTER = "5"  # seconds; sent with every 503
logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """An RFC 9457 problem document (extension members allowed)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "about:blank",
                "title": "Invalid event",
                "status": 422,
                "detail": "1 field is invalid; fix it and send the request again",
                "errors": [{"field": "[0].data.parties", "problem": "Field required"}],
            }
        },
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(
        default=None,
        description="The request path, on routes without path parameters (never a value sent).",
    )
    field: str | None = Field(
        default=None, description="The request field, parameter or header at fault."
    )
    errors: list[FieldProblem] | None = None


class ProblemError(HTTPException):
    """Stop handling a request and answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        errors: Sequence[FieldProblem] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.title = title
        self.field = field
        self.errors = list(errors) if errors is not None else None
        self.extensions = extensions

    def document(self, *, instance: str | None = None) -> dict[str, Any]:
        """This error as a problem document."""
        doc = _document(self.status_code, self.title, str(self.detail), instance=instance)
        if self.field is not None:
            doc["field"] = self.field
        if self.errors is not None:
            doc["errors"] = [e.model_dump(exclude_none=True) for e in self.errors]
        return {**doc, **self.extensions}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A ``application/problem+json`` response (for code outside the exception handlers)."""
    doc = {**_document(status, title, detail, instance=instance), **extensions}
    return JSONResponse(doc, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem answers for these statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}},
        }
        for status in statuses
    }


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Wrap app.openapi so the schema also defines Problem (referenced by problem_responses)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schema = Problem.model_json_schema(ref_template=_REF)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["Problem"] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document (and its schema)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(Refused, _on_refused)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    for unreachable in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unreachable, _on_store_down)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]


def _document(status: int, title: str, detail: str, *, instance: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    doc["detail"] = detail
    if instance is not None:
        doc["instance"] = instance
    return doc


def _send(doc: Mapping[str, Any], status: int, headers: Mapping[str, str] | None) -> JSONResponse:
    return JSONResponse(dict(doc), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def route_template(scope: Scope) -> str | None:
    """The path template of the route a request is for (``/v1/agencies/{agency_id}``), or None.

    Logs name the template, never the path: a path carries values the caller sent.
    """
    route = scope.get("route")
    if route is None:  # middleware, or no route matched: look the route up
        app = scope.get("app")
        routes = getattr(getattr(app, "router", None), "routes", ())
        route = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else None


def instance_of(scope: Scope) -> str | None:
    """The problem's ``instance``: the path of a route without path parameters, else None.

    A path with parameters carries values the caller sent (an id, or by mistake a child's NHS
    number), which a problem never repeats; the ``field`` names the parameter instead.
    """
    template = route_template(scope)
    return template if template is not None and "{" not in template else None


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return _send(exc.document(instance=instance_of(request.scope)), exc.status_code, exc.headers)


async def _on_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    unavailable = exc.status == HTTPStatus.SERVICE_UNAVAILABLE
    headers = {"Retry-After": RETRY_AFTER} if unavailable else None
    return _send(exc.problem(instance=instance_of(request.scope)), exc.status, headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid(request, [_field_problem(err) for err in exc.errors()])


def _invalid(request: Request, errors: Sequence[FieldProblem]) -> JSONResponse:
    detail = f"{len(errors)} part(s) of the request are invalid; see 'errors', fix and resend"
    doc = _document(422, "Invalid request", detail, instance=instance_of(request.scope))
    if len(errors) == 1:
        doc["field"] = errors[0].field
    doc["errors"] = [e.model_dump(exclude_none=True) for e in errors]
    return _send(doc, 422, None)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == HTTPStatus.BAD_REQUEST and exc.__cause__ is not None:
        # FastAPI's "There was an error parsing the body": a JSON body it could not decode
        return _invalid(request, [_undecodable(exc.__cause__)])
    phrase = _phrase(status)
    detail = str(exc.detail) if exc.detail and exc.detail != phrase else _default_detail(status)
    doc = _document(status, phrase, detail, instance=instance_of(request.scope))
    return _send(doc, status, exc.headers)


async def _on_store_down(request: Request, exc: Exception) -> JSONResponse:
    route = route_template(request.scope)
    logger.warning("database unreachable", extra={"route": route, "error": type(exc).__name__})
    detail = "the hub's database cannot be reached; nothing was changed, retry later"
    doc = _document(503, "Service unavailable", detail, instance=instance_of(request.scope))
    return _send(doc, 503, {"Retry-After": RETRY_AFTER})


class CatchUnexpected:
    """The outermost catch of a request: a 500 problem, logged without the error's message.

    Messages of unexpected errors can carry data (a validation error quotes its input), so the
    log gets the error's type and stack frames only, and the error is not re-raised to the
    server, which would log it whole.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - outermost catch of a request, logged below
            stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
            route = route_template(scope)
            logger.error(
                "unhandled error",
                extra={"route": route, "error": type(exc).__name__, "stack": stack},
            )
            if scope["type"] == "http" and not started:
                detail = "the hub failed to handle this request; it is logged, try again later"
                doc = _document(500, "Internal server error", detail, instance=None)
                await _send(doc, 500, None)(scope, receive, send)


def _field_problem(err: Mapping[str, Any]) -> FieldProblem:
    """One FastAPI validation error without its input, named by body field or parameter."""
    loc = list(err.get("loc", ()))
    ctx = err.get("ctx") or {}
    if err.get("type") == "json_invalid":
        where = f" at position {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        problem = f"the body is not JSON: {ctx.get('error', 'decode error')}{where}"
        return FieldProblem(field="(body)", problem=problem, expected="a JSON object")
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    expected = None
    if "expected" in ctx:
        expected = f"one of {ctx['expected']}"
    elif "pattern" in ctx:
        expected = f"text matching {ctx['pattern']}"
    elif err.get("type") == "missing":
        expected = "a value (this field is required)"
    return FieldProblem(field=field_path(loc), problem=str(err.get("msg")), expected=expected)


def _undecodable(cause: BaseException) -> FieldProblem:
    """Why a JSON body could not be decoded, without its bytes."""
    if isinstance(cause, UnicodeError):
        problem = "the body is not text in UTF-8 (or UTF-16/32), so it cannot be JSON"
    elif isinstance(cause, RecursionError):
        problem = "the body's JSON is nested too deeply to read"
    else:
        problem = "the body could not be read as JSON"
    return FieldProblem(field="(body)", problem=problem, expected="a JSON object in UTF-8")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _default_detail(status: int) -> str:
    if status == HTTPStatus.NOT_FOUND:
        return "no such resource here; the API lives under /v1 (see /v1/openapi.json)"
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        return "this resource does not accept that method; the Allow header lists those it does"
    return _phrase(status)
