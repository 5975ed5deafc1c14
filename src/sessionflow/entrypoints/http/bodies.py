"""The request and response bodies of the HTTP service (pydantic models; their schemas are the OpenAPI ones).

Request bodies forbid unknown fields, so a misspelt or server-set field is a 400 rather than silently
dropped; their bounds are the library's (:mod:`sessionflow.domain.values`). Responses that are a
:class:`~sessionflow.Session` or a :class:`~sessionflow.SessionEvent` use the library's own models.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sessionflow import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import MAX_FILE_PATHS, MAX_ID_LENGTH, MAX_PATH_LENGTH, MAX_TEXT_LENGTH, MAX_TTL, MIN_TTL

__all__ = [
    "PERFORMER_DOC",
    "SEED_SOURCE",
    "SERVICE_SOURCE",
    "CreateSessionBody",
    "EventBody",
    "FailBody",
    "FileBody",
    "Health",
    "NoteBody",
    "PerformerBody",
    "SeedEndBody",
    "SeedRecord",
    "SeedStartBody",
    "SessionHistory",
    "SessionPage",
    "UpdateSessionBody",
]

#: The ``source`` the service writes; the only one a client may send.
SERVICE_SOURCE: Final = "sessionflow"
#: The ``source`` of the compatibility routes (the seed design's): the only one they answer with or accept.
SEED_SOURCE: Final = "session_manager"
#: The description of every ``performer_id`` a request may name (a body field or a query parameter).
PERFORMER_DOC: Final = ("Who acts. Required when the service runs without authentication; with bearer tokens "
                        "the performer is the token's, and a different value here is refused (400).")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
_FilePathText = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH)]
_Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
#: A time-to-live in seconds: a JSON number (``strict``: ``true`` or a string such as ``"60"`` is refused, as the
#: schema says), finite and within the library's bounds.
_TtlSeconds = Annotated[float, Field(strict=True, ge=MIN_TTL.total_seconds(), le=MAX_TTL.total_seconds(),
                                     allow_inf_nan=False)]


class PerformerBody(_Request):
    """The body of ``start``, ``complete`` and ``touch`` (optional)."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)


class CreateSessionBody(_Request):
    """A new session (``pending``)."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    user_id: _Id | None = None
    workspace_id: _Id | None = None
    module_name: _Id | None = None
    file_paths: list[_FilePathText] | None = Field(default=None, max_length=MAX_FILE_PATHS)
    metadata: dict[str, Any] | None = None
    ttl_seconds: _TtlSeconds | None = Field(default=None,
                                            description="Time to live; the service's default when absent.")
    lifecycle: _Id | None = Field(
        default=None, description="A registered lifecycle's name (its newest version); default: the service's.")


class EventBody(_Request):
    """Any event of the session's lifecycle, with the arguments its guards and validators take."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    args: dict[str, Any] | None = Field(default=None, description="Keyword arguments of the event (JSON).")


class UpdateSessionBody(_Request):
    """Fields to change; a ``status`` change runs through the lifecycle with its guards.

    ``current_file: null`` clears it and ``metadata`` replaces the whole object (``null``: empty). At least
    one of ``current_file``, ``metadata`` and ``status`` must be given.
    """

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    current_file: _FilePathText | None = None
    metadata: dict[str, Any] | None = None
    status: str | None = Field(default=None, min_length=1, max_length=128,
                               description="The state to move to, through the one event that leads there.")
    reason: _Text | None = Field(default=None, description="The failure reason, with status=failed.")


class FailBody(_Request):
    """Fail a session with a reason."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    reason: _Text


class FileBody(_Request):
    """The outcome of one of the session's files: processed, or failed with ``error``."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    path: _FilePathText
    error: _Text | None = None


class NoteBody(_Request):
    """A note about one file."""

    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    file_path: _FilePathText
    status: _Id
    memory_id: _Id | None = None


class SeedStartBody(_Request):
    """``sessions.start``: create a session for ``user_id`` and start it."""

    user_id: _Id
    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    session_notes: _Text | None = Field(default=None, description="Kept as metadata.session_notes.")
    workspace_id: _Id | None = None
    module_name: _Id | None = None
    file_paths: list[_FilePathText] | None = Field(default=None, max_length=MAX_FILE_PATHS)
    metadata: dict[str, Any] | None = None
    ttl_seconds: _TtlSeconds | None = None
    is_training_data: Annotated[bool, Field(strict=True)] | None = Field(
        default=None, description="Kept as metadata.is_training_data (the seed's session field).")
    training_intent_label: _Text | None = Field(
        default=None, description="Kept as metadata.training_intent_label (the seed's session field).")
    source: Literal["session_manager"] | None = Field(
        default=None, description="Exactly 'session_manager' if given (the seed's contract); timestamp and "
                                  "record_id are set by the server and refused (400).")


class SeedEndBody(_Request):
    """``sessions.end``: complete the session of ``user_id``."""

    user_id: _Id
    session_id: UUID
    performer_id: _Id | None = Field(default=None, description=PERFORMER_DOC)
    source: Literal["session_manager"] | None = Field(default=None,
                                                      description="Exactly 'session_manager' if given.")


class SessionPage(BaseModel):
    """A page of sessions, in creation order (newest first with ``newest_first``)."""

    items: list[Session]
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page.")
    next_cursor: str | None = Field(default=None, description=(
        "The cursor of the next page: pass it as `cursor` (with offset 0) for the next page, which then costs what "
        "the first does and does not shift as sessions are created; null on the last page."))


class SessionHistory(BaseModel):
    """Every event of a session, oldest first (deleted sessions included)."""

    session_id: UUID
    events: list[SessionEvent]


class SeedRecord(BaseModel):
    """What the compatibility routes return: the seed design's boundary event (``user_id``, ``session_id``,
    ``performer_id``, ``record_id``, ``timestamp``, ``source``), with the session's status and version."""

    user_id: str | None = Field(description="The session's user.")
    session_id: UUID
    performer_id: str = Field(description="Who acted (the bearer token's principal, or the body's performer_id).")
    record_id: UUID = Field(description="The recorded event's record id (a UUIDv4): the 'started' event for "
                                        "sessions.start, the 'completed' event for sessions.end.")
    timestamp: str = Field(description="When the server recorded it (ISO 8601, UTC, milliseconds, Z).")
    source: Literal["session_manager"] = SEED_SOURCE
    status: SessionStatus
    version: int
    session_notes: str | None = Field(default=None, description="As given on start (metadata.session_notes).")
    is_training_data: bool | None = Field(default=None, description="As given on start.")
    training_intent_label: str | None = Field(default=None, description="As given on start.")


#: What ``/healthz`` and ``/readyz`` return (no docstring: it would change the published schema).
class Health(BaseModel):
    status: str
