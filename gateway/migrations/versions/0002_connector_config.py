"""Connector config: the kind's settings in clear, its secret fields sealed apart.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Existing connectors get an empty config (``{}``), which every built-in connector accepts.
Frozen like 0001: it never imports the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``connectors.config`` (JSON, default ``{}``) and ``config_secrets_sealed``."""
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(
            sa.Column("config", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )
        batch.add_column(sa.Column("config_secrets_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Drop both columns (the connectors keep working as their kind's defaults)."""
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("config_secrets_sealed")
        batch.drop_column("config")
