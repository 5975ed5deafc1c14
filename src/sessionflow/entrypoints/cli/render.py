"""How results are shown: JSON documents and lines, or rich tables and lines.

Owns :class:`Output`: where a command's results go (stdout for results, stderr for notes, warnings and progress
bars) and in which form (JSON, or the views of :mod:`~.tables`). Commands decide what to print; this module and
:mod:`~.tables` decide how it looks. rich is imported only when something is drawn with it (a table, a progress
bar, a line for a terminal): the one-line reports of the writes, and ``show``'s view of a session, go out as
plain text when stdout is not a terminal, as rich would print them there, so a scripted command does not pay for
rich.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sessionflow.domain.values import format_timestamp
from sessionflow.entrypoints.cli.tables import (
    Difference,
    differences_table,
    history_table,
    session_table,
    session_text,
    sessions_table,
)
from sessionflow.entrypoints.cli.text import (
    dumps,
    escape,
    jsonable,
    session_json,
    status_markup,
    status_value,
    styled,
    when,
)

if TYPE_CHECKING:
    from rich.console import Console

    from sessionflow import Session, SessionEvent

__all__ = ["Difference", "Output", "dumps", "escape", "jsonable", "session_json", "styled"]


class Output:
    """Where a command's results go: JSON documents/lines, or rich tables and lines, on stdout."""

    #: The width of the console off a terminal (lines are not wrapped there).
    PLAIN_WIDTH = 200

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        self._console: Console | None = None
        self._errors: Console | None = None
        self._lock = threading.Lock()

    @property
    def console(self) -> Console:
        """The rich console on stdout: as wide as the terminal (or as ``COLUMNS`` says there); off a terminal,
        200 columns and unwrapped lines."""
        if self._console is None:
            from rich.console import Console

            terminal = sys.stdout.isatty()
            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=not terminal,
                                    width=None if terminal else self.PLAIN_WIDTH)
        return self._console

    @property
    def stderr(self) -> Console:
        """The rich console on stderr, for notes and progress bars."""
        if self._errors is None:
            from rich.console import Console

            self._errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        return self._errors

    @property
    def interactive(self) -> bool:
        """Whether both stdout and stderr are terminals (progress bars are drawn only then)."""
        return sys.stdout.isatty() and sys.stderr.isatty()

    def document(self, data: Any) -> None:
        """One JSON document (one line)."""
        self.text(dumps(jsonable(data)))

    line = document  # a JSON line of a stream is written the same way

    def text(self, line: str) -> None:
        """One line of text on stdout, as it is (flushed: a reader of a pipe gets it at once)."""
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def print(self, *renderables: Any) -> None:
        """Rich text or tables on stdout."""
        with self._lock:
            self.console.print(*renderables)

    def info(self, message: str) -> None:
        """A human note on stderr (also in JSON mode: it never mixes with the JSON on stdout)."""
        with self._lock:
            self.stderr.print(message)

    def warn(self, message: str) -> None:
        """A warning on stderr as one plain line, ``warning: …`` (also in JSON mode)."""
        with self._lock:
            sys.stderr.write(f"warning: {message}\n")
            sys.stderr.flush()

    def replayed(self, key: str, *, line: int | None = None) -> None:
        """The note that a write was answered from its stored idempotency ``key`` (nothing written): one plain
        line on stderr, also in JSON mode, ``replayed: …`` (``apply`` names the input ``line``)."""
        where = f"line {line}: " if line is not None else ""
        with self._lock:
            sys.stderr.write(f"replayed: {where}idempotency key {key[:80]!r} was already used for this request; "
                             "nothing was written\n")
            sys.stderr.flush()

    # ------------------------------------------------------------------ sessions and events

    def session(self, session: Session, *, verb: str | None = None) -> None:
        """A session: its JSON, its table, or (given the ``verb`` of the change) one line about the change."""
        if self.json:
            self.text(session_json(session))
        elif verb is None:
            text = None if styled(sys.stdout) else session_text(session, self.PLAIN_WIDTH)
            if text is None:
                self.print(session_table(session))
            else:  # what rich prints there, without loading it
                self.text(text)
        else:
            deadline = session.due_at  # only a live session has one to act on
            expires = f", expires {when(deadline)}" if deadline is not None else ""
            if styled(sys.stdout):
                self.print(f"{escape(verb)} session [bold]{session.id}[/]: {status_markup(session.status)} "
                           f"(version {session.version}{expires})")
            else:  # what rich prints there, without loading it
                self.text(f"{verb} session {session.id}: {status_value(session.status)} "
                          f"(version {session.version}{expires})")

    def sessions(self, sessions: Sequence[Session]) -> None:
        """A page of sessions: JSON lines, or a table."""
        if self.json:
            for session in sessions:
                self.text(session_json(session))
        else:
            self.print(sessions_table(sessions, self.console.width))

    def history(self, events: Sequence[SessionEvent]) -> None:
        """A session's events: JSON lines, or a table."""
        if self.json:
            for event in events:
                self.line(event.model_dump(mode="json"))
        else:
            self.print(history_table(events, self.console.width))

    def event(self, event: SessionEvent, *, position: bool = False) -> None:
        """One event as it happens (the worker's stream); with ``position``, its place in the feed first."""
        if self.json:
            self.line(event.model_dump(mode="json"))
        else:
            source = str(event.source_state) if event.source_state else "-"
            where = f"{event.position:>8}  " if position else ""
            version = f" v{event.version}" if position else ""
            self.print(f"{where}{format_timestamp(event.timestamp)}  {escape(str(event.event))} session "
                       f"[bold]{event.session_id}[/]{version} ({escape(source)} → {status_markup(event.target_state)}, "
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
