"""The storage format the durable stores share: the SQL tables and the Redis documents hold the same values.

* A time: integer milliseconds since the Unix epoch, UTC (:func:`to_millis`, :func:`from_millis`): exact,
  identical everywhere, cheap to compare and index.
* A session: one row of :data:`SESSION_COLUMNS` (the SQL ``sessions`` row; the Redis projection document keyed
  by the same names), the files, results, notes and metadata as one JSON ``data`` document: :func:`session_row`
  writes it, :func:`session_from_row` reads it back.
* A value read back: a stored state name (:func:`stored_state`), stored JSON deep-frozen
  (:func:`freeze_stored_json`).

Nothing here talks to a database or imports a store's driver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sessionflow.domain.models import FileResult, Session, SessionNote, SessionProgress, SessionStatus
from sessionflow.domain.values import FrozenDict, FrozenList
from sessionflow.errors import StoreError

__all__ = ["SESSION_COLUMNS", "freeze_stored_json", "from_millis", "millis_or_none", "session_data",
           "session_from_row", "session_row", "stored_state", "to_millis"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(value: datetime) -> int:
    """A UTC-aware datetime as integer milliseconds since the epoch."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(value: int) -> datetime:
    """Integer milliseconds since the epoch as a UTC-aware datetime."""
    return _EPOCH + timedelta(milliseconds=value)


#: The columns of a session's row, in the order of the SQL table's columns (``tables.sessions``; a test checks
#: they agree), which is the order :func:`session_from_row` reads a row's values in. (The SQL table's last
#: column, ``created_position``, the list order the database sets, is no field of a session: not here.)
SESSION_COLUMNS: tuple[str, ...] = (
    "id", "status", "version", "user_id", "workspace_id", "module_name", "total_files", "processed_files",
    "failed_files", "current_file", "ttl_seconds", "created_at", "updated_at", "expires_at", "max_expires_at",
    "closed_at", "closed_by", "failure_reason", "deleted_at", "due_at", "data", "lifecycle", "lifecycle_version")


def freeze_stored_json(value: Any) -> Any:
    """Deep-freeze JSON read back from the database (already valid: it was validated on the way in)."""
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, dict | list):
                return FrozenDict({k: freeze_stored_json(v) for k, v in value.items()})
        return FrozenDict(value)  # flat: no copy of each value needed
    if isinstance(value, list):
        return FrozenList(freeze_stored_json(v) for v in value)
    return value


def stored_state(value: str, session_id: Any) -> str:
    """A stored state: the :class:`SessionStatus` member when it is one of the default lifecycle's. Whether
    it exists in the session's lifecycle is checked by the manager against the definition."""
    if not isinstance(value, str) or not value:
        raise StoreError(f"session {session_id} has an empty stored state")
    member: str = SessionStatus._value2member_map_.get(value, value)  # type: ignore[assignment]
    return member


def millis_or_none(value: datetime | None) -> int | None:
    """An optional time as :func:`to_millis` stores it (``None`` stays ``None``)."""
    return None if value is None else to_millis(value)


def session_data(s: Session) -> dict[str, Any]:
    """The JSON ``data`` document of a session: its files, results, notes and metadata."""
    return {
        "file_paths": list(s.file_paths),
        "file_results": [[r.path, r.error, to_millis(r.recorded_at)] for r in s.file_results],
        "notes": [[n.file_path, n.memory_id, n.status, to_millis(n.created_at)] for n in s.notes],
        "metadata": s.metadata,
    }


def session_row(s: Session, *, data: bool = True) -> dict[str, Any]:
    """The row for a session, keyed by column name (without its JSON ``data`` column when ``data`` is false)."""
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
        "expires_at": millis_or_none(s.expires_at),
        "max_expires_at": millis_or_none(s.max_expires_at),
        "closed_at": millis_or_none(s.closed_at),
        "closed_by": s.closed_by,
        "failure_reason": s.failure_reason,
        "deleted_at": millis_or_none(s.deleted_at),
        "due_at": millis_or_none(s.due_at),
        "lifecycle": s.lifecycle,
        "lifecycle_version": s.lifecycle_version,
    }
    if data:
        row["data"] = session_data(s)
    return row


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
    """The session a row holds: its values in :data:`SESSION_COLUMNS` order (a SQLAlchemy row, a raw driver
    tuple); ``data`` as a dict or as JSON text. A value after them (the list order a merged SQL list page
    selects last) is left aside.

    ``session_id``: the row's id when the caller already has it as a UUID (saves parsing it).
    """
    (sid, status, version, user_id, workspace_id, module_name, total_files, processed_files, failed_files,
     current_file, ttl_seconds, created_at, updated_at, expires_at, max_expires_at, closed_at, closed_by,
     failure_reason, deleted_at, _due_at, data, lifecycle, lifecycle_version, *_list_order) = row
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
        status=stored_state(status, sid),
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
        metadata=freeze_stored_json(data["metadata"]),
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
