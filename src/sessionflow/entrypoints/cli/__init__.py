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

This module assembles the typer ``app`` and :class:`Cli` from the command groups, one module each:
:mod:`~.sessions`, :mod:`~.history` (and export), :mod:`~.feed` (the global event feed), :mod:`~.worker` (and
serve), :mod:`~.maintenance` (db upgrade, rebuild, verify), :mod:`~.diagrams`, :mod:`~.scenarios` and
:mod:`~.demo`. They share :mod:`~.context` (the settings, performer, output and manager), :mod:`~.options` (shared
and global options), :mod:`~.running` (how a command runs and fails), :mod:`~.render` (all output),
:mod:`~.parsing`, :mod:`~.errors` (exit codes) and :mod:`~.logs`. The commands are methods of :class:`Cli`, which
``sessionflow demo`` drives as a program would. See ``docs/cli.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from sessionflow.entrypoints.cli import (
    demo,
    diagrams,
    feed,
    history,
    maintenance,
    migrate,
    retention,
    scenarios,
    sessions,
    worker,
)
from sessionflow.entrypoints.cli.errors import EXIT_CODES, CliError, ExitCode, exit_code_for
from sessionflow.entrypoints.cli.logs import StderrHandler
from sessionflow.entrypoints.cli.options import DbOption, Globals, JsonOption
from sessionflow.entrypoints.cli.parsing import parse_duration
from sessionflow.entrypoints.cli.render import Output

__all__ = ["EXIT_CODES", "Cli", "CliError", "ExitCode", "Output", "app", "exit_code_for", "main", "parse_duration"]

_StderrHandler = StderrHandler  # its name from when the command line was one module


class Cli(demo.DemoCommands, feed.FeedCommands, maintenance.MaintenanceCommands, diagrams.DiagramCommands,
          retention.RetentionCommands):
    """The commands of ``sessionflow`` as methods: each calls the manager and prints its result.

    Every command group's methods in one class (the session commands, ``history``/``export``, ``events``,
    ``worker``/``serve``, ``db upgrade``/``rebuild``/``verify``, ``diagram``); every command runs through it.
    ``settings`` say where the database is and how sessions behave; the manager is opened on first use and
    closed by :meth:`close` (or leaving a ``with`` block). ``manager`` may be given instead (it is then not
    closed here).
    """


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
scenario_app = typer.Typer(help="Scripted scenarios on a frozen clock.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


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
    ctx.obj = Globals(db=db, config=config, performer=performer, json=json_output, verbose=verbose,
                      lifecycles=tuple(lifecycle or ()), commands=Cli)


# The commands, in the order ``sessionflow --help`` lists them.
app.command("create")(sessions.create)
app.command("send")(sessions.send)
app.command("start")(sessions.start)
app.command("record-file")(sessions.record_file)
app.command("note")(sessions.note)
app.command("complete")(sessions.complete)
app.command("fail")(sessions.fail)
app.command("touch")(sessions.touch)
app.command("delete")(sessions.delete)
app.command("show")(sessions.show)
app.command("list")(sessions.list_)
app.command("history")(history.history)
app.command("events")(feed.events)
app.command("expire")(sessions.expire)
app.command("worker")(worker.worker)
app.command("serve")(worker.serve)
db_app.command("upgrade")(maintenance.db_upgrade)
app.command("rebuild")(maintenance.rebuild)
app.command("verify")(maintenance.verify)
app.command("purge")(retention.purge)
app.command("migrate-store")(migrate.migrate_store)
app.command("export")(history.export)
app.command("diagram")(diagrams.diagram)
app.command("demo")(demo.demo)
scenario_app.command("run")(scenarios.scenario_run)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``sessionflow`` (and ``python -m sessionflow``)."""
    app(args=list(argv) if argv is not None else None, prog_name="sessionflow")
