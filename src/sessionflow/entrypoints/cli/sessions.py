"""The session commands: create, send, start, record-file, note, complete, fail, touch, delete, show, list and
expire.

Owns :class:`SessionCommands` (each command as a method that calls the manager and prints the result) and the
typer functions that read the commands' options and call those methods.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.options import (
    DbOption,
    ExpectOption,
    IdempotencyKeyOption,
    JsonOption,
    PerformerOption,
    SessionArgument,
    StatusChoice,
)
from sessionflow.entrypoints.cli.parsing import parse_arguments, parse_duration, parse_json_object
from sessionflow.entrypoints.cli.running import handled, open_commands

if TYPE_CHECKING:
    from sessionflow import Session, SessionStatus

__all__ = ["SessionCommands", "complete", "create", "delete", "expire", "fail", "list_", "note", "record_file",
           "send", "show", "start", "touch"]


class SessionCommands(CommandContext):
    """The session commands as methods: each calls the manager, prints its result and returns it."""

    # ------------------------------------------------------------------ writes
    # Each write takes ``idempotency_key`` (``--idempotency-key``): run again with the same key, it writes nothing,
    # prints what the first run printed and notes the replay on stderr (see ``CommandContext.answered``).

    def create(self, *, user: str | None = None, workspace: str | None = None, module: str | None = None,
               files: Sequence[str] = (), metadata: Mapping[str, Any] | None = None,
               ttl: timedelta | None = None, lifecycle: str | None = None,
               idempotency_key: str | None = None) -> Session:
        """Create a session."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.create(user_id=user, workspace_id=workspace, module_name=module,
                                      file_paths=list(files), metadata=metadata, ttl=ttl,
                                      performer_id=self.performer, lifecycle=lifecycle, idempotency_key=key)
        return self.answered(session, key, verb="created")

    def send(self, session_id: str | UUID, event: str, *, args: Mapping[str, Any] | None = None,
             expected_version: int | None = None, idempotency_key: str | None = None) -> Session:
        """Send any event of the session's lifecycle."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.send_with(session_id, event, dict(args or {}), performer_id=self.performer,
                                         expected_version=expected_version, idempotency_key=key)
        return self.answered(session, key, verb=event)

    def start(self, session_id: str | UUID, *, expected_version: int | None = None,
              idempotency_key: str | None = None) -> Session:
        """Start a pending session."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.start(session_id, performer_id=self.performer, expected_version=expected_version,
                                     idempotency_key=key)
        return self.answered(session, key, verb="started")

    def record_file(self, session_id: str | UUID, path: str, *, error: str | None = None,
                    expected_version: int | None = None, idempotency_key: str | None = None) -> Session:
        """Record a file's outcome: processed, or failed with ``error``."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.record_file(session_id, path, error, performer_id=self.performer,
                                           expected_version=expected_version, idempotency_key=key)
        outcome = "failed" if error is not None else "processed"
        return self.answered(session, key, verb=f"recorded {path!r} ({outcome}) in")

    def note(self, session_id: str | UUID, *, file_path: str, status: str, memory_id: str | None = None,
             expected_version: int | None = None, idempotency_key: str | None = None) -> Session:
        """Attach a note to a live session."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.add_note(session_id, file_path=file_path, status=status, memory_id=memory_id,
                                        performer_id=self.performer, expected_version=expected_version,
                                        idempotency_key=key)
        return self.answered(session, key, verb="added a note to")

    def complete(self, session_id: str | UUID, *, expected_version: int | None = None,
                 idempotency_key: str | None = None) -> Session:
        """Complete a session in progress."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.complete(session_id, performer_id=self.performer, expected_version=expected_version,
                                        idempotency_key=key)
        return self.answered(session, key, verb="completed")

    def fail(self, session_id: str | UUID, *, reason: str, expected_version: int | None = None,
             idempotency_key: str | None = None) -> Session:
        """Fail a live session with a reason."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.fail(session_id, reason=reason, performer_id=self.performer,
                                    expected_version=expected_version, idempotency_key=key)
        return self.answered(session, key, verb="failed")

    def touch(self, session_id: str | UUID, *, expected_version: int | None = None,
              idempotency_key: str | None = None) -> Session:
        """Extend a live session's deadline."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.touch(session_id, performer_id=self.performer, expected_version=expected_version,
                                     idempotency_key=key)
        return self.answered(session, key, verb="touched")

    def delete(self, session_id: str | UUID, *, expected_version: int | None = None,
               idempotency_key: str | None = None) -> Session:
        """Delete a session (its history stays)."""
        key = self.idempotency_key(idempotency_key)
        session = self.manager.delete(session_id, performer_id=self.performer, expected_version=expected_version,
                                      idempotency_key=key)
        return self.answered(session, key, verb="deleted")

    # ------------------------------------------------------------------ reads

    def show(self, session_id: str | UUID) -> Session:
        """Show a session."""
        session = self.manager.get(session_id)
        self.out.session(session)
        return session

    def list(self, *, statuses: Sequence[SessionStatus | str] = (), user: str | None = None,
             workspace: str | None = None, module: str | None = None, lifecycle: str | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             cursor: str | None = None, limit: int = 100, offset: int = 0,
             every: bool = False, newest_first: bool = False) -> builtins.list[Session]:
        """List sessions in creation order (``newest_first``: reversed), a page (or with ``every``, page after
        page, by cursor); JSON lines are printed page by page. Given a ``cursor`` (``""``: from the start), the
        JSON lines end with ``{"next_cursor": ...}``."""
        from sessionflow.application.reads import cursor_of

        found: builtins.list[Session] = []
        status = [str(getattr(s, "value", s)) for s in statuses] or None
        after = cursor or None
        while True:
            page = self.manager.list(status=status, user_id=user, workspace_id=workspace, module_name=module,
                                     lifecycle=lifecycle, created_after=created_after, created_before=created_before,
                                     cursor=after, limit=limit, offset=offset, newest_first=newest_first)
            found.extend(page)
            if self.out.json:
                self.out.sessions(page)
            if not every or len(page) < limit:
                break
            after, offset = cursor_of(page[-1], newest_first=newest_first), 0  # by cursor: nothing shifts
        full = found and len(page) == limit and not every
        next_cursor = cursor_of(found[-1], newest_first=newest_first) if full else None
        if self.out.json and cursor is not None:
            self.out.line({"next_cursor": next_cursor})
        if not self.out.json:
            self.out.sessions(found)
            if next_cursor is not None:
                self.out.info(f"next page: --cursor {next_cursor}")
        return found

    # ------------------------------------------------------------------ timeouts

    def expire(self, session_id: str | UUID | None = None, *, batch_size: int = 1000) -> int:
        """Expire one overdue session, or sweep: expire every overdue session now. Returns how many."""
        from sessionflow import EventType

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


# ---------------------------------------------------------------------- writes


@handled
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
    ttl: Annotated[str | None, typer.Option(
        "--ttl", metavar="DURATION",
        help="Time to live: 90, 90s, 500ms, 15m, 2h, 1d, 1h30m (default: the settings' timeout, 1 h).",
        show_default=False)] = None,
    lifecycle: Annotated[str | None, typer.Option(
        "--in", metavar="LIFECYCLE", help="A registered lifecycle (default: session; see --lifecycle FILE).",
        show_default=False)] = None,
    idempotency_key: IdempotencyKeyOption = None,
    db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False,
) -> None:
    """Create a session (pending, or its lifecycle's initial state)."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.create(user=user, workspace=workspace, module=module, files=file or (), metadata=metadata,
                   ttl=None if ttl is None else parse_duration(ttl, "--ttl"), lifecycle=lifecycle,
                   idempotency_key=idempotency_key)


