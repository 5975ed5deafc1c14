"""The ``sessionflow`` command line (typer + rich; the ``cli`` extra).

A thin layer: each command opens a :class:`~sessionflow.SessionManager` from the settings, calls one of its
methods, prints the result and maps the library's errors to exit codes. The rules live in the library.

- ``--db URL`` (or ``SESSIONFLOW_DATABASE_URL``; default: the embedded SQLite file ``./sessionflow.db``)
  names the database; ``--config FILE`` adds a TOML settings file; ``--performer`` (or
  ``SESSIONFLOW_PERFORMER``; default: the login name) is who writes.
- ``--json`` prints machine-readable output: one JSON document per command, or one JSON object per line for
  streams (``list``, ``history``, ``worker``), so shell scripts and ``jq`` can chain commands.
- An error is ONE line on stderr (with ``--json``, one JSON object) and a documented exit code
  (:class:`ExitCode`); never a traceback.
- Progress bars (on stderr) only when both stdout and stderr are terminals.

The commands are methods of :class:`Cli`, which ``sessionflow demo`` drives as a program would.
See ``docs/cli.md``.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import getpass
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar
from uuid import UUID, uuid4

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sessionflow.domain.models import EventType, Session, SessionEvent, SessionStatus
from sessionflow.domain.values import format_timestamp
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
)

if TYPE_CHECKING:
    from sessionflow.application.manager import SessionManager
    from sessionflow.settings import Settings

__all__ = ["EXIT_CODES", "Cli", "CliError", "ExitCode", "app", "exit_code_for", "main", "parse_duration"]

P = ParamSpec("P")
R = TypeVar("R")


# ====================================================================== exit codes and errors


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


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def error_document(error: BaseException) -> dict[str, Any]:
    """The JSON form of a command's error: the library's ``to_dict()`` plus ``exit_code``."""
    if isinstance(error, SessionflowError | CliError):
        data = error.to_dict()
    elif _is_database_error(error):
        orig = getattr(error, "orig", None)
        data = {"error": "StoreError", "code": StoreError.code, "message": _one_line(str(orig or error))}
    elif isinstance(error, KeyboardInterrupt):
        data = {"error": "KeyboardInterrupt", "code": "interrupted", "message": "interrupted"}
    else:
        data = {"error": type(error).__name__, "code": "unexpected_error",
                "message": f"unexpected {type(error).__name__}: {error}"}
    data["message"] = _one_line(data.get("message", ""))
    data["exit_code"] = int(exit_code_for(error))
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


# ====================================================================== parsing helpers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | timedelta) -> timedelta:
    """``"90"``/``"90s"``, ``"500ms"``, ``"15m"``, ``"2h"``, ``"1.5d"`` → a timedelta (seconds by default)."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30s, 1.5s, 500ms, 15m, 2h, 1d)")
    unit = (match.group(2) or "s").lower()
    return timedelta(seconds=float(match.group(1)) * _UNITS[unit])


