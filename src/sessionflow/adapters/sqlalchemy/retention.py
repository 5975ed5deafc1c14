"""The purge of closed sessions on SQL (SQLAlchemy Core, every dialect): one batch in one transaction.

See :mod:`sessionflow.application.retention` for what is purged and why. A batch removes each session's
projection row with a compare-and-set on the version the purge read (``DELETE ... WHERE id = ? AND version = ?``)
and, only for the rows that matched, its events and its idempotency keys, so a session a writer changed meanwhile
stays whole. The
session holding the feed's newest event is kept: SQLite numbers a new event ``max(position) + 1``, which must
never hand out a number a consumer has already seen. Runs inside the store's write transaction (SQLite: ``BEGIN
IMMEDIATE``, so no writer runs in between; PostgreSQL: a writer that updates a removed row waits for the commit
and then finds no row, so its version check fails).
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from sqlalchemy import Connection, delete, func, select

from sessionflow.adapters.sqlalchemy.tables import idempotency_keys, session_events, sessions

__all__ = ["purge_rows"]

_CHUNK = 500

#: The session holding the feed's newest event (an index lookup on ``position``).
_NEWEST = select(session_events.c.session_id).where(
    session_events.c.position == select(func.max(session_events.c.position)).scalar_subquery())


def purge_rows(conn: Connection, expected: Mapping[UUID, int]) -> list[UUID]:
    """Remove the events, the projection row and the idempotency keys of each session of ``expected`` still at the
    version given, except the session holding the newest event; returns the ids removed. Call it inside a
    transaction."""
    newest = conn.execute(_NEWEST).scalar()
    removed: list[UUID] = []
    for sid, version in expected.items():
        if sid == newest:
            continue
        result = conn.execute(delete(sessions).where(sessions.c.id == sid, sessions.c.version == version))
        if result.rowcount == 1:
            removed.append(sid)
    for start in range(0, len(removed), _CHUNK):
        chunk = removed[start:start + _CHUNK]
        conn.execute(delete(session_events).where(session_events.c.session_id.in_(chunk)))
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.session_id.in_(chunk)))
    return removed
