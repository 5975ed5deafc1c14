"""Trace context: the columns ``session_events.traceparent`` and ``session_events.tracestate``.

* ``traceparent`` (``VARCHAR(55)``) and ``tracestate`` (``VARCHAR(512)``), both nullable, without a default: the
  W3C Trace Context of the span current when the event was written (``SessionEvent.trace_context``), NULL for an
  event written outside any span — and for every event stored before this revision, which reads back with
  ``trace_context`` ``None``.
* Metadata only, on both databases: adding a nullable column without a default rewrites no row and scans
  nothing. PostgreSQL records the column in its catalog (rows stored before it read the new column as NULL, from
  the tuple's shorter attribute count: see PostgreSQL's ``ALTER TABLE`` notes, "adding a column with a volatile
  DEFAULT ... requires a rewrite"; without a default none is needed); it holds ACCESS EXCLUSIVE on
  ``session_events`` for that catalog change only, a time that does not grow with the table. SQLite's
  ``ALTER TABLE ... ADD COLUMN`` edits the table's schema text and leaves the rows as they are (a row with fewer
  columns reads the missing ones as their default, NULL). The frozen upgrade tests measure the locks
  (docs/upgrading.md).

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("session_events", sa.Column("traceparent", sa.String(length=55), nullable=True))
    op.add_column("session_events", sa.Column("tracestate", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session_events") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
