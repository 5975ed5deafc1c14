"""The immutable models: a session, its events and their parts.

Every model is a frozen pydantic model and every JSON value inside one (``metadata``, ``payload``) is a
deeply immutable :class:`~sessionflow.domain.values.FrozenDict`, so a caller can never change engine state
through an object it was given. Every datetime is timezone-aware UTC; serialised to JSON it is ISO 8601 with
milliseconds and a ``Z`` suffix.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from sessionflow.domain.values import FrozenDict, format_timestamp, freeze_json, to_utc

__all__ = [
    "TERMINAL_STATUSES",
    "EventType",
    "FileResult",
    "JsonObject",
    "Session",
    "SessionEvent",
    "SessionNote",
    "SessionProgress",
    "SessionStatus",
    "TraceContext",
    "UtcDateTime",
]


class SessionStatus(StrEnum):
    """Where a session is in its lifecycle. ``completed``, ``failed`` and ``expired`` are terminal."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True for the absorbing states: nothing changes a session once it is here."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.EXPIRED})
LIVE_STATUSES = frozenset({SessionStatus.PENDING, SessionStatus.IN_PROGRESS})


class EventType(StrEnum):
    """The name of a recorded event."""

    CREATED = "created"
    STARTED = "started"
    FILE_RECORDED = "file_recorded"
    NOTE_ADDED = "note_added"
    TOUCHED = "touched"
    UPDATED = "updated"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    DELETED = "deleted"
    MIGRATED = "migrated"


def _utc(value: datetime) -> datetime:
    return to_utc(value)


