"""The HTTP service: a thin FastAPI layer over a :class:`~sessionflow.SessionManager` (extra ``http``).

:func:`create_app` builds the app from explicit arguments and never reads the environment;
:func:`app_from_env` (used by ``sessionflow serve`` and ``uvicorn --factory``) reads the settings and the
tokens from the environment, opens the database and runs the timeout waker while the app is up.

Every handler calls one manager method (two for the compatibility routes) and maps its errors; the rules
live in the library. See ``docs/http.md`` for the routes, the error table, authentication and ``If-Match``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sessionflow.application.manager import SYSTEM, SessionManager
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import (
    MAX_FILE_PATHS,
    MAX_ID_LENGTH,
    MAX_LIST_LIMIT,
    MAX_PATH_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TTL,
    MIN_TTL,
    format_timestamp,
)
from sessionflow.errors import (
    ActiveSessionExists,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    SessionflowError,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
    UnknownState,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sessionflow.adapters.metrics import SessionflowMetrics
    from sessionflow.settings import Settings

__all__ = ["SERVICE_SOURCE", "ErrorBody", "app_from_env", "create_app", "status_for"]

logger = logging.getLogger("sessionflow.http")

#: The ``source`` the service writes; the only one a client may send.
SERVICE_SOURCE: Final = "sessionflow"
#: Environment variables read by :func:`app_from_env` (besides the settings' ``SESSIONFLOW_…``).
TOKENS_ENV: Final = "SESSIONFLOW_HTTP_TOKENS"
TOKENS_FILE_ENV: Final = "SESSIONFLOW_HTTP_TOKENS_FILE"

_SERVER_FIELDS: Final = {
    "timestamp": "is set by the server; do not send it",
    "record_id": "is set by the server; do not send it",
}
_IF_MATCH: Final = re.compile(r'^\s*(?:"(\d{1,19})"|(\d{1,19})|(\*))\s*$')


# ====================================================================== errors


def status_for(error: SessionflowError, *, if_match: bool = False) -> int:
    """The HTTP status of a sessionflow error (a conflict on a request with ``If-Match`` is 412)."""
    if isinstance(error, SessionNotFound):
        return 404
    if isinstance(error, SessionUserMismatch):
        return 403
    if isinstance(error, ConcurrencyConflict):
        return 412 if if_match else 409
    if isinstance(error, InvalidTransition | ActiveSessionExists):
        return 409
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, StoreError):
        return 503
    if isinstance(error, LifecycleDefinitionError) and not isinstance(error, UnknownState):
        return 400  # e.g. a request naming a lifecycle that is not registered
    return 500


class ErrorBody(BaseModel):
    """Every error response: the error's class, a stable code, a message, the session, and its context.

    Besides the listed fields, an error carries the attributes of its class (``state``, ``event`` and
    ``reason`` for ``InvalidTransition``; ``expected_version``/``actual_version`` for
    ``ConcurrencyConflict``; ``field``/``problem`` for ``InvalidInput``; ...). See ``docs/errors.md``.
    """

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="The error class, e.g. SessionNotFound.", examples=["SessionNotFound"])
    code: str = Field(description="A stable machine-readable code.", examples=["session_not_found"])
    message: str = Field(description="A readable message.")
    session_id: str | None = Field(default=None, description="The session the error is about, if any.")


def _error_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    # ASCII-escaped: an error may quote client input, which must never break the encoder.
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii")
    return Response(content, status_code=status, media_type="application/json", headers=dict(headers or {}))


class _Unauthorized(Exception):
    def __init__(self, message: str, *, invalid_token: bool) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_token = invalid_token


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_body(error: RequestValidationError) -> dict[str, Any]:
    problems: list[dict[str, str]] = []
    for item in error.errors():
        location = tuple(item.get("loc", ()))
        name = _field_of(location)
        kind = item.get("type", "")
        problem = str(item.get("msg", "invalid"))
        if kind == "extra_forbidden":
            problem = _SERVER_FIELDS.get(name, "unknown field")
        elif name == "source" and kind == "literal_error":
            problem = f"must be {SERVICE_SOURCE!r} (the service's own) if given"
        problems.append({"field": name, "problem": problem})
    first = problems[0] if problems else {"field": "body", "problem": "invalid request"}
    body = InvalidInput(first["field"], first["problem"]).to_dict()
    body["errors"] = problems
    return body


# ====================================================================== request and response models


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
_FilePathText = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH)]
_Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
_PERFORMER_DOC: Final = ("Who acts. Required when the service runs without authentication; with bearer tokens "
                         "the performer is the token's, and a different value here is refused (400).")


class PerformerBody(_Request):
    """The body of ``start``, ``complete`` and ``touch`` (optional)."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)


