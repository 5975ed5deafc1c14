"""Lists in creation order: ``sessions.created_position`` and the list indexes on it.

* ``sessions.created_position``: the feed position of the session's ``created`` event (its version 1), the
  order lists are in (commit order: sessions created one after another list in that order, also within one
  millisecond and across processes). Filled here for every stored session from its version-1 event.
* A trigger sets it whichever path writes the rows: ``AFTER INSERT ON session_events FOR EACH ROW WHEN
  (NEW.version = 1)`` updates the session's row with the event's position (the stores insert the projection
  row before its events, in the same statement or transaction; a PostgreSQL ``AFTER`` row trigger runs at the
  end of the statement, so it sees the row a data-modifying CTE inserted in that statement).
* The list indexes ``(…, created_at, id)`` are replaced by ``(…, created_position)``: each list filter still
  reads one index in list order, forwards (oldest first) or backwards (newest first). On PostgreSQL, when the
  migration runs on its own transactions (``sessionflow`` upgrades so), the new indexes are built and the old
  ones dropped ``CONCURRENTLY``, after the column, its values and the trigger were committed: reads and writes
  go on meanwhile. Run inside a transaction of the caller's, they are built and dropped in it. Every statement
  can run again (``IF NOT EXISTS`` / ``IF EXISTS``): an upgrade interrupted between the two parts resumes.
* PostgreSQL: ``ANALYZE sessions`` afterwards, for the new indexes' statistics.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The list indexes: (name, columns), new and old.
_NEW = (
    ("ix_sessions_created_position", "created_position"),
    ("ix_sessions_status_created_position", "status, created_position"),
    ("ix_sessions_user_id_created_position", "user_id, created_position"),
    ("ix_sessions_workspace_id_created_position", "workspace_id, created_position"),
    ("ix_sessions_lifecycle_created_position", "lifecycle, created_position"),
    ("ix_sessions_user_id_status_created_position", "user_id, status, created_position"),
)
_OLD = (
    ("ix_sessions_created_at_id", "created_at, id"),
    ("ix_sessions_status_created_at_id", "status, created_at, id"),
    ("ix_sessions_user_id_created_at_id", "user_id, created_at, id"),
    ("ix_sessions_workspace_id_created_at_id", "workspace_id, created_at, id"),
    ("ix_sessions_lifecycle_created_at_id", "lifecycle, created_at, id"),
    ("ix_sessions_user_id_status_created_at_id", "user_id, status, created_at, id"),
)

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION sessionflow_created_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET created_position = NEW.position WHERE id = NEW.session_id;
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = ("CREATE TRIGGER sessionflow_created_position AFTER INSERT ON session_events FOR EACH ROW "
               "WHEN (NEW.version = 1) EXECUTE FUNCTION sessionflow_created_position()")
_SQLITE_TRIGGER = ("CREATE TRIGGER IF NOT EXISTS sessionflow_created_position AFTER INSERT ON session_events "
                   "FOR EACH ROW WHEN NEW.version = 1 BEGIN "
                   "UPDATE sessions SET created_position = NEW.position WHERE id = NEW.session_id; END")
#: An index of this name that an interrupted ``CREATE INDEX CONCURRENTLY`` left invalid.
_INVALID = ("SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid")
_FILL = ("UPDATE sessions SET created_position = e.position FROM session_events AS e "
         "WHERE e.session_id = sessions.id AND e.version = 1")


def _own_transactions() -> bool:
    """Whether the migration runs on transactions of its own (so it may commit and build ``CONCURRENTLY``),
    not inside one its caller opened."""
    return not getattr(op.get_context(), "_in_external_transaction", True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS created_position BIGINT")
        op.execute(_FILL)
        op.execute(_PG_FUNCTION)
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position ON session_events")
        op.execute(_PG_TRIGGER)
        if _own_transactions():
            with op.get_context().autocommit_block():
                for name, columns in _NEW:
                    if op.get_bind().execute(sa.text(_INVALID), {"name": name}).first() is not None:
                        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # left by an interrupted build
                    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON sessions ({columns})")
                for name, _columns in _OLD:
                    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        else:
            for name, columns in _NEW:
                op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON sessions ({columns})")
            for name, _columns in _OLD:
                op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("ANALYZE sessions")
        return
    op.execute("ALTER TABLE sessions ADD COLUMN created_position BIGINT")
    op.execute(_FILL)
    op.execute(_SQLITE_TRIGGER)
    for name, columns in _NEW:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON sessions ({columns})")
    for name, _columns in _OLD:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position ON session_events")
        op.execute("DROP FUNCTION IF EXISTS sessionflow_created_position()")
    else:
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position")
    for name, columns in _OLD:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON sessions ({columns})")
    for name, _columns in _NEW:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("created_position")
