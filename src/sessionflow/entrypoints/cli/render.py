"""How results are shown: JSON documents and lines, or rich tables and lines.

Owns :class:`Output` (where a command's results go: stdout for results, stderr for notes and progress bars),
the tables of a session, a page of sessions, a history and a ``verify`` report, and the conversion of results
to JSON (:func:`jsonable`, :func:`dumps`). Commands decide what to print; this module decides how it looks.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sessionflow import EventType, SessionStatus
from sessionflow.domain.values import format_timestamp

if TYPE_CHECKING:
    from sessionflow import Session, SessionEvent

__all__ = ["Difference", "Output", "differences_table", "dumps", "history_table", "jsonable", "session_table",
           "sessions_table"]


class Difference(Protocol):
    """One field on which ``verify`` found the projection and the events apart."""

    @property
    def session_id(self) -> UUID: ...  # pragma: no cover - a protocol
    @property
    def field(self) -> str: ...  # pragma: no cover - a protocol
    @property
    def projected(self) -> Any: ...  # pragma: no cover - a protocol
    @property
    def replayed(self) -> Any: ...  # pragma: no cover - a protocol


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: timestamps in the library's format, models as their JSON dump."""
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
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(data: Any) -> str:
    """Compact one-line JSON of plain data."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


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
    return dumps(jsonable(value))


class Output:
    """Where a command's results go: JSON documents/lines, or rich tables and lines, on stdout."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        self._console: Console | None = None
        self._errors: Console | None = None
        self._lock = threading.Lock()

    @property
    def console(self) -> Console:
        """The rich console on stdout (wide and unwrapped when stdout is not a terminal)."""
        if self._console is None:
            terminal = sys.stdout.isatty()
            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=not terminal,
                                    width=None if terminal else 200)
        return self._console

    @property
    def stderr(self) -> Console:
        """The rich console on stderr, for notes and progress bars."""
        if self._errors is None:
            self._errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        return self._errors

    @property
    def interactive(self) -> bool:
        """Whether both stdout and stderr are terminals (progress bars are drawn only then)."""
        return sys.stdout.isatty() and sys.stderr.isatty()

    def document(self, data: Any) -> None:
        """One JSON document (one line)."""
        with self._lock:
            sys.stdout.write(dumps(jsonable(data)) + "\n")
            sys.stdout.flush()

    line = document  # a JSON line of a stream is written the same way

    def print(self, *renderables: Any) -> None:
        """Rich text or tables on stdout."""
        with self._lock:
            self.console.print(*renderables)

    def info(self, message: str) -> None:
        """A human note on stderr (also in JSON mode: it never mixes with the JSON on stdout)."""
        with self._lock:
            self.stderr.print(message)

    # ------------------------------------------------------------------ sessions and events

    def session(self, session: Session, *, verb: str | None = None) -> None:
        """A session: its JSON, its table, or (given the ``verb`` of the change) one line about the change."""
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
        """A page of sessions: JSON lines, or a table."""
        if self.json:
            for session in sessions:
                self.line(session.model_dump(mode="json"))
        else:
            self.print(sessions_table(sessions))

    def history(self, events: Sequence[SessionEvent]) -> None:
        """A session's events: JSON lines, or a table."""
        if self.json:
            for event in events:
                self.line(event.model_dump(mode="json"))
        else:
            self.print(history_table(events))

    def event(self, event: SessionEvent, *, position: bool = False) -> None:
        """One event as it happens (the worker's stream); with ``position``, its place in the feed first."""
        if self.json:
            self.line(event.model_dump(mode="json"))
        else:
            source = str(event.source_state) if event.source_state else "-"
            where = f"{event.position:>8}  " if position else ""
            version = f" v{event.version}" if position else ""
            self.print(f"{where}{format_timestamp(event.timestamp)}  {escape(str(event.event))} session "
                       f"[bold]{event.session_id}[/]{version} ({escape(source)} → {_status(event.target_state)}, "
                       f"by {escape(event.performer_id)})")

    def feed_event(self, event: SessionEvent) -> None:
        """One event of the global feed, with its position."""
        self.event(event, position=True)

    def differences(self, differences: Sequence[Difference]) -> None:
        """The report of ``verify``: ok, or a table of every difference."""
        if self.json:
            self.document({"ok": not differences, "differences": [
                {"session_id": str(d.session_id), "field": d.field, "projection": jsonable(d.projected),
                 "events": jsonable(d.replayed)} for d in differences]})
        elif not differences:
            self.print("[green]ok[/]: the projection agrees with the events")
        else:
            self.print(differences_table(differences))

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
        files += f" ({progress.processed_files} processed, {progress.failed_count} failed)"
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
    """One row per session, with the count as the caption."""
    table = Table(show_edge=False, caption=f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s"))
    for column in ("id", "status", "v", "user", "module", "files", "expires"):
        table.add_column(column, no_wrap=column in ("id", "expires"))
    for s in sessions:
        p = s.progress
        files = f"{p.accounted_files}/{p.total_files}" + (f" ({p.failed_count} failed)" if p.failed_files else "")
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
    """One row per event: version, event, state change, performer, time and a summary of the payload."""
    title = f"session {events[0].session_id}" if events else None
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("v", "event", "state", "performer", "timestamp (UTC)", "details"):
        table.add_column(column, no_wrap=column != "details")
    for e in events:
        table.add_row(str(e.version), escape(str(e.event)), _transition(e), escape(e.performer_id),
                      format_timestamp(e.timestamp), escape(_details(e)))
    return table


def differences_table(differences: Sequence[Difference]) -> Table:
    """One row per field on which the projection and the events differ."""
    table = Table(title=f"{len(differences)} difference(s)", title_justify="left", show_edge=False)
    for column in ("session", "field", "projection", "events"):
        table.add_column(column)
    for d in differences:
        table.add_row(str(d.session_id), escape(d.field), escape(_short(jsonable(d.projected))),
                      escape(_short(jsonable(d.replayed))))
    return table
