"""The fold: a session's state is built from its events, and only from them.

:func:`apply` gives the session after one event; :func:`replay` folds a whole history. The engine builds
every new state with :func:`apply` too, so what a store projects and what a replay of its history gives are
equal by construction, and ``verify`` checks that they stay so.

Each event's payload carries everything the fold needs (including any new deadline), so replay needs no
settings, clock or lifecycle: the same events always give the same session.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sessionflow.domain.models import (
    EventType,
    FileResult,
    Session,
    SessionEvent,
    SessionNote,
    SessionProgress,
)
from sessionflow.domain.values import FrozenDict
from sessionflow.errors import SessionflowError

__all__ = ["CorruptHistory", "apply", "replay"]


class CorruptHistory(SessionflowError, ValueError):
    """A history that cannot be folded: a gap in versions, an event of another session, ..."""

    code = "corrupt_history"


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _create(event: SessionEvent) -> Session:
    p = event.payload
    ts = event.timestamp
    paths = tuple(p.get("file_paths") or ())
    return Session.trusted(
        id=event.session_id,
        status=event.target_state,
        version=1,
        lifecycle=p.get("lifecycle", "session"),
        lifecycle_version=int(p.get("lifecycle_version", 1)),
        user_id=p.get("user_id"),
        workspace_id=p.get("workspace_id"),
        module_name=p.get("module_name"),
        file_paths=paths,
        progress=SessionProgress.trusted(
            total_files=len(paths), processed_files=0, failed_files=(), current_file=None),
        file_results=(),
        notes=(),
        metadata=p.get("metadata") or FrozenDict(),
        ttl_seconds=float(p["ttl_seconds"]),
        created_at=ts,
        updated_at=ts,
        expires_at=_dt(p.get("expires_at")),
        max_expires_at=_dt(p.get("max_expires_at")),
        closed_at=None,
        closed_by=None,
        failure_reason=None,
        deleted_at=None,
    )


#: The default lifecycle's closing events (its histories carry no ``final`` flag).
_SESSION_CLOSING = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.EXPIRED})


def apply(session: Session | None, event: SessionEvent) -> Session:
    """The session after ``event``. ``session`` is ``None`` only for the ``created`` event."""
    if event.event is EventType.CREATED:
        if session is not None or event.version != 1:
            raise CorruptHistory(f"'created' must be version 1 of a new session, got version {event.version}")
        return _create(event)
    if session is None:
        raise CorruptHistory(f"history of {event.session_id} does not start with 'created'")
    if event.session_id != session.id:
        raise CorruptHistory(f"event {event.record_id} belongs to session {event.session_id}, not {session.id}")
    if event.version != session.version + 1:
        raise CorruptHistory(
            f"session {session.id}: version {event.version} follows version {session.version}")
    p = event.payload
    ts = event.timestamp
    update: dict[str, Any] = {"version": event.version, "status": event.target_state, "updated_at": ts}
    if "expires_at" in p:
        update["expires_at"] = _dt(p["expires_at"])
    kind = event.event
    if kind is EventType.FILE_RECORDED:
        error = p.get("error")
        result = FileResult.trusted(path=p["path"], error=error, recorded_at=ts)
        progress = session.progress
        update["file_results"] = (*session.file_results, result)
        update["progress"] = progress.evolve(**{
            "processed_files": progress.processed_files + (error is None),
            "failed_files": progress.failed_files if error is None else (*progress.failed_files, p["path"]),
        })
    elif kind is EventType.NOTE_ADDED:
        note = SessionNote.trusted(
            file_path=p["file_path"], memory_id=p.get("memory_id"), status=p["status"], created_at=ts)
        update["notes"] = (*session.notes, note)
    elif kind is EventType.UPDATED:
        if "current_file" in p:
            update["progress"] = session.progress.evolve(**{"current_file": p["current_file"]})
        if "metadata" in p:
            update["metadata"] = p["metadata"]
        if "ttl_seconds" in p:
            update["ttl_seconds"] = float(p["ttl_seconds"])
    elif kind is EventType.DELETED:
        update["deleted_at"] = ts
    elif kind is EventType.MIGRATED:
        update["lifecycle_version"] = int(p["to_version"])
    elif p.get("final") or (session.lifecycle == "session" and kind in _SESSION_CLOSING):
        # A transition into a final state closes the session.
        update["closed_at"] = ts
        update["closed_by"] = event.performer_id
        reason = p.get("reason")
        if reason is None and isinstance(p.get("args"), dict):
            reason = p["args"].get("reason")
        if kind is EventType.FAILED or reason is not None:
            update["failure_reason"] = reason
    # Other transitions, STARTED and TOUCHED change only the common fields (state, deadline).
    return session.evolve(**update)


def replay(events: Iterable[SessionEvent]) -> Session:
    """Fold a session's whole history, oldest first, into its current state."""
    session: Session | None = None
    for event in events:
        session = apply(session, event)
    if session is None:
        raise CorruptHistory("an empty history has no session")
    return session


def ttl_of(session: Session) -> timedelta:
    """The session's time-to-live as a :class:`~datetime.timedelta`."""
    return timedelta(seconds=session.ttl_seconds)
