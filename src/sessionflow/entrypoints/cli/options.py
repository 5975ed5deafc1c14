"""The options that many commands share, and the global options given before the command.

Owns the typer declarations of ``--db``, ``--json``, ``--performer``, ``--expect-version`` and the
``SESSION_ID`` argument, and :class:`Globals`: what ``sessionflow [OPTIONS] COMMAND`` said before the command,
which every command finds with :func:`globals_of`. An option given to the command wins over the same global one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from sessionflow.entrypoints.cli.context import CommandContext

__all__ = ["DbOption", "ExpectOption", "Globals", "JsonOption", "PerformerOption", "SessionArgument", "globals_of"]


@dataclass
class Globals:
    """The global options, kept in the root typer context's ``obj``."""

    lifecycles: tuple[str, ...] = ()
    db: str | None = None
    config: Path | None = None
    performer: str | None = None
    json: bool = False
    verbose: bool = False
    #: The class whose methods run the commands: ``Cli``, which has every command group's methods.
    commands: type[CommandContext] = CommandContext


def globals_of(ctx: Any) -> Globals:
    """The global options of the command line that ``ctx`` (a typer/click context) belongs to."""
    current = ctx
    while current is not None:
        if isinstance(current.obj, Globals):
            return current.obj
        current = current.parent
    return Globals()


DbOption = Annotated[str | None, typer.Option(
    "--db", metavar="URL", help="Database URL (default: SESSIONFLOW_DATABASE_URL, else sqlite:///./sessionflow.db).",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON / JSON lines).")]
PerformerOption = Annotated[str | None, typer.Option(
    "--performer", metavar="ID", help="Who performs the write (default: SESSIONFLOW_PERFORMER, else your login).",
    show_default=False)]
ExpectOption = Annotated[int | None, typer.Option(
    "--expect-version", metavar="N", help="Refuse (exit 5) unless the session is at version N.", show_default=False)]
SessionArgument = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id (a UUID).",
                                                show_default=False)]
