"""Row mapping: sessions and events to table rows and back, for both the SQLAlchemy Core path and the
driver-level SQL of the recorders.

* :func:`session_row` / :func:`event_row`: the rows (dicts keyed by column name) SQLAlchemy Core writes;
  :func:`session_changes`: the columns an update must write (only those whose value changed).
* :func:`session_from_row` / :func:`event_from_row`: the models a row holds (a SQLAlchemy row or a raw
  driver tuple in column order).
* :class:`FastSql`: the positional parameter values the recorders' hand-written SQL binds (``sqlite.py`` and
  ``postgres.py`` subclass it with their SQL text and UUID form).

The formats are those of :mod:`sessionflow.adapters.sqlalchemy.tables` (times as epoch milliseconds, the
files, results, notes and metadata as one JSON ``data`` document). Nothing here talks to a database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sessionflow.adapters.sqlalchemy.layout import EVENT_COLUMNS, EventRow, KeyRow
from sessionflow.adapters.storage_format import (
    SESSION_COLUMNS,
    freeze_stored_json,
    from_millis,
    millis_or_none,
    session_data,
    session_from_row,
    session_row,
    stored_state,
    to_millis,
)
from sessionflow.application.idempotency import IdempotencyRecord, StoredKey
from sessionflow.domain.models import EventType, Session, SessionEvent, TraceContext
from sessionflow.domain.values import compact_json
from sessionflow.errors import StoreError

__all__ = ["EVENT_COLUMNS", "SESSION_COLUMNS", "FastSql", "event_from_row", "event_row", "event_values",
           "session_changes", "session_from_row", "session_row"]

# The shared helpers, by the names this module and the recorders use.
_freeze = freeze_stored_json
_status = stored_state
_ms = millis_or_none
_data = session_data


def _dt(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


#: Session fields stored as a column of the same name and value.
_PLAIN_FIELDS = frozenset({"version", "user_id", "workspace_id", "module_name", "ttl_seconds", "closed_by",
                           "failure_reason", "lifecycle", "lifecycle_version"})
#: Session fields stored as epoch milliseconds in a column of the same name.
_TIME_FIELDS = frozenset({"created_at", "updated_at", "expires_at", "max_expires_at", "closed_at", "deleted_at"})
#: Session fields kept in the JSON ``data`` column.
_DATA_FIELDS = frozenset({"file_paths", "file_results", "notes", "metadata"})
_PROGRESS_COLUMNS = ("total_files", "processed_files", "failed_files", "current_file")


def session_changes(previous: Session | None, s: Session) -> dict[str, Any]:
    """The columns of ``s``'s row that differ from ``previous``'s row (all but the id if ``previous`` is None).

    Compares the two sessions field by field (a transition copies the fields it does not change, so most
    are the very same objects); the JSON ``data`` column is rebuilt only when the files, results, notes or
    metadata changed.
    """
    if previous is None:
        row = session_row(s)
        del row["id"]  # the key of the update, never one of its columns
        return row
    old = previous.__dict__
    changed: dict[str, Any] = {}
    data = False
    for name, value in s.__dict__.items():
        before = old[name]
        if value is before or value == before:
            continue
        if name in _PLAIN_FIELDS:
            changed[name] = value
        elif name in _TIME_FIELDS:
            changed[name] = _ms(value)
        elif name == "status":
            changed["status"] = str(value)
        elif name in _DATA_FIELDS:
            data = True
        elif name == "progress":
            for column in _PROGRESS_COLUMNS:
                if getattr(value, column) != getattr(before, column):
                    changed[column] = getattr(value, column)
            if "failed_files" in changed:
                changed["failed_files"] = len(value.failed_files)
        elif name == "id":
            raise StoreError(f"a change cannot move session {before} to another id ({value})")
        else:  # a field this function does not know: a programming error, not a silent omission
            raise StoreError(f"session field {name!r} has no column mapping")
    due_at = s.due_at
    if due_at != previous.due_at:
        changed["due_at"] = _ms(due_at)
    if data:
        changed["data"] = _data(s)
    return changed


def event_row(e: SessionEvent) -> dict[str, Any]:
    """The ``session_events`` row for an event."""
    return {
        "record_id": e.record_id,
        "session_id": e.session_id,
        "version": e.version,
        "event": str(e.event),
        "source_state": None if e.source_state is None else str(e.source_state),
        "target_state": str(e.target_state),
        "performer_id": e.performer_id,
        "timestamp": to_millis(e.timestamp),
        "payload": e.payload,
        "traceparent": None if e.trace_context is None else e.trace_context.traceparent,
        "tracestate": None if e.trace_context is None else e.trace_context.tracestate,
    }


def event_from_row(row: Any) -> SessionEvent:
    """The event a ``session_events`` row holds."""
    kind: str = EventType._value2member_map_.get(row.event, row.event)
    return SessionEvent.trusted(
        record_id=row.record_id,
        session_id=row.session_id,
        version=row.version,
        event=kind,
        source_state=None if row.source_state is None else _status(row.source_state, row.session_id),
        target_state=_status(row.target_state, row.session_id),
        performer_id=row.performer_id,
        timestamp=from_millis(row.timestamp),
        payload=_freeze(row.payload),
        position=row.position,
        trace_context=None if row.traceparent is None else TraceContext.trusted(traceparent=row.traceparent,
                                                                                tracestate=row.tracestate),
    )



# ------------------------------------------------------------------ parameter values (driver-level SQL)


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most events' payload
    return compact_json(value)


class FastSql:
    """Dialect-specific SQL text and value conversion for the hot path (positional parameters).

    Each recorder with a driver-level fast path subclasses it (``SqliteSql`` in ``sqlite.py``,
    ``PostgresSql`` in ``postgres.py``) with its statements and the form its driver takes a UUID in.
    """

    dialect = ""
    select_session = ""
    select_version = ""
    select_active = ""
    #: A stored key's row (its parameters: the scope and the key), as :meth:`stored_key` reads it.
    select_key = ""

    def uuid(self, value: UUID) -> Any:
        raise NotImplementedError

    def row_params(self, session_id: UUID, columns: dict[str, Any], expected_version: int, *,
                   create: bool) -> list[Any]:
        """The projection's parameters: every column in table order when creating (``columns``, a row of
        :func:`session_row` the caller owns, is converted in place), else the changed ``columns`` in their
        order followed by the id and the expected version (the compare-and-set)."""
        if create:
            columns["id"] = self.uuid(session_id)
            columns["data"] = _dumps(columns["data"])
            return [columns[c] for c in SESSION_COLUMNS]
        params = list(columns.values())
        if "data" in columns:
            params[list(columns).index("data")] = _dumps(columns["data"])
        params.append(self.uuid(session_id))
        params.append(expected_version)
        return params

    def event_values(self, event: SessionEvent, session_key: Any = None) -> EventRow:
        """An event's :class:`~sessionflow.adapters.sqlalchemy.layout.EventRow` (the row of :func:`event_row`,
        as the driver binds it); ``session_key``: its session id as :meth:`uuid` gives it, when the caller has
        it already."""
        return event_values(event, self.uuid(event.record_id),
                            self.uuid(event.session_id) if session_key is None else session_key,
                            _dumps(event.payload))


    @staticmethod
    def key_values(record: IdempotencyRecord, session_key: Any, version: int) -> KeyRow:
        """The ``idempotency_keys`` row of ``record``, kept for the session of key ``session_key`` (as
        :meth:`uuid` gives it) at ``version``."""
        return KeyRow(record.scope, record.key, record.fingerprint, session_key, version,
                      to_millis(record.created_at), to_millis(record.expires_at))

    @staticmethod
    def stored_key(row: Any) -> StoredKey | None:
        """The key a row of :attr:`select_key` holds (``None``: no row)."""
        if row is None:
            return None
        session_id = row[1]
        return StoredKey(row[0], session_id if isinstance(session_id, UUID) else UUID(session_id), row[2],
                         from_millis(row[3]))


def event_values(e: SessionEvent, record: Any, session: Any, payload: Any) -> EventRow:
    """An event's row, its ids and payload as given (in the form the statement binds them)."""
    source = e.source_state
    trace = e.trace_context
    return EventRow(record, session, e.version, str(e.event), None if source is None else str(source),
                    str(e.target_state), e.performer_id, to_millis(e.timestamp), payload,
                    None if trace is None else trace.traceparent, None if trace is None else trace.tracestate)

