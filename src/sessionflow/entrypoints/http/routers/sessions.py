"""The ``/sessions`` routes: create, list, read, update and delete sessions, their lifecycle transitions and
progress, and their history.

Each handler takes its caller from the dependency of its scope (``Reader``, ``Writer``, ``Admin``: a service
principal needs ``sessions:read``, ``sessions:write``, ``sessions:admin``), resolves the performer, lets the
caller check that it may touch the session (a user principal only its own: another's is 404), and calls one
manager method. A response carrying a session has its version as ``ETag``; ``If-Match`` makes a write
conditional on it. Every write takes an ``Idempotency-Key`` (:mod:`..idempotency`): a retry with the key is
answered with the first response's status and body, rebuilt from the session the manager returns, plus
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from sessionflow import IdempotencyKey, Session
from sessionflow.application.reads import cursor_of
from sessionflow.domain.values import MAX_ID_LENGTH, MAX_LIST_LIMIT
from sessionflow.entrypoints.http.access import Caller
from sessionflow.entrypoints.http.auth import Admin, Reader, Writer
from sessionflow.entrypoints.http.bodies import (
    PERFORMER_DOC,
    CreateSessionBody,
    EventBody,
    FailBody,
    FileBody,
    NoteBody,
    PerformerBody,
    SessionHistory,
    SessionPage,
    UpdateSessionBody,
)
from sessionflow.entrypoints.http.idempotency import (
    REPLAYED_HEADER_DOC,
    IdempotencyKeyHeader,
    replayed,
    request_key,
)
from sessionflow.entrypoints.http.openapi import ETAG_HEADER, error_responses
from sessionflow.entrypoints.http.state import ManagerDep
from sessionflow.errors import InvalidInput

__all__ = ["router"]

_IF_MATCH: Final = re.compile(r'^\s*(?:"(\d{1,19})"|(\d{1,19})|(\*))\s*$')

#: The ``{session_id}`` path parameter.
SessionId = Annotated[UUID, Path(description="The session's id (a UUID).")]
#: The optional ``If-Match`` header: the version a write expects (parsed by :func:`_expected_version`).
IfMatch = Annotated[str | None, Header(alias="If-Match", pattern=r'^(\*|[0-9]{1,19}|"[0-9]{1,19}")$', description=(
    'Apply only if the session is at this version (its ETag: 3 or "3"; * matches any); a stale version is '
    "412."))]


def _session_response(session: Session, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(session.model_dump(mode="json"), status_code=status,
                        headers={"ETag": f'"{session.version}"', **(headers or {})})


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    match = _IF_MATCH.match(if_match)
    if match is None:
        raise InvalidInput("If-Match", 'expected a version such as 3 or "3", or *')
    number = match.group(1) or match.group(2)
    return None if number is None else int(number)


def _write(who: Caller, session_id: UUID, given: str | None, if_match: str | None,
           header: str | None) -> tuple[str, int | None, IdempotencyKey | None]:
    """The performer, the expected version and the idempotency key of a write to a session, once the caller may
    make it."""
    performer = who.performer(given)
    expected = _expected_version(if_match)
    key = request_key(who, header)
    who.check_write(session_id, performer, keyed=key is not None)
    return performer, expected, key


def router(*, secured: bool) -> APIRouter:
    """The session routes; ``secured``: the app has bearer tokens (the routes then document 401 and 403)."""
    routes = APIRouter()
    auth_codes = (401, 403) if secured else ()
    write_codes = ((400, 401, 403, 404, 409, 412, 413, 422, 503) if secured
                   else (400, 403, 404, 409, 412, 413, 422, 503))
    written = {200: {"headers": {**ETAG_HEADER, **REPLAYED_HEADER_DOC}}, **error_responses(*write_codes)}

    @routes.post("/sessions", status_code=201, response_model=Session, tags=["sessions"],
                 operation_id="create_session", summary="Create a session (pending)",
                 responses={201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}},
                                              **REPLAYED_HEADER_DOC}},
                            **error_responses(400, *auth_codes, 409, 413, 422, 503)})
    def create_session(body: CreateSessionBody, who: Writer, manager: ManagerDep,
                       idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer = who.performer(body.performer_id)
        key = request_key(who, idempotency_key)
        session = manager.create(
            performer_id=performer, user_id=who.owner_for_create(body.user_id),
            workspace_id=body.workspace_id, module_name=body.module_name, file_paths=body.file_paths,
            metadata=body.metadata,
            ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds),
            lifecycle=body.lifecycle, idempotency_key=key)
        return _session_response(session, 201, {"Location": f"/sessions/{session.id}", **replayed(key)})

    @routes.get("/sessions", response_model=SessionPage, tags=["sessions"], operation_id="list_sessions",
                summary="List sessions (filters and pagination)", responses=error_responses(400, *auth_codes, 503))
    def list_sessions(
        who: Reader,
        manager: ManagerDep,
        status: Annotated[list[Annotated[str, Query(min_length=1, max_length=128)]] | None, Query(
            description="A state of the sessions' lifecycle; repeat for several.")] = None,
        user_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        workspace_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        module_name: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        lifecycle: Annotated[str | None, Query(max_length=128, description=(
            "The lifecycle the sessions were created under."))] = None,
        created_after: Annotated[AwareDatetime | None, Query(description=(
            "Only sessions created at or after this instant (ISO 8601 with a time zone)."))] = None,
        created_before: Annotated[AwareDatetime | None, Query(description=(
            "Only sessions created before this instant (ISO 8601 with a time zone)."))] = None,
        cursor: Annotated[str | None, Query(max_length=64, description=(
            "Continue after the page that returned this `next_cursor`."))] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
        newest_first: Annotated[bool, Query(description=(
            "List newest first (creation order reversed); a cursor pages on in the order it was issued "
            "for."))] = False,
    ) -> Response:
        items = manager.list(status=status, user_id=who.owner_for_list(user_id), workspace_id=workspace_id,
                             module_name=module_name, lifecycle=lifecycle, created_after=created_after,
                             created_before=created_before, cursor=cursor, limit=limit, offset=offset,
                             newest_first=newest_first)
        full = len(items) == limit
        return JSONResponse({"items": [s.model_dump(mode="json") for s in items], "limit": limit,
                             "offset": offset, "next_offset": offset + limit if full else None,
                             "next_cursor": cursor_of(items[-1], newest_first=newest_first) if full else None})

    @routes.get("/sessions/{session_id}", response_model=Session, tags=["sessions"], operation_id="get_session",
                summary="Get a session", responses={200: {"headers": ETAG_HEADER},
                                                    **error_responses(400, *auth_codes, 404, 503)})
    def get_session(session_id: SessionId, who: Reader) -> Response:
        return _session_response(who.get(session_id))

    @routes.patch("/sessions/{session_id}", response_model=Session, tags=["sessions"],
                  operation_id="update_session", summary="Update fields and/or move to a status", responses=written)
    def update_session(session_id: SessionId, body: UpdateSessionBody, who: Writer, manager: ManagerDep,
                       if_match: IfMatch = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer, expected, key = _write(who, session_id, body.performer_id, if_match, idempotency_key)
        changes: dict[str, Any] = {}
        given = body.model_fields_set
        if "current_file" in given:
            changes["current_file"] = body.current_file
        if "metadata" in given:
            changes["metadata"] = body.metadata
        return _session_response(manager.update(session_id, performer_id=performer, expected_version=expected,
                                                status=body.status, reason=body.reason, idempotency_key=key,
                                                **changes), headers=replayed(key))

    @routes.delete("/sessions/{session_id}", response_model=Session, tags=["sessions"],
                   operation_id="delete_session", summary="Delete a session (its history stays)", responses=written)
    def delete_session(
        session_id: SessionId, who: Admin, manager: ManagerDep, if_match: IfMatch = None,
        performer_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, description=PERFORMER_DOC)] = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response:
        performer, expected, key = _write(who, session_id, performer_id, if_match, idempotency_key)
        return _session_response(manager.delete(session_id, performer_id=performer, expected_version=expected,
                                                idempotency_key=key), headers=replayed(key))

    def simple(name: str, summary: str) -> None:
        def handler(session_id: SessionId, who: Writer, manager: ManagerDep, if_match: IfMatch = None,
                    body: PerformerBody | None = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
            performer, expected, key = _write(who, session_id, None if body is None else body.performer_id,
                                              if_match, idempotency_key)
            method = getattr(manager, name)
            return _session_response(method(session_id, performer_id=performer, expected_version=expected,
                                            idempotency_key=key), headers=replayed(key))

        routes.add_api_route(f"/sessions/{{session_id}}/{name}", handler, methods=["POST"], response_model=Session,
                             tags=["transitions"], operation_id=f"{name}_session", summary=summary,
                             responses=written)

    simple("start", "Start a session (pending → in_progress)")
    simple("complete", "Complete a session (in_progress → completed, every file accounted for)")

    @routes.post("/sessions/{session_id}/fail", response_model=Session, tags=["transitions"],
                 operation_id="fail_session", summary="Fail a session with a reason", responses=written)
    def fail_session(session_id: SessionId, body: FailBody, who: Writer, manager: ManagerDep,
                     if_match: IfMatch = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer, expected, key = _write(who, session_id, body.performer_id, if_match, idempotency_key)
        return _session_response(manager.fail(session_id, reason=body.reason, performer_id=performer,
                                              expected_version=expected, idempotency_key=key),
                                 headers=replayed(key))

    simple("touch", "Extend a live session's deadline by its time to live")

    @routes.post("/sessions/{session_id}/events/{event}", response_model=Session, tags=["transitions"],
                 operation_id="send_event", summary="Send any event of the session's lifecycle", responses=written)
    def send_event(session_id: SessionId,
                   event: Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                                              description="The event's name in the lifecycle.")],
                   who: Writer, manager: ManagerDep, if_match: IfMatch = None,
                   body: EventBody | None = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer, expected, key = _write(who, session_id, None if body is None else body.performer_id, if_match,
                                          idempotency_key)
        args = dict(body.args or {}) if body is not None else {}
        return _session_response(manager.send_with(session_id, event, args, performer_id=performer,
                                                   expected_version=expected, idempotency_key=key),
                                 headers=replayed(key))

    @routes.post("/sessions/{session_id}/files", response_model=Session, tags=["transitions"],
                 operation_id="record_file", summary="Record the outcome of one of the session's files",
                 responses=written)
    def record_file(session_id: SessionId, body: FileBody, who: Writer, manager: ManagerDep,
                    if_match: IfMatch = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer, expected, key = _write(who, session_id, body.performer_id, if_match, idempotency_key)
        return _session_response(manager.record_file(session_id, body.path, body.error, performer_id=performer,
                                                     expected_version=expected, idempotency_key=key),
                                 headers=replayed(key))

    @routes.post("/sessions/{session_id}/notes", response_model=Session, tags=["transitions"],
                 operation_id="add_note", summary="Attach a note to a live session", responses=written)
    def add_note(session_id: SessionId, body: NoteBody, who: Writer, manager: ManagerDep,
                 if_match: IfMatch = None, idempotency_key: IdempotencyKeyHeader = None) -> Response:
        performer, expected, key = _write(who, session_id, body.performer_id, if_match, idempotency_key)
        return _session_response(manager.add_note(session_id, file_path=body.file_path, status=body.status,
                                                  memory_id=body.memory_id, performer_id=performer,
                                                  expected_version=expected, idempotency_key=key),
                                 headers=replayed(key))

    @routes.get("/sessions/{session_id}/history", response_model=SessionHistory, tags=["sessions"],
                operation_id="session_history", summary="Every event of a session, oldest first",
                responses=error_responses(400, *auth_codes, 404, 503))
    def session_history(session_id: SessionId, who: Reader) -> Response:
        events = who.history(session_id)
        return JSONResponse({"session_id": str(session_id), "events": [e.model_dump(mode="json") for e in events]})

    return routes
