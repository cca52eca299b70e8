"""Refusing another tenant's object: audited at once, answered as if it did not exist.

Every route that finds an object the caller may not see or act on calls ``deny``: it appends
an ``access_denied`` audit entry (the caller, the kind of object and its id, which exists, so
never an arbitrary value the caller typed) and commits it before the refusal is raised, so
the rollback of the refused request cannot take it away. The answer is ``not_visible``: the
same 404 whether the object is someone else's or does not exist, naming the parameter and
never repeating its value.

``ObjectId`` is how a path names an object: 1 to 200 printable ASCII characters, which every
id the hub makes or takes is. Anything else is refused (422) before it reaches a query, so no
NUL or other byte a database cannot compare gets that far.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import Path
from sqlalchemy.orm import Session

from gateway.api.problems import ProblemError
from gateway.bootstrap import Hub
from gateway.store import audit

if TYPE_CHECKING:  # auth's require_admin denies through here
    from gateway.api.auth import Caller

__all__ = ["ID_PATTERN", "ObjectId", "deny", "not_visible"]

ID_PATTERN: Final = r"^[\x21-\x7e]{1,200}$"  # printable ASCII, no space
ObjectId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The object's id (printable ASCII, no space).")
]


def deny(
    session: Session,
    hub: Hub,
    caller: Caller,
    resource: str,
    *,
    escalation_id: str | None = None,
    **ids: Any,
) -> None:
    """Audit (and commit) that ``caller`` was refused ``resource``, identified by ``ids``."""
    audit.append(
        session,
        at=hub.clock(),
        action="access_denied",
        actor=caller.actor,
        escalation_id=escalation_id,
        detail={"resource": resource, **ids},
    )
    session.commit()


def not_visible(what: str, parameter: str) -> ProblemError:
    """404 for an object the caller cannot see, naming the parameter, never its value."""
    detail = f"no such {what} visible to you; check '{parameter}'"
    return ProblemError(404, "Not found", detail, field=parameter)
