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

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sessionflow.adapters.sqlalchemy.layout import EVENT_COLUMNS, SESSION_COLUMNS, EventRow
from sessionflow.adapters.sqlalchemy.tables import from_millis, to_millis
from sessionflow.domain.models import (
    EventType,
    FileResult,
    Session,
    SessionEvent,
    SessionNote,
    SessionProgress,
    SessionStatus,
)
from sessionflow.domain.values import FrozenDict, FrozenList, compact_json
from sessionflow.errors import StoreError

__all__ = ["EVENT_COLUMNS", "SESSION_COLUMNS", "FastSql", "event_from_row", "event_row", "event_values",
           "session_changes", "session_from_row", "session_row"]


def _freeze(value: Any) -> Any:
    """Deep-freeze JSON read back from the database (already valid: it was validated on the way in)."""
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, dict | list):
                return FrozenDict({k: _freeze(v) for k, v in value.items()})
        return FrozenDict(value)  # flat: no copy of each value needed
    if isinstance(value, list):
        return FrozenList(_freeze(v) for v in value)
    return value


def _status(value: str, session_id: Any) -> str:
    """A stored state: the :class:`SessionStatus` member when it is one of the default lifecycle's. Whether
    it exists in the session's lifecycle is checked by the manager against the definition."""
    if not isinstance(value, str) or not value:
        raise StoreError(f"session {session_id} has an empty stored state")
    member: str = SessionStatus._value2member_map_.get(value, value)  # type: ignore[assignment]
    return member


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_millis(value)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


def _data(s: Session) -> dict[str, Any]:
    return {
        "file_paths": list(s.file_paths),
        "file_results": [[r.path, r.error, to_millis(r.recorded_at)] for r in s.file_results],
        "notes": [[n.file_path, n.memory_id, n.status, to_millis(n.created_at)] for n in s.notes],
        "metadata": s.metadata,
    }


def session_row(s: Session) -> dict[str, Any]:
    """The ``sessions`` row for a session, in column order."""
    progress = s.progress
    row: dict[str, Any] = {
        "id": s.id,
        "status": str(s.status),
        "version": s.version,
        "user_id": s.user_id,
        "workspace_id": s.workspace_id,
        "module_name": s.module_name,
        "total_files": progress.total_files,
        "processed_files": progress.processed_files,
        "failed_files": len(progress.failed_files),  # the column holds the count; the paths are in ``data``
        "current_file": progress.current_file,
        "ttl_seconds": s.ttl_seconds,
        "created_at": to_millis(s.created_at),
        "updated_at": to_millis(s.updated_at),
        "expires_at": _ms(s.expires_at),
        "max_expires_at": _ms(s.max_expires_at),
        "closed_at": _ms(s.closed_at),
        "closed_by": s.closed_by,
        "failure_reason": s.failure_reason,
        "deleted_at": _ms(s.deleted_at),
        "due_at": _ms(s.due_at),
        "data": _data(s),
        "lifecycle": s.lifecycle,
        "lifecycle_version": s.lifecycle_version,
    }
    return row


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


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_EPOCH_TS = from_millis(0)


def _json_text(text: str | bytes) -> Any:
    """Parse a JSON column's text (the scanner straight away: the text was written by the engine)."""
    if isinstance(text, str):
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:
            value, end = None, -1
        if end == len(text):
            return value
    return json.loads(text)  # anything unusual (whitespace, bytes, an error to report) the usual way


def _time(ms: int, _epoch: datetime = _EPOCH_TS, _delta: type[timedelta] = timedelta) -> datetime:
    return _epoch + _delta(0, 0, 0, ms)


#: The progress of a session without files (immutable, so every such session can share it).
_NO_PROGRESS = SessionProgress.trusted(total_files=0, processed_files=0, failed_files=(), current_file=None)


def session_from_row(row: Any, session_id: UUID | None = None) -> Session:
    """The session a ``sessions`` row holds (a SQLAlchemy row or a raw driver tuple, in column order).

    ``session_id``: the row's id when the caller already has it as a UUID (saves parsing it).
    """
    (sid, status, version, user_id, workspace_id, module_name, total_files, processed_files, failed_files,
     current_file, ttl_seconds, created_at, updated_at, expires_at, max_expires_at, closed_at, closed_by,
     failure_reason, deleted_at, _due_at, data, lifecycle, lifecycle_version) = row
    if session_id is not None:
        sid = session_id
    elif not isinstance(sid, UUID):
        sid = UUID(str(sid))
    if not isinstance(data, dict):
        data = _json_text(data)
    created = _time(created_at)
    results = data["file_results"]
    notes = data["notes"]
    return Session.trusted(
        id=sid,
        status=_status(status, sid),
        version=version,
        user_id=user_id,
        workspace_id=workspace_id,
        module_name=module_name,
        file_paths=tuple(data["file_paths"]),
        progress=_NO_PROGRESS if not (total_files or processed_files or failed_files or current_file is not None)
        else SessionProgress.trusted(
            total_files=total_files, processed_files=processed_files, current_file=current_file,
            # the column holds the count; the paths, in the order they failed, are the failed results'
            failed_files=tuple(p for p, e, _t in results if e is not None) if failed_files else ()),
        file_results=tuple(FileResult.trusted(path=p, error=e, recorded_at=_time(t))
                           for p, e, t in results) if results else (),
        notes=tuple(SessionNote.trusted(file_path=f, memory_id=m, status=st, created_at=_time(t))
                    for f, m, st, t in notes) if notes else (),
        metadata=_freeze(data["metadata"]),
        ttl_seconds=float(ttl_seconds),
        created_at=created,
        updated_at=created if updated_at == created_at else _time(updated_at),
        expires_at=None if expires_at is None else _time(expires_at),
        max_expires_at=None if max_expires_at is None else _time(max_expires_at),
        closed_at=None if closed_at is None else _time(closed_at),
        closed_by=closed_by,
        failure_reason=failure_reason,
        deleted_at=None if deleted_at is None else _time(deleted_at),
        lifecycle=lifecycle,
        lifecycle_version=lifecycle_version,
    )


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


def event_values(e: SessionEvent, record: Any, session: Any, payload: Any) -> EventRow:
    """An event's row, its ids and payload as given (in the form the statement binds them)."""
    source = e.source_state
    return EventRow(record, session, e.version, str(e.event), None if source is None else str(source),
                    str(e.target_state), e.performer_id, to_millis(e.timestamp), payload)

