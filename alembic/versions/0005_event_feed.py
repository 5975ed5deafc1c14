"""The global event feed: every event gets a position increasing in commit order; feed consumers' positions.

* ``session_events.position`` (unique). Events already stored get positions in (timestamp, session id,
  version) order, from 1.
* PostgreSQL: a ``BEFORE INSERT`` trigger assigns the position of each new event from the sequence
  ``session_events_position_seq`` after taking a transaction-level advisory lock, so positions are handed out
  one transaction at a time, in commit order: a transaction that took position 8 cannot commit before the one
  that took 7, and a reader that has seen 8 will never see 7 appear. (A plain sequence would not do: two
  transactions can take 7 and 8 and commit 8 first.) SQLite needs no trigger: a write holds the database's
  write lock, and the inserts compute the position themselves.
* ``sessionflow_consumers``: each named consumer's position.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The advisory lock (the two-key form, a lock space of its own) that serializes position assignment.
FEED_LOCK = (1936942450, 1)  # "sess" as an integer, and the feed's number

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION sessionflow_event_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position IS NULL THEN
        -- One transaction at a time from here to its commit: positions follow commit order.
        PERFORM pg_advisory_xact_lock({FEED_LOCK[0]}, {FEED_LOCK[1]});
        NEW.position := nextval('session_events_position_seq');
    END IF;
    RETURN NEW;
END
$$
"""

_PG_TRIGGER = ("CREATE TRIGGER sessionflow_event_position BEFORE INSERT ON session_events "
               "FOR EACH ROW EXECUTE FUNCTION sessionflow_event_position()")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column("session_events", sa.Column("position", sa.BigInteger(), nullable=True))
    ordered = ("SELECT record_id, row_number() OVER (ORDER BY timestamp, session_id, version) AS rn "
               "FROM session_events")
    if postgres:
        op.execute(f"UPDATE session_events AS e SET position = r.rn FROM ({ordered}) AS r "
                   "WHERE e.record_id = r.record_id")
    else:
        op.execute(f"UPDATE session_events SET position = r.rn FROM ({ordered}) AS r "
                   "WHERE session_events.record_id = r.record_id")
    op.create_index("ix_session_events_position", "session_events", ["position"], unique=True)
    op.create_table(
        "sessionflow_consumers",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sessionflow_consumers")),
    )
    if postgres:
        op.execute("CREATE SEQUENCE session_events_position_seq AS bigint OWNED BY session_events.position")
        op.execute("SELECT setval('session_events_position_seq', "
                   "(SELECT coalesce(max(position), 0) + 1 FROM session_events), false)")
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS sessionflow_event_position ON session_events")
        op.execute("DROP FUNCTION IF EXISTS sessionflow_event_position()")
        op.execute("DROP SEQUENCE IF EXISTS session_events_position_seq")
    op.drop_table("sessionflow_consumers")
    op.drop_index("ix_session_events_position", table_name="session_events")
    with op.batch_alter_table("session_events") as batch:
        batch.drop_column("position")
