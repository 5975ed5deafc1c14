"""The errors sessionflow raises.

Every error derives from :class:`SessionflowError`. Each subclass carries its context as attributes
(session id, versions, states, ...) and builds its own message from them, so callers can branch on the
type and read the details without parsing text.

A refused operation changes nothing: when any of these is raised by a write, no event was appended and
no projection row was changed — with one exception, :class:`OutcomeUnknown`, which says exactly that the
outcome is not known (the connection broke after the write may have reached the database, and it could not
be looked up). It is deliberately not a :class:`StoreError`, so that ``except StoreError: retry`` never
retries a write that may have been applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

__all__ = [
    "ActiveSessionExists",
    "BatchRejected",
    "ConcurrencyConflict",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidInput",
    "ArchiveError",
    "InvalidTransition",
    "LifecycleDefinitionError",
    "OutcomeUnknown",
    "SessionNotFound",
    "SessionUserMismatch",
    "SessionflowError",
    "SettingsError",
    "StoreError",
    "UnknownState",
]


class SessionflowError(Exception):
    """Root of every error raised by sessionflow."""

    #: A short machine-readable name, used by the CLI and the HTTP service.
    code: str = "sessionflow_error"

    def __init__(self, message: str, *, session_id: UUID | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.session_id = session_id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the error: its class, code, message and context."""
        data: dict[str, Any] = {"error": type(self).__name__, "code": self.code, "message": self.message}
        if self.session_id is not None:
            data["session_id"] = str(self.session_id)
        return data


class SessionNotFound(SessionflowError, LookupError):
    """No live session has this id (it never existed, or it was deleted)."""

    code = "session_not_found"

    def __init__(self, session_id: UUID) -> None:
        super().__init__(f"session {session_id} not found", session_id=session_id)


class InvalidTransition(SessionflowError):
    """The event is not allowed from the session's current state, or one of its guards refused it."""

    code = "invalid_transition"

    def __init__(self, session_id: UUID | None, *, state: str, event: str, reason: str) -> None:
        self.state = state
        self.event = event
        self.reason = reason
        where = f"session {session_id}" if session_id is not None else "session"
        super().__init__(f"cannot {event} {where} in state {state!r}: {reason}", session_id=session_id)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(state=self.state, event=self.event, reason=self.reason)
        return data


