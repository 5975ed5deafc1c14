"""The compatibility routes of the seed design: ``/session_manager/sessions.start`` (create a session for a
user and start it) and ``/session_manager/sessions.end`` (complete a user's session).

Each answers a :class:`~..bodies.SeedRecord` naming the event it recorded. A start the manager refuses takes
the new session back, so no half-made session remains. They follow the rules of ``/sessions``: a service
principal needs ``sessions:write``; a user principal starts sessions only for itself (another ``user_id`` is
403, and nothing is created) and ends only its own (another user's session is 404).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from sessionflow import SYSTEM
from sessionflow.domain.values import format_timestamp
from sessionflow.entrypoints.http.auth import Writer
from sessionflow.entrypoints.http.bodies import SeedEndBody, SeedRecord, SeedStartBody
from sessionflow.entrypoints.http.openapi import error_responses
from sessionflow.entrypoints.http.state import ManagerDep
from sessionflow.errors import InvalidInput, SessionflowError, SessionUserMismatch

__all__ = ["router"]

logger = logging.getLogger("sessionflow.http")


def router(*, secured: bool) -> APIRouter:
    """The compatibility routes; ``secured``: the app has bearer tokens (the routes then document a 401)."""
    routes = APIRouter()
    auth_codes = (401,) if secured else ()

    @routes.post("/session_manager/sessions.start", response_model=SeedRecord, tags=["compatibility"],
                 operation_id="seed_sessions_start", summary="Create and start a session for a user",
                 responses=error_responses(400, *auth_codes, 403, 409, 413, 503))
    def seed_start(body: SeedStartBody, who: Writer, manager: ManagerDep) -> Response:
        performer = who.performer(body.performer_id)
        user_id = who.owner_for_create(body.user_id)
        metadata = dict(body.metadata or {})
        if body.session_notes is not None:
            if "session_notes" in metadata:
                raise InvalidInput("session_notes", "given twice: as a field and in metadata")
            metadata["session_notes"] = body.session_notes
        created = manager.create(
            performer_id=performer, user_id=user_id, workspace_id=body.workspace_id,
            module_name=body.module_name, file_paths=body.file_paths, metadata=metadata,
            ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds))
        try:
            who.check_write(created.id, performer)
            started = manager.start(created.id, performer_id=performer, expected_version=created.version)
        except SessionflowError:
            # The start was refused: take the new session back so no half-made session remains.
            try:
                manager.delete(created.id, performer_id=SYSTEM)
            except SessionflowError:  # pragma: no cover - best effort
                logger.exception("could not delete session %s after a refused start", created.id)
            raise
        first = manager.history(created.id)[0]
        return JSONResponse(SeedRecord(session_id=created.id, record_id=first.record_id,
                                       timestamp=format_timestamp(first.timestamp), status=started.status,
                                       version=started.version).model_dump(mode="json"))

    @routes.post("/session_manager/sessions.end", response_model=SeedRecord, tags=["compatibility"],
                 operation_id="seed_sessions_end", summary="Complete a user's session",
                 responses=error_responses(400, *auth_codes, 403, 404, 409, 413, 503))
    def seed_end(body: SeedEndBody, who: Writer, manager: ManagerDep) -> Response:
        performer = who.performer(body.performer_id)
        session = who.get(body.session_id)  # another user's session is 404 for a user principal
        if session.user_id != body.user_id:
            raise SessionUserMismatch(session.id, owner=session.user_id or "", performer_id=body.user_id)
        who.check_write(session.id, performer)
        done = manager.complete(session.id, performer_id=performer)
        event = next(e for e in reversed(manager.history(session.id)) if e.version == done.version)
        return JSONResponse(SeedRecord(session_id=done.id, record_id=event.record_id,
                                       timestamp=format_timestamp(event.timestamp), status=done.status,
                                       version=done.version).model_dump(mode="json"))

    return routes
