"""How the Redis store writes sessions and events as strings, and reads them back.

* A session (the projection) is one JSON object: the SQL store's ``sessions`` row keyed by column name (times as
  epoch milliseconds, the files, results, notes and metadata as one nested ``data`` object), so both stores
  share one row mapping (:func:`~sessionflow.adapters.storage_format.session_row` / ``session_from_row``);
  keyed by name, a document stays readable when a later version adds a column (read as ``null``).
* An event is one JSON array ``[position, "record_id", version, "event", "source" | null, "target",
  "performer", timestamp_ms, payload]``, followed by ``"traceparent", "tracestate" | null`` when the event
  recorded a trace context (an array of nine elements: none; every event written before the field existed).
  The client sends it without its first element; the append script prepends the position it takes from the
  store's counter (see ``scripts.py``). The session id is the key's.
* Optional strings the scripts index (user, workspace, module) travel as ``"=" + value``, and ``""`` for
  ``None``, so that no value can be mistaken for a missing one.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sessionflow.adapters.storage_format import (
    SESSION_COLUMNS,
    freeze_stored_json,
    from_millis,
    session_from_row,
    session_row,
    stored_state,
    to_millis,
)
from sessionflow.domain.models import EventType, Session, SessionEvent, TraceContext
from sessionflow.domain.values import compact_json

__all__ = ["decode_event", "decode_session", "encode_event", "encode_session", "optional", "session_fields"]

_loads = json.loads


def optional(value: str | None) -> str:
    """An optional string as the scripts take it: ``""`` for ``None``, else ``"=" + value``."""
    return "" if value is None else "=" + value


def encode_session(session: Session) -> str:
    """The session's projection document (a JSON object: the SQL row keyed by column name)."""
    row = session_row(session)
    row["id"] = str(session.id)
    return compact_json(row)


def decode_session(doc: str, session_id: UUID | None = None) -> Session:
    """The session a projection document holds."""
    row = _loads(doc)
    return session_from_row(tuple(map(row.get, SESSION_COLUMNS)), session_id)


def session_fields(session: Session) -> tuple[str, str, str, str, str, str, str, str, str]:
    """What the scripts index of a session: status, user, workspace, module, lifecycle (see :func:`optional`),
    creation time, deadline of a live session, expiry time (``""``: none) and ``"1"`` if deleted (else ``""``)."""
    due = session.due_at
    expires = session.expires_at
    return (str(session.status), optional(session.user_id), optional(session.workspace_id),
            optional(session.module_name), optional(session.lifecycle), str(to_millis(session.created_at)),
            "" if due is None else str(to_millis(due)), "" if expires is None else str(to_millis(expires)),
            "" if session.deleted_at is None else "1")


def encode_event(event: SessionEvent) -> str:
    """An event as the append script takes it (without its position, which the script adds)."""
    source = event.source_state
    values = [str(event.record_id), event.version, str(event.event), None if source is None else str(source),
              str(event.target_state), event.performer_id, to_millis(event.timestamp), event.payload]
    trace = event.trace_context
    if trace is not None:
        values += [trace.traceparent, trace.tracestate]
    return compact_json(values)


def decode_event(text: str, session_id: UUID) -> SessionEvent:
    """The event a stored string holds."""
    values = _loads(text)
    position, record_id, version, kind, source, target, performer, timestamp, payload = values[:9]
    name: Any = EventType._value2member_map_.get(kind, kind)
    trace = None if len(values) < 11 else TraceContext.trusted(traceparent=values[9], tracestate=values[10])
    return SessionEvent.trusted(
        record_id=UUID(record_id),
        session_id=session_id,
        version=version,
        event=name,
        source_state=None if source is None else stored_state(source, session_id),
        target_state=stored_state(target, session_id),
        performer_id=performer,
        timestamp=from_millis(timestamp),
        payload=freeze_stored_json(payload),
        position=position,
        trace_context=trace,
    )
