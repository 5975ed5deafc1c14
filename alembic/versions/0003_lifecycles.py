"""Sessions record their lifecycle definition; a state without a timeout has no deadline.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("lifecycle", sa.String(length=128), nullable=False, server_default="session"))
        batch.add_column(sa.Column("lifecycle_version", sa.Integer(), nullable=False, server_default="1"))
        batch.alter_column("expires_at", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("expires_at", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column("lifecycle_version")
        batch.drop_column("lifecycle")
