"""The row layout of the recorders' hand-written SQL, defined once.

Four rows, each a named tuple whose field order is the order of its columns in every statement built from it:

* :data:`SESSION_COLUMNS`: the ``sessions`` projection row (the table's columns, in table order, without
  ``created_position``, the list order: the position of the session's ``created`` event, which each
  recorder's insert computes in SQL);
* :class:`EventRow`: a ``session_events`` row as the recorders insert it (``position`` is the database's);
* :class:`ExpiryUpdate`: a swept session's compare-and-set update — the columns a timeout writes, then the key
  (``id``) and the version it was read at (``expected``);
* :class:`KeyRow`: an ``idempotency_keys`` row (a keyed write's key, written by its append).

The recorders build every statement of their hot paths from these (the append, the claim, the expiry writes,
SQLite's expiry trigger), with the casts of their dialect (:func:`casts`), once per store. The import-time check
below ties the layout to the schema of ``tables.py``: a column added there and not here stops the import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text, Uuid

from sessionflow.adapters.sqlalchemy.tables import JsonDocument, idempotency_keys, session_events, sessions

__all__ = ["EVENT_COLUMNS", "KEY_COLUMNS", "KEY_SETS", "SESSION_COLUMNS", "EventRow", "ExpiryUpdate", "KeyRow", "casts",
           "column_index"]

#: The columns of ``sessions``, by name, in table order (the projection row).
SESSION_COLUMNS: tuple[str, ...] = tuple(c.name for c in sessions.c if c.name != "created_position")


class EventRow(NamedTuple):
    """A ``session_events`` row, in column order (its ids and payload in the form the driver binds)."""

    record_id: Any
    session_id: Any
    version: int
    event: str
    source_state: str | None
    target_state: str
    performer_id: str
    timestamp: int
    payload: Any
    traceparent: str | None
    tracestate: str | None


class ExpiryUpdate(NamedTuple):
    """A swept session's compare-and-set update: the columns it writes, then its key and the version read."""

    status: str
    version: int
    updated_at: int
    closed_at: int | None
    closed_by: str | None
    expires_at: int | None
    due_at: int | None
    failure_reason: str | None
    id: Any
    expected: int


class KeyRow(NamedTuple):
    """An ``idempotency_keys`` row, in column order (the session id in the form the driver binds)."""

    scope: str
    key: str
    fingerprint: str
    session_id: Any
    version: int
    created_at: int
    expires_at: int


#: The columns of :class:`KeyRow` (``idempotency_keys``, in table order).
KEY_COLUMNS: tuple[str, ...] = KeyRow._fields
#: The columns a write replacing an expired key sets (all but the key's own, ``scope`` and ``key``).
KEY_SETS: tuple[str, ...] = KEY_COLUMNS[2:]
#: The columns of :class:`EventRow` (``session_events`` without ``position``).
EVENT_COLUMNS: tuple[str, ...] = EventRow._fields
#: The columns an :class:`ExpiryUpdate` sets (the fields before its key).
EXPIRY_SETS: tuple[str, ...] = ExpiryUpdate._fields[:ExpiryUpdate._fields.index("id")]

_EVENT_TABLE = tuple(c.name for c in session_events.c if c.name != "position")
if (_EVENT_TABLE != EVENT_COLUMNS or tuple(c.name for c in idempotency_keys.c) != KEY_COLUMNS
        or not set(ExpiryUpdate._fields) - {"expected"} <= set(SESSION_COLUMNS)):
    # pragma: no cover - a schema edit
    raise RuntimeError("the row layout (layout.py) no longer matches the schema (tables.py)")


def column_index(name: str) -> int:
    """The place of column ``name`` in a ``sessions`` row (:data:`SESSION_COLUMNS`)."""
    return SESSION_COLUMNS.index(name)


#: PostgreSQL's name of each column type of the schema (the casts of its statements).
_POSTGRES_TYPES: Mapping[type[Any], str] = {
    Uuid: "uuid", Integer: "integer", BigInteger: "bigint", String: "varchar", Text: "text",
    Float: "double precision", JSON: "jsonb", JsonDocument: "jsonb"}


def casts(dialect: str) -> dict[str, str]:
    """Each column name of the layout (``expected`` as ``version``) with its SQL type on ``dialect``."""
    types = {"postgresql": _POSTGRES_TYPES}[dialect]
    # (a name in several tables has one type in all: ``session_id``, ``version``, ``created_at``, ``expires_at``)
    found = {c.name: types[type(c.type)] for table in (sessions, session_events, idempotency_keys) for c in table.c}
    found["expected"] = found["version"]
    return found
