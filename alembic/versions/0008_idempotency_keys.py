"""Idempotency keys: the table ``idempotency_keys``.

* ``idempotency_keys``: the key of each keyed write, written in the write's own transaction — ``scope`` and
  ``key`` (the primary key: one key per scope), ``fingerprint`` (the request's), ``session_id`` and ``version``
  (what the write left), ``created_at`` and ``expires_at`` (epoch milliseconds, like every time of the schema);
  an index on ``expires_at`` (dropping the expired keys). No index on ``session_id``: a purge finds the keys of
  the sessions it removes by a scan of this table (it holds at most one window of keyed writes), where an index
  would cost every keyed write. On SQLite the table is ``WITHOUT ROWID`` (its rows live in the primary key's
  b-tree): a keyed write adds two b-trees to its commit (the key's and the ``expires_at`` index), not four.
* A new, empty table: no existing table is read, written or locked, so the revision takes no time whatever the
  database holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
