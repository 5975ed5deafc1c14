"""The OpenAPI document: what the routes declare about their responses, and the tweaks to FastAPI's document.

Routes document their error responses with :func:`error_responses` and their ``ETag`` with
:data:`ETAG_HEADER`. :func:`install_openapi` then builds the document without FastAPI's default 422 responses
(invalid input is 400 here), with the tag descriptions, the bearer security scheme when the app has tokens, and
links from the routes that create a session to every route on ``/sessions/{session_id}``.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sessionflow.entrypoints.http.errors import ErrorBody

__all__ = ["ETAG_HEADER", "TAGS", "error_responses", "install_openapi"]

_ERROR_DESCRIPTIONS: Final = {
    400: "Invalid input: malformed JSON, an unknown or server-set field, a value out of bounds.",
    401: "Missing or invalid bearer token.",
    403: "The session belongs to another user (enforce_owner).",
    404: "No such session (or it was deleted).",
    409: "Invalid transition, a user's other active session, or a concurrent change.",
    412: "If-Match names a version that is not the session's current version.",
    503: "The database is unreachable.",
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

_SESSION_OPERATIONS: Final = ("get_session", "update_session", "delete_session", "start_session", "complete_session",
                               "fail_session", "touch_session", "record_file", "add_note", "session_history",
                               "send_event")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route: an :class:`~.errors.ErrorBody` for each status."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


def install_openapi(app: FastAPI) -> None:
    """The OpenAPI document without FastAPI's default 422 responses: invalid input is 400 here."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes, tags=TAGS)
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
