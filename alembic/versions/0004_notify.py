"""PostgreSQL triggers that announce new or earlier deadlines and new events with NOTIFY.

Every transaction that writes a session deadline or appends events sends a notification, delivered only
when it commits, whichever code path wrote the rows:

* ``sessionflow_deadline``: a row of ``sessions`` is inserted with a ``due_at``, or its ``due_at`` goes from
  NULL to a value or becomes earlier; the payload is the new ``due_at`` (epoch milliseconds, as text).
  PostgreSQL folds identical notifications of one transaction into one.
* ``sessionflow_events``: a statement inserted rows into ``session_events``; the payload is empty.

SQLite has no NOTIFY (its watchers poll ``PRAGMA data_version``): on SQLite this revision does nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPGRADE = (
    """
    CREATE OR REPLACE FUNCTION sessionflow_notify_deadline() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('sessionflow_deadline', NEW.due_at::text);
        RETURN NULL;
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION sessionflow_notify_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('sessionflow_events', '');
        RETURN NULL;
    END;
    $$
    """,
    "DROP TRIGGER IF EXISTS sessionflow_deadline_insert ON sessions",
    """
    CREATE TRIGGER sessionflow_deadline_insert
    AFTER INSERT ON sessions
    FOR EACH ROW
    WHEN (NEW.due_at IS NOT NULL)
    EXECUTE FUNCTION sessionflow_notify_deadline()
    """,
    "DROP TRIGGER IF EXISTS sessionflow_deadline_update ON sessions",
    """
    CREATE TRIGGER sessionflow_deadline_update
    AFTER UPDATE OF due_at ON sessions
    FOR EACH ROW
    WHEN (NEW.due_at IS NOT NULL AND (OLD.due_at IS NULL OR NEW.due_at < OLD.due_at))
    EXECUTE FUNCTION sessionflow_notify_deadline()
    """,
    "DROP TRIGGER IF EXISTS sessionflow_events_insert ON session_events",
    """
    CREATE TRIGGER sessionflow_events_insert
    AFTER INSERT ON session_events
    FOR EACH STATEMENT
    EXECUTE FUNCTION sessionflow_notify_events()
    """,
)

_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS sessionflow_events_insert ON session_events",
    "DROP TRIGGER IF EXISTS sessionflow_deadline_update ON sessions",
    "DROP TRIGGER IF EXISTS sessionflow_deadline_insert ON sessions",
    "DROP FUNCTION IF EXISTS sessionflow_notify_events()",
    "DROP FUNCTION IF EXISTS sessionflow_notify_deadline()",
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in _DOWNGRADE:
        op.execute(statement)
