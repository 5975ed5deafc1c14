"""The long-running commands: ``worker`` (the timeout waker) and ``serve`` (the HTTP service).

Owns :class:`WorkerCommands`, the typer functions of both commands, and :func:`stop_on_signals`: both stop
cleanly (exit 0) on SIGINT or SIGTERM.
"""

from __future__ import annotations

import builtins
import copy
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionflow.entrypoints.cli.context import CommandContext
from sessionflow.entrypoints.cli.errors import CliError, ExitCode
from sessionflow.entrypoints.cli.options import DbOption, JsonOption, globals_of
from sessionflow.entrypoints.cli.parsing import mask_url, parse_duration
from sessionflow.entrypoints.cli.render import escape
from sessionflow.entrypoints.cli.running import handled, open_commands

if TYPE_CHECKING:
    from sessionflow import SessionEvent, Settings

__all__ = ["WorkerCommands", "serve", "stop_on_signals", "worker"]


class WorkerCommands(CommandContext):
    """Running until stopped: the timeout waker, or the HTTP service."""

    def worker(self, *, interval: timedelta | None = None, duration: float | None = None,
               stop: threading.Event | None = None, handle_signals: bool = True, batch_size: int = 1000) -> int:
        """Run the timeout waker against the database until SIGINT/SIGTERM (or ``duration`` seconds, or
        ``stop`` is set), printing each expiry as it happens. Returns how many sessions it expired.

        The waker sweeps ``batch_size`` sessions per transaction; once stopped, the sweep under way (the catch-up
        sweep of the start included) ends after the batch in hand, whose expiries are committed and printed.
        """
        from sessionflow import EventType
        from sessionflow.adapters.batchwise_waker import BatchwiseWaker

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
        restore = stop_on_signals(stop) if handle_signals else (lambda: None)
        started = False
        try:
            self.out.info(f"[dim]worker: expiring sessions of {escape(mask_url(self.url))} at their deadlines "
                          f"(safety sweep every {cleanup}); stop with Ctrl-C or SIGTERM[/]")
            manager.start_timeouts(BatchwiseWaker(halt=stop, cleanup_interval=cleanup, batch_size=batch_size),
                                   cleanup_interval=cleanup)
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

    def serve(self, *, host: str = "127.0.0.1", port: int = 8000, timeouts: bool = True,
              log_level: str = "info", insecure_no_auth: bool = False, workers: int = 1,
              lifecycles: Sequence[str] = (), grace_period: int | None = None, drain: int | None = None,
              console: bool = True) -> None:
        """Run the HTTP service with uvicorn (and the timeout waker, unless ``timeouts`` is false).

        Refuses (a usage error, exit 2) to listen beyond the loopback interface without bearer tokens
        unless ``insecure_no_auth``. ``workers`` > 1 runs that many uvicorn worker processes on one
        listening socket, each with its own manager and waker (see :meth:`_serve_workers`); they register
        the lifecycle files ``lifecycles`` (those of ``--lifecycle``) themselves. ``console``: serve the
        operator's console at ``/ui`` (unless the settings turn it off).

        On SIGTERM it stops as :mod:`sessionflow.entrypoints.http.stopping` describes, within ``grace_period``
        seconds (default: the settings' ``http.grace_period_seconds``) of which the first ``drain`` (default:
        ``http.drain_seconds``) it goes on serving with ``/readyz`` answering 503; then exits 0.
        """
        try:
            import uvicorn

            from sessionflow.entrypoints.http import Unprotected, app_from_env, is_loopback
        except ImportError as error:
            raise CliError(f"serve is not available: {error.name or error} is not installed "
                           "(pip install 'sessionflow[http]')", code="unavailable") from None
        if workers < 1:
            raise CliError(f"--workers must be at least 1, got {workers}", code="usage", exit_code=ExitCode.USAGE)
        settings = self._stop_settings(grace_period, drain)
        if workers > 1:
            self._serve_workers(settings, host=host, port=port, timeouts=timeouts, log_level=log_level,
                                insecure_no_auth=insecure_no_auth, workers=workers, lifecycles=lifecycles,
                                console=console)
            return
        try:
            application = app_from_env(settings, timeouts=timeouts, host=host,
                                       insecure_no_auth=insecure_no_auth, exit_after_grace=True, console=console)
        except Unprotected as error:
            raise CliError(error.message, code="authentication_required", exit_code=ExitCode.USAGE) from None
        secured = application.state.auth is not None
        self._announce(host=host, port=port, timeouts=timeouts, secured=secured, workers=1, is_loopback=is_loopback)

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                super().handle_exit(sig, frame)
                # Stop cleanly (exit 0) instead of re-raising SIGINT/SIGTERM once shut down.
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, builtins.list):
                    captured.clear()

        Server(uvicorn.Config(application, host=host, port=port, log_level=log_level,
                              timeout_graceful_shutdown=_drain_timeout(settings))).run()

    def _stop_settings(self, grace_period: int | None, drain: int | None) -> Settings:
        """The settings with ``--grace-period`` and ``--drain`` in force (checked together: the drain must be
        shorter than the grace period)."""
        settings = self.settings
        if grace_period is None and drain is None:
            return settings
        http = settings.http.model_dump()
        if grace_period is not None:
            http["grace_period_seconds"] = grace_period
        if drain is not None:
            http["drain_seconds"] = drain
        return type(settings)(**{**settings.model_dump(), "http": http})

    def _announce(self, *, host: str, port: int, timeouts: bool, secured: bool, workers: int,
                  is_loopback: Callable[[str], bool]) -> None:
        if not secured and not is_loopback(host):
            self.out.info(f"[bold]warning:[/] serving on {escape(host)} without authentication "
                          "(--insecure-no-auth): every session is open to whoever reaches it")
        processes = "" if workers == 1 else f"{workers} worker processes, each "
        self.out.info(f"[dim]serving {escape(mask_url(self.url))} on http://{host}:{port} "
                      f"({processes}{'with' if timeouts else 'without'} the timeout waker, "
                      f"{'with bearer tokens' if secured else 'without authentication'}); "
                      "stop with Ctrl-C or SIGTERM[/]")

    def _serve_workers(self, settings: Settings, *, host: str, port: int, timeouts: bool, log_level: str,
                       insecure_no_auth: bool, workers: int, lifecycles: Sequence[str], console: bool = True) -> None:
        """``workers`` uvicorn processes sharing one listening socket, each building its app with
        :func:`~sessionflow.entrypoints.http.environment.worker_app` from the settings handed down as
        ``SESSIONFLOW_…`` variables. Refused (exit 2) for a store that lives in one process (an in-memory
        SQLite database). The schema is brought up to date here, once, before the workers start; each log
        line carries the pid of the process that wrote it."""
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from sessionflow.entrypoints.http.environment import (
            WORKER_APP,
            WORKER_LIFECYCLES_ENV,
            WORKER_TIMEOUTS_ENV,
            Unprotected,
            console_environ,
            is_loopback,
            settings_environ,
            shared_between_processes,
            tokens_from_env,
        )

        if not shared_between_processes(self.url):
            raise CliError(f"--workers {workers} needs a store the worker processes can share: "
                           f"{mask_url(self.url)} is an in-memory database, private to one process. Use an "
                           "SQLite file, PostgreSQL or Redis, or --workers 1",
                           code="usage", exit_code=ExitCode.USAGE)
        tokens = tokens_from_env(os.environ)  # malformed tokens are reported here, not by each worker
        if tokens is None and not is_loopback(host) and not insecure_no_auth:
            raise CliError(Unprotected(host).message, code="authentication_required", exit_code=ExitCode.USAGE)
        _ = self.manager  # opens the database (reporting it if unreachable) and migrates it, once
        self.close()

        handed_down: dict[str, str | None] = {
            **settings_environ(settings),
            WORKER_TIMEOUTS_ENV: "1" if timeouts else "0",
            WORKER_LIFECYCLES_ENV: json.dumps([str(Path(f).resolve()) for f in lifecycles]) if lifecycles else None,
            **console_environ(self.settings, console),  # the console's switch, and one secret for every worker
        }
        self._announce(host=host, port=port, timeouts=timeouts, secured=tokens is not None, workers=workers,
                       is_loopback=is_loopback)
        saved = {name: os.environ.get(name) for name in handed_down}
        try:
            _apply(handed_down)  # the worker processes are spawned with this environment
            config = uvicorn.Config(WORKER_APP, factory=True, host=host, port=port, log_level=log_level,
                                    workers=workers, log_config=_log_config_with_pids(),
                                    timeout_graceful_shutdown=_drain_timeout(settings))
            sock = config.bind_socket()
            try:
                Multiprocess(config, sockets=[sock]).run()
            finally:
                sock.close()
        finally:
            _apply(saved)


