"""List plans: an index per list filter in list order, and fresh planner statistics.

* ``ix_sessions_lifecycle_created_at_id``: the ``lifecycle`` filter, in list order ``(created_at, id)``.
* ``ix_sessions_user_id_status_created_at_id``: a user's sessions of one status (the "my sessions" page), read
  in list order with no filtering.
* PostgreSQL: ``ANALYZE sessions`` afterwards, so the planner knows at once how selective each index is on a
  database upgraded with its sessions (autovacuum keeps the statistics current from then on). SQLite gets no
  ``ANALYZE``: its list queries name their index themselves (``INDEXED BY``) and depend on no statistics, and
  statistics taken now would go stale as the table grows, misleading the planner on the other queries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-13
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.create_index(op.f("ix_sessions_lifecycle_created_at_id"), ["lifecycle", "created_at", "id"])
        batch.create_index(op.f("ix_sessions_user_id_status_created_at_id"),
                           ["user_id", "status", "created_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE sessions")


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index(op.f("ix_sessions_user_id_status_created_at_id"))
        batch.drop_index(op.f("ix_sessions_lifecycle_created_at_id"))