class CreateSessionBody(_Request):
    """A new session (``pending``)."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    user_id: _Id | None = None
    workspace_id: _Id | None = None
    module_name: _Id | None = None
    file_paths: list[_FilePathText] | None = Field(default=None, max_length=MAX_FILE_PATHS)
    metadata: dict[str, Any] | None = None
    ttl_seconds: float | None = Field(
        default=None, ge=MIN_TTL.total_seconds(), le=MAX_TTL.total_seconds(), allow_inf_nan=False,
        description="Time to live; the service's default when absent.")
    lifecycle: _Id | None = Field(
        default=None, description="A registered lifecycle's name (its newest version); default: the service's.")


class EventBody(_Request):
    """Any event of the session's lifecycle, with the arguments its guards and validators take."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    args: dict[str, Any] | None = Field(default=None, description="Keyword arguments of the event (JSON).")


class UpdateSessionBody(_Request):
    """Fields to change; a ``status`` change runs through the lifecycle with its guards.

    ``current_file: null`` clears it and ``metadata`` replaces the whole object (``null``: empty). At least
    one of ``current_file``, ``metadata`` and ``status`` must be given.
    """

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    current_file: _FilePathText | None = None
    metadata: dict[str, Any] | None = None
    status: str | None = Field(default=None, min_length=1, max_length=128,
                               description="The state to move to, through the one event that leads there.")
    reason: _Text | None = Field(default=None, description="The failure reason, with status=failed.")


class FailBody(_Request):
    """Fail a session with a reason."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    reason: _Text


class FileBody(_Request):
    """The outcome of one of the session's files: processed, or failed with ``error``."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    path: _FilePathText
    error: _Text | None = None


class NoteBody(_Request):
    """A note about one file."""

    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    file_path: _FilePathText
    status: _Id
    memory_id: _Id | None = None


class SeedStartBody(_Request):
    """``sessions.start``: create a session for ``user_id`` and start it."""

    user_id: _Id
    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    session_notes: _Text | None = Field(default=None, description="Kept as metadata.session_notes.")
    workspace_id: _Id | None = None
    module_name: _Id | None = None
    file_paths: list[_FilePathText] | None = Field(default=None, max_length=MAX_FILE_PATHS)
    metadata: dict[str, Any] | None = None
    ttl_seconds: float | None = Field(
        default=None, ge=MIN_TTL.total_seconds(), le=MAX_TTL.total_seconds(), allow_inf_nan=False)
    source: Literal["sessionflow"] | None = Field(
        default=None, description="Only the service's own source may be given; timestamp and record_id "
                                  "are set by the server and refused (400).")


class SeedEndBody(_Request):
    """``sessions.end``: complete the session of ``user_id``."""

    user_id: _Id
    session_id: UUID
    performer_id: _Id | None = Field(default=None, description=_PERFORMER_DOC)
    source: Literal["sessionflow"] | None = None


class SessionPage(BaseModel):
    """A page of sessions, ordered by creation time."""

    items: list[Session]
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page.")


class SessionHistory(BaseModel):
    """Every event of a session, oldest first (deleted sessions included)."""

    session_id: UUID
    events: list[SessionEvent]


class SeedRecord(BaseModel):
    """What the compatibility routes return."""

    session_id: UUID
    record_id: UUID = Field(description="The recorded event: 'created' for sessions.start, 'completed' for "
                                        "sessions.end.")
    timestamp: str = Field(description="When the server recorded it (ISO 8601, UTC, milliseconds, Z).")
    status: SessionStatus
    version: int
    source: Literal["sessionflow"] = SERVICE_SOURCE


