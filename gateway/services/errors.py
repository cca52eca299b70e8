"""Refusals the services raise and the API renders as ``application/problem+json`` (RFC 9457).

Refused                 a request is refused; nothing it asked for changed
├── Invalid      (422)  the input breaks the schema or a rule the hub checks at the edge
├── Forbidden    (403)  the caller may not do this (e.g. act for another agency)
├── NotFound     (404)  no such thing, or not one the caller is a party to (same answer)
├── Conflict     (409)  the request collides with stored data; retrying unchanged will not help
└── Unavailable  (503)  the store cannot be reached now; retrying later will help

Messages say what was wrong, where (``field``, a path into the request) and what to do; they
never carry a child's identifiers or a narrative.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "Refused", "Unavailable"]


class Refused(Exception):
    """A refusal with an HTTP status, a short title, a detail for people and the field at fault."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" + (f" (at {field})" if field else ""))
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field

    def problem(self, *, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document (``type`` is about:blank: the status says it all)."""
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        if instance is not None:
            body["instance"] = instance
        return body


class _Fixed(Refused):
    """A refusal whose status and default title are fixed by its class."""

    STATUS: ClassVar[int] = 400
    TITLE: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, title: str | None = None) -> None:
        super().__init__(self.STATUS, title or self.TITLE, detail, field)


class Invalid(_Fixed):
    """The input breaks the schema or a rule checked at the edge (422)."""

    STATUS = 422
    TITLE = "Invalid input"


class Forbidden(_Fixed):
    """The caller may not do this (403)."""

    STATUS = 403
    TITLE = "Forbidden"


class NotFound(_Fixed):
    """Not found, or not one the caller is a party to: the same answer for both (404)."""

    STATUS = 404
    TITLE = "Not found"


class Conflict(_Fixed):
    """The request collides with stored data (409)."""

    STATUS = 409
    TITLE = "Conflict"


class Unavailable(_Fixed):
    """The store cannot be reached now; retry later (503)."""

    STATUS = 503
    TITLE = "Service unavailable"
