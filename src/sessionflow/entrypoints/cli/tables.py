"""The rich tables of the human-readable views: a session, a page of sessions, a history, a ``verify`` report.

Owns :func:`session_table`, :func:`sessions_table`, :func:`history_table` and :func:`differences_table` (rich
is imported when one is drawn), and :func:`session_text`: a session's view as rich would print it off a
terminal, written without rich (``sessionflow show`` in a script does not pay for loading it). On a console
narrower than :data:`WIDE` columns, ``list`` and ``history`` move a column under another and let the text
columns wrap: at 80 columns every status and id stays whole and the details stay, wrapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from sessionflow.entrypoints.cli.text import escape, jsonable, short, status_markup, status_value, when

if TYPE_CHECKING:
    from rich.table import Table

    from sessionflow import Session, SessionEvent

__all__ = ["WIDE", "Difference", "differences_table", "history_table", "session_rows", "session_table", "session_text",
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


def session_rows(session: Session, *, markup: bool = True) -> list[tuple[str, str]]:
    """The field rows of a session's view (name, value), those with a value: in rich markup (values escaped,
    the status coloured), or with ``markup=False`` as plain text."""
    plain: Callable[[str], str] = escape if markup else str
    progress = session.progress
    files = f"{progress.accounted_files}/{progress.total_files} accounted"
    if progress.total_files:
        files += f" ({progress.processed_files} processed, {progress.failed_count} failed)"
    if markup:
        status = status_markup(session.status, deleted=session.is_deleted)
    else:
        status = status_value(session.status) + (" (deleted)" if session.is_deleted else "")
    rows: list[tuple[str, str]] = [
        ("id", str(session.id)),
        ("status", status),
        ("version", str(session.version)),
        ("user", plain(session.user_id or "")),
        ("workspace", plain(session.workspace_id or "")),
        ("module", plain(session.module_name or "")),
        ("files", files),
        ("current file", plain(progress.current_file or "")),
        ("ttl", str(timedelta(seconds=session.ttl_seconds))),
        ("created", when(session.created_at)),
        ("updated", when(session.updated_at)),
        ("expires", when(session.due_at)),  # a closed or deleted session has no deadline any more
        ("lifetime cap", when(session.max_expires_at)),
        ("closed", f"{when(session.closed_at)} by {plain(session.closed_by)}" if session.closed_by else
         when(session.closed_at)),
        ("failure reason", plain(session.failure_reason or "")),
        ("deleted", when(session.deleted_at)),
        ("metadata", plain(short(session.metadata)) if session.metadata else ""),
    ]
    return [(name, value) for name, value in rows if value]


#: A value rich would print as it is: printable ASCII without a backslash (markup escapes), an emoji code
#: (``:name:``) or a run, lead or trail of spaces.
_PLAIN_VALUE = re.compile(r"(?!.*:[\w+-]+:)(?!.*  )[!-\[\]-~]+(?: [!-\[\]-~]+)*")


def session_text(session: Session, width: int) -> str | None:
    """The view of a session as rich prints :func:`session_table` on a console of ``width`` columns without
    styles (stdout not a terminal), written without loading rich: the two columns of names and values, each
    padded to its widest. ``None`` when rich would lay it out otherwise (files or notes to list, a value that
    wraps, a value rich would change: markup, an emoji code, wide characters); then print the table."""
    if session.file_paths or session.notes:
        return None
    given = (session.user_id, session.workspace_id, session.module_name, session.progress.current_file,
             session.closed_by, session.failure_reason, short(session.metadata) if session.metadata else None)
    if any(value and not _PLAIN_VALUE.fullmatch(value) for value in given):
        return None
    rows = session_rows(session, markup=False)
    names = max(len(name) for name, _ in rows)
    values = max(len(value) for _, value in rows)
    if names + 2 + values > width:
        return None
    return "\n".join(f"{name:<{names}}  {value:<{values}}" for name, value in rows)


def session_table(session: Session) -> Table:
    """Every field of a session, then its files and notes."""
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in session_rows(session):
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
                outcome, recorded = "[dim]pending[/]", ""
            elif result.error is None:
                outcome, recorded = "[green]processed[/]", when(result.recorded_at)
            else:
                outcome, recorded = f"[red]failed[/]: {escape(result.error)}", when(result.recorded_at)
            files_table.add_row(escape(path), outcome, recorded)
        grid.add_row(files_table)
    if session.notes:
        notes = Table(title="notes", title_justify="left", show_edge=False)
        for column in ("file", "memory id", "status", "created"):
            notes.add_column(column)
        for note in session.notes:
            notes.add_row(escape(note.file_path), escape(note.memory_id or ""), escape(note.status),
                          when(note.created_at))
        grid.add_row(notes)
    return grid


class _Instant:
    """A timestamp in a table cell: on one line when the column is wide enough, else the date above the time
    (split before the ``T``), so a narrow terminal wraps it instead of cutting it."""

    def __init__(self, value: datetime | None) -> None:
        self.text = when(value)

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        date, separator, time = self.text.partition("T")
        narrow = max(len(date), len(separator + time))
        return Measurement(min(narrow, len(self.text)), len(self.text))

    def __rich_console__(self, console: Any, options: Any) -> Iterator[str]:
        if options.max_width >= len(self.text) or "T" not in self.text:
            yield self.text
        else:
            date, _, time = self.text.partition("T")
            yield date
            yield "T" + time


#: Below this many columns, ``list`` shows each session's user, module and files under its id.
WIDE = 120


def sessions_table(sessions: Sequence[Session], width: int | None = None) -> Table:
    """One row per session, with the count as the caption. On a console narrower than :data:`WIDE` columns
    (``width``), the user, module and files go on a second line under the id, so that every status stays whole
    at 80 columns; nothing is cut: what does not fit wraps."""
    from rich import box
    from rich.table import Table

    caption = f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s")
    narrow = width is not None and width < WIDE
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, caption=caption)
    if narrow:  # the id's width is fixed: the line under it wraps, and the deadline splits if need be
        table.add_column("id / user · module · files", width=36, overflow="fold")
    else:
        table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("v", no_wrap=True, justify="right")
    if not narrow:
        for column in ("user", "module", "files"):
            table.add_column(column, overflow="fold")
    table.add_column("expires", overflow="fold")
    for s in sessions:
        p = s.progress
        files = f"{p.accounted_files}/{p.total_files}" + (f" ({p.failed_count} failed)" if p.failed_files else "")
        user, module = escape(s.user_id or ""), escape(s.module_name or "")
        if narrow:
            about = " · ".join(part for part in (user or "-", module or "-", files))
            table.add_row(f"{s.id}\n  [dim]{about}[/]", status_markup(s.status), str(s.version), _Instant(s.due_at))
        else:
            table.add_row(str(s.id), status_markup(s.status), str(s.version), user, module, files, _Instant(s.due_at))
    return table


def _transition(event: SessionEvent) -> str:
    target = status_markup(event.target_state)
    if event.source_state is None:
        return f"→ {target}"
    if status_value(event.source_state) == status_value(event.target_state):
        return target
    return f"{status_markup(event.source_state)} → {target}"


def _details(event: SessionEvent, width: int = 100) -> str:
    payload = event.payload
    if str(event.event) == "created":
        parts = [f"{key}={payload[key]}" for key in ("user_id", "workspace_id", "module_name") if payload.get(key)]
        if payload.get("file_paths"):
            parts.append(f"files={len(payload['file_paths'])}")
        if payload.get("metadata"):
            parts.append(f"metadata={short(payload['metadata'])}")
        ttl = payload.get("ttl_seconds")
        if isinstance(ttl, int | float):
            parts.append(f"ttl={timedelta(seconds=ttl)}")
    else:
        parts = [f"{key}={short(value)}" for key, value in payload.items() if value not in (None, [], {})]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def history_table(events: Sequence[SessionEvent], width: int | None = None) -> Table:
    """One row per event: version, event, state change, performer, time and a summary of the payload. On a
    console narrower than :data:`WIDE` columns (``width``) the performer goes under the event and the columns
    wrap (the details too) rather than being cut."""
    from rich import box
    from rich.table import Table

    title = f"session {events[0].session_id}" if events else None
    narrow = width is not None and width < WIDE
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("v", no_wrap=True, justify="right")
    if narrow:  # fixed widths: only the details give way, down to what is left
        table.add_column("event / by", width=13, overflow="fold")
        table.add_column("state", width=13, overflow="fold")
        table.add_column("timestamp (UTC)", width=14, overflow="fold")
    else:
        for column in ("event", "state", "performer", "timestamp (UTC)"):
            table.add_column(column, overflow="fold")
    table.add_column("details", overflow="fold")
    for e in events:
        if narrow:
            table.add_row(str(e.version), f"{escape(str(e.event))}\n[dim]{escape(e.performer_id)}[/]",
                          _transition(e), _Instant(e.timestamp), escape(_details(e)))
        else:
            table.add_row(str(e.version), escape(str(e.event)), _transition(e), escape(e.performer_id),
                          _Instant(e.timestamp), escape(_details(e)))
    return table


def differences_table(differences: Sequence[Difference]) -> Table:
    """One row per field on which the projection and the events differ."""
    from rich.table import Table

    table = Table(title=f"{len(differences)} difference(s)", title_justify="left", show_edge=False)
    for column in ("session", "field", "projection", "events"):
        table.add_column(column)
    for d in differences:
        table.add_row(str(d.session_id), escape(d.field), escape(short(jsonable(d.projected))),
                      escape(short(jsonable(d.replayed))))
    return table