def parse_json_object(text: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON object given on the command line (``--metadata '{"ticket": "T-1"}'``)."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("expected a JSON object, e.g. '{\"key\": \"value\"}'")
    return value


def mask_url(url: str) -> str:
    """The URL with its password hidden."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, UUID):
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# ====================================================================== output

_STATUS_STYLE = {
    "pending": "yellow",
    "in_progress": "cyan",
    "completed": "green",
    "failed": "red",
    "expired": "magenta",
}


def _status(status: SessionStatus | str | None, *, deleted: bool = False) -> str:
    if status is None:
        return ""
    value = status.value if isinstance(status, SessionStatus) else str(status)
    text = f"[{_STATUS_STYLE.get(value, 'white')}]{escape(value)}[/]"
    return text + (" [dim](deleted)[/]" if deleted else "")


def _when(value: datetime | None) -> str:
    return "" if value is None else format_timestamp(value)


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _dumps(_jsonable(value))


class Output:
    """Where a command's results go: JSON documents/lines, or rich tables and lines, on stdout."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        self._console: Console | None = None
        self._errors: Console | None = None
        self._lock = threading.Lock()

    @property
    def console(self) -> Console:
        if self._console is None:
            terminal = sys.stdout.isatty()
            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=not terminal,
                                    width=None if terminal else 200)
        return self._console

    @property
    def stderr(self) -> Console:
        if self._errors is None:
            self._errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        return self._errors

    @property
    def interactive(self) -> bool:
        return sys.stdout.isatty() and sys.stderr.isatty()

    def document(self, data: Any) -> None:
        """One JSON document (one line)."""
        with self._lock:
            sys.stdout.write(_dumps(_jsonable(data)) + "\n")
            sys.stdout.flush()

    line = document  # a JSON line of a stream is written the same way

    def print(self, *renderables: Any) -> None:
        with self._lock:
            self.console.print(*renderables)

    def info(self, message: str) -> None:
        """A human note on stderr (also in JSON mode: it never mixes with the JSON on stdout)."""
        with self._lock:
            self.stderr.print(message)

    # ------------------------------------------------------------------ sessions and events

    def session(self, session: Session, *, verb: str | None = None) -> None:
        if self.json:
            self.document(session.model_dump(mode="json"))
        elif verb is None:
            self.print(session_table(session))
        else:
            deadline = session.due_at  # only a live session has one to act on
            expires = f", expires {_when(deadline)}" if deadline is not None else ""
            self.print(f"{escape(verb)} session [bold]{session.id}[/]: {_status(session.status)} "
                       f"(version {session.version}{expires})")

    def sessions(self, sessions: Sequence[Session]) -> None:
        if self.json:
            for session in sessions:
                self.line(session.model_dump(mode="json"))
        else:
            self.print(sessions_table(sessions))

    def history(self, events: Sequence[SessionEvent]) -> None:
        if self.json:
            for event in events:
                self.line(event.model_dump(mode="json"))
        else:
            self.print(history_table(events))

    def event(self, event: SessionEvent) -> None:
        """One event as it happens (the worker's stream)."""
        if self.json:
            self.line(event.model_dump(mode="json"))
        else:
            source = str(event.source_state) if event.source_state else "-"
            self.print(f"{format_timestamp(event.timestamp)}  {escape(str(event.event))} session "
                       f"[bold]{event.session_id}[/] ({escape(source)} → {_status(event.target_state)}, "
                       f"by {escape(event.performer_id)})")

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr, or a silent counter when stdout or stderr is not a terminal."""
        if not self.interactive:
            yield lambda n: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.stderr, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def session_table(session: Session) -> Table:
    """Every field of a session, then its files and notes."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    progress = session.progress
    files = f"{progress.accounted_files}/{progress.total_files} accounted"
    if progress.total_files:
        files += f" ({progress.processed_files} processed, {progress.failed_files} failed)"
    rows: list[tuple[str, str]] = [
        ("id", str(session.id)),
        ("status", _status(session.status, deleted=session.is_deleted)),
        ("version", str(session.version)),
        ("user", escape(session.user_id or "")),
        ("workspace", escape(session.workspace_id or "")),
        ("module", escape(session.module_name or "")),
        ("files", files),
        ("current file", escape(progress.current_file or "")),
        ("ttl", str(timedelta(seconds=session.ttl_seconds))),
        ("created", _when(session.created_at)),
        ("updated", _when(session.updated_at)),
        ("expires", _when(session.due_at)),  # a closed or deleted session has no deadline any more
        ("lifetime cap", _when(session.max_expires_at)),
        ("closed", f"{_when(session.closed_at)} by {escape(session.closed_by)}" if session.closed_by else
         _when(session.closed_at)),
        ("failure reason", escape(session.failure_reason or "")),
        ("deleted", _when(session.deleted_at)),
        ("metadata", escape(_short(session.metadata)) if session.metadata else ""),
    ]
    for name, value in rows:
        if value:
            table.add_row(name, value)
    grid = Table.grid(padding=(1, 0))
    grid.add_row(table)
    if session.file_paths:
        results = {r.path: r for r in session.file_results}
        files_table = Table(title="files", title_justify="left", show_edge=False)
        files_table.add_column("path")
        files_table.add_column("outcome")
        files_table.add_column("recorded")
        for path in session.file_paths:
            result = results.get(path)
            if result is None:
                outcome, when = "[dim]pending[/]", ""
            elif result.error is None:
                outcome, when = "[green]processed[/]", _when(result.recorded_at)
            else:
                outcome, when = f"[red]failed[/]: {escape(result.error)}", _when(result.recorded_at)
            files_table.add_row(escape(path), outcome, when)
        grid.add_row(files_table)
    if session.notes:
        notes = Table(title="notes", title_justify="left", show_edge=False)
        for column in ("file", "memory id", "status", "created"):
            notes.add_column(column)
        for note in session.notes:
            notes.add_row(escape(note.file_path), escape(note.memory_id or ""), escape(note.status),
                          _when(note.created_at))
        grid.add_row(notes)
    return grid


def sessions_table(sessions: Sequence[Session]) -> Table:
    table = Table(show_edge=False, caption=f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s"))
    for column in ("id", "status", "v", "user", "module", "files", "expires"):
        table.add_column(column, no_wrap=column in ("id", "expires"))
    for s in sessions:
        p = s.progress
        files = f"{p.accounted_files}/{p.total_files}" + (f" ({p.failed_files} failed)" if p.failed_files else "")
        table.add_row(str(s.id), _status(s.status), str(s.version), escape(s.user_id or ""),
                      escape(s.module_name or ""), files, _when(s.due_at))
    return table


def _transition(event: SessionEvent) -> str:
    target = _status(event.target_state)
    if event.source_state is None:
        return f"→ {target}"
    if event.source_state is event.target_state:
        return target
    return f"{_status(event.source_state)} → {target}"


def _details(event: SessionEvent, width: int = 100) -> str:
    payload = event.payload
    if event.event is EventType.CREATED:
        parts = [f"{key}={payload[key]}" for key in ("user_id", "workspace_id", "module_name") if payload.get(key)]
        if payload.get("file_paths"):
            parts.append(f"files={len(payload['file_paths'])}")
        if payload.get("metadata"):
            parts.append(f"metadata={_short(payload['metadata'])}")
        ttl = payload.get("ttl_seconds")
        if isinstance(ttl, int | float):
            parts.append(f"ttl={timedelta(seconds=ttl)}")
    else:
        parts = [f"{key}={_short(value)}" for key, value in payload.items() if value not in (None, [], {})]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def history_table(events: Sequence[SessionEvent]) -> Table:
    title = f"session {events[0].session_id}" if events else None
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("v", "event", "state", "performer", "timestamp (UTC)", "details"):
        table.add_column(column, no_wrap=column != "details")
    for e in events:
        table.add_row(str(e.version), escape(str(e.event)), _transition(e), escape(e.performer_id),
                      format_timestamp(e.timestamp), escape(_details(e)))
    return table


# ====================================================================== the commands, as a program uses them


def _default_performer() -> str:
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):  # no login name in this environment (e.g. a container's unknown uid)
        return "cli"


