"""The generic path's SQL: the statements the store runs through SQLAlchemy Core, dialect-neutral, and the
functions that run the longer ones on a :class:`~sqlalchemy.Connection`.

The SQLite and PostgreSQL recorders run their hot paths (an append, a primary-key read, a sweep batch) as
hand-written SQL on the driver connection (``driver.py``, ``sqlite.py``, ``postgres.py``); everything else
runs here: reads and queries, the lookups of a write's outcome, and the maintenance streams. (Apart from
``persistence.py``, which runs them in transactions, with retries and a read cache, so that each module stays
short and the store's class reads as the machinery it is.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Delete, Select, bindparam, delete, func, insert, select, text, tuple_

from sessionflow.adapters.sqlalchemy.layout import column_index
from sessionflow.adapters.sqlalchemy.listing import query_statement  # the list query lives there
from sessionflow.adapters.sqlalchemy.rows import event_from_row, session_from_row, session_row
from sessionflow.adapters.sqlalchemy.tables import consumers, idempotency_keys, session_events, sessions, to_millis
from sessionflow.domain.models import Session, SessionEvent

__all__ = [
    "COUNT_BY_STATUS",
    "EVENT_FIELDS",
    "LAST_POSITION",
    "SAVE_CONSUMER_POSITION",
    "NEXT_DEADLINE",
    "SESSION_FIELDS",
    "SESSION_IDS",
    "VERSION",
    "actual_version",
    "count_statement",
    "drop_keys_statement",
    "due_statement",
    "event_exists",
    "existing_events",
    "existing_sessions",
    "events_after",
    "read_consumer_position",

    "history_statement",
    "query_statement",
    "replace_rows",
    "session_statement",
    "stream_histories",
    "stream_projections",
]

#: Every column of ``sessions`` / ``session_events``, as selected (in table order; not ``created_position``,
#: the list order the database sets, which is no field of a session).
SESSION_FIELDS = tuple(c for c in sessions.c if c.name != "created_position")
EVENT_FIELDS = tuple(session_events.c)
#: The place of ``version`` in a ``sessions`` row.
VERSION = column_index("version")



def actual_version(conn: Connection, session_id: UUID) -> int | None:
    """The stored version of a session (``None``: no such session)."""
    return conn.execute(select(sessions.c.version).where(sessions.c.id == session_id)).scalar()


def events_after(after: int, limit: int, user_id: str | None = None) -> Select[Any]:
    """Up to ``limit`` events with a feed position above ``after``, in position order; with ``user_id``, only
    the events of that user's sessions."""
    stmt = select(*EVENT_FIELDS).where(session_events.c.position > after)
    if user_id is not None:
        stmt = stmt.where(session_events.c.session_id.in_(
            select(sessions.c.id).where(sessions.c.user_id == user_id)))
    return stmt.order_by(session_events.c.position).limit(limit)


#: The highest feed position (0: no event yet).
LAST_POSITION = select(func.coalesce(func.max(session_events.c.position), 0))


def read_consumer_position(conn: Connection, name: str) -> int:
    """The stored position of the consumer ``name`` (0: none stored)."""
    found = conn.execute(select(consumers.c.position).where(consumers.c.name == name)).scalar()
    return 0 if found is None else int(found)


def read_consumer_positions(conn: Connection) -> dict[str, int]:
    """The stored position of every consumer that has one."""
    return {str(name): int(position) for name, position in conn.execute(
        select(consumers.c.name, consumers.c.position)).all()}


#: Store a consumer's position, never moving it back (one statement: SQLite and PostgreSQL both upsert).
SAVE_CONSUMER_POSITION = text(
    "INSERT INTO sessionflow_consumers (name, position, updated_at) VALUES (:name, :position, :now) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at "
    "WHERE sessionflow_consumers.position < excluded.position")


def event_exists(conn: Connection, record_id: UUID) -> bool:
    """Whether the event with this record id is stored."""
    found = conn.execute(select(session_events.c.version).where(session_events.c.record_id == record_id)).first()
    return found is not None


def existing_events(conn: Connection, record_ids: Sequence[UUID]) -> set[UUID]:
    """Which of ``record_ids`` are stored (looked up 500 at a time)."""
    ids = list(record_ids)
    found: set[UUID] = set()
    for start in range(0, len(ids), 500):
        found.update(conn.execute(select(session_events.c.record_id).where(
            session_events.c.record_id.in_(ids[start:start + 500]))).scalars())
    return found


