"""How a command runs: the commands object it gets, and its errors turned into exit codes.

Owns :func:`open_commands` (says where the settings come from — the global and the command's options, the
environment —, registers the ``--lifecycle`` files, and yields the object whose methods do the work, inside the
engine's logging and :func:`telemetry`; the object reads the settings when it needs them and refuses to open an
in-memory database), :func:`telemetry` (OpenTelemetry from the ``OTEL_*`` and ``TRACEPARENT`` variables, imported
only when one is set), :func:`handled` (every error becomes its one-line report and exit code, never a traceback)
and :func:`register_lifecycles`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

import typer

from sessionflow.entrypoints.cli.context import CommandContext, SettingsSource
from sessionflow.entrypoints.cli.errors import report_error
from sessionflow.entrypoints.cli.logs import engine_logging
from sessionflow.entrypoints.cli.options import globals_of

__all__ = ["OTEL_VARIABLES", "handled", "open_commands", "register_lifecycles", "telemetry"]

P = ParamSpec("P")
C = TypeVar("C", bound=CommandContext)

#: The variables that may ask for OpenTelemetry (:mod:`sessionflow.adapters.otel_env`): an exporter, a
#: configuration file, a trace to continue. A command run without any of them imports nothing of it.
OTEL_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_CONFIG_FILE",
                  "TRACEPARENT")


def _json_mode(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    ctx = kwargs.get("ctx", args[0] if args else None)
    return bool(kwargs.get("json_output")) or globals_of(ctx).json


def handled(func: Callable[P, None]) -> Callable[P, None]:
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


def register_lifecycles(files: Sequence[str]) -> list[Any]:
    """Load lifecycle files given with ``--lifecycle`` into the process-wide registry."""
    if not files:
        return []
    from sessionflow.domain.definitions import default_registry
    from sessionflow.loader import load_definition

    registry = default_registry()
    return [registry.register(load_definition(file)) for file in files]


@contextlib.contextmanager
def open_commands(ctx: typer.Context, kind: type[C], *, db: str | None = None, performer: str | None = None,
                  json_output: bool = False, long_running: bool = False) -> Iterator[C]:
    """The object whose methods run a command, with the settings of the command line; closed afterwards.

    ``kind`` is the command group's class; the object is of the class the root command names
    (:attr:`Globals.commands <sessionflow.entrypoints.cli.options.Globals.commands>`: ``Cli`` once it is built)
    when that has the group's methods, so every command then runs through ``Cli``. It refuses an in-memory
    database (exit 2) when it opens the manager. ``long_running`` (``worker``, ``serve``, ``events --follow``)
    keeps the store's retry warnings on stderr (see :func:`~sessionflow.entrypoints.cli.logs.engine_logging`).

    The command runs inside :func:`telemetry`: the OpenTelemetry SDK configured from ``OTEL_*`` variables, and a
    one-shot command's operations continuing the trace of ``TRACEPARENT``.
    """
    g = globals_of(ctx)
    register_lifecycles(g.lifecycles)
    url = db or g.db
    source = SettingsSource(g.config, {"database_url": url} if url else {})
    factory: type[C] = g.commands if g.commands is not None and issubclass(g.commands, kind) else kind
    with engine_logging(g.verbose, long_running=long_running), telemetry(long_running), factory(
            performer=performer or g.performer, json_mode=json_output or g.json, durable_only=True,
            source=source) as commands:
        yield commands


def telemetry(long_running: bool) -> AbstractContextManager[None]:
    """What a command runs inside for OpenTelemetry (:func:`sessionflow.adapters.otel_env.process_telemetry`):
    the SDK when ``OTEL_*`` asks for it — shut down, its spans flushed, when the command ends —, and for a
    one-shot command the trace ``TRACEPARENT`` names (a long-running one — ``worker``, ``serve``, ``events
    --follow`` — does not put hours of work under one shell script's span). Without any of
    :data:`OTEL_VARIABLES`, nothing is imported."""
    if not any(name in os.environ for name in OTEL_VARIABLES):
        return contextlib.nullcontext()
    from sessionflow.adapters.otel_env import process_telemetry

    return process_telemetry(os.environ, continue_trace=not long_running)
