"""What ``decide()`` returns: the new state, the effects, and the rule that fired."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.envelope import HubEvent
from schemas.escalation import Escalation
from schemas.updates import Effect

__all__ = ["Decision"]


class Decision(BaseModel):
    """One decision. ``accepted`` is False when the event was refused or had nothing to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accepted: bool
    escalation: Escalation | None
    effects: tuple[Effect, ...] = ()
    facts: tuple[HubEvent, ...] = ()
    rule: str
    clause: str
    procedure_id: str
    procedure_version: str
