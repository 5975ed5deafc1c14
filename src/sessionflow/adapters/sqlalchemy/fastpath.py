"""The hot path of the SQL store, on the driver connection: one append, one primary-key read.

SQLAlchemy Core builds and compiles statements generically; on the two operations every transition does,
that costs more than the database work. Here the SQL is written once per dialect and run on the pooled
driver connection (the pool, its checkout and its reset still belong to SQLAlchemy):

* SQLite: ``BEGIN IMMEDIATE``; insert or compare-and-set update of the projection; insert the events;
  ``COMMIT``. All on one in-process connection, no round trips.
* PostgreSQL: ONE statement in autocommit mode — a data-modifying CTE inserts or updates the projection
  (``WHERE version = expected``) and the events are inserted only if it matched — so a transition costs
  one round trip and is still atomic.

The row formats are exactly those of :mod:`sessionflow.adapters.sqlalchemy.tables` (UUIDs as 32-digit hex
text on SQLite, native on PostgreSQL; JSON as text / JSONB; times as epoch milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sessionflow.adapters.sqlalchemy.tables import session_events, sessions, to_millis
from sessionflow.domain.models import SessionEvent
from sessionflow.domain.values import compact_json

__all__ = ["FastSql", "fast_sql_for"]

SESSION_COLUMNS: tuple[str, ...] = tuple(c.name for c in sessions.c)
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in session_events.c)
_ID = SESSION_COLUMNS.index("id")
_DATA = SESSION_COLUMNS.index("data")
# FastSql.event_values lists an event's values in this order, without a lookup per column.
if EVENT_COLUMNS != ("record_id", "session_id", "version", "event", "source_state", "target_state",
                     "performer_id", "timestamp", "payload"):  # pragma: no cover - a schema edit
    raise RuntimeError(f"session_events columns changed ({EVENT_COLUMNS}): update FastSql.event_values")
_PG_CASTS = {"record_id": "uuid", "session_id": "uuid", "version": "integer", "event": "varchar",
             "source_state": "varchar", "target_state": "varchar", "performer_id": "varchar",
             "timestamp": "bigint", "payload": "jsonb"}


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most events' payload
    return compact_json(value)


class FastSql:
    """Dialect-specific SQL text and value conversion for the hot path (positional parameters)."""

    dialect = ""
    select_session = ""
    select_version = ""

    def uuid(self, value: UUID) -> Any:
        raise NotImplementedError

    def row_params(self, session_id: UUID, columns: dict[str, Any], expected_version: int, *,
                   create: bool) -> list[Any]:
        """The projection's parameters: every column in table order when creating, else the changed
        ``columns`` in their order followed by the id and the expected version (the compare-and-set)."""
        if create:
            params = [columns[c] for c in SESSION_COLUMNS]
            params[_ID] = self.uuid(session_id)
            params[_DATA] = _dumps(params[_DATA])
            return params
        params = list(columns.values())
        if "data" in columns:
            params[list(columns).index("data")] = _dumps(columns["data"])
        params.append(self.uuid(session_id))
        params.append(expected_version)
        return params

    def event_values(self, event: SessionEvent, session_key: Any = None) -> tuple[Any, ...]:
        """An event's row values in :data:`EVENT_COLUMNS` order (the row of ``tables.event_row``);
        ``session_key``: its session id as :meth:`uuid` gives it, when the caller has it already."""
        source = event.source_state
        return (self.uuid(event.record_id), self.uuid(event.session_id) if session_key is None else session_key,
                event.version, str(event.event), None if source is None else str(source), str(event.target_state),
                event.performer_id, to_millis(event.timestamp), _dumps(event.payload))


class SqliteSql(FastSql):
    dialect = "sqlite"

    def __init__(self) -> None:
        cols = ", ".join(SESSION_COLUMNS)
        self.select_session = f"SELECT {cols} FROM sessions WHERE id = ?"
        self.insert_session = f"INSERT INTO sessions ({cols}) VALUES ({', '.join('?' for _ in SESSION_COLUMNS)})"
        self._updates: dict[tuple[str, ...], str] = {}
        self.insert_event = (f"INSERT INTO session_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                             f"({', '.join('?' for _ in EVENT_COLUMNS)})")
        self.select_version = "SELECT version FROM sessions WHERE id = ?"

    def uuid(self, value: UUID) -> Any:
        return value.hex

    def update_statement(self, columns: tuple[str, ...]) -> str:
        """A compare-and-set ``UPDATE`` of just ``columns`` (the version always changes); parameters as
        :meth:`row_params` gives them."""
        statement = self._updates.get(columns)
        if statement is None:
            sets = ", ".join(f"{c} = ?" for c in columns)
            statement = f"UPDATE sessions SET {sets} WHERE id = ? AND version = ?"
            self._updates[columns] = statement
        return statement


class PostgresSql(FastSql):
    dialect = "postgresql"

    def __init__(self) -> None:
        cols = ", ".join(SESSION_COLUMNS)
        self.select_session = f"SELECT {cols} FROM sessions WHERE id = %s"
        self.select_version = "SELECT version FROM sessions WHERE id = %s"
        self._insert_session = (
            f"INSERT INTO sessions ({cols}) VALUES ("
            + ", ".join("%s::jsonb" if c == "data" else "%s" for c in SESSION_COLUMNS)
            + ") RETURNING 1")
        self._statements: dict[tuple[tuple[str, ...] | None, int], str] = {}

    def uuid(self, value: UUID) -> Any:
        return value

    def append_statement(self, update_columns: tuple[str, ...] | None, events: int) -> str:
        """One statement that inserts the projection row (``update_columns`` None) or updates just
        ``update_columns`` with a version compare-and-set, and — only if that matched — ``events`` event rows.

        Positional parameters, in the order :meth:`append_params` gives them.
        """
        key = (update_columns, events)
        statement = self._statements.get(key)
        if statement is None:
            if update_columns is None:
                write = self._insert_session
            else:
                sets = ", ".join(f"{c} = %s::jsonb" if c == "data" else f"{c} = %s" for c in update_columns)
                write = f"UPDATE sessions SET {sets} WHERE id = %s AND version = %s RETURNING 1"
            rows = ", ".join(
                "(" + ", ".join(f"%s::{_PG_CASTS[c]}" for c in EVENT_COLUMNS) + ")" for _ in range(events))
            statement = (
                f"WITH w AS ({write}) "
                f"INSERT INTO session_events ({', '.join(EVENT_COLUMNS)}) "
                f"SELECT {', '.join('v.' + c for c in EVENT_COLUMNS)} FROM (VALUES {rows}) "
                f"AS v({', '.join(EVENT_COLUMNS)}) WHERE EXISTS (SELECT 1 FROM w)")
            self._statements[key] = statement
        return statement

    def append_params(self, session_id: UUID, columns: dict[str, Any], events: Sequence[SessionEvent],
                      expected_version: int, *, create: bool) -> list[Any]:
        """The parameters of :meth:`append_statement`: :meth:`row_params`, then each event's values."""
        params = self.row_params(session_id, columns, expected_version, create=create)
        for event in events:
            params += self.event_values(event)
        return params


def fast_sql_for(dialect: str) -> FastSql | None:
    """The hot-path SQL for a dialect, or ``None`` where the generic Core path is used."""
    if dialect == "sqlite":
        return SqliteSql()
    if dialect == "postgresql":
        return PostgresSql()
    return None
