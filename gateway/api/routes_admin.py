"""Registering agencies (administrator only) and reading one back."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from gateway.api.access import ObjectId, deny, not_visible
from gateway.api.auth import CREDENTIAL_PREFIX, AdminDep, CallerDep, HubDep, SessionDep
from gateway.api.problems import ProblemError, problem_responses
from gateway.store import audit
from gateway.store.models import Agency
from router import procedures
from schemas.common import AgencyKind
from schemas.people import AgencyId
from security.credentials import credential_id, new_credential

__all__ = ["AgencyCreated", "AgencyIn", "AgencyOut", "agency_out", "router"]

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/agencies", tags=["agencies"], responses=problem_responses(422))

Email = Annotated[
    str, StringConstraints(max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
]


class AgencyIn(BaseModel):
    """An agency, or a partnership's business office, to register."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "id": "nhft-health",
                "name": "Northamptonshire Healthcare NHS Foundation Trust",
                "kind": "health",
                "partnerships": ["northamptonshire"],
                "notify_email": "safeguarding@nhft.example",
            }
        },
    )

    id: AgencyId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    kind: AgencyKind
    partnerships: Annotated[list[str], Field(min_length=1, max_length=20)]
    notify_email: Email | None = None


class AgencyOut(BaseModel):
    """A registered agency, without its credential."""

    id: str
    name: str
    kind: str
    partnerships: list[str]
    notify_email: str | None
    created_at: datetime


class AgencyCreated(AgencyOut):
    """The new agency and its credential: shown once, keep it in a secret store."""

    credential: str = Field(description="Bearer token for this agency; shown only this once.")


def agency_out(row: Agency) -> AgencyOut:
    """The public view of an agency row."""
    return AgencyOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        partnerships=list(row.partnerships.get("ids", [])),
        notify_email=row.notify_email,
        created_at=row.created_at,
    )


def _check_partnerships(ids: list[str]) -> None:
    known = sorted({procedure_id for procedure_id, _ in procedures.available()})
    for index, partnership in enumerate(ids):
        if partnership not in known:
            raise ProblemError(
                422,
                "Unknown partnership",
                f"no procedure is loaded for this partnership; known: {', '.join(known)}",
                field=f"partnerships[{index}]",
                known=known,
            )


@router.post(
    "",
    status_code=201,
    summary="Register an agency or business office",
    responses=problem_responses(401, 403, 409, 422),
)
def register_agency(
    body: AgencyIn, caller: AdminDep, hub: HubDep, session: SessionDep
) -> AgencyCreated:
    """Register an agency and return its credential, shown once."""
    _check_partnerships(body.partnerships)
    if session.get(Agency, body.id) is not None:
        raise _exists()
    token, stored = new_credential(CREDENTIAL_PREFIX)
    now = hub.clock()
    row = Agency(
        id=body.id,
        name=body.name,
        kind=body.kind.value,
        partnerships={"ids": sorted(set(body.partnerships))},
        notify_email=body.notify_email,
        credential_id=credential_id(token),
        credential_hash=stored,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()  # a concurrent registration of the same id fails here
        audit.append(
            session,
            at=now,
            action="agency_registered",
            actor=caller.actor,
            escalation_id=None,
            detail={"agency_id": body.id, "kind": row.kind},
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _exists() from None
    logger.info("agency registered", extra={"agency_id": body.id, "kind": row.kind})
    return AgencyCreated(**agency_out(row).model_dump(), credential=token)


@router.get(
    "/{agency_id}",
    summary="Read an agency",
    responses=problem_responses(401, 404),
)
def read_agency(
    agency_id: ObjectId, caller: CallerDep, hub: HubDep, session: SessionDep
) -> AgencyOut:
    """Return an agency (to the administrator or the agency itself)."""
    row = session.get(Agency, agency_id)
    if row is not None and not (caller.is_admin or caller.agency_id == row.id):
        deny(session, hub, caller, "agency", agency_id=row.id)
        row = None
    if row is None:
        raise not_visible("agency", "agency_id")
    return agency_out(row)


def _exists() -> ProblemError:
    return ProblemError(
        409,
        "Agency exists",
        "an agency with this id is already registered; choose another id",
        field="id",
    )
