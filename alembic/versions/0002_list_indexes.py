"""List indexes in list order: (status | user_id | workspace_id, created_at, id).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_sessions_status_created_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_user_id_status"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_workspace_id_created_at"), table_name="sessions")
    op.create_index(op.f("ix_sessions_status_created_at_id"), "sessions", ["status", "created_at", "id"])
    op.create_index(op.f("ix_sessions_user_id_created_at_id"), "sessions", ["user_id", "created_at", "id"])
    op.create_index(op.f("ix_sessions_workspace_id_created_at_id"), "sessions", ["workspace_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_workspace_id_created_at_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_user_id_created_at_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_status_created_at_id"), table_name="sessions")
    op.create_index(op.f("ix_sessions_workspace_id_created_at"), "sessions", ["workspace_id", "created_at"])
    op.create_index(op.f("ix_sessions_user_id_status"), "sessions", ["user_id", "status"])
    op.create_index(op.f("ix_sessions_status_created_at"), "sessions", ["status", "created_at"])
