"""Lists in creation order: ``sessions.created_position`` and the list indexes on it.

* ``sessions.created_position``: the feed position of the session's ``created`` event (its version 1), the
  order lists are in (commit order: sessions created one after another list in that order, also within one
  millisecond and across processes). Filled here for every stored session from the version-1 events, in the
  order lists had until now (creation time, then id): the stored sessions' version-1 positions, sorted, are
  handed out in that order. So every list, and every cursor issued before, reads the sessions stored before
  the upgrade as it did (sessions of one millisecond stay in id order: what their readers saw); the sessions
  created from then on follow them, in commit order. (Only sessions created within one millisecond can have
  been written in another order than their ids': the others get their own event's position.)
* The stores' appends set it as they insert the session's row (SQLite: the position its ``created`` event is
  about to take under the write lock; PostgreSQL: a position the statement takes from the feed's sequence
  under the feed's lock and gives to that event), so a create writes the row once. Triggers are the net for
  every other writer — a process still running the code of before this revision during a rolling upgrade, a
  hand-written insert — and cost the stores' appends nothing. PostgreSQL: ``BEFORE INSERT ON sessions FOR
  EACH ROW WHEN (NEW.created_position IS NULL)`` (a condition checked without calling a function) reserves
  the next feed position for the row, under the feed's lock, and the events' position function (revision
  0005's, replaced here) gives a ``created`` event inserted without a position the one its session reserved
  (the row is inserted before its events: in an earlier statement, or earlier in the same statement, whose
  changes a row trigger sees). SQLite: ``AFTER INSERT ON session_events FOR EACH ROW WHEN NEW.version = 1``
  sets it where it is still unset (a key lookup and no write for the stores' appends).
* The list indexes ``(…, created_at, id)`` are replaced by ``(…, created_position)``: each list filter still
  reads one index in list order, forwards (oldest first) or backwards (newest first). On PostgreSQL, when the
  migration runs on its own transactions (``sessionflow`` upgrades so), the column and the trigger are
  committed first (a brief ACCESS EXCLUSIVE lock), then the values are filled by one ``UPDATE`` in its own
  transaction (reads and new sessions go on; a write to a stored session waits for it), and the new indexes
  are built and the old ones dropped ``CONCURRENTLY`` (reads and writes go on). Run inside a transaction of
  the caller's, everything runs in it. Every statement can run again (``IF NOT EXISTS`` / ``IF EXISTS``, an
  index left invalid by an interrupted build is dropped first): an interrupted upgrade resumes.
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

#: The feed's advisory lock (revision 0005's ``FEED_LOCK``: positions are handed out one transaction at a time).
_FEED_LOCK = "pg_advisory_xact_lock(1936942450, 1)"
#: A session row inserted without its list order reserves the next feed position for its ``created`` event.
_PG_RESERVE = f"""
CREATE OR REPLACE FUNCTION sessionflow_created_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {_FEED_LOCK};
    NEW.created_position := nextval('session_events_position_seq');
    RETURN NEW;
END
$$
"""
_PG_TRIGGER = ("CREATE TRIGGER sessionflow_created_position BEFORE INSERT ON sessions FOR EACH ROW "
               "WHEN (NEW.created_position IS NULL) EXECUTE FUNCTION sessionflow_created_position()")


def _event_position(created: str) -> str:
    """Revision 0005's event-position function, with ``created`` run for a ``created`` event given no position."""
    return f"""
CREATE OR REPLACE FUNCTION sessionflow_event_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS NULL THEN
        -- One transaction at a time from here to its commit: positions follow commit order.
        PERFORM {_FEED_LOCK};{created}
        IF NEW.position IS NULL THEN
            NEW.position := nextval('session_events_position_seq');
        END IF;
    END IF;
    RETURN NEW;
END
$$
"""


#: A ``created`` event inserted without its position takes the one its session's row reserved (if no event holds
#: it already: a row written with another session's value keeps it, and the event takes a position of its own).
_PG_EVENT_POSITION = _event_position("""
        IF NEW.version = 1 THEN
            SELECT s.created_position INTO NEW.position FROM sessions AS s WHERE s.id = NEW.session_id
            AND NOT EXISTS (SELECT 1 FROM session_events AS e WHERE e.position = s.created_position);
        END IF;""")
_SQLITE_TRIGGER = ("CREATE TRIGGER IF NOT EXISTS sessionflow_created_position AFTER INSERT ON session_events "
                   "FOR EACH ROW WHEN NEW.version = 1 BEGIN "
                   "UPDATE sessions SET created_position = NEW.position "
                   "WHERE id = NEW.session_id AND created_position IS NULL; END")
#: An index of this name that an interrupted ``CREATE INDEX CONCURRENTLY`` left invalid.
_INVALID = ("SELECT 1 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid")
#: The stored sessions' version-1 positions, sorted, handed out in the order lists had: creation time, then id.
_FILL = ("UPDATE sessions SET created_position = r.position FROM ("
         "SELECT o.id, p.position FROM "
         "(SELECT s.id, row_number() OVER (ORDER BY s.created_at, s.id) AS n FROM sessions AS s "
         "JOIN session_events AS e ON e.session_id = s.id AND e.version = 1) AS o "
         "JOIN (SELECT e.position, row_number() OVER (ORDER BY e.position) AS n FROM session_events AS e "
         "JOIN sessions AS s ON s.id = e.session_id WHERE e.version = 1) AS p ON p.n = o.n) AS r "
         "WHERE sessions.id = r.id")


def _own_transactions() -> bool:
    """Whether the migration runs on transactions of its own (so it may commit and build ``CONCURRENTLY``),
    not inside one its caller opened."""
    return not getattr(op.get_context(), "_in_external_transaction", True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS created_position BIGINT")
        op.execute(_PG_RESERVE)
        op.execute(_PG_EVENT_POSITION)
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position ON session_events")
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position ON sessions")
        op.execute(_PG_TRIGGER)
        if _own_transactions():
            with op.get_context().autocommit_block():  # the column and the trigger are committed from here
                op.execute(_FILL)  # one statement, its own transaction: reads and new sessions go on
                for name, columns in _NEW:
                    if op.get_bind().execute(sa.text(_INVALID), {"name": name}).first() is not None:
                        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # left by an interrupted build
                    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON sessions ({columns})")
                for name, _columns in _OLD:
                    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        else:
            op.execute(_FILL)
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
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position ON sessions")
        op.execute(_event_position(""))
        op.execute("DROP FUNCTION IF EXISTS sessionflow_created_position()")
    else:
        op.execute("DROP TRIGGER IF EXISTS sessionflow_created_position")
    for name, columns in _OLD:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON sessions ({columns})")
    for name, _columns in _NEW:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("created_position")
