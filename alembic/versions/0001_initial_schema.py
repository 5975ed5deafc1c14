"""Initial schema: the append-only session_events table and the sessions projection.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "session_events",
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("source_state", sa.String(length=64), nullable=True),
        sa.Column("target_state", sa.String(length=64), nullable=False),
        sa.Column("performer_id", sa.String(length=256), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_session_events")),
        sa.UniqueConstraint("session_id", "version", name=op.f("uq_session_events_session_id_version")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=True),
        sa.Column("workspace_id", sa.String(length=256), nullable=True),
        sa.Column("module_name", sa.String(length=256), nullable=True),
        sa.Column("total_files", sa.Integer(), nullable=False),
        sa.Column("processed_files", sa.Integer(), nullable=False),
        sa.Column("failed_files", sa.Integer(), nullable=False),
        sa.Column("current_file", sa.Text(), nullable=True),
        sa.Column("ttl_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("max_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_by", sa.String(length=256), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("due_at", sa.BigInteger(), nullable=True),
        sa.Column("data", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_created_at_id"), "sessions", ["created_at", "id"], unique=False)
    op.create_index(op.f("ix_sessions_due_at"), "sessions", ["due_at"], unique=False)
    op.create_index(op.f("ix_sessions_status_created_at"), "sessions", ["status", "created_at"], unique=False)
    op.create_index(op.f("ix_sessions_user_id_status"), "sessions", ["user_id", "status"], unique=False)
    op.create_index(op.f("ix_sessions_workspace_id_created_at"), "sessions", ["workspace_id", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_workspace_id_created_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_user_id_status"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_status_created_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_due_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_created_at_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("session_events")
