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
- Every write takes ``--idempotency-key KEY`` (``apply``: a line's ``idempotency_key``): run again with the same
  key, it writes nothing, prints what the first run printed and says so in one ``replayed:`` line on stderr.
- Progress bars (on stderr) only when both stdout and stderr are terminals.

This module assembles the typer ``app`` from the command groups, one module each, imported when one of their
commands is run or listed (and ``Cli``, in :mod:`~.commands`, when it is named):
:mod:`~.sessions`, :mod:`~.apply` (writes read as JSON lines), :mod:`~.history` (and export), :mod:`~.feed` (the
global event feed), :mod:`~.worker` (and serve), :mod:`~.maintenance` (db upgrade, rebuild, verify),
:mod:`~.diagrams`, :mod:`~.scenarios`, :mod:`~.completion` and :mod:`~.demo`. They share :mod:`~.context` (the
settings, performer, output and manager), :mod:`~.options` (shared and global options), :mod:`~.group` (the
commands built on first use), :mod:`~.running` (how a command runs and fails), :mod:`~.render` (all output),
:mod:`~.parsing`, :mod:`~.errors` (exit codes) and :mod:`~.logs`. The commands are methods of ``Cli``, which
a program can drive as ``sessionflow demo`` does. See ``docs/cli.md``.

Starting is cheap: a command imports only its own group's module, and the command groups import the library
(the models, the store, SQLAlchemy, rich) inside the commands that use it, so ``sessionflow --help`` loads typer
alone and a write loads what it writes with.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionflow.entrypoints.cli.errors import EXIT_CODES, CliError, ExitCode, exit_code_for
from sessionflow.entrypoints.cli.group import CommandFunctions, lazy_group
from sessionflow.entrypoints.cli.options import DbOption, Globals, JsonOption
from sessionflow.entrypoints.cli.parsing import parse_duration
from sessionflow.entrypoints.cli.render import Output

if TYPE_CHECKING:
    from sessionflow.entrypoints.cli.commands import Cli

__all__ = ["EXIT_CODES", "Cli", "CliError", "ExitCode", "Output", "app", "exit_code_for", "main", "parse_duration"]


def __getattr__(name: str) -> Any:
    """``Cli`` (every command group's class in one, :mod:`~.commands`) is built when first named: a command
    imports only its own group's module."""
    if name == "Cli":
        from sessionflow.entrypoints.cli.commands import Cli

        return Cli
    if name == "_StderrHandler":  # its name from when the command line was one module
        from sessionflow.entrypoints.cli.logs import StderrHandler

        return StderrHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_HELP = """Durable, event-sourced session lifecycles from the shell.

Every command takes --db URL (or SESSIONFLOW_DATABASE_URL; default sqlite:///./sessionflow.db) and --json
(machine-readable output: one JSON document, or JSON lines for list/history/worker). Writes are recorded as
--performer (or SESSIONFLOW_PERFORMER; default: your login name). Errors are one line on stderr.
"""

_EPILOG = "\b\nExit codes (see docs/cli.md):\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())

_HERE = __name__


def _functions(**paths: str) -> CommandFunctions:
    return CommandFunctions({name.replace("_", "-"): f"{_HERE}.{path}" for name, path in paths.items()})


#: The commands of ``sessionflow``, ``db`` and ``scenario`` (name → function), in the order ``--help`` lists them;
#: each function's module is imported, and the command built, when it is run or listed (see :mod:`~.group`).
COMMANDS = _functions(
    create="sessions:create", send="sessions:send", start="sessions:start", record_file="sessions:record_file",
    note="sessions:note", complete="sessions:complete", fail="sessions:fail", touch="sessions:touch",
    delete="sessions:delete", apply="apply:apply", show="sessions:show", list="sessions:list_",
    history="history:history", events="feed:events", expire="sessions:expire", worker="worker:worker",
    serve="worker:serve", rebuild="maintenance:rebuild", verify="maintenance:verify", purge="retention:purge",
    migrate_store="migrate:migrate_store", export="history:export", diagram="diagrams:diagram", demo="demo:demo",
    completion="completion:completion", schema="schema:schema")
DB_COMMANDS = _functions(upgrade="maintenance:db_upgrade")
SCENARIO_COMMANDS = _functions(run="scenarios:scenario_run")

app = typer.Typer(name="sessionflow", help=_HELP, epilog=_EPILOG, no_args_is_help=True, add_completion=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, cls=lazy_group(COMMANDS),
                  context_settings={"help_option_names": ["-h", "--help"]})
db_app = typer.Typer(help="The database schema.", no_args_is_help=True, cls=lazy_group(DB_COMMANDS))
app.add_typer(db_app, name="db")
scenario_app = typer.Typer(help="Scripted scenarios on a frozen clock.", no_args_is_help=True,
                           cls=lazy_group(SCENARIO_COMMANDS))
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
                      lifecycles=tuple(lifecycle or ()), commands=_built_cli())


def _built_cli() -> type[Any] | None:
    """``Cli`` if something named it already (the demo, a program or a test driving the commands), so that the
    commands run through it; else ``None``: each command runs through its own group's class, whose methods are
    ``Cli``'s."""
    commands = sys.modules.get(f"{_HERE}.commands")
    return getattr(commands, "Cli", None)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``sessionflow`` (and ``python -m sessionflow``)."""
    app(args=list(argv) if argv is not None else None, prog_name="sessionflow")
