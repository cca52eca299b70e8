"""Initial schema: every table of gateway.store.models at the first release.

Revision ID: 0001
Revises:
Create Date: 2024-11-22

Frozen on purpose: this file never imports the models, so later model changes need a new
revision. Column types mirror the models' (``UTCDateTime`` stores ``DateTime(timezone=True)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrement needs INTEGER
AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table, parents before children."""
    _agencies_and_connectors()
    _escalations()
    _messaging()
    _deliveries()
    _audit()


def downgrade() -> None:
    """Drop every table, children before parents."""
    for table in (
        "audit_checkpoints",
        "audit_head",
        "audit_log",
        "notifications",
        "delivery_attempts",
        "deliveries",
        "processed_messages",
        "outbox",
        "deadlines",
        "inbound_events",
        "parties",
        "escalations",
        "idempotent_responses",
        "connectors",
        "agencies",
    ):
        op.drop_table(table)


def _index(table: str, *columns: str, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{columns[0]}"), table, list(columns), unique=False)


def _agencies_and_connectors() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("partnerships", sa.JSON(), nullable=False),
        sa.Column("notify_email", sa.String(length=320), nullable=True),
        sa.Column("credential_id", sa.String(length=64), nullable=False),
        sa.Column("credential_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id", name="uq_agencies_credential_id"),
    )
    op.create_table(
        "connectors",
        sa.Column("id", ID, nullable=False),
        sa.Column("agency_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.String(length=2000), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("secrets_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("connectors", "agency_id")
    op.create_table(
        "idempotent_responses",
        sa.Column("connector_id", ID, nullable=False),
        sa.Column("webhook_id", sa.String(length=200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("connector_id", "webhook_id"),
    )


def _escalations() -> None:
    op.create_table(
        "escalations",
        sa.Column("id", ID, nullable=False),
        sa.Column("partnership", sa.String(length=64), nullable=False),
        sa.Column("procedure_id", sa.String(length=64), nullable=False),
        sa.Column("procedure_version", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("child_pseudonym", sa.String(length=128), nullable=True),
        sa.Column("state_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("applied_seq", sa.Integer(), nullable=False),
        sa.Column("opened_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("escalations", "child_pseudonym")
    _index("escalations", "partnership")
    op.create_table(
        "parties",
        sa.Column("escalation_id", ID, nullable=False),
        sa.Column("agency_id", ID, nullable=False),
        sa.Column("case_reference", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalations.id"]),
        sa.PrimaryKeyConstraint("escalation_id", "agency_id"),
    )
    _index("parties", "agency_id")
    _index("parties", "agency_id", "case_reference", name="ix_parties_reference")
    op.create_table(
        "inbound_events",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("escalation_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("connector_id", ID, nullable=True),
        sa.Column("agency_id", ID, nullable=True),
        sa.Column("body_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", AT, nullable=False),
        sa.Column("decided_at", AT, nullable=True),
        sa.Column("outcome", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalations.id"]),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("escalation_id", "seq", name="uq_inbound_escalation_seq"),
        sa.UniqueConstraint("source", "event_id", name="uq_inbound_source_id"),
    )
    op.create_index(
        "ix_inbound_undecided",
        "inbound_events",
        ["escalation_id"],
        unique=False,
        postgresql_where=sa.text("decided_at IS NULL"),
        sqlite_where=sa.text("decided_at IS NULL"),
    )
    op.create_table(
        "deadlines",
        sa.Column("escalation_id", ID, nullable=False),
        sa.Column("deadline_id", sa.String(length=64), nullable=False),
        sa.Column("due", AT, nullable=False),
        sa.Column("notice_at", AT, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("calendar_version", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalations.id"]),
        sa.PrimaryKeyConstraint("escalation_id", "deadline_id"),
    )
    _index("deadlines", "due", name="ix_deadlines_due")
    _index("deadlines", "notice_at", name="ix_deadlines_notice")


def _messaging() -> None:
    op.create_table(
        "outbox",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("routing_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("published_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    _index("outbox", "published_at", "pk", name="ix_outbox_unpublished")
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("processed_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
    )


def _deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("escalation_id", ID, nullable=False),
        sa.Column("connector_id", ID, nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("document_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("finished_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("deliveries", "connector_id")
    _index("deliveries", "escalation_id")
    _index("deliveries", "status")
    op.create_table(
        "delivery_attempts",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("attempted_at", AT, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    _index("delivery_attempts", "delivery_id")
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("escalation_id", ID, nullable=False),
        sa.Column("partnership", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("clause", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("immediate", sa.Boolean(), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("notifications", "escalation_id")
    _index("notifications", "partnership")


def _audit() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", PK, autoincrement=True, nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("escalation_id", ID, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    _index("audit_log", "escalation_id")
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", PK, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", PK, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