def _drain_timeout(settings: Settings) -> int:
    """What uvicorn waits for the requests in flight once it stops accepting: the grace period less the drain."""
    return settings.http.grace_period_seconds - settings.http.drain_seconds


def _apply(variables: dict[str, str | None]) -> None:
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _log_config_with_pids() -> dict[str, Any]:
    """uvicorn's logging configuration with the writing process's pid after the level, ``INFO: [1234] …``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["fmt"] = formatter["fmt"].replace("%(levelprefix)s ", "%(levelprefix)s [%(process)d] ", 1)
    return config


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
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


@handled
def worker(
    ctx: typer.Context,
    interval: Annotated[str | None, typer.Option(
        "--interval", metavar="DURATION",
        help="Safety-net sweep period (default: the settings' cleanup interval, 5 min).", show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--for", metavar="DURATION", help="Stop after this long (default: run until SIGINT/SIGTERM).",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", metavar="N", min=1, max=100_000,
        help="Sessions expired per transaction; on SIGTERM the batch in hand is finished.")] = 1000,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Expire sessions at their deadlines until SIGINT/SIGTERM, then stop cleanly (exit 0).

    Prints each expiry as it happens (JSON lines with --json). On SIGTERM a sweep under way ends after the
    batch in hand (its expiries committed and printed); the sessions left due are expired by the next sweep.
    """
    every = None if interval is None else parse_duration(interval, "--interval")
    stop_after = None if duration is None else parse_duration(duration, "--for").total_seconds()
    with open_commands(ctx, WorkerCommands, db=db, json_output=json_output, long_running=True) as cli:
        cli.worker(interval=every, duration=stop_after, batch_size=batch_size)