#: A timezone-aware UTC datetime whose JSON form is ``YYYY-MM-DDTHH:MM:SS.mmmZ``.
UtcDateTime = Annotated[
    datetime, AfterValidator(_utc), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


def _freeze_object(value: Any) -> FrozenDict:
    return freeze_json(value, "json object")


def _state(value: Any) -> str:
    if isinstance(value, SessionStatus):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("a state is a non-empty string")
    return SessionStatus._value2member_map_.get(value, value)  # type: ignore[return-value]


def _event_name(value: Any) -> str:
    if isinstance(value, EventType):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("an event name is a non-empty string")
    return EventType._value2member_map_.get(value, value)  # type: ignore[return-value]


#: A state value. The default lifecycle's states are :class:`SessionStatus` members (which are strings);
#: a custom lifecycle's are plain strings.
State = Annotated[str, AfterValidator(_state)]
#: A recorded event name: an :class:`EventType` member for the engine's own names, else a plain string.
EventName = Annotated[str, AfterValidator(_event_name)]

#: A JSON object, stored deeply immutable.
JsonObject = Annotated[dict[str, Any], BeforeValidator(_freeze_object), AfterValidator(FrozenDict)]


_set = object.__setattr__
#: Each model class's field names, for :meth:`_Frozen.trusted`.
_ALL_FIELDS: dict[type, set[str]] = {}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build from values the engine produced itself, every field given and already valid.

        Skips validation (like ``model_construct``, but faster): the engine's hot path builds several
        of these per transition. Never use it for input from outside the engine.
        """
        return cls._from_dict(values)

    def evolve(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, without validation (for values the engine produced)."""
        values = self.__dict__.copy()
        values.update(changes)
        return type(self)._from_dict(values)

    @classmethod
    def _from_dict(cls, values: dict[str, Any]) -> Self:
        """An instance whose field values are ``values`` (the dict itself becomes its ``__dict__``)."""
        instance = cls.__new__(cls)
        _set(instance, "__dict__", values)
        every = _ALL_FIELDS.get(cls)
        if every is None:
            every = _ALL_FIELDS[cls] = set(cls.model_fields)
        # a copy of the class's prepared set costs far less than building one from the keys
        _set(instance, "__pydantic_fields_set__", every.copy() if len(values) == len(every) else set(values))
        _set(instance, "__pydantic_extra__", None)
        _set(instance, "__pydantic_private__", None)
        return instance


class SessionNote(_Frozen):
    """A note attached to a session, e.g. where the result for one file was stored."""

    file_path: str
    memory_id: str | None = None
    status: str
    created_at: UtcDateTime


class FileResult(_Frozen):
    """The outcome of one file: processed (``error`` is ``None``) or failed with an error."""

    path: str
    error: str | None = None
    recorded_at: UtcDateTime

    @property
    def failed(self) -> bool:
        return self.error is not None


class SessionProgress(_Frozen):
    """The session's files: how many there are, how many were processed, which failed.

    ``processed_files`` counts the files recorded without an error; ``failed_files`` holds the paths of the
    files recorded with one, in the order they failed (``failed_count`` is their number).
    """

    total_files: int = Field(default=0, ge=0)
    processed_files: int = Field(default=0, ge=0)
    failed_files: tuple[str, ...] = ()
    current_file: str | None = None

    @property
    def failed_count(self) -> int:
        """How many files failed: ``len(failed_files)``."""
        return len(self.failed_files)

    @property
    def accounted_files(self) -> int:
        """Files with an outcome, processed or failed."""
        return self.processed_files + len(self.failed_files)

    @property
    def all_accounted(self) -> bool:
        """True when every file has an outcome (``processed + failed == total``)."""
        return self.accounted_files == self.total_files


class Session(_Frozen):
    """The current state of a session: the fold of its events (see :func:`sessionflow.replay`).

    ``status`` is the state in its lifecycle (``lifecycle`` at ``lifecycle_version``): a
    :class:`SessionStatus` for the default ``session`` lifecycle. ``expires_at`` is the deadline of the
    current state's timeout (``None`` when the state has none).
    """

    id: UUID
    status: State
    version: int = Field(ge=1)
    lifecycle: str = "session"
    lifecycle_version: int = Field(default=1, ge=1)
    user_id: str | None = None
    workspace_id: str | None = None
    module_name: str | None = None
    file_paths: tuple[str, ...] = ()
    progress: SessionProgress = SessionProgress.trusted(total_files=0, processed_files=0, failed_files=(),
                                                        current_file=None)
    file_results: tuple[FileResult, ...] = ()
    notes: tuple[SessionNote, ...] = ()
    metadata: JsonObject = Field(default_factory=FrozenDict)
    ttl_seconds: float = Field(gt=0)
    created_at: UtcDateTime
    updated_at: UtcDateTime
    expires_at: UtcDateTime | None
    max_expires_at: UtcDateTime | None = None
    closed_at: UtcDateTime | None = None
    closed_by: str | None = None
    failure_reason: str | None = None
    deleted_at: UtcDateTime | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the session reached a final state (completed, failed or expired by default)."""
        return self.closed_at is not None or (self.lifecycle == "session" and self.status in TERMINAL_STATUSES)

    @property
    def is_live(self) -> bool:
        """Not in a final state and not deleted."""
        return self.deleted_at is None and not self.is_terminal

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def due_at(self) -> datetime | None:
        """The deadline the engine acts on: ``expires_at`` while the session is live, else ``None``."""
        return self.expires_at if self.is_live else None

    def is_overdue(self, now: datetime) -> bool:
        """True when the session is still live but its deadline has passed at ``now``."""
        return self.expires_at is not None and self.expires_at <= now and self.is_live


#: A W3C ``traceparent`` of version ``00``: ``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``,
#: lowercase, neither id all zeros.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
#: The longest ``tracestate`` kept (the W3C asks to propagate at least 512 characters; a longer one is dropped).
TRACESTATE_MAX = 512
#: What a ``tracestate`` may hold: printable ASCII (its list members and their separators).
_TRACESTATE = re.compile(r"[\x20-\x7e]+")


def _traceparent(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 55 or _TRACEPARENT.fullmatch(value) is None:
        raise ValueError("a traceparent is W3C's '00-<32 lowercase hex>-<16 lowercase hex>-<2 lowercase hex>', "
                         "neither id all zeros")
    return value


def _tracestate(value: Any) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or not value or len(value) > TRACESTATE_MAX
            or _TRACESTATE.fullmatch(value) is None):
        raise ValueError(f"a tracestate is 1 to {TRACESTATE_MAX} printable ASCII characters, or null")
    return value


class TraceContext(_Frozen):
    """Where a change was made, in the terms of distributed tracing: the W3C Trace Context of the span that was
    current when the event was written (``traceparent``, and ``tracestate`` when the trace carries one).

    Read it back to continue that trace: a consumer's span for the event is a child of it. It says where the
    change was made, not what it is: it is not part of an event's identity (see :class:`SessionEvent`).
    """

    traceparent: Annotated[str, BeforeValidator(_traceparent)]
    tracestate: Annotated[str | None, BeforeValidator(_tracestate)] = None

    @property
    def trace_id(self) -> str:
        """The trace's id: 32 lowercase hex digits."""
        return self.traceparent[3:35]

    @property
    def span_id(self) -> str:
        """The writing span's id: 16 lowercase hex digits."""
        return self.traceparent[36:52]


class SessionEvent(_Frozen):
    """One recorded change of a session. Events are append-only; ``version`` numbers them from 1.

    ``position`` is the event's place in the store's global feed (see ``SessionManager.events``): an integer
    that increases in commit order across all sessions. The store assigns it when the event is committed, so
    it is set on every event read back from a store (``history``, ``events``) and ``None`` on an event that
    was never stored (one a write builds, and the copy subscribers receive). It is where the store placed the
    event, not part of the change it records: two events are equal (and hash alike) when every other field is.

    ``trace_context`` is the W3C Trace Context of the span current when the event was written
    (:class:`TraceContext`), or ``None``: written outside any span, by a manager that does not trace
    (``tracing=False``), or before the field existed. Like ``position``, it says where the change was made, not
    what it is, so it is not part of the event's identity either.
    """

    record_id: UUID
    session_id: UUID
    version: int = Field(ge=1)
    event: EventName
    source_state: State | None
    target_state: State
    performer_id: str
    timestamp: UtcDateTime
    payload: JsonObject = Field(default_factory=FrozenDict)
    position: int | None = Field(default=None, ge=1)
    trace_context: TraceContext | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionEvent):
            return NotImplemented
        mine, theirs = self.__dict__, other.__dict__
        return all(mine[name] == theirs[name] for name in _EVENT_IDENTITY)

    def __hash__(self) -> int:
        values = self.__dict__
        return hash(tuple(values[name] for name in _EVENT_IDENTITY))


#: The fields that say which change an event records (all but ``position`` and ``trace_context``, which say where
#: it was stored and made), for equality and hashing.
_EVENT_IDENTITY = tuple(name for name in SessionEvent.model_fields if name not in ("position", "trace_context"))
