"""The history commands: ``history`` (a session's events) and ``export`` (every history as JSONL audit files).

Owns :class:`HistoryCommands` and the typer functions of both commands.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError
from sessionflow.entrypoints.cli.options import DbOption, JsonOption, SessionArgument
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands

if TYPE_CHECKING:
    from sessionflow import SessionEvent

__all__ = ["HistoryCommands", "export", "history"]


class HistoryCommands(CommandContext):
    """Reading the events: one session's history, or every history written out as audit files."""

    def history(self, session_id: str | UUID) -> builtins.list[SessionEvent]:
        """A session's events, oldest first (a deleted session's too)."""
        events = self.manager.history(session_id)
        self.out.history(events)
        return events

    def export(self, root: str | Path, *, skip_invalid: bool = False, fsync: bool = False) -> dict[str, Any]:
        """Write every session's JSONL audit file under ``root``; returns (and prints) what was done.

        ``root`` empty or not a folder is refused (exit 6) before the database is opened; a file that cannot be
        written raises :class:`~sessionflow.errors.ArchiveError` (exit 11)."""
        try:
            from sessionflow.adapters.jsonl import check_root, export
        except ImportError:  # pragma: no cover - shipped with sessionflow
            raise CliError("export is not available in this installation", code="unavailable") from None
        check_root(root, "root")
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


@handled
def history(ctx: typer.Context, session_id: SessionArgument, db: DbOption = None,
            json_output: JsonOption = False) -> None:
    """A session's events, oldest first (deleted sessions too; JSON lines with --json)."""
    with open_commands(ctx, HistoryCommands, db=db, json_output=json_output) as cli:
        cli.history(session_id)


@handled
def export(
    ctx: typer.Context,
    root: Annotated[str, typer.Argument(metavar="DIR", help="Where to write the audit files (a folder, created "
                                                                "if missing).", show_default=False)],
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Skip (and list) sessions whose user id cannot be a folder name.")] = False,
    fsync: Annotated[bool, typer.Option("--fsync", help="fsync each file before renaming it into place.")] = False,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Write every session's JSONL audit file under DIR from its history (idempotent)."""
    with open_commands(ctx, HistoryCommands, db=db, json_output=json_output) as cli:
        cli.export(root, skip_invalid=skip_invalid, fsync=fsync)