@handled
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port to listen on.")] = 8000,
    no_timeouts: Annotated[bool, typer.Option("--no-timeouts", help="Do not run the timeout waker.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL", help="uvicorn's log level.")] = "info",
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Serve beyond the loopback interface without bearer tokens (only when "
                                   "something in front of the service restricts who reaches it).")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", metavar="N", min=1,
        help="uvicorn worker processes serving the one store, each with its own timeout "
             "waker (more than 1: not on an in-memory database).")] = 1,
    grace_period: Annotated[str | None, typer.Option(
        "--grace-period", metavar="DURATION",
        help="On SIGTERM, stop within this long, answering the requests in flight (default: the "
             "http.grace_period_seconds setting, 25 s).", show_default=False)] = None,
    drain: Annotated[str | None, typer.Option(
        "--drain", metavar="DURATION",
        help="On SIGTERM, first serve on this long with /readyz answering 503, for a load balancer to "
             "notice (part of the grace period; default: the http.drain_seconds setting, 0).",
        show_default=False)] = None,
    no_console: Annotated[bool, typer.Option(
        "--no-console", help="Do not serve the operator's console at /ui.")] = False,
    db: DbOption = None, json_output: JsonOption = False,
) -> None:
    """Run the HTTP service (uvicorn) with the timeout waker, until SIGINT/SIGTERM.

    Without bearer tokens (SESSIONFLOW_HTTP_TOKENS or SESSIONFLOW_HTTP_TOKENS_FILE) it listens only on a
    loopback address unless --insecure-no-auth is given. --workers N runs N processes on one port. The
    operator's console is served at /ui (--no-console: not). On SIGTERM /readyz answers 503 at once, the
    requests in flight are answered and event streams end; exit 0.
    """
    grace = None if grace_period is None else _whole_seconds(parse_duration(grace_period, "--grace-period"))
    draining = None if drain is None else _whole_seconds(parse_duration(drain, "--drain"))
    with open_commands(ctx, WorkerCommands, db=db, json_output=json_output, long_running=True) as cli:
        cli.serve(host=host, port=port, timeouts=not no_timeouts, log_level=log_level,
                  insecure_no_auth=insecure_no_auth, workers=workers, lifecycles=globals_of(ctx).lifecycles,
                  grace_period=grace, drain=draining, console=not no_console)


def _whole_seconds(duration: timedelta) -> int:
    """A duration of the stop options in whole seconds, rounded up."""
    seconds = duration.total_seconds()
    whole = int(seconds)
    return whole + 1 if seconds > whole else whole