class ConcurrencyConflict(SessionflowError):
    """Another writer changed the session first: the expected version is not the stored one."""

    code = "concurrency_conflict"

    def __init__(self, session_id: UUID, *, expected_version: int, actual_version: int | None) -> None:
        self.expected_version = expected_version
        self.actual_version = actual_version
        actual = "unknown" if actual_version is None else str(actual_version)
        super().__init__(
            f"session {session_id} was changed concurrently: expected version {expected_version}, "
            f"found {actual}",
            session_id=session_id,
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(expected_version=self.expected_version, actual_version=self.actual_version)
        return data


class ActiveSessionExists(SessionflowError):
    """The ``single_active_per_user`` policy refused a start: the user already has a session in progress
    (``active_session_id``). ``session_id`` is the session that was to start; ``None`` for a session created
    and started at once (``create(..., start=True)``), which was not created."""

    code = "active_session_exists"

    def __init__(self, session_id: UUID | None, *, user_id: str, active_session_id: UUID | None) -> None:
        self.user_id = user_id
        self.active_session_id = active_session_id
        other = f" ({active_session_id})" if active_session_id is not None else ""
        which = f"session {session_id}" if session_id is not None else "a new session"
        super().__init__(
            f"cannot start {which}: user {user_id!r} already has a session in progress{other}",
            session_id=session_id,
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(
            user_id=self.user_id,
            active_session_id=None if self.active_session_id is None else str(self.active_session_id),
        )
        return data


class SessionUserMismatch(SessionflowError):
    """The ``enforce_owner`` policy refused a write by someone other than the session's user. ``session_id`` is
    ``None`` for a session that was to be created and started at once (it was not created)."""

    code = "session_user_mismatch"

    def __init__(self, session_id: UUID | None, *, owner: str, performer_id: str) -> None:
        self.owner = owner
        self.performer_id = performer_id
        which = f"session {session_id} belongs" if session_id is not None else "a new session would belong"
        super().__init__(
            f"{which} to user {owner!r}; {performer_id!r} may not change it",
            session_id=session_id,
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(owner=self.owner, performer_id=self.performer_id)
        return data


class InvalidInput(SessionflowError, ValueError):
    """An argument is missing, malformed or out of bounds. Nothing was changed."""

    code = "invalid_input"

    def __init__(self, field: str, problem: str, *, session_id: UUID | None = None) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid {field}: {problem}", session_id=session_id)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(field=self.field, problem=self.problem)
        return data


class SettingsError(InvalidInput):
    """One or more settings are invalid (below a minimum, of the wrong type, unknown, unreadable file).

    ``problems`` lists ``(setting, problem)`` pairs, e.g. ``("session.timeout_seconds", "Input should be
    greater than or equal to 60 (got '10') [environment variable SESSIONFLOW_SESSION__TIMEOUT_SECONDS]")``.
    """

    code = "invalid_settings"

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple((str(name), str(problem)) for name, problem in problems)
        self.field = ", ".join(name for name, _ in self.problems) or "settings"
        self.problem = "; ".join(f"{name}: {problem}" for name, problem in self.problems)
        SessionflowError.__init__(self, f"invalid settings: {self.problem}")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["problems"] = [{"setting": name, "problem": problem} for name, problem in self.problems]
        return data


class LifecycleDefinitionError(SessionflowError):
    """A lifecycle definition cannot be used (unknown state, unsupported guard, ...)."""

    code = "lifecycle_definition_error"


class UnknownState(LifecycleDefinitionError):
    """A stored session is in a state its lifecycle definition does not know (a corrupt row, or a
    definition changed in place instead of registered as a new version)."""

    code = "unknown_state"

    def __init__(self, session_id: UUID, *, lifecycle: str, version: int, state: str) -> None:
        self.lifecycle = lifecycle
        self.version = version
        self.state = state
        super().__init__(
            f"session {session_id} is in state {state!r}, unknown to lifecycle {lifecycle!r} version {version}",
            session_id=session_id)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(lifecycle=self.lifecycle, version=self.version, state=self.state)
        return data


class StoreError(SessionflowError):
    """The store failed (database unreachable, driver error, ...). The operation was not applied: this is
    raised only when that is known (the database refused the write, or it was never sent, or a lost write
    was looked up and not found). When it is not known, :class:`OutcomeUnknown` is raised instead."""

    code = "store_error"


class OutcomeUnknown(SessionflowError):
    """A write may or may not have been applied: the connection broke after the write was sent (it may have
    committed), and looking it up failed or the retry budget ran out.

    Not a :class:`StoreError` (which means "not applied"). To find out, look up the events by their record
    ids (``record_ids``, unique across the store): ``manager.history(session_id)`` holds them if the write
    was applied. ``session_ids`` lists the sessions the write touched (one for a single write; each of a
    batch's); ``operation`` names the write (``append``, ``append_many``, ``expire``, ``purge``, ...).
    ``applied`` counts the sessions an operation of several steps (a sweep, a purge) is known to have changed
    before the step whose outcome is unknown (0 for a single write). Retrying blindly may apply the write twice.
    """

    code = "outcome_unknown"

    def __init__(self, operation: str, *, session_ids: Sequence[UUID] = (), record_ids: Sequence[UUID] = (),
                 reason: str = "", applied: int = 0,
                 cause: str = "the connection was lost after it was sent") -> None:
        self.operation = operation
        self.applied = applied
        self.session_ids = tuple(session_ids)
        self.record_ids = tuple(record_ids)
        self.reason = reason
        what = f"{operation} of session {self.session_ids[0]}" if len(self.session_ids) == 1 else (
            f"{operation} of {len(self.session_ids)} sessions" if self.session_ids else operation)
        check = (f"; look up record id {self.record_ids[0]} in the session's history" if len(self.record_ids) == 1
                 else "; look up its record ids in the sessions' histories" if self.record_ids else "")
        because = f" ({reason})" if reason else ""
        before = f"; {self.applied} sessions were changed by its earlier steps" if self.applied else ""
        super().__init__(f"the {what} may or may not have been applied: {cause}{because}{check}{before}",
                         session_id=self.session_ids[0] if len(self.session_ids) == 1 else None)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(operation=self.operation, session_ids=[str(s) for s in self.session_ids],
                    record_ids=[str(r) for r in self.record_ids], may_have_been_applied=True,
                    applied=self.applied)
        return data

    def with_applied(self, applied: int) -> OutcomeUnknown:
        """This error, with ``applied`` more sessions changed by earlier steps of the operation."""
        return OutcomeUnknown(self.operation, session_ids=self.session_ids, record_ids=self.record_ids,
                              reason=self.reason, applied=self.applied + applied)


class IdempotencyKeyReused(SessionflowError):
    """An idempotency key already stored for another request (another operation, session or arguments) was
    given again: nothing was written. Choose a new key for a new request. The error names only the key, never
    what it was stored for."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key[:80]!r} was already used for a different request; "
                         "nothing was written")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["idempotency_key"] = self.key
        return data


class IdempotencyKeyInFlight(SessionflowError):
    """Another write with the same idempotency key (and scope) is still under way: nothing was written. Retry
    once it has finished; the retry then answers what that write did."""

    code = "idempotency_key_in_flight"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"a write with idempotency key {key[:80]!r} is still in flight; nothing was written")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["idempotency_key"] = self.key
        return data


class ArchiveError(SessionflowError):
    """A file of an archive or an export could not be written (disk full, permission, ...). The data in the
    store is unchanged: nothing is deleted before its archive file is written whole."""

    code = "archive_error"

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot write {path!r}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(path=self.path, problem=self.problem)
        return data


class BatchRejected(SessionflowError):
    """One item of a batch (``create_many``, ``send_many``, a store's ``append_many``) was refused, so nothing
    of the batch was written.

    ``index`` is the item's position in the batch (from 0); ``error`` is the item's own error (an
    :class:`InvalidInput`, :class:`InvalidTransition`, :class:`ConcurrencyConflict`, ...), also chained as
    ``__cause__``. ``session_id`` is the item's session when it has one.
    """

    code = "batch_rejected"

    def __init__(self, index: int, error: SessionflowError) -> None:
        self.index = index
        self.error = error
        super().__init__(f"item {index} of the batch was refused ({error.code}), nothing was written: "
                         f"{error.message}", session_id=error.session_id)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(index=self.index, item_error=self.error.to_dict())
        return data