class Health(BaseModel):
    status: str


# ====================================================================== helpers


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid input: malformed JSON, an unknown or server-set field, a value out of bounds.",
        401: "Missing or invalid bearer token.",
        403: "The session belongs to another user (enforce_owner).",
        404: "No such session (or it was deleted).",
        409: "Invalid transition, a user's other active session, or a concurrent change.",
        412: "If-Match names a version that is not the session's current version.",
        503: "The database is unreachable.",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in codes}


_ETAG_HEADER: Final = {"ETag": {"description": 'The session\'s version, quoted (e.g. "3"); send it back in '
                                               "If-Match.", "schema": {"type": "string"}}}


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


class _BearerAuth:
    """Bearer tokens → performer ids (tokens kept only as SHA-256 digests, compared in constant time)."""

    def __init__(self, table: dict[bytes, str]) -> None:
        self._table = table

    def performer(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Unauthorized("a bearer token is required (Authorization: Bearer <token>)", invalid_token=False)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, name in self._table.items():  # every entry, so the time does not depend on the token
            if hmac.compare_digest(known, digest):
                found = name
        if found is None:
            raise _Unauthorized("the bearer token is not valid", invalid_token=True)
        return found


def _caller(request: Request) -> str | None:
    """The authenticated performer, or ``None`` when the app runs without authentication."""
    auth: _BearerAuth | None = request.app.state.auth
    return None if auth is None else auth.performer(request.headers.get("authorization"))


Caller = Annotated[str | None, Depends(_caller)]
SessionId = Annotated[UUID, Path(description="The session's id (a UUID).")]
IfMatch = Annotated[str | None, Header(alias="If-Match", pattern=r'^(\*|[0-9]{1,19}|"[0-9]{1,19}")$', description=(
    'Apply only if the session is at this version (its ETag: 3 or "3"; * matches any); a stale version is '
    "412."))]


def _token_table(tokens: Mapping[str, str]) -> dict[bytes, str]:
    if not tokens:
        raise InvalidInput("tokens", "no tokens given: pass None to run without authentication")
    table: dict[bytes, str] = {}
    for token, performer in tokens.items():
        if not isinstance(token, str) or not token or not isinstance(performer, str) or not performer.strip():
            raise InvalidInput("tokens", "each token and performer id must be a non-empty string")
        table[hashlib.sha256(token.encode("utf-8")).digest()] = performer
    return table


# ====================================================================== the app


def create_app(
    manager: SessionManager,
    *,
    tokens: Mapping[str, str] | None = None,
    enforce_owner: bool | None = None,
    registry: CollectorRegistry | None = None,
    metrics: SessionflowMetrics | bool | None = None,
    title: str = "sessionflow",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The HTTP service over ``manager`` (which the caller owns and closes).

    Args:
        manager: the manager every route calls.
        tokens: bearer tokens mapped to performer ids. When given, every ``/sessions`` and
            ``/session_manager`` route needs ``Authorization: Bearer <token>`` (else 401) and the performer
            is the token's. ``None``: no authentication; writes name their ``performer_id``. An empty
            mapping is refused (:class:`~sessionflow.errors.InvalidInput`) rather than read as "no auth".
        enforce_owner: only a session's user (or a ``"system"`` performer) may change it. Default: on
            when tokens are given, else the manager's policy. The manager's own policy always applies.
        registry: the ``prometheus_client`` registry to put the metrics in and serve on ``/metrics``
            (default: a new one for this app).
        metrics: a :class:`~sessionflow.adapters.metrics.SessionflowMetrics` already instrumenting
            ``manager`` to serve instead; ``False`` for no ``/metrics``.
        lifespan: passed to FastAPI (startup/shutdown work of the host).
    """
    table = _token_table(tokens) if tokens is not None else None
    owner_check = (bool(table) if enforce_owner is None else bool(enforce_owner)) and not manager.enforce_owner
    served = _metrics_for(manager, registry, metrics)

    app = FastAPI(
        title=title,
        version=_version(),
        summary="Durable, event-sourced session lifecycles over HTTP.",
        description=("Sessions move through pending → in_progress → completed | failed | expired; every change "
                     "is a recorded event. Errors are JSON objects naming the error and the session "
                     "(see ErrorBody). Invalid input is 400; a stale If-Match is 412."),
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.metrics = served
    _install_error_handlers(app)

    app.state.auth = _BearerAuth(table) if table is not None else None
    auth_codes = (401,) if table is not None else ()

    def performer_of(authenticated: str | None, given: str | None) -> str:
        if authenticated is not None:
            if given is not None and given != authenticated:
                raise InvalidInput("performer_id", "differs from the bearer token's performer; omit it")
            return authenticated
        if given is None:
            raise InvalidInput("performer_id", "required (the service runs without authentication)")
        return given

    def check_owner(session_id: UUID, performer: str) -> None:
        if owner_check:
            session = manager.get(session_id)
            if session.user_id is not None and performer not in (session.user_id, SYSTEM):
                raise SessionUserMismatch(session_id, owner=session.user_id, performer_id=performer)

    write_codes = (400, *auth_codes, 403, 404, 409, 412, 503)

    # ------------------------------------------------------------------ sessions

    @app.post("/sessions", status_code=201, response_model=Session, tags=["sessions"],
              operation_id="create_session", summary="Create a session (pending)",
              responses={201: {"headers": {**_ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
                         **_responses(400, *auth_codes, 503)})
    def create_session(body: CreateSessionBody, who: Caller) -> Response:
        session = manager.create(
            performer_id=performer_of(who, body.performer_id), user_id=body.user_id,
            workspace_id=body.workspace_id, module_name=body.module_name, file_paths=body.file_paths,
            metadata=body.metadata,
            ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds),
            lifecycle=body.lifecycle)
        return _session_response(session, 201, {"Location": f"/sessions/{session.id}"})

    @app.get("/sessions", response_model=SessionPage, tags=["sessions"], operation_id="list_sessions",
             summary="List sessions (filters and pagination)", responses=_responses(400, *auth_codes, 503))
    def list_sessions(
        who: Caller,
        status: Annotated[list[Annotated[str, Query(min_length=1, max_length=128)]] | None, Query(
            description="A state of the sessions' lifecycle; repeat for several.")] = None,
        user_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        workspace_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        module_name: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> Response:
        items = manager.list(status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
                             limit=limit, offset=offset)
        return JSONResponse({"items": [s.model_dump(mode="json") for s in items], "limit": limit,
                             "offset": offset, "next_offset": offset + limit if len(items) == limit else None})

    @app.get("/sessions/{session_id}", response_model=Session, tags=["sessions"], operation_id="get_session",
             summary="Get a session", responses={200: {"headers": _ETAG_HEADER},
                                                 **_responses(400, *auth_codes, 404, 503)})
    def get_session(session_id: SessionId, who: Caller) -> Response:
        return _session_response(manager.get(session_id))

    @app.patch("/sessions/{session_id}", response_model=Session, tags=["sessions"],
               operation_id="update_session", summary="Update fields and/or move to a status",
               responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def update_session(session_id: SessionId, body: UpdateSessionBody, who: Caller,
                       if_match: IfMatch = None) -> Response:
        performer = performer_of(who, body.performer_id)
        expected = _expected_version(if_match)
        changes: dict[str, Any] = {}
        given = body.model_fields_set
        if "current_file" in given:
            changes["current_file"] = body.current_file
        if "metadata" in given:
            changes["metadata"] = body.metadata
        check_owner(session_id, performer)
        return _session_response(manager.update(session_id, performer_id=performer, expected_version=expected,
                                                status=body.status, reason=body.reason, **changes))

    @app.delete("/sessions/{session_id}", response_model=Session, tags=["sessions"],
                operation_id="delete_session", summary="Delete a session (its history stays)",
                responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def delete_session(
        session_id: SessionId, who: Caller, if_match: IfMatch = None,
        performer_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, description=_PERFORMER_DOC)] = None,
    ) -> Response:
        performer = performer_of(who, performer_id)
        expected = _expected_version(if_match)
        check_owner(session_id, performer)
        return _session_response(manager.delete(session_id, performer_id=performer, expected_version=expected))

    def simple(name: str, summary: str) -> None:
        def handler(session_id: SessionId, who: Caller, if_match: IfMatch = None,
                    body: PerformerBody | None = None) -> Response:
            performer = performer_of(who, None if body is None else body.performer_id)
            expected = _expected_version(if_match)
            check_owner(session_id, performer)
            method = getattr(manager, name)
            return _session_response(method(session_id, performer_id=performer, expected_version=expected))

        app.add_api_route(f"/sessions/{{session_id}}/{name}", handler, methods=["POST"], response_model=Session,
                          tags=["transitions"], operation_id=f"{name}_session", summary=summary,
                          responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})

    simple("start", "Start a session (pending → in_progress)")
    simple("complete", "Complete a session (in_progress → completed, every file accounted for)")

    @app.post("/sessions/{session_id}/fail", response_model=Session, tags=["transitions"],
              operation_id="fail_session", summary="Fail a session with a reason",
              responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def fail_session(session_id: SessionId, body: FailBody, who: Caller, if_match: IfMatch = None) -> Response:
        performer = performer_of(who, body.performer_id)
        expected = _expected_version(if_match)
        check_owner(session_id, performer)
        return _session_response(manager.fail(session_id, reason=body.reason, performer_id=performer,
                                              expected_version=expected))

    simple("touch", "Extend a live session's deadline by its time to live")

    @app.post("/sessions/{session_id}/events/{event}", response_model=Session, tags=["transitions"],
              operation_id="send_event", summary="Send any event of the session's lifecycle",
              responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def send_event(session_id: SessionId,
                   event: Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                                              description="The event's name in the lifecycle.")],
                   who: Caller, if_match: IfMatch = None, body: EventBody | None = None) -> Response:
        performer = performer_of(who, None if body is None else body.performer_id)
        expected = _expected_version(if_match)
        check_owner(session_id, performer)
        args = dict(body.args or {}) if body is not None else {}
        return _session_response(manager.send_with(session_id, event, args, performer_id=performer,
                                                   expected_version=expected))

    @app.post("/sessions/{session_id}/files", response_model=Session, tags=["transitions"],
              operation_id="record_file", summary="Record the outcome of one of the session's files",
              responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def record_file(session_id: SessionId, body: FileBody, who: Caller, if_match: IfMatch = None) -> Response:
        performer = performer_of(who, body.performer_id)
        expected = _expected_version(if_match)
        check_owner(session_id, performer)
        return _session_response(manager.record_file(session_id, body.path, body.error, performer_id=performer,
                                                     expected_version=expected))

    @app.post("/sessions/{session_id}/notes", response_model=Session, tags=["transitions"],
              operation_id="add_note", summary="Attach a note to a live session",
              responses={200: {"headers": _ETAG_HEADER}, **_responses(*write_codes)})
    def add_note(session_id: SessionId, body: NoteBody, who: Caller, if_match: IfMatch = None) -> Response:
        performer = performer_of(who, body.performer_id)
        expected = _expected_version(if_match)
        check_owner(session_id, performer)
        return _session_response(manager.add_note(session_id, file_path=body.file_path, status=body.status,
                                                  memory_id=body.memory_id, performer_id=performer,
                                                  expected_version=expected))

    @app.get("/sessions/{session_id}/history", response_model=SessionHistory, tags=["sessions"],
             operation_id="session_history", summary="Every event of a session, oldest first",
             responses=_responses(400, *auth_codes, 404, 503))
    def session_history(session_id: SessionId, who: Caller) -> Response:
        events = manager.history(session_id)
        return JSONResponse({"session_id": str(session_id), "events": [e.model_dump(mode="json") for e in events]})

    # ------------------------------------------------------------------ compatibility routes

    @app.post("/session_manager/sessions.start", response_model=SeedRecord, tags=["compatibility"],
              operation_id="seed_sessions_start", summary="Create and start a session for a user",
              responses=_responses(400, *auth_codes, 403, 409, 503))
    def seed_start(body: SeedStartBody, who: Caller) -> Response:
        performer = performer_of(who, body.performer_id)
        metadata = dict(body.metadata or {})
        if body.session_notes is not None:
            if "session_notes" in metadata:
                raise InvalidInput("session_notes", "given twice: as a field and in metadata")
            metadata["session_notes"] = body.session_notes
        created = manager.create(
            performer_id=performer, user_id=body.user_id, workspace_id=body.workspace_id,
            module_name=body.module_name, file_paths=body.file_paths, metadata=metadata,
            ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds))
        try:
            check_owner(created.id, performer)
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

    @app.post("/session_manager/sessions.end", response_model=SeedRecord, tags=["compatibility"],
              operation_id="seed_sessions_end", summary="Complete a user's session",
              responses=_responses(400, *auth_codes, 403, 404, 409, 503))
    def seed_end(body: SeedEndBody, who: Caller) -> Response:
        performer = performer_of(who, body.performer_id)
        session = manager.get(body.session_id)
        if session.user_id != body.user_id:
            raise SessionUserMismatch(session.id, owner=session.user_id or "", performer_id=body.user_id)
        check_owner(session.id, performer)
        done = manager.complete(session.id, performer_id=performer)
        event = next(e for e in reversed(manager.history(session.id)) if e.version == done.version)
        return JSONResponse(SeedRecord(session_id=done.id, record_id=event.record_id,
                                       timestamp=format_timestamp(event.timestamp), status=done.status,
                                       version=done.version).model_dump(mode="json"))

    # ------------------------------------------------------------------ operations

    @app.get("/healthz", response_model=Health, tags=["operations"], operation_id="healthz",
             summary="The process is up")
    def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", response_model=Health, tags=["operations"], operation_id="readyz",
             summary="The database answers", responses={503: {"model": Health, "description": "Not ready."}})
    def readyz() -> Response:
        try:
            ready = manager.ping()
        except SessionflowError:
            ready = False
        return JSONResponse({"status": "ready" if ready else "unavailable"}, status_code=200 if ready else 503)

    if served is not None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics_registry = served.registry

        @app.get("/metrics", tags=["operations"], operation_id="metrics", summary="Prometheus metrics",
                 response_class=Response,
                 responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                  "description": "The Prometheus text exposition format."}})
        def metrics_endpoint() -> Response:
            return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    _install_openapi(app)
    return app


def _version() -> str:
    from sessionflow import __version__

    return __version__


def _metrics_for(manager: SessionManager, registry: CollectorRegistry | None,
                 metrics: SessionflowMetrics | bool | None) -> SessionflowMetrics | None:
    if metrics is False:
        return None
    if metrics is not None and metrics is not True:
        return metrics
    try:
        from prometheus_client import CollectorRegistry as Registry

        from sessionflow.adapters.metrics import SessionflowMetrics as Metrics
    except ImportError:  # pragma: no cover - the metrics extra is not installed
        if metrics is True:
            raise
        return None
    return Metrics(Registry() if registry is None else registry).instrument(manager)


def _with_session(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Name the session of the route in an error that does not carry one (e.g. a missing performer_id)."""
    if body.get("session_id") is None:
        raw = request.path_params.get("session_id")
        try:
            body["session_id"] = str(UUID(str(raw))) if raw is not None else None
        except ValueError:
            body["session_id"] = None
    return body


def _install_error_handlers(app: FastAPI) -> None:
    async def on_sessionflow_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, SessionflowError)
        status = status_for(error, if_match=request.headers.get("if-match") is not None)
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, error.message)
        return _error_response(status, _with_session(request, error.to_dict()))

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return _error_response(400, _with_session(request, _validation_body(error)))

    async def on_unauthorized(request: Request, error: Exception) -> Response:
        assert isinstance(error, _Unauthorized)
        challenge = 'Bearer realm="sessionflow"'
        if error.invalid_token:
            challenge += ', error="invalid_token"'
        return _error_response(401, {"error": "Unauthorized", "code": "unauthorized", "message": error.message},
                               {"WWW-Authenticate": challenge})

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(error.status_code, "HTTPError")
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        return _error_response(error.status_code, {"error": name, "code": code, "message": str(error.detail)},
                               error.headers)

    app.add_exception_handler(SessionflowError, on_sessionflow_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(_Unauthorized, on_unauthorized)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _install_openapi(app: FastAPI) -> None:
    """The OpenAPI document without FastAPI's default 422 responses: invalid input is 400 here."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes, tags=_TAGS)
            secured = app.state.auth is not None
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
                        if secured and "operations" not in operation.get("tags", ()):
                            operation["security"] = [{"bearer": []}]
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            _add_links(schema)
            if secured:
                components["securitySchemes"] = {"bearer": {
                    "type": "http", "scheme": "bearer",
                    "description": "A token the service was configured with; it names the performer."}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_SESSION_OPERATIONS: Final = ("get_session", "update_session", "delete_session", "start_session", "complete_session",
                               "fail_session", "touch_session", "record_file", "add_note", "session_history",
                               "send_event")


def _add_links(schema: dict[str, Any]) -> None:
    """OpenAPI links: the id a creating route returns feeds every route on ``/sessions/{session_id}``."""
    sources = {("/sessions", "post", "201"): "$response.body#/id",
               ("/session_manager/sessions.start", "post", "200"): "$response.body#/session_id"}
    for (path, method, status), expression in sources.items():
        response = schema["paths"][path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": name, "parameters": {"session_id": expression},
                   "description": f"The new session's id feeds {name}."}
            for name in _SESSION_OPERATIONS}


_TAGS: Final = [
    {"name": "sessions", "description": "Create, read, update, delete and list sessions."},
    {"name": "transitions", "description": "Lifecycle events and progress on a session."},
    {"name": "compatibility", "description": "The routes of the seed design (sessions.start / sessions.end)."},
    {"name": "operations", "description": "Health, readiness and metrics (never authenticated)."},
]


# ====================================================================== from the environment


def _tokens_from_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    raw = environ.get(TOKENS_ENV)
    source = TOKENS_ENV
    path = environ.get(TOKENS_FILE_ENV)
    if path:
        if raw:
            raise InvalidInput(TOKENS_ENV, f"set {TOKENS_ENV} or {TOKENS_FILE_ENV}, not both")
        try:
            raw = FilePath(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInput(TOKENS_FILE_ENV, f"cannot read {path!r}: {error.strerror}") from None
        source = TOKENS_FILE_ENV
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInput(source, 'expected a JSON object of token → performer id, e.g. {"s3cret": "alice"}') \
            from None
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise InvalidInput(source, "expected a non-empty JSON object of token (string) → performer id (string)")
    return data


def app_from_env(settings: Settings | None = None, *, environ: Mapping[str, str] | None = None,
                 timeouts: bool = True) -> FastAPI:
    """The service as ``sessionflow serve`` runs it: settings from ``SESSIONFLOW_…`` variables.

    Reads :class:`~sessionflow.settings.Settings` (database URL, timeouts, policies) unless ``settings`` is
    given, and the bearer tokens from ``SESSIONFLOW_HTTP_TOKENS`` (a JSON object token → performer id) or
    the JSON file named by ``SESSIONFLOW_HTTP_TOKENS_FILE``; neither set: no authentication. The manager is
    opened now; while the app runs the timeout waker runs too (``timeouts=False``: not), and the manager is
    closed on shutdown. Metrics go to ``prometheus_client``'s default registry. Usable as a uvicorn
    factory: ``uvicorn --factory sessionflow.entrypoints.http:app_from_env``.
    """
    from prometheus_client import REGISTRY

    from sessionflow.adapters.metrics import SessionflowMetrics
    from sessionflow.settings import Settings as SettingsClass

    env = os.environ if environ is None else environ
    tokens = _tokens_from_env(env)
    config = settings if settings is not None else SettingsClass.from_env()
    manager = _open_manager(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if timeouts:
                manager.start_timeouts()
            yield
        finally:
            manager.close()  # stops the waker too

    try:
        metrics = SessionflowMetrics(REGISTRY).instrument(manager)
    except ValueError:  # already registered in this process (a second app): keep a private registry
        metrics = None
    return create_app(manager, tokens=tokens, metrics=metrics, lifespan=lifespan)


def _open_manager(settings: Settings) -> SessionManager:
    from sessionflow.bootstrap import from_settings

    manager: SessionManager = from_settings(settings)
    return manager
