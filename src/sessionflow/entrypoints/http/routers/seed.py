"""The compatibility routes of the seed design: ``/session_manager/sessions.start`` (create a session for a
user and start it) and ``/session_manager/sessions.end`` (complete a user's session).

Each answers a :class:`~..bodies.SeedRecord`: the seed's boundary event (``user_id``, ``session_id``,
``performer_id``, the recorded event's ``record_id`` and ``timestamp``, ``source`` ``"session_manager"``) with
the session's status and version. ``sessions.start`` is ONE write (``create(..., start=True)``): the start is
decided before anything is written and committed with the creation, so a refused or failed start creates no
session and records nothing (a 409 names the user's active session in ``active_session_id``). ``source``, if
sent, must be exactly ``"session_manager"``. The seed's session fields ``session_notes``, ``is_training_data``
and ``training_intent_label`` are kept in the session's metadata and echoed. They follow the rules of
``/sessions``: a service principal needs ``sessions:write``; a user principal starts sessions only for itself
(another ``user_id`` is 403, and nothing is created) and ends only its own (another user's session is 404).
Both take an ``Idempotency-Key``, as every write of ``/sessions``: a retry with the key is answered with the
first answer (the record of the same boundary event) and ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from sessionflow import Session, SessionEvent
from sessionflow.domain.values import format_timestamp
from sessionflow.entrypoints.http.auth import Writer
from sessionflow.entrypoints.http.bodies import SeedEndBody, SeedRecord, SeedStartBody
from sessionflow.entrypoints.http.idempotency import (
    REPLAYED_HEADER_DOC,
    IdempotencyKeyHeader,
    replayed,
    request_key,
)
from sessionflow.entrypoints.http.openapi import error_responses
from sessionflow.entrypoints.http.state import ManagerDep
from sessionflow.errors import InvalidInput, SessionUserMismatch

__all__ = ["router"]

#: The seed's session fields a start keeps in the session's metadata (and echoes).
_SEED_FIELDS = ("session_notes", "is_training_data", "training_intent_label")


def _record(session: Session, event: SessionEvent, headers: dict[str, str]) -> Response:
    """The answer of both routes: the boundary event of ``event`` (recorded on ``session``)."""
    metadata = session.metadata
    extra: dict[str, Any] = {name: metadata.get(name) for name in _SEED_FIELDS
                             if isinstance(metadata.get(name), str | bool)}
    record = SeedRecord(user_id=session.user_id, session_id=session.id, performer_id=event.performer_id,
                        record_id=event.record_id, timestamp=format_timestamp(event.timestamp),
                        status=session.status, version=session.version, **extra)
    return JSONResponse(record.model_dump(mode="json"), headers=headers)


def router(*, secured: bool) -> APIRouter:
    """The compatibility routes; ``secured``: the app has bearer tokens (the routes then document a 401)."""
    routes = APIRouter()
    auth_codes = (401,) if secured else ()
    answered: dict[int | str, dict[str, Any]] = {200: {"headers": REPLAYED_HEADER_DOC}}

    @routes.post("/session_manager/sessions.start", response_model=SeedRecord, tags=["compatibility"],
                 operation_id="seed_sessions_start", summary="Create and start a session for a user",
                 responses={**answered, **error_responses(400, *auth_codes, 403, 409, 413, 422, 503)})
    def seed_start(body: SeedStartBody, who: Writer, manager: ManagerDep,
                   idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer = who.performer(body.performer_id)
        key = request_key(who, idempotency_key)
        user_id = who.owner_for_create(body.user_id)
        metadata = dict(body.metadata or {})
        for name in _SEED_FIELDS:
            value = getattr(body, name)
            if value is not None:
                if name in metadata:
                    raise InvalidInput(name, "given twice: as a field and in metadata")
                metadata[name] = value
        who.check_create_started(user_id, performer)
        started = manager.create(
            performer_id=performer, user_id=user_id, workspace_id=body.workspace_id,
            module_name=body.module_name, file_paths=body.file_paths, metadata=metadata,
            ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds), start=True,
            idempotency_key=key)
        event = next(e for e in manager.history(started.id) if e.version == started.version)  # "started"
        return _record(started, event, replayed(key))

    @routes.post("/session_manager/sessions.end", response_model=SeedRecord, tags=["compatibility"],
                 operation_id="seed_sessions_end", summary="Complete a user's session",
                 responses={**answered, **error_responses(400, *auth_codes, 403, 404, 409, 413, 422, 503)})
    def seed_end(body: SeedEndBody, who: Writer, manager: ManagerDep,
                 idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer = who.performer(body.performer_id)
        key = request_key(who, idempotency_key)
        session = who.get(body.session_id)  # another user's session is 404 for a user principal
        if session.user_id != body.user_id:
            raise SessionUserMismatch(session.id, owner=session.user_id or "", performer_id=body.user_id)
        who.check_write(session.id, performer)
        done = manager.complete(session.id, performer_id=performer, idempotency_key=key)
        event = next(e for e in reversed(manager.history(session.id)) if e.version == done.version)
        return _record(done, event, replayed(key))

    return routes
