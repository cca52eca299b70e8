"""Delivery lanes: deliveries numbered in the order stored, and a lease per target.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

``deliveries.seq`` orders each lane (PostgreSQL: the sequence ``deliveries_seq``; SQLite: max
+ 1 under the write lock, see ``gateway.store.models.next_delivery_seq``). Rows stored before
this revision are numbered in their old order (``created_at``, then ``id``).
``delivery_lanes`` holds which delivery process works a target, and until when.

SQLite cannot make an added column NOT NULL in place, and rebuilding ``deliveries`` (a batch
copy) would trip the foreign key of ``delivery_attempts``; so there the column is added NOT NULL
with DEFAULT 0, a value the models never use (every insert through them numbers its row, and
the unique index refuses a second 0). Frozen like 0001: it never imports the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")
_NUMBER_OLD_ROWS = """
    UPDATE deliveries SET seq = numbered.n
    FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM deliveries) AS numbered
    WHERE deliveries.id = numbered.id
"""


def upgrade() -> None:
    """Add and fill ``deliveries.seq`` with its indexes; create ``delivery_lanes``."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE SEQUENCE deliveries_seq")
        op.add_column("deliveries", sa.Column("seq", sa.BigInteger(), nullable=True))
    else:
        column = sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0")
        op.add_column("deliveries", column)
    op.execute(_NUMBER_OLD_ROWS)
    if postgres:
        op.execute("SELECT setval('deliveries_seq', max(seq)) FROM deliveries HAVING count(*) > 0")
        op.alter_column("deliveries", "seq", nullable=False)
    op.create_index("ix_deliveries_seq", "deliveries", ["seq"], unique=True)
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["connector_id", "seq"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_table(
        "delivery_lanes",
        sa.Column("target", sa.String(length=2100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target"),
    )


def downgrade() -> None:
    """Drop the lanes, the indexes and the column (deliveries then go in stored-time order)."""
    op.drop_table("delivery_lanes")
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.drop_index("ix_deliveries_seq", table_name="deliveries")
    op.drop_column("deliveries", "seq")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE deliveries_seq")