class Cli:
    """The commands of ``sessionflow`` as methods: each calls the manager and prints its result.

    ``settings`` say where the database is and how sessions behave; the manager is opened on first use and
    closed by :meth:`close` (or leaving a ``with`` block). ``manager`` may be given instead (it is then not
    closed here).
    """

    def __init__(self, settings: Settings | None = None, *, performer: str | None = None, json_mode: bool = False,
                 manager: SessionManager | None = None) -> None:
        self._settings = settings
        self.performer = performer or _default_performer()
        self.out = Output(json_mode=json_mode)
        self._manager = manager
        self._owns_manager = manager is None

    # ------------------------------------------------------------------ plumbing

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from sessionflow.settings import Settings

            self._settings = Settings()
        return self._settings

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def manager(self) -> SessionManager:
        if self._manager is None:
            from sessionflow.application.manager import SessionManager

            self._manager = SessionManager.from_settings(self.settings)
        return self._manager

    def close(self) -> None:
        if self._manager is not None and self._owns_manager:
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def create(self, *, user: str | None = None, workspace: str | None = None, module: str | None = None,
               files: Sequence[str] = (), metadata: Mapping[str, Any] | None = None,
               ttl: timedelta | None = None, lifecycle: str | None = None) -> Session:
        session = self.manager.create(user_id=user, workspace_id=workspace, module_name=module,
                                      file_paths=list(files), metadata=metadata, ttl=ttl,
                                      performer_id=self.performer, lifecycle=lifecycle)
        self.out.session(session, verb="created")
        return session

    def send(self, session_id: str | UUID, event: str, *, args: Mapping[str, Any] | None = None,
             expected_version: int | None = None) -> Session:
        session = self.manager.send(session_id, event, performer_id=self.performer,
                                    expected_version=expected_version, **dict(args or {}))
        self.out.session(session, verb=event)
        return session

    def start(self, session_id: str | UUID, *, expected_version: int | None = None) -> Session:
        session = self.manager.start(session_id, performer_id=self.performer, expected_version=expected_version)
        self.out.session(session, verb="started")
        return session

    def record_file(self, session_id: str | UUID, path: str, *, error: str | None = None,
                    expected_version: int | None = None) -> Session:
        session = self.manager.record_file(session_id, path, error, performer_id=self.performer,
                                           expected_version=expected_version)
        self.out.session(session, verb=f"recorded {path!r} ({'failed' if error is not None else 'processed'}) in")
        return session

    def note(self, session_id: str | UUID, *, file_path: str, status: str, memory_id: str | None = None,
             expected_version: int | None = None) -> Session:
        session = self.manager.add_note(session_id, file_path=file_path, status=status, memory_id=memory_id,
                                        performer_id=self.performer, expected_version=expected_version)
        self.out.session(session, verb="added a note to")
        return session

    def complete(self, session_id: str | UUID, *, expected_version: int | None = None) -> Session:
        session = self.manager.complete(session_id, performer_id=self.performer, expected_version=expected_version)
        self.out.session(session, verb="completed")
        return session

    def fail(self, session_id: str | UUID, *, reason: str, expected_version: int | None = None) -> Session:
        session = self.manager.fail(session_id, reason=reason, performer_id=self.performer,
                                    expected_version=expected_version)
        self.out.session(session, verb="failed")
        return session

    def touch(self, session_id: str | UUID, *, expected_version: int | None = None) -> Session:
        session = self.manager.touch(session_id, performer_id=self.performer, expected_version=expected_version)
        self.out.session(session, verb="touched")
        return session

    def delete(self, session_id: str | UUID, *, expected_version: int | None = None) -> Session:
        session = self.manager.delete(session_id, performer_id=self.performer, expected_version=expected_version)
        self.out.session(session, verb="deleted")
        return session

    # ------------------------------------------------------------------ reads

    def show(self, session_id: str | UUID) -> Session:
        session = self.manager.get(session_id)
        self.out.session(session)
        return session

    def list(self, *, statuses: Sequence[SessionStatus] = (), user: str | None = None,
             workspace: str | None = None, module: str | None = None, limit: int = 100, offset: int = 0,
             every: bool = False) -> builtins.list[Session]:
        found: builtins.list[Session] = []
        status = list(statuses) or None
        while True:
            page = self.manager.list(status=status, user_id=user, workspace_id=workspace, module_name=module,
                                     limit=limit, offset=offset)
            found.extend(page)
            if self.out.json:
                self.out.sessions(page)
            if not every or len(page) < limit:
                break
            offset += len(page)
        if not self.out.json:
            self.out.sessions(found)
        return found

    def history(self, session_id: str | UUID) -> builtins.list[SessionEvent]:
        events = self.manager.history(session_id)
        self.out.history(events)
        return events

    # ------------------------------------------------------------------ timeouts

    def expire(self, session_id: str | UUID | None = None, *, batch_size: int = 1000) -> int:
        """Expire one overdue session, or sweep: expire every overdue session now. Returns how many."""
        manager = self.manager
        if session_id is not None:
            session = manager.expire(session_id)
            self.out.session(session, verb="expired")
            return 1
        with self.out.progress("expiring overdue sessions", None) as advance:
            unsubscribe = manager.subscribe(lambda event: advance(1) if event.event is EventType.EXPIRED else None)
            try:
                count = manager.expire_sessions(batch_size=batch_size)
            finally:
                unsubscribe()
        if self.out.json:
            self.out.document({"expired": count})
        else:
            self.out.print(f"expired {count} overdue session" + ("" if count == 1 else "s"))
        return count

    def worker(self, *, interval: timedelta | None = None, duration: float | None = None,
               stop: threading.Event | None = None, handle_signals: bool = True) -> int:
        """Run the timeout waker against the database until SIGINT/SIGTERM (or ``duration`` seconds, or
        ``stop`` is set), printing each expiry as it happens. Returns how many sessions it expired."""
        manager = self.manager
        stop = stop if stop is not None else threading.Event()
        cleanup = interval if interval is not None else self.settings.session.cleanup_interval
        expired = 0

        def on_event(event: SessionEvent) -> None:
            nonlocal expired
            if event.event is EventType.EXPIRED:
                expired += 1
                self.out.event(event)

        unsubscribe = manager.subscribe(on_event)
        restore = _stop_on_signals(stop) if handle_signals else (lambda: None)
        started = False
        try:
            self.out.info(f"[dim]worker: expiring sessions of {escape(mask_url(self.url))} at their deadlines "
                          f"(safety sweep every {cleanup}); stop with Ctrl-C or SIGTERM[/]")
            manager.start_timeouts(cleanup_interval=cleanup)
            started = True
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if remaining <= 0:
                    break
                stop.wait(remaining)
        finally:
            try:
                if started:
                    manager.stop_timeouts()
            finally:
                unsubscribe()
                restore()
        self.out.info(f"[dim]worker stopped: {expired} session{'' if expired == 1 else 's'} expired[/]")
        return expired

    # ------------------------------------------------------------------ maintenance

    def db_upgrade(self) -> dict[str, Any]:
        from sqlalchemy.exc import SQLAlchemyError

        from sessionflow.adapters.sqlalchemy.migrations import head_revision, upgrade
        from sessionflow.bootstrap import create_engine

        engine = create_engine(self.url)
        try:
            before = upgrade(engine)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot upgrade the database: {getattr(error, 'orig', None) or error}") from error
        finally:
            engine.dispose()
        head = head_revision()
        result = {"database": mask_url(self.url), "from": before, "to": head, "changed": before != head}
        if self.out.json:
            self.out.document(result)
        elif before == head:
            self.out.print(f"{escape(mask_url(self.url))} is up to date (revision {head})")
        else:
            self.out.print(f"upgraded {escape(mask_url(self.url))} from {before or 'an empty database'} to {head}")
        return result

    def _total_sessions(self) -> int | None:
        if not self.out.interactive:
            return None
        return len(self.manager.store.session_ids())

    def rebuild(self) -> int:
        manager = self.manager
        with self.out.progress("rebuilding the projection", self._total_sessions()) as advance:
            count = manager.rebuild(progress=advance)
        if self.out.json:
            self.out.document({"rebuilt": count})
        else:
            self.out.print(f"rebuilt {count} session" + ("" if count == 1 else "s") + " from their events")
        return count

    def verify(self) -> int:
        """Compare the projection with the events; returns the number of differences (printed)."""
        manager = self.manager
        with self.out.progress("verifying the projection", self._total_sessions()) as advance:
            differences = manager.verify(progress=advance)
        if self.out.json:
            self.out.document({"ok": not differences, "differences": [
                {"session_id": str(d.session_id), "field": d.field, "projection": _jsonable(d.projected),
                 "events": _jsonable(d.replayed)} for d in differences]})
        elif not differences:
            self.out.print("[green]ok[/]: the projection agrees with the events")
        else:
            table = Table(title=f"{len(differences)} difference(s)", title_justify="left", show_edge=False)
            for column in ("session", "field", "projection", "events"):
                table.add_column(column)
            for d in differences:
                table.add_row(str(d.session_id), escape(d.field), escape(_short(_jsonable(d.projected))),
                              escape(_short(_jsonable(d.replayed))))
            self.out.print(table)
        return len(differences)

    def export(self, root: Path, *, skip_invalid: bool = False, fsync: bool = False) -> dict[str, Any]:
        try:
            from sessionflow.adapters.jsonl import export
        except ImportError:  # pragma: no cover - shipped with sessionflow
            raise CliError("export is not available in this installation", code="unavailable") from None
        manager = self.manager
        total = self._total_sessions()
        with self.out.progress("exporting audit files", total) as advance:
            done = 0

            def tick(sessions: int) -> None:
                nonlocal done
                advance(sessions - done)
                done = sessions

            result = export(manager, root, skip_invalid=skip_invalid, fsync=fsync, progress=tick)
        data = {"root": str(root), "sessions": result.sessions, "events": result.events,
                "files_written": result.files_written, "files_unchanged": result.files_unchanged,
                "skipped": [{"session_id": str(sid), "reason": reason} for sid, reason in result.skipped]}
        if self.out.json:
            self.out.document(data)
        else:
            self.out.print(f"exported {result.sessions} session(s), {result.events} event(s) to {escape(str(root))}: "
                           f"{result.files_written} file(s) written, {result.files_unchanged} unchanged"
                           + (f", {len(result.skipped)} skipped" if result.skipped else ""))
        return data

    # ------------------------------------------------------------------ diagram

    def counts(self) -> dict[str, int]:
        """Sessions per state (deleted ones excluded), after expiring the overdue ones as reads do."""
        manager = self.manager
        manager.expire_sessions()
        return {status.value: manager.count(status) for status in SessionStatus}

    def diagram(self, fmt: str = "mermaid", *, output: Path | None = None, counts: bool = False,
                lifecycle: str | None = None) -> bytes:
        from sessionflow import diagram

        graph = None
        if lifecycle is not None:
            if Path(lifecycle).suffix.lower() in {".yaml", ".yml", ".json"}:
                (definition,) = _register_lifecycles([lifecycle])
            else:
                from sessionflow.domain.definitions import default_registry

                definition = default_registry().get(lifecycle)
            graph = diagram.lifecycle_graph(definition.machine)
        numbers = self.counts() if counts else None
        try:
            data = diagram.render(fmt, graph, counts=numbers)
        except diagram.DiagramUnavailable as error:
            raise CliError(str(error), code="unavailable") from None
        if output is not None:
            output.write_bytes(data)
            if self.out.json:
                self.out.document({"format": fmt, "path": str(output), "bytes": len(data), "counts": numbers})
            else:
                self.out.info(f"wrote {escape(str(output))} ({fmt}, {len(data)} bytes)")
        elif self.out.json:
            if fmt == "png":
                raise CliError("--format png with --json needs --output FILE", code="usage", exit_code=ExitCode.USAGE)
            self.out.document({"format": fmt, "source": data.decode("utf-8"), "counts": numbers})
        elif fmt == "png":
            if sys.stdout.isatty():
                raise CliError("refusing to write a PNG to a terminal: give --output FILE or redirect",
                               code="usage", exit_code=ExitCode.USAGE)
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        return data

    # ------------------------------------------------------------------ serve

    def serve(self, *, host: str = "127.0.0.1", port: int = 8000, timeouts: bool = True,
              log_level: str = "info") -> None:
        try:
            import uvicorn

            from sessionflow.entrypoints.http import app_from_env
        except ImportError as error:
            raise CliError(f"serve is not available: {error.name or error} is not installed "
                           "(pip install 'sessionflow[http]')", code="unavailable") from None
        application = app_from_env(self.settings, timeouts=timeouts)
        self.out.info(f"[dim]serving {escape(mask_url(self.url))} on http://{host}:{port} "
                      f"({'with' if timeouts else 'without'} the timeout waker); stop with Ctrl-C or SIGTERM[/]")
        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                super().handle_exit(sig, frame)
                # Stop cleanly (exit 0) instead of re-raising SIGINT/SIGTERM once shut down.
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, builtins.list):
                    captured.clear()

        Server(uvicorn.Config(application, host=host, port=port, log_level=log_level)).run()


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGINT/SIGTERM (main thread only); returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


