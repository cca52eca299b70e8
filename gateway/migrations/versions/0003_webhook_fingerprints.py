"""Webhook fingerprints: the SHA-256 of the first signed body under each connector's webhook id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

A ``webhook-id`` reused with a different body is refused (409) against this table. Webhook ids
accepted before this revision have no fingerprint: their repeats keep the first answer, as
before. Frozen like 0001: it never imports the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``webhook_fingerprints`` and its index on ``created_at`` (for pruning)."""
    op.create_table(
        "webhook_fingerprints",
        sa.Column("connector_id", sa.String(length=64), nullable=False),
        sa.Column("webhook_id", sa.String(length=256), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector_id", "webhook_id"),
    )
    op.create_index(
        op.f("ix_webhook_fingerprints_created_at"),
        "webhook_fingerprints",
        ["created_at"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the table (repeats then keep only the first answer, as before)."""
    op.drop_index(op.f("ix_webhook_fingerprints_created_at"), table_name="webhook_fingerprints")
    op.drop_table("webhook_fingerprints")
