"""The ``events`` command: the global event feed, read from a position or followed as it grows.

Owns :class:`FeedCommands` and the typer function of the command. ``--consumer NAME`` reads as a named consumer:
the feed resumes after the position stored under NAME, and each batch's position is stored once it is printed
(at-least-once, see ``docs/events.md``). ``--follow`` has the short form ``-F`` (``-f`` is ``--file`` elsewhere)
and ``--for DURATION`` stops it, as for ``worker``; the old ``-f`` and ``--duration SECONDS`` still work, with a
deprecation warning, until the next minor release.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.options import DbOption, JsonOption, deprecated_option
from sessionflow.entrypoints.cli.parsing import parse_duration
from sessionflow.entrypoints.cli.running import handled, open_commands
from sessionflow.entrypoints.cli.worker import stop_on_signals

if TYPE_CHECKING:
    from sessionflow import SessionEvent

__all__ = ["FeedCommands", "events"]

#: How often ``--follow`` reads the feed when no change notice wakes it earlier.
POLL_INTERVAL = 0.2


class FeedCommands(CommandContext):
    """Reading the global event feed."""

    def events(self, *, after: int | None = None, limit: int = 1000, follow: bool = False,
               consumer: str | None = None, duration: float | None = None, stop: threading.Event | None = None,
               handle_signals: bool = True) -> int:
        """Print the events after ``after`` (default 0, or the consumer's stored position), in position order;
        with ``follow``, keep printing new ones until SIGINT/SIGTERM, ``duration`` seconds or ``stop``.
        Returns how many were printed."""
        manager = self.manager
        if consumer is not None and after is not None:
            raise CliError("--after and --consumer exclude each other: a consumer resumes at its stored position",
                           code="invalid_input", exit_code=ExitCode.USAGE)
        stop = stop if stop is not None else threading.Event()
        restore = stop_on_signals(stop) if follow and handle_signals else (lambda: None)
        timer = None
        if duration is not None:
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()
        try:
            if consumer is not None:
                return manager.consume(consumer, self.out.feed_event, batch_size=min(limit, 1000), follow=follow,
                                       stop=stop, poll_interval=POLL_INTERVAL,
                                       max_events=None if follow else limit)
            return self._read(after or 0, limit, follow, stop)
        finally:
            restore()
            if timer is not None:
                timer.cancel()

    def _read(self, after: int, limit: int, follow: bool, stop: threading.Event) -> int:
        manager = self.manager
        printed = 0
        while not stop.is_set():
            page: list[SessionEvent] = manager.events(after=after, limit=limit)
            for event in page:
                self.out.feed_event(event)
                after = event.position or after
            printed += len(page)
            if not follow:
                break
            if not page:
                stop.wait(POLL_INTERVAL)
            else:
                time.sleep(0)  # let a signal handler run between pages
        return printed


@handled
def events(
    ctx: typer.Context,
    after: Annotated[int | None, typer.Option(
        "--after", min=0, metavar="N", help="Start after this position (default 0: the first event).",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, max=10_000,
                                       help="At most this many events (per read with --follow).")] = 1000,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new events until SIGINT/SIGTERM.")
                      ] = False,
    consumer: Annotated[str | None, typer.Option(
        "--consumer", metavar="NAME", help="Read as the named consumer: resume after its stored position and "
                                           "store it as events are printed.", show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--for", metavar="DURATION", help="With --follow, stop after this long (90, 30s, 15m...).",
        show_default=False)] = None,
    old_follow: Annotated[bool, typer.Option("-f", hidden=True, help="Deprecated: --follow.")] = False,
    old_duration: Annotated[str | None, typer.Option(
        "--duration", metavar="SECONDS", hidden=True, help="Deprecated: --for.", show_default=False)] = None,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """The global event feed, in commit order (JSON lines with --json, each with its position)."""
    if old_follow:
        deprecated_option("events", "-f", "--follow (or -F)")
        follow = True
    if old_duration is not None:
        deprecated_option("events", "--duration SECONDS", "--for DURATION")
        if duration is not None:
            raise CliError("give --for DURATION only (--duration is its deprecated spelling)", code="usage",
                           exit_code=ExitCode.USAGE)
        duration = old_duration
    seconds = None if duration is None else parse_duration(duration, "--for").total_seconds()
    with open_commands(ctx, FeedCommands, db=db, json_output=json_output, long_running=follow) as cli:
        cli.events(after=after, limit=limit, follow=follow, consumer=consumer, duration=seconds)