# ====================================================================== the demo


class Demo:
    """``sessionflow demo``: drives sessions down every path of the lifecycle with :class:`Cli`'s commands,
    lets two of them time out through the worker, and shows their histories."""

    USER = "demo-user"

    def __init__(self, cli: Cli, *, short_ttl: timedelta = timedelta(seconds=1)) -> None:
        self.cli = cli
        self.short_ttl = short_ttl
        self.workspace = f"demo-{uuid4().hex[:8]}"

    def say(self, text: str) -> None:
        if not self.cli.out.json:
            self.cli.out.print(text)

    def command(self, line: str) -> None:
        if not self.cli.out.json:
            self.cli.out.print(f"\n[dim]$[/] [bold]sessionflow {escape(line)}[/]")

    def refused(self, call: Callable[[], object]) -> None:
        """Run a command that the library refuses, showing the one-line error and exit code."""
        try:
            call()
        except SessionflowError as error:
            if self.cli.out.json:
                self.cli.out.line(error_document(error))
            else:
                data = error_document(error)
                self.cli.out.print(f"[red]error:[/] {escape(data['message'])}  [dim](exit {data['exit_code']})[/]")
        else:  # pragma: no cover - the demo only calls this for refusals
            raise CliError("the demo expected a refusal")

    def run(self) -> dict[str, UUID]:
        cli, ws, user = self.cli, self.workspace, self.USER
        cli.performer = user
        self.say(f"[bold]sessionflow demo[/] — sessions stored in {escape(mask_url(cli.url))} "
                 f"(workspace {ws}, performer {user})")

        self.say("\n[bold underline]1. Completed[/] — files recorded (one failed), a note, a touch")
        self.command(f"create --user {user} --workspace {ws} --module auth --file auth/login.py "
                     "--file auth/tokens.py --metadata '{\"ticket\": \"DEMO-1\"}'")
        done = cli.create(user=user, workspace=ws, module="auth", files=["auth/login.py", "auth/tokens.py"],
                          metadata={"ticket": "DEMO-1"})
        self.command(f"start {done.id}")
        cli.start(done.id)
        self.command(f"record-file {done.id} auth/login.py")
        cli.record_file(done.id, "auth/login.py")
        self.command(f"complete {done.id}      # too early: one file has no outcome yet")
        self.refused(lambda: cli.complete(done.id))
        self.command(f"record-file {done.id} auth/tokens.py --error 'parse error at line 12'")
        cli.record_file(done.id, "auth/tokens.py", error="parse error at line 12")
        self.command(f"note {done.id} --file auth/login.py --memory-id mem-1 --status stored")
        cli.note(done.id, file_path="auth/login.py", memory_id="mem-1", status="stored")
        self.command(f"touch {done.id}")
        cli.touch(done.id)
        self.command(f"complete {done.id}")
        cli.complete(done.id)

        self.say("\n[bold underline]2. Failed[/] — with a reason")
        self.command(f"create --user {user} --workspace {ws} --module billing --file billing/invoice.py")
        failing = cli.create(user=user, workspace=ws, module="billing", files=["billing/invoice.py"])
        self.command(f"start {failing.id}")
        cli.start(failing.id)
        self.command(f"fail {failing.id} --reason 'upstream service unavailable'")
        cli.fail(failing.id, reason="upstream service unavailable")
        self.command(f"start {failing.id}      # a failed session is final")
        self.refused(lambda: cli.start(failing.id))

        self.say("\n[bold underline]3. Deleted[/] — gone from show and list, its history kept")
        self.command(f"create --user {user} --workspace {ws} --module scratch")
        doomed = cli.create(user=user, workspace=ws, module="scratch")
        self.command(f"delete {doomed.id}")
        cli.delete(doomed.id)
        self.command(f"show {doomed.id}")
        self.refused(lambda: cli.show(doomed.id))

        ttl = self.short_ttl.total_seconds()
        self.say(f"\n[bold underline]4. Expired[/] — two sessions with a {ttl:g}-second TTL, expired by the worker")
        self.command(f"create --user {user} --workspace {ws} --module search --ttl {ttl:g}s")
        running = cli.create(user=user, workspace=ws, module="search", ttl=self.short_ttl)
        self.command(f"start {running.id}")
        cli.start(running.id)
        self.command(f"create --user {user} --workspace {ws} --module reports --ttl {ttl:g}s")
        idle = cli.create(user=user, workspace=ws, module="reports", ttl=self.short_ttl)
        wait = ttl + 1.5
        self.command(f"worker      # runs until Ctrl-C or SIGTERM; here it is stopped after {wait:g} s")
        cli.worker(duration=wait)

        ids = {"completed": done.id, "failed": failing.id, "deleted": doomed.id, "expired while in progress":
               running.id, "expired while pending": idle.id}
        self.say("\n[bold underline]5. Histories[/] — every change is an event, numbered by version")
        for name, session_id in ids.items():
            self.command(f"history {session_id}      # {name}")
            cli.history(session_id)
        self.say("\n[bold underline]6. This run's sessions[/]")
        self.command(f"list --workspace {ws}")
        cli.list(workspace=ws)
        self.say("\n[dim]Try: sessionflow show <id>, sessionflow list --status expired, "
                 "sessionflow diagram --counts, sessionflow --help[/]")
        return ids


