"""The OpenAPI document: what the routes declare about their responses, and the tweaks to FastAPI's document.

Routes document their error responses with :func:`error_responses` and their ``ETag`` with
:data:`ETAG_HEADER`. :func:`install_openapi` then builds the document without FastAPI's default 422 responses
(invalid input is 400 here; the only 422 is a reused ``Idempotency-Key``), with the tag descriptions, the
bearer security scheme when the app has tokens
(each operation names the scope a service principal needs: OpenAPI 3.1 lets a non-OAuth scheme list the
roles an operation requires), and links from the routes that create a session to every route on
``/sessions/{session_id}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from sessionflow.entrypoints.http.auth import Authorize
from sessionflow.entrypoints.http.errors import ErrorBody
from sessionflow.entrypoints.http.principals import Scope

__all__ = ["ETAG_HEADER", "TAGS", "error_responses", "install_openapi", "route_scopes"]

_ERROR_DESCRIPTIONS: Final = {
    400: "Invalid input: malformed JSON, an unknown or server-set field, a value out of bounds.",
    401: "Missing or invalid bearer token.",
    403: ("Refused before anything is read: a service token without the route's scope, or a user token naming "
          "another user (user_id); without tokens, a write to another user's session (enforce_owner)."),
    404: "No such session: it never existed, it was deleted, or (for a user token) it is another user's.",
    409: ("Invalid transition, a user's other active session, or a concurrent change; code "
          "idempotency_key_in_flight: a write with the same Idempotency-Key is still under way (nothing was "
          "written; retry once it has finished)."),
    412: "If-Match names a version that is not the session's current version.",
    413: "The request body is larger than the service's limit; it was not read.",
    422: ("code idempotency_key_reused: the Idempotency-Key was already used for a different request (another "
          "route, session or body); nothing was written. Use a new key for a new request."),
    503: ("The database failed. code store_error: the request was not applied, retrying is safe. code "
          "outcome_unknown (writes only): the connection was lost after the write was sent, so it may have been "
          "applied; read the session (or its history: record_ids) before retrying."),
}

#: The ``ETag`` header of a response carrying a session.
ETAG_HEADER: Final = {"ETag": {"description": 'The session\'s version, quoted (e.g. "3"); send it back in '
                                              "If-Match.", "schema": {"type": "string"}}}

#: The tags of the routes, in the order the document lists them.
TAGS: Final = [
    {"name": "sessions", "description": "Create, read, update, delete and list sessions."},
    {"name": "transitions", "description": "Lifecycle events and progress on a session."},
    {"name": "compatibility", "description": "The routes of the seed design (sessions.start / sessions.end)."},
    {"name": "operations", "description": "Health, readiness and metrics (never authenticated)."},
]

_SCHEME_DESCRIPTION: Final = (
    "A token the service was configured with; it stands for a principal. A user principal acts as its user, "
    "on that user's sessions only (another user's session is 404). A service principal acts on any session "
    "within its scopes, recorded under its own id: " + "; ".join(
        f"{scope.value}: {text}" for scope, text in (
            (Scope.SESSIONS_READ, "get, list and history"),
            (Scope.SESSIONS_WRITE, "create, update, transitions, progress, notes, the compatibility routes"),
            (Scope.SESSIONS_ADMIN, "delete"),
            (Scope.EVENTS_READ, "reserved for the event feed"))) + ". Each operation lists the scope it needs.")

_SESSION_OPERATIONS: Final = ("get_session", "update_session", "delete_session", "start_session", "complete_session",
                               "fail_session", "touch_session", "record_file", "add_note", "session_history",
                               "send_event")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route: an :class:`~.errors.ErrorBody` for each status."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


def install_openapi(app: FastAPI, scopes: Mapping[str, Scope]) -> None:
    """The OpenAPI document without FastAPI's default 422 responses: invalid input is 400 here; with tokens,
    each operation of ``scopes`` (operation id → the scope a service needs, see :func:`route_scopes`)
    declares the bearer scheme with its scope."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes, tags=TAGS)
            secured = app.state.auth is not None
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict):
                        _drop_default_422(operation.get("responses", {}))
                        scope = scopes.get(operation.get("operationId", ""))
                        if secured and scope is not None:
                            operation["security"] = [{"bearer": [scope.value]}]
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            _add_links(schema)
            if secured:
                components["securitySchemes"] = {"bearer": {
                    "type": "http", "scheme": "bearer", "description": _SCHEME_DESCRIPTION}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_default_422(responses: dict[str, Any]) -> None:
    """Remove FastAPI's own 422 (its validation error, which is a 400 here); a 422 a route declares stays."""
    schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if schema.get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]


def route_scopes(routers: Iterable[APIRouter]) -> dict[str, Scope]:
    """The scope each operation (by id) of ``routers`` needs from a service principal, read from the
    :class:`~.auth.Authorize` dependency it takes (operations without one are open)."""
    found: dict[str, Scope] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.operation_id is not None:
                scope = _scope_of(route.dependant)
                if scope is not None:
                    found[route.operation_id] = scope
    return found


def _scope_of(dependant: Dependant) -> Scope | None:
    if isinstance(dependant.call, Authorize):
        return dependant.call.scope
    for dependency in dependant.dependencies:
        scope = _scope_of(dependency)
        if scope is not None:
            return scope
    return None


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
