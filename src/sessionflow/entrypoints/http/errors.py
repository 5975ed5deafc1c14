"""Error mapping: the HTTP status of each library error, the one error body, and the app's exception handlers.

Every error response is a JSON :class:`ErrorBody` (ASCII-escaped, since it may quote client input). A library
error gets :func:`status_for` its class; invalid input (FastAPI's request validation) is a 400 naming the
field, never a 422 (a body that is not JSON, or is nested too deeply to read, has the code ``invalid_json``);
a missing or unknown bearer token is a 401 with a ``WWW-Authenticate`` challenge; a principal refused by
the access rules is a 403 ``forbidden``; a body over the limit is a 413 ``payload_too_large``; an
``Idempotency-Key`` stored for another request is a 422 ``idempotency_key_reused``, one still in flight a 409
``idempotency_key_in_flight``; an unknown route or method keeps its 404/405 in the same shape. Every ``code``
is a readable snake_case name (an HTTP status without a name of its own here is ``http_error``). See
``docs/errors.md`` and ``docs/http.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from sessionflow.entrypoints.http.access import Forbidden
from sessionflow.entrypoints.http.auth import Unauthorized
from sessionflow.entrypoints.http.bodies import SERVICE_SOURCE
from sessionflow.entrypoints.http.limits import BodyTooLarge, too_large_body
from sessionflow.errors import (
    ActiveSessionExists,
    ConcurrencyConflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    OutcomeUnknown,
    SessionflowError,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
    UnknownState,
)

__all__ = ["HTTP_ERROR_NAMES", "ErrorBody", "http_error_name", "install_error_handlers", "status_for"]

logger = logging.getLogger("sessionflow.http")

#: The ``error`` and ``code`` of an HTTP status raised by the framework (not by the library).
HTTP_ERROR_NAMES: Final[dict[int, tuple[str, str]]] = {
    400: ("BadRequest", "bad_request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "not_found"),
    405: ("MethodNotAllowed", "method_not_allowed"),
    406: ("NotAcceptable", "not_acceptable"),
    413: ("PayloadTooLarge", "payload_too_large"),
    415: ("UnsupportedMediaType", "unsupported_media_type"),
}
#: The ``code`` of a request body that is not JSON, or nests too deeply to read.
INVALID_JSON: Final = "invalid_json"

_SERVER_FIELDS: Final = {
    "timestamp": "is set by the server; do not send it",
    "record_id": "is set by the server; do not send it",
}


def status_for(error: SessionflowError, *, if_match: bool = False) -> int:
    """The HTTP status of a sessionflow error (a conflict on a request with ``If-Match`` is 412)."""
    if isinstance(error, SessionNotFound):
        return 404
    if isinstance(error, SessionUserMismatch):
        return 403
    if isinstance(error, ConcurrencyConflict):
        return 412 if if_match else 409
    if isinstance(error, InvalidTransition | ActiveSessionExists | IdempotencyKeyInFlight):
        return 409
    if isinstance(error, IdempotencyKeyReused):
        return 422  # the request is well formed, but its key was stored for another one
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, StoreError | OutcomeUnknown):
        return 503  # the code tells them apart: store_error (not applied) or outcome_unknown (may have been)
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


def http_error_name(status: int) -> tuple[str, str]:
    """The ``error`` and ``code`` of an HTTP status: a name of :data:`HTTP_ERROR_NAMES`, else ``HTTPError``
    and ``http_error``."""
    return HTTP_ERROR_NAMES.get(status, ("HTTPError", "http_error"))


def _error_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    # ASCII-escaped: an error may quote client input, which must never break the encoder.
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii")
    return Response(content, status_code=status, media_type="application/json", headers=dict(headers or {}))


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
        if kind == "json_invalid":
            name = "body"
            position = location[-1] if location and isinstance(location[-1], int) else None
            detail = str((item.get("ctx") or {}).get("error", "")) or problem
            problem = f"not valid JSON: {detail}" + ("" if position is None else f" (at character {position})")
        elif kind == "extra_forbidden":
            problem = _SERVER_FIELDS.get(name, "unknown field")
        elif name == "source" and kind == "literal_error":
            expected = (item.get("ctx") or {}).get("expected", repr(SERVICE_SOURCE))
            problem = f"must be {expected} if given"
        problems.append({"field": name, "problem": problem})
    first = problems[0] if problems else {"field": "body", "problem": "invalid request"}
    body = InvalidInput(first["field"], first["problem"]).to_dict()
    body["errors"] = problems
    if any(item.get("type") == "json_invalid" for item in error.errors()):
        body["code"] = INVALID_JSON
    return body


def _unreadable_body(problem: str) -> dict[str, Any]:
    """The 400 of a body FastAPI could not parse at all (nested too deeply, not text): ``invalid_json``."""
    body = InvalidInput("body", problem).to_dict()
    body["code"] = INVALID_JSON
    body["errors"] = [{"field": "body", "problem": problem}]
    return body


def _with_session(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """Name the session of the route in an error that does not carry one (e.g. a missing performer_id)."""
    if body.get("session_id") is None:
        raw = request.path_params.get("session_id")
        try:
            body["session_id"] = str(UUID(str(raw))) if raw is not None else None
        except ValueError:
            body["session_id"] = None
    return body


def install_error_handlers(app: FastAPI) -> None:
    """Map library errors, invalid input, missing tokens, refusals and Starlette's HTTP errors (413
    included) to :class:`ErrorBody`."""

    async def on_sessionflow_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, SessionflowError)
        status = status_for(error, if_match=request.headers.get("if-match") is not None)
        body = _with_session(request, error.to_dict())
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, error.message,
                           extra={"session_id": body.get("session_id")})
        return _error_response(status, body)

    async def on_validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return _error_response(400, _with_session(request, _validation_body(error)))

    async def on_unauthorized(request: Request, error: Exception) -> Response:
        assert isinstance(error, Unauthorized)
        challenge = 'Bearer realm="sessionflow"'
        if error.invalid_token:
            challenge += ', error="invalid_token"'
        return _error_response(401, {"error": "Unauthorized", "code": "unauthorized", "message": error.message},
                               {"WWW-Authenticate": challenge})

    async def on_forbidden(request: Request, error: Exception) -> Response:
        assert isinstance(error, Forbidden)
        body: dict[str, Any] = {"error": "Forbidden", "code": "forbidden", "message": error.message}
        headers: dict[str, str] = {}
        if error.required_scope is not None:
            body["required_scope"] = error.required_scope.value
            headers["WWW-Authenticate"] = (f'Bearer realm="sessionflow", error="insufficient_scope", '
                                           f'scope="{error.required_scope.value}"')
        return _error_response(403, body, headers)

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if isinstance(error, BodyTooLarge):
            return _error_response(413, too_large_body(error.limit), error.headers)
        if error.status_code == 400 and error.__cause__ is not None:
            # FastAPI could not parse the body at all: nested too deeply (RecursionError) or not text.
            deep = isinstance(error.__cause__, RecursionError)
            problem = "nested too deeply to read" if deep else "not valid JSON"
            return _error_response(400, _with_session(request, _unreadable_body(problem)))
        name, code = http_error_name(error.status_code)
        return _error_response(error.status_code, {"error": name, "code": code, "message": str(error.detail)},
                               error.headers)

    app.add_exception_handler(SessionflowError, on_sessionflow_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
