"""Events as an agency's case system sends them: synthetic, no real child or narrative."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["PARTNERSHIP", "discussion_event", "raised_event"]

PARTNERSHIP = "northamptonshire"


def _actor(agency_id: str) -> dict[str, str]:
    return {"agency_id": agency_id, "name": f"Practitioner ({agency_id})", "role": "practitioner"}


def raised_event(by: str, parties: Mapping[str, str], *, ref: str) -> dict[str, Any]:
    """A ``raised`` event naming every party (agency id -> kind); no real child data."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:reliability:{by}",
        "type": "uk.escalation-hub.v1.raised",
        "time": datetime.now(UTC).isoformat(),
        "agencyref": ref,
        "data": {
            "partnership": PARTNERSHIP,
            "raised_by": _actor(by),
            "parties": [
                {"agency_id": a, "kind": k, "case_reference": f"{a.upper()}-{ref}"}
                for a, k in parties.items()
            ],
            "child": {"identifiers": {"local_ids": {"reliability": ref}}},
            "concern_categories": ["thresholds"],
            "summary": "Synthetic disagreement for the reliability suite.",
        },
    }


def discussion_event(
    by: str, subject: str, *, ref: str, when: datetime | None = None
) -> dict[str, Any]:
    """A ``discussion_recorded`` action: always accepted, one stage update to every party."""
    moment = when or datetime.now(UTC)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:reliability:{by}",
        "type": "uk.escalation-hub.v1.discussion_recorded",
        "time": moment.isoformat(),
        "subject": subject,
        "agencyref": ref,
        "data": {
            "by": _actor(by),
            "held_at": (moment - timedelta(hours=1)).isoformat(),
            "method": "telephone",
            "summary": "Synthetic discussion for the reliability suite.",
        },
    }
