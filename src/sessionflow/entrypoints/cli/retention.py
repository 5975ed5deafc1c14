"""The retention command: ``purge`` (remove the sessions closed before a cutoff, archiving them first).

Owns :class:`RetentionCommands`, the typer function of ``purge`` and :func:`parse_cutoff`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from sessionflow.domain.values import format_timestamp
from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.options import DbOption, JsonOption
from sessionflow.entrypoints.cli.parsing import parse_duration
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands

__all__ = ["RetentionCommands", "parse_cutoff", "purge"]


def parse_cutoff(text: str, now: datetime) -> datetime:
    """``--closed-before``: a DURATION ago (``30d``, ``12h``; see ``--ttl``) or an ISO 8601 time with a zone.

    A value that is neither is a usage error (exit 2, one line) saying why it is not a duration either (too
    long, malformed)."""
    try:
        return now - parse_duration(text, "--closed-before")
    except CliError as error:
        refused = error
    except OverflowError:  # a duration too far back for a date
        raise CliError(f"invalid --closed-before: {text!r} reaches before the year 1", code="usage",
                       exit_code=ExitCode.USAGE) from None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{refused.message}; nor is it an ISO 8601 time (2025-01-01T00:00:00Z)", code="usage",
                       exit_code=ExitCode.USAGE) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise CliError(f"invalid --closed-before: {text!r} has no time zone (add Z or +00:00)", code="usage",
                       exit_code=ExitCode.USAGE)
    return value


class RetentionCommands(CommandContext):
    """Retention: the sessions closed long ago removed, their histories archived first if asked."""

    def _closed_before(self, cutoff: datetime) -> int:
        """How many sessions a purge at ``cutoff`` would remove, for its progress bar: the closed ones last changed
        before it, among those created before it (read page after page, as the purge reads them)."""
        from sessionflow.application.ports import Query
        from sessionflow.application.retention import is_closed_before

        store = self.manager.store
        count, after = 0, None
        while True:
            page = store.query(Query(include_deleted=True, created_before=cutoff, after=after, limit=1000))
            count += sum(1 for session in page if is_closed_before(session, cutoff))
            if len(page) < 1000:
                return count
            after = page[-1].id

    def purge(self, closed_before: str | datetime | timedelta, *, archive: str | Path | None = None,
              batch_size: int = 500) -> dict[str, Any]:
        """Purge the sessions closed before ``closed_before`` (a time, a duration ago, or its text); returns (and
        prints) what was done. ``archive`` empty, or not a folder (a file, or under one), is refused (exit 6)."""
        root = None
        if archive is not None:
            from sessionflow.adapters.jsonl import check_root

            root = check_root(archive, "archive")  # as typed: an empty one is refused, not taken for "."
        manager = self.manager
        now = manager.clock.now()
        if isinstance(closed_before, str):
            cutoff = parse_cutoff(closed_before, now)
        elif isinstance(closed_before, timedelta):
            cutoff = now - closed_before
        else:
            cutoff = closed_before
        total = self._closed_before(cutoff) if self.out.interactive else None
        with self.out.progress("purging closed sessions", total) as advance:
            result = manager.purge(closed_before=cutoff, archive=root, batch_size=batch_size, progress=advance)
        data: dict[str, Any] = {"closed_before": format_timestamp(cutoff),
                                "archive": None if archive is None else str(archive), **result.to_dict()}
        if self.out.json:
            self.out.document(data)
        else:
            line = (f"purged {result.sessions} session" + ("" if result.sessions == 1 else "s")
                    + f" ({result.events} events) closed before {format_timestamp(cutoff)}")
            if archive is not None:
                line += f"; {result.archive_files} archive file(s) under {escape(str(archive))}"
            if result.skipped:
                line += f"; {result.skipped} skipped (changed meanwhile, or holding the newest event)"
            self.out.print(line)
        return data


@handled
def purge(
    ctx: typer.Context,
    closed_before: Annotated[str, typer.Option(
        "--closed-before", metavar="DURATION|TIME",
        help="Purge sessions closed more than DURATION ago (30d, 12h, 90m) or before an ISO 8601 TIME with a zone.",
        show_default=False)],
    archive: Annotated[str | None, typer.Option(
        "--archive", metavar="DIR", help="First write each history there as a JSONL file (created if missing).",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", min=1, max=10_000,
                                            help="Sessions removed per transaction.")] = 500,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Remove the sessions closed (final state, or deleted) before a cutoff: events and rows; archive them first."""
    parse_cutoff(closed_before, datetime.now(UTC))  # a malformed cutoff is refused before the database is opened
    with open_commands(ctx, RetentionCommands, db=db, json_output=json_output) as cli:
        cli.purge(closed_before, archive=archive, batch_size=batch_size)