def existing_sessions(conn: Connection, session_ids: Sequence[UUID]) -> set[UUID]:
    """Which of ``session_ids`` have a projection row (looked up 500 at a time)."""
    ids = list(session_ids)
    found: set[UUID] = set()
    for start in range(0, len(ids), 500):
        found.update(conn.execute(select(sessions.c.id).where(sessions.c.id.in_(ids[start:start + 500]))).scalars())
    return found


def session_statement(session_id: UUID) -> Select[Any]:
    """One session's projection row."""
    return select(*SESSION_FIELDS).where(sessions.c.id == session_id)


def history_statement(session_id: UUID) -> Select[Any]:
    """One session's events, oldest first."""
    return select(*EVENT_FIELDS).where(session_events.c.session_id == session_id).order_by(session_events.c.version)


def count_statement(status: str | None) -> Select[Any]:
    """How many sessions (not deleted) there are, optionally of one status."""
    stmt = select(func.count()).select_from(sessions).where(sessions.c.deleted_at.is_(None))
    if status is not None:
        stmt = stmt.where(sessions.c.status == str(status))
    return stmt


#: How many sessions (not deleted) are in each status; the earliest deadline; whether one is due; every id.
COUNT_BY_STATUS = (select(sessions.c.status, func.count()).where(sessions.c.deleted_at.is_(None))
                   .group_by(sessions.c.status))
NEXT_DEADLINE = select(func.min(sessions.c.due_at))
SESSION_IDS = select(session_events.c.session_id).distinct()


def due_statement(now: datetime) -> Select[Any]:
    """The deadline of one live session due at or before ``now`` (no row: none is due).

    Written as the first row of the ``due_at`` index in its order, not as ``EXISTS (... due_at <= :now)``: a
    prepared statement's generic plan (psycopg prepares a statement run five times) may scan the whole table
    for the latter when no row matches; the ordered, limited read walks the index under any plan."""
    return (select(sessions.c.due_at).where(sessions.c.due_at <= to_millis(now))
            .order_by(sessions.c.due_at).limit(1))


def drop_keys_statement(now: datetime, limit: int) -> Delete:
    """Remove up to ``limit`` idempotency keys that expired at or before ``now``, the earliest first (a range
    of the ``expires_at`` index)."""
    expired = (select(idempotency_keys.c.scope, idempotency_keys.c.key)
               .where(idempotency_keys.c.expires_at <= to_millis(now))
               .order_by(idempotency_keys.c.expires_at).limit(limit))
    return delete(idempotency_keys).where(tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(expired))


def stream_histories(conn: Connection, batch_size: int) -> Iterator[list[SessionEvent]]:
    """Every session's full history, one list per session, streamed in session-id order."""
    result = conn.execution_options(yield_per=batch_size).execute(
        select(*EVENT_FIELDS).order_by(session_events.c.session_id, session_events.c.version))
    current: list[SessionEvent] = []
    for row in result:
        event_ = event_from_row(row)
        if current and current[0].session_id != event_.session_id:
            yield current
            current = []
        current.append(event_)
    if current:
        yield current


def stream_projections(conn: Connection, batch_size: int) -> Iterator[Session]:
    """Every projection row (deleted ones included), streamed in id order."""
    result = conn.execution_options(yield_per=batch_size).execute(select(*SESSION_FIELDS).order_by(sessions.c.id))
    for row in result:
        yield session_from_row(row)


#: A rebuilt projection row, with its list order: the feed position of its session's ``created`` event (version 1).
_INSERT_REBUILT = insert(sessions).values(created_position=select(session_events.c.position).where(
    session_events.c.session_id == bindparam("created_of", type_=sessions.c.id.type),
    session_events.c.version == 1).scalar_subquery())


def replace_rows(conn: Connection, rebuilt: Iterable[Session], batch_size: int) -> int:
    """Delete every projection row and insert ``rebuilt`` instead (in the caller's transaction), each with its
    list order."""
    conn.execute(delete(sessions))
    count = 0
    batch: list[dict[str, Any]] = []
    for session in rebuilt:
        row = session_row(session)
        row["created_of"] = row["id"]
        batch.append(row)
        if len(batch) >= batch_size:
            conn.execute(_INSERT_REBUILT, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(_INSERT_REBUILT, batch)
        count += len(batch)
    return count
