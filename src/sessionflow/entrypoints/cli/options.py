"""The options that many commands share, and the global options given before the command.

Owns the typer declarations of ``--db``, ``--json``, ``--performer``, ``--expect-version``,
``--idempotency-key`` and the ``SESSION_ID`` argument, :class:`StatusChoice` (the states ``--status`` takes),
:func:`deprecated_option` (the warning an old spelling of an option prints) and :class:`Globals`: what
``sessionflow [OPTIONS] COMMAND`` said before the command, which every command finds with :func:`globals_of`.
An option given to the command wins over the same global one. Nothing here loads the library's models: the
command line is declared without them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from sessionflow.entrypoints.cli.context import CommandContext

__all__ = ["DEPRECATED_SINCE", "DbOption", "ExpectOption", "Globals", "IdempotencyKeyOption", "JsonOption",
           "PerformerOption", "SessionArgument", "StatusChoice", "deprecated_option", "deprecation_text", "globals_of"]

#: The release that deprecated the old spellings of options (``events -f``, ``events --duration``).
DEPRECATED_SINCE = "0.2.0"


class StatusChoice(StrEnum):
    """The states ``list --status`` takes: the values of :class:`sessionflow.SessionStatus` (a test keeps them
    equal), declared here so that reading the command line loads no model."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


def deprecation_text(old: str, new: str, *, since: str = DEPRECATED_SINCE) -> str:
    """The sentence of every deprecation warning (as ``sessionflow._deprecation.deprecation_message`` writes
    it): what is deprecated, since when, the release that may remove it (the next minor), and what to use."""
    major, minor, *_ = since.split(".")
    return f"{old} is deprecated since {since} and may be removed in {major}.{int(minor) + 1}.0; use {new} instead."


def deprecated_option(command: str, old: str, new: str) -> None:
    """Warn on stderr, one line, that ``old`` (an option of ``sessionflow command``) is deprecated for ``new``;
    the old spelling keeps working until the next minor release."""
    sys.stderr.write(f"warning: {deprecation_text(f'the option {old} of sessionflow {command}', new)}\n")
    sys.stderr.flush()


@dataclass
class Globals:
    """The global options, kept in the root typer context's ``obj``."""

    lifecycles: tuple[str, ...] = ()
    db: str | None = None
    config: Path | None = None
    performer: str | None = None
    json: bool = False
    verbose: bool = False
    #: The class whose methods run the commands when it has the command's group's methods (``Cli``, once it is
    #: built); ``None``: each command's own group's class.
    commands: type[CommandContext] | None = None


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
IdempotencyKeyOption = Annotated[str | None, typer.Option(
    "--idempotency-key", metavar="KEY", show_default=False,
    help="Write at most once: the same command run again with the same KEY writes nothing and prints what the "
         "first run printed (exit 12 if KEY was used for another request).")]
SessionArgument = Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id (a UUID).",
                                                show_default=False)]