@handled
def send(ctx: typer.Context, session_id: SessionArgument,
         event: Annotated[str, typer.Argument(metavar="EVENT", help="An event of the session's lifecycle.")],
         arg: Annotated[list[str] | None, typer.Option(
             "--arg", metavar="KEY=VALUE", help="An argument for the event's guards (repeatable; JSON values).",
             show_default=False)] = None,
         expect_version: ExpectOption = None, idempotency_key: IdempotencyKeyOption = None,
         db: DbOption = None, performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Send any event of the session's lifecycle (custom lifecycles: see --lifecycle FILE)."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.send(session_id, event, args=parse_arguments(arg), expected_version=expect_version,
                 idempotency_key=idempotency_key)


@handled
def start(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
          idempotency_key: IdempotencyKeyOption = None, db: DbOption = None, performer: PerformerOption = None,
          json_output: JsonOption = False) -> None:
    """Start a pending session (pending → in_progress; refused past its deadline)."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.start(session_id, expected_version=expect_version, idempotency_key=idempotency_key)


@handled
def record_file(
    ctx: typer.Context,
    session_id: SessionArgument,
    path: Annotated[str, typer.Argument(metavar="PATH", help="One of the session's files.", show_default=False)],
    error: Annotated[str | None, typer.Option("--error", metavar="TEXT",
                                              help="Record the file as failed with this error.")] = None,
    expect_version: ExpectOption = None, idempotency_key: IdempotencyKeyOption = None, db: DbOption = None,
    performer: PerformerOption = None, json_output: JsonOption = False,
) -> None:
    """Record a file's outcome: processed, or failed with --error."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.record_file(session_id, path, error=error, expected_version=expect_version,
                        idempotency_key=idempotency_key)


@handled
def note(
    ctx: typer.Context,
    session_id: SessionArgument,
    file_path: Annotated[str, typer.Option("--file", "-f", metavar="PATH", help="The file the note is about.")],
    status: Annotated[str, typer.Option("--status", metavar="STATUS", help="The note's status, e.g. stored.")],
    memory_id: Annotated[str | None, typer.Option("--memory-id", metavar="ID",
                                                  help="Where the result was stored.")] = None,
    expect_version: ExpectOption = None, idempotency_key: IdempotencyKeyOption = None, db: DbOption = None,
    performer: PerformerOption = None, json_output: JsonOption = False,
) -> None:
    """Attach a note to a live session."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.note(session_id, file_path=file_path, status=status, memory_id=memory_id,
                 expected_version=expect_version, idempotency_key=idempotency_key)


@handled
def complete(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
             idempotency_key: IdempotencyKeyOption = None, db: DbOption = None, performer: PerformerOption = None,
             json_output: JsonOption = False) -> None:
    """Complete a session in progress (every file must have an outcome)."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.complete(session_id, expected_version=expect_version, idempotency_key=idempotency_key)


