"""Exit codes and error reports of the command line.

Owns :class:`ExitCode` and its documented table :data:`EXIT_CODES`, :class:`CliError` (a failure of the command
line itself rather than of the library), the mapping of every error to its exit code (:func:`exit_code_for`),
the JSON form of an error (:func:`error_document`) and the one-line report of an error on stderr
(:func:`report_error`; with ``--json``, one JSON object).
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from typing import Any

from sessionflow import (
    ActiveSessionExists,
    ArchiveError,
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
)

__all__ = ["EXIT_CODES", "CliError", "ExitCode", "error_document", "exit_code_for", "one_line", "report_error"]


class ExitCode(IntEnum):
    """The exit status of ``sessionflow``, one per kind of failure."""

    OK = 0
    #: Anything else: an unexpected error, a feature that is not installed, a worker that cannot start.
    FAILURE = 1
    #: The command line itself is wrong: unknown command or option, missing argument, malformed value.
    USAGE = 2
    #: ``SessionNotFound``: no such session (or it was deleted).
    NOT_FOUND = 3
    #: ``InvalidTransition``: not allowed from the session's state, or a guard refused it.
    INVALID_TRANSITION = 4
    #: ``ConcurrencyConflict`` (stale ``--expect-version``, a racing writer) or ``ActiveSessionExists``.
    CONFLICT = 5
    #: ``InvalidInput`` (and ``SettingsError``): the library refused a value.
    INVALID_INPUT = 6
    #: ``StoreError``: the database is unreachable or failed.
    STORE = 7
    #: ``SessionUserMismatch``: the performer may not change this session (``enforce_owner``).
    FORBIDDEN = 8
    #: ``verify`` found differences, or a history cannot be folded (``CorruptHistory``).
    INCONSISTENT = 9
    #: ``OutcomeUnknown``: the write may or may not have been applied (the connection was lost after it was
    #: sent); look it up before trying again.
    OUTCOME_UNKNOWN = 10
    #: ``ArchiveError``: an archive or export file could not be written (disk full, permission); the store is
    #: unchanged.
    FILE = 11
    #: ``IdempotencyKeyReused``: the ``--idempotency-key`` was already used, by this performer, for another request
    #: (another command, session or options); nothing was written. Choose a new key for a new request.
    IDEMPOTENCY_KEY_REUSED = 12
    #: ``IdempotencyKeyInFlight``: a write with the same key is still under way in the process that runs it;
    #: nothing was written. Retry once it has finished: the retry answers what that write did.
    IDEMPOTENCY_KEY_IN_FLIGHT = 13
    #: Interrupted (Ctrl-C) outside ``worker``/``serve``, which stop cleanly with 0.
    INTERRUPTED = 130


#: The documented table: exit code → what it means (shown by ``sessionflow --help``).
EXIT_CODES: dict[int, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "other failure (unexpected error, feature not installed)",
    ExitCode.USAGE: "usage error (unknown option, missing argument, malformed value)",
    ExitCode.NOT_FOUND: "session not found",
    ExitCode.INVALID_TRANSITION: "invalid transition (state or guard refused)",
    ExitCode.CONFLICT: "conflict (stale version, racing writer, user already has an active session)",
    ExitCode.INVALID_INPUT: "invalid input (the library refused a value or a setting)",
    ExitCode.STORE: "database unreachable or failed",
    ExitCode.FORBIDDEN: "not the session's owner (enforce_owner)",
    ExitCode.INCONSISTENT: "projection differs from the events, or a corrupt history",
    ExitCode.OUTCOME_UNKNOWN: "outcome unknown: the write may have been applied; look it up before retrying",
    ExitCode.FILE: "an archive or export file could not be written; the store is unchanged",
    ExitCode.IDEMPOTENCY_KEY_REUSED: "idempotency key already used for another request; nothing was written",
    ExitCode.IDEMPOTENCY_KEY_IN_FLIGHT: "a write with this idempotency key is under way; nothing was written, retry",
    ExitCode.INTERRUPTED: "interrupted",
}


class CliError(Exception):
    """A failure of the command line itself (not of the library), with its exit code."""

    def __init__(self, message: str, *, code: str = "cli_error", exit_code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: its class, code and message (the shape of the library's ``to_dict()``)."""
        return {"error": type(self).__name__, "code": self.code, "message": self.message}


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error raised by a command."""
    if isinstance(error, CliError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    table: tuple[tuple[type[BaseException], ExitCode], ...] = (
        (SessionNotFound, ExitCode.NOT_FOUND),
        (InvalidTransition, ExitCode.INVALID_TRANSITION),
        (ConcurrencyConflict, ExitCode.CONFLICT),
        (ActiveSessionExists, ExitCode.CONFLICT),
        (SessionUserMismatch, ExitCode.FORBIDDEN),
        (InvalidInput, ExitCode.INVALID_INPUT),
        (LifecycleDefinitionError, ExitCode.INVALID_INPUT),
        (StoreError, ExitCode.STORE),
        (OutcomeUnknown, ExitCode.OUTCOME_UNKNOWN),
        (ArchiveError, ExitCode.FILE),
        (IdempotencyKeyReused, ExitCode.IDEMPOTENCY_KEY_REUSED),
        (IdempotencyKeyInFlight, ExitCode.IDEMPOTENCY_KEY_IN_FLIGHT),
    )
    for kind, code in table:
        if isinstance(error, kind):
            return code
    if type(error).__name__ == "CorruptHistory":
        return ExitCode.INCONSISTENT
    if _is_database_error(error):
        return ExitCode.STORE
    return ExitCode.FAILURE


def _is_database_error(error: BaseException) -> bool:
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, exc.SQLAlchemyError)


def one_line(text: str) -> str:
    """``text`` with every run of white space (new lines too) folded into one space."""
    return " ".join(str(text).split()) or "(no message)"


def error_document(error: BaseException) -> dict[str, Any]:
    """The JSON form of a command's error: the library's ``to_dict()`` plus ``exit_code`` and ``exit_name`` (the
    :class:`ExitCode`'s name in lower case: ``not_found``, ``usage``...)."""
    if isinstance(error, SessionflowError | CliError):
        data = error.to_dict()
    elif _is_database_error(error):
        orig = getattr(error, "orig", None)
        data = {"error": "StoreError", "code": StoreError.code, "message": one_line(str(orig or error))}
    elif isinstance(error, KeyboardInterrupt):
        data = {"error": "KeyboardInterrupt", "code": "interrupted", "message": "interrupted"}
    else:
        data = {"error": type(error).__name__, "code": "unexpected_error",
                "message": f"unexpected {type(error).__name__}: {error}"}
    data["message"] = one_line(data.get("message", ""))
    code = exit_code_for(error)
    data["exit_code"] = int(code)
    data["exit_name"] = code.name.lower()
    return data


def report_error(error: BaseException, *, json_mode: bool, stream: Any = None) -> ExitCode:
    """Write the one-line report of ``error`` to stderr and return its exit code."""
    data = error_document(error)
    out = stream if stream is not None else sys.stderr
    if json_mode:
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        out.write(f"error: {data['message']}\n")
    out.flush()
    return ExitCode(data["exit_code"])