# ====================================================================== typer wiring

_HELP = """Durable, event-sourced session lifecycles from the shell.

Every command takes --db URL (or SESSIONFLOW_DATABASE_URL; default sqlite:///./sessionflow.db) and --json
(machine-readable output: one JSON document, or JSON lines for list/history/worker). Writes are recorded as
--performer (or SESSIONFLOW_PERFORMER; default: your login name). Errors are one line on stderr.
"""

_EPILOG = "\b\nExit codes (see docs/cli.md):\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())

app = typer.Typer(name="sessionflow", help=_HELP, epilog=_EPILOG, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@dataclass
class _Globals:
    lifecycles: tuple[str, ...] = ()
    db: str | None = None
    config: Path | None = None
    performer: str | None = None
    json: bool = False
    verbose: bool = False


DbOption = Annotated[str | None, typer.Option(
    "--db", metavar="URL", help="Database URL (default: SESSIONFLOW_DATABASE_URL, else sqlite:///./sessionflow.db).",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON / JSON lines).")]
PerformerOption = Annotated[str | None, typer.Option(
    "--performer", metavar="ID", help="Who performs the write (default: SESSIONFLOW_PERFORMER, else your login).",
    show_default=False)]
ExpectOption = Annotated[int | None, typer.Option(
    "--expect-version", metavar="N", help="Refuse (exit 5) unless the session is at version N.", show_default=False)]
SessionArgument = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id (a UUID).",
                                                show_default=False)]