@handled
def fail(ctx: typer.Context, session_id: SessionArgument,
         reason: Annotated[str, typer.Option("--reason", "-r", metavar="TEXT", help="Why it failed (required).")],
         expect_version: ExpectOption = None, idempotency_key: IdempotencyKeyOption = None, db: DbOption = None,
         performer: PerformerOption = None, json_output: JsonOption = False) -> None:
    """Fail a live session with a reason."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.fail(session_id, reason=reason, expected_version=expect_version, idempotency_key=idempotency_key)


@handled
def touch(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
          idempotency_key: IdempotencyKeyOption = None, db: DbOption = None, performer: PerformerOption = None,
          json_output: JsonOption = False) -> None:
    """Extend a live session's deadline to now + its TTL (never past its lifetime cap)."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.touch(session_id, expected_version=expect_version, idempotency_key=idempotency_key)


@handled
def delete(ctx: typer.Context, session_id: SessionArgument, expect_version: ExpectOption = None,
           idempotency_key: IdempotencyKeyOption = None, db: DbOption = None, performer: PerformerOption = None,
           json_output: JsonOption = False) -> None:
    """Delete a session: gone from show and list; its history stays."""
    with open_commands(ctx, SessionCommands, db=db, performer=performer, json_output=json_output) as cli:
        cli.delete(session_id, expected_version=expect_version, idempotency_key=idempotency_key)


# ---------------------------------------------------------------------- reads


@handled
def show(ctx: typer.Context, session_id: SessionArgument, db: DbOption = None,
         json_output: JsonOption = False) -> None:
    """Show a session (an overdue one is expired first, as every read does)."""
    with open_commands(ctx, SessionCommands, db=db, json_output=json_output) as cli:
        cli.show(session_id)


def _instant(text: str | datetime) -> datetime:
    """An ISO 8601 instant given on the command line (a time zone is required, ``Z`` for UTC)."""
    if isinstance(text, datetime):
        return text
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time (example: 2026-01-02T03:04:05Z)") from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone (add Z for UTC, or an offset such as +02:00)")
    return value


@handled
def list_(
    ctx: typer.Context,
    status: Annotated[list[StatusChoice] | None, typer.Option(
        "--status", "-s", help="Only these states (repeatable).", case_sensitive=False)] = None,
    user: Annotated[str | None, typer.Option("--user", metavar="ID", help="Only this user's.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", metavar="ID", help="Only this workspace.")] = None,
    module: Annotated[str | None, typer.Option("--module", metavar="NAME", help="Only this module.")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, max=1000,
                                       help="At most this many per page.")] = 100,
    offset: Annotated[int, typer.Option("--offset", metavar="N", min=0, help="Skip this many.")] = 0,
    lifecycle: Annotated[str | None, typer.Option(
        "--lifecycle", metavar="NAME", help="Only sessions of this lifecycle.")] = None,
    created_after: Annotated[datetime | None, typer.Option(
        "--created-after", metavar="TIME", parser=_instant, show_default=False,
        help="Only sessions created at or after TIME (ISO 8601 with a time zone, e.g. 2026-01-02T03:04:05Z).")] = None,
    created_before: Annotated[datetime | None, typer.Option(
        "--created-before", metavar="TIME", parser=_instant, show_default=False,
        help="Only sessions created before TIME (ISO 8601 with a time zone).")] = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", metavar="CURSOR", show_default=False,
        help='Continue after the page that printed this cursor ("" for the first page); with --json the last '
             'line is then {"next_cursor": ...}.')] = None,
    every: Annotated[bool, typer.Option("--all", help="Every match, page after page.")] = False,
    newest_first: Annotated[bool, typer.Option(
        "--newest-first", help="Newest first (a --cursor pages on in the order it was printed for).")] = False,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """List sessions in creation order, oldest first (--newest-first: newest first; JSON lines with --json)."""
    with open_commands(ctx, SessionCommands, db=db, json_output=json_output) as cli:
        cli.list(statuses=[s.value for s in status or ()], user=user, workspace=workspace, module=module,
                 lifecycle=lifecycle, created_after=created_after, created_before=created_before, cursor=cursor,
                 limit=limit, offset=offset, every=every, newest_first=newest_first)



# ---------------------------------------------------------------------- timeouts


@handled
def expire(
    ctx: typer.Context,
    session_id: Annotated[str | None, typer.Argument(
        metavar="[SESSION_ID]", help="Expire only this overdue session.", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", min=1, max=100_000,
                                            help="Sessions expired per transaction.")] = 1000,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Run a sweep now: expire every overdue session (or one), once each."""
    with open_commands(ctx, SessionCommands, db=db, json_output=json_output) as cli:
        cli.expire(session_id, batch_size=batch_size)
