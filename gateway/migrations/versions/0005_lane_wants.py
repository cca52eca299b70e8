"""Delivery lanes: a delivery process may ask for a lane another one holds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

``delivery_lanes.wanted_by`` names a dispatcher that wants the lane (it holds fewer lanes than
the holder), until ``wanted_until``; the holder hands its lease over between two deliveries,
so the lanes spread over the delivery processes. Both columns are empty on every row at first:
nobody wants a lane yet. Plain added nullable columns: SQLite adds them in place. Frozen like
0001: it never imports the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``delivery_lanes.wanted_by`` and ``wanted_until``."""
    op.add_column("delivery_lanes", sa.Column("wanted_by", sa.String(length=200), nullable=True))
    op.add_column(
        "delivery_lanes", sa.Column("wanted_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    """Drop the columns (a lane then stays with its holder while it has work, as before)."""
    op.drop_column("delivery_lanes", "wanted_until")
    op.drop_column("delivery_lanes", "wanted_by")