def _version_callback(value: bool) -> None:
    if value:
        from sessionflow import __version__

        typer.echo(f"sessionflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: DbOption = None,
    config: Annotated[Path | None, typer.Option("--config", metavar="FILE", help="A TOML settings file.",
                                                show_default=False)] = None,
    performer: Annotated[str | None, typer.Option(
        "--performer", metavar="ID", envvar="SESSIONFLOW_PERFORMER",
        help="Who performs writes (default: your login name).", show_default=False)] = None,
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the engine does (stderr).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
    lifecycle: Annotated[list[str] | None, typer.Option(
        "--lifecycle", metavar="FILE", help="Register a lifecycle defined in a YAML/JSON file (repeatable).",
        show_default=False)] = None,
) -> None:
    ctx.obj = _Globals(db=db, config=config, performer=performer, json=json_output, verbose=verbose,
                       lifecycles=tuple(lifecycle or ()))


def _globals(ctx: Any) -> _Globals:
    current = ctx
    while current is not None:
        if isinstance(current.obj, _Globals):
            return current.obj
        current = current.parent
    return _Globals()


def _json_mode(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    ctx = kwargs.get("ctx", args[0] if args else None)
    return bool(kwargs.get("json_output")) or _globals(ctx).json


class _OneLineFormatter(logging.Formatter):
    """Log records on one line each: an exception shows as ``Type: message``, never as a traceback."""

    def formatException(self, ei: Any) -> str:
        kind, value = ei[0], ei[1]
        return f"[{getattr(kind, '__name__', 'error')}: {_one_line(str(value))}]"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return " ".join(text.splitlines())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def _engine_logging(verbose: bool) -> Iterator[None]:
    """While a command runs, the engine's log records go to stderr one line each (INFO too with -v)."""
    logger = logging.getLogger("sessionflow")
    handler = _StderrHandler()
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _handled(func: Callable[P, None]) -> Callable[P, None]:
    """Run a command: map every error to its one-line report and exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        json_mode = _json_mode(args, kwargs)
        try:
            func(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as error:
            if type(error).__module__.split(".")[0] == "typer":  # Exit, Abort, usage errors: typer's own
                raise
            code = report_error(error, json_mode=json_mode)
            raise typer.Exit(int(code)) from None

    return wrapper


def _register_lifecycles(files: Sequence[str]) -> list[Any]:
    """Load lifecycle files given with ``--lifecycle`` into the process-wide registry."""
    from sessionflow.domain.definitions import default_registry
    from sessionflow.loader import load_definition

    registry = default_registry()
    return [registry.register(load_definition(file)) for file in files]


@contextlib.contextmanager
def _cli(ctx: typer.Context, *, db: str | None = None, performer: str | None = None,
         json_output: bool = False) -> Iterator[Cli]:
    g = _globals(ctx)
    from sessionflow.settings import Settings

    _register_lifecycles(g.lifecycles)
    url = db or g.db
    overrides: dict[str, Any] = {"database_url": url} if url else {}
    settings = Settings.from_env(g.config, **overrides)
    with _engine_logging(g.verbose), Cli(settings, performer=performer or g.performer,
                                         json_mode=json_output or g.json) as cli:
        yield cli


# ---------------------------------------------------------------------- writes


@app.command()
@_handled
def create(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", metavar="ID", help="The session's user.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", metavar="ID", help="Workspace id.")] = None,
    module: Annotated[str | None, typer.Option("--module", metavar="NAME", help="Module name.")] = None,
    file: Annotated[list[str] | None, typer.Option(
        "--file", "-f", metavar="PATH", help="A file the session will process (repeatable).")] = None,
    metadata: Annotated[dict[str, Any] | None, typer.Option(
        "--metadata", metavar="JSON", parser=parse_json_object, help="A JSON object to store with the session.",
        show_default=False)] = None,
    ttl: Annotated[timedelta | None, typer.Option(
        "--ttl", metavar="DURATION", parser=parse_duration,
        help="Time to live: 90, 90s, 500ms, 15m, 2h, 1d (default: the settings' timeout, 1 h).",
        show_default=False)] = None,
    lifecycle: Annotated[str | None, typer.Option(
        "--in", metavar="LIFECYCLE", help="A registered lifecycle (default: session; see --lifecycle FILE).",
        show_default=False)] = None,
    db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False,
) -> None:
    """Create a session (pending, or its lifecycle's initial state)."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.create(user=user, workspace=workspace, module=module, files=file or (), metadata=metadata, ttl=ttl,
                   lifecycle=lifecycle)


def _arguments(values: Sequence[str] | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"--arg takes KEY=VALUE, not {item!r}", code="usage", exit_code=ExitCode.USAGE)
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return args


@app.command()
@_handled
def send(ctx: typer.Context, session_id: SessionArgument,
         event: Annotated[str, typer.Argument(metavar="EVENT", help="An event of the session's lifecycle.")],
         arg: Annotated[list[str] | None, typer.Option(
             "--arg", metavar="KEY=VALUE", help="An argument for the event's guards (repeatable; JSON values).",
             show_default=False)] = None,
         expect_version: ExpectOption = None,
         db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Send any event of the session's lifecycle (custom lifecycles: see --lifecycle FILE)."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.send(session_id, event, args=_arguments(arg), expected_version=expect_version)


@app.command()
@_handled
def start(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
          db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Start a pending session (pending → in_progress; refused past its deadline)."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.start(session_id, expected_version=expect_version)


@app.command("record-file")
@_handled
def record_file(
    ctx: typer.Context,
    session_id: SessionArgument,
    path: Annotated[str, typer.Argument(metavar="PATH", help="One of the session's files.", show_default=False)],
    error: Annotated[str | None, typer.Option("--error", metavar="TEXT",
                                              help="Record the file as failed with this error.")] = None,
    expect_version: ExpectOption = None, db: DbOption = None, performer: PerformerOption = None,
    json_output: JsonOption = False,
) -> None:
    """Record a file's outcome: processed, or failed with --error."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.record_file(session_id, path, error=error, expected_version=expect_version)


@app.command()
@_handled
def note(
    ctx: typer.Context,
    session_id: SessionArgument,
    file_path: Annotated[str, typer.Option("--file", "-f", metavar="PATH", help="The file the note is about.")],
    status: Annotated[str, typer.Option("--status", metavar="STATUS", help="The note's status, e.g. stored.")],
    memory_id: Annotated[str | None, typer.Option("--memory-id", metavar="ID",
                                                  help="Where the result was stored.")] = None,
    expect_version: ExpectOption = None, db: DbOption = None, performer: PerformerOption = None,
    json_output: JsonOption = False,
) -> None:
    """Attach a note to a live session."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.note(session_id, file_path=file_path, status=status, memory_id=memory_id,
                 expected_version=expect_version)


@app.command()
@_handled
def complete(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
             db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Complete a session in progress (every file must have an outcome)."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.complete(session_id, expected_version=expect_version)


@app.command()
@_handled
def fail(ctx: typer.Context, session_id: SessionArgument,
         reason: Annotated[str, typer.Option("--reason", "-r", metavar="TEXT", help="Why it failed (required).")],
         expect_version: ExpectOption = None, db: DbOption = None, performer: PerformerOption = None,
         json_output: JsonOption = False) -> None:
    """Fail a live session with a reason."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.fail(session_id, reason=reason, expected_version=expect_version)


@app.command()
@_handled
def touch(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
          db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Extend a live session's deadline to now + its TTL (never past its lifetime cap)."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.touch(session_id, expected_version=expect_version)


@app.command()
@_handled
def delete(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
           db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Delete a session: gone from show and list; its history stays."""
    with _cli(ctx, db=db, performer=performer, json_output=json_output) as cli:
        cli.delete(session_id, expected_version=expect_version)


# ---------------------------------------------------------------------- reads


@app.command()
@_handled
def show(ctx: typer.Context, session_id: SessionArgument, db: DbOption = None,
         json_output: JsonOption = False) -> None:
    """Show a session (an overdue one is expired first, as every read does)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.show(session_id)


@app.command("list")
@_handled
def list_(
    ctx: typer.Context,
    status: Annotated[list[SessionStatus] | None, typer.Option(
        "--status", "-s", help="Only these states (repeatable).", case_sensitive=False)] = None,
    user: Annotated[str | None, typer.Option("--user", metavar="ID", help="Only this user's.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", metavar="ID", help="Only this workspace.")] = None,
    module: Annotated[str | None, typer.Option("--module", metavar="NAME", help="Only this module.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many per page.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many.")] = 0,
    every: Annotated[bool, typer.Option("--all", help="Every match, page after page.")] = False,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """List sessions, oldest first (JSON lines with --json)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.list(statuses=status or (), user=user, workspace=workspace, module=module, limit=limit,
                 offset=offset, every=every)


@app.command()
@_handled
def history(ctx: typer.Context, session_id: SessionArgument, db: DbOption = None,
            json_output: JsonOption = False) -> None:
    """A session's events, oldest first (deleted sessions too; JSON lines with --json)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.history(session_id)


# ---------------------------------------------------------------------- timeouts


@app.command()
@_handled
def expire(
    ctx: typer.Context,
    session_id: Annotated[str | None, typer.Argument(
        metavar="[SESSION_ID]", help="Expire only this overdue session.", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000,
                                            help="Sessions expired per transaction.")] = 1000,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Run a sweep now: expire every overdue session (or one), once each."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.expire(session_id, batch_size=batch_size)


@app.command()
@_handled
def worker(
    ctx: typer.Context,
    interval: Annotated[timedelta | None, typer.Option(
        "--interval", metavar="DURATION", parser=parse_duration,
        help="Safety-net sweep period (default: the settings' cleanup interval, 5 min).", show_default=False)] = None,
    duration: Annotated[timedelta | None, typer.Option(
        "--for", metavar="DURATION", parser=parse_duration,
        help="Stop after this long (default: run until SIGINT/SIGTERM).", show_default=False)] = None,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Expire sessions at their deadlines until SIGINT/SIGTERM, then stop cleanly (exit 0).

    Prints each expiry as it happens (JSON lines with --json).
    """
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.worker(interval=interval, duration=None if duration is None else duration.total_seconds())


@app.command()
@_handled
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    no_timeouts: Annotated[bool, typer.Option("--no-timeouts", help="Do not run the timeout waker.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Run the HTTP service (uvicorn) with the timeout waker, until SIGINT/SIGTERM."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.serve(host=host, port=port, timeouts=not no_timeouts, log_level=log_level)


# ---------------------------------------------------------------------- maintenance


@db_app.command("upgrade")
@_handled
def db_upgrade(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Bring the database schema up to date (other commands do it too, on first use)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.db_upgrade()


@app.command()
@_handled
def rebuild(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Rebuild the sessions table from the events (run it while nothing else writes)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.rebuild()


@app.command()
@_handled
def verify(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Check the sessions table against the events; exit 9 if they differ."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        if cli.verify():
            raise typer.Exit(int(ExitCode.INCONSISTENT))


@app.command()
@_handled
def export(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the audit files.",
                                         show_default=False)],
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Skip (and list) sessions whose user id cannot be a folder name.")] = False,
    fsync: Annotated[bool, typer.Option("--fsync", help="fsync each file before renaming it into place.")] = False,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Write every session's JSONL audit file under DIR from its history (idempotent)."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.export(root, skip_invalid=skip_invalid, fsync=fsync)


class DiagramFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"
    PNG = "png"


@app.command()
@_handled
def diagram(
    ctx: typer.Context,
    fmt: Annotated[DiagramFormat, typer.Option(
        "--format", help="mermaid, dot and svg need nothing extra; png needs Pillow.")] = DiagramFormat.MERMAID,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Write to FILE instead of stdout.", show_default=False)] = None,
    counts: Annotated[bool, typer.Option("--counts", help="Annotate each state with its sessions in --db.")] = False,
    of: Annotated[str | None, typer.Option(
        "--of", metavar="LIFECYCLE", help="A registered lifecycle's name, or a YAML/JSON lifecycle file.",
        show_default=False)] = None,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Draw a lifecycle (default: the session lifecycle) from its state machine's definition."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        cli.diagram(fmt.value, output=output, counts=counts, lifecycle=of)


@app.command()
@_handled
def demo(
    ctx: typer.Context,
    ttl: Annotated[timedelta, typer.Option(
        "--ttl", metavar="DURATION", parser=parse_duration,
        help="TTL of the sessions left to expire.")] = timedelta(seconds=1),
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Drive sessions down every path (completed, failed, deleted, expired by the worker) and show histories."""
    with _cli(ctx, db=db, json_output=json_output) as cli:
        Demo(cli, short_ttl=ttl).run()


scenario_app = typer.Typer(help="Scripted scenarios on a frozen clock.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("run")
@_handled
def scenario_run(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Scenario files (YAML or JSON).")],
    store: Annotated[str | None, typer.Option("--store", help="memory or sqlite (default: the file's).",
                                              show_default=False)] = None,
    json_output: JsonOption = False,
) -> None:
    """Play scenarios and report each step; exit 1 if an expectation fails."""
    from sessionflow.scenarios import run_scenario

    _register_lifecycles(_globals(ctx).lifecycles)
    as_json = json_output or _globals(ctx).json
    failed = False
    for file in files:
        report = run_scenario(file, store=store)
        failed = failed or not report.ok
        if as_json:
            print(json.dumps({"scenario": report.name, "file": str(file), "ok": report.ok,
                              "steps": [{"index": s.index, "step": s.step, "ok": s.ok, "expectation": s.expectation,
                                         "message": s.message} for s in report.steps]}))
            continue
        for step in report.steps:
            mark = "ok  " if step.ok else "FAIL"
            print(f"{mark} {step.index:3d}. {step.step}" + (f"  — {step.message}" if not step.ok else ""))
        print(report.summary())
    if failed:
        raise typer.Exit(int(ExitCode.FAILURE))


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``sessionflow`` (and ``python -m sessionflow``)."""
    app(args=list(argv) if argv is not None else None, prog_name="sessionflow")
