"""``python -m sessionflow`` and the ``sessionflow`` console script: the command line.

The command line needs the ``cli`` extra (typer and rich). :func:`main` looks for them before it imports the
command line, so a plain ``pip install sessionflow`` gets one line saying what to install, not a traceback.

``sessionflow --help`` (or ``-h``) alone prints the copy of typer's rendering of that help the package ships
(``entrypoints/cli/help.txt``) without importing typer, which costs more than the rest of the command: see
:func:`static_help` for when the copy is used. The test suite checks the copy against typer's rendering.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from typing import NoReturn

__all__ = ["HELP_COLUMNS", "HELP_FILE", "main", "static_help"]

#: The packages of the ``cli`` extra that the command line imports.
_CLI_PACKAGES = ("typer", "rich")

#: Exit status when the ``cli`` extra is not installed (a usage error: nothing was run).
MISSING_CLI = 2

#: typer's rendering of ``sessionflow --help`` in a terminal of :data:`HELP_COLUMNS` columns or more.
HELP_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "entrypoints", "cli", "help.txt")

#: The help is wrapped to ``min(columns, 80) - 2`` characters: the same text in any terminal this wide or wider.
HELP_COLUMNS = 80

#: The arguments that ask for the top-level help.
_HELP_FLAGS = ("--help", "-h")

#: Variables under which typer answers something else than the help: shell completion asking for candidates, and
#: typer's own switch that changes how the completion options are listed.
_TYPER_VARIABLES = ("_SESSIONFLOW_COMPLETE", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION")


def static_help(args: Sequence[str], environ: Mapping[str, str] | None = None) -> str | None:
    """What ``sessionflow ARGS`` prints if it is the top-level help as the package ships it, else ``None``.

    The copy is used when ``args`` is ``--help`` or ``-h`` alone, the terminal (or ``COLUMNS``) is at least
    :data:`HELP_COLUMNS` wide — a pipe counts as 80 columns, as for typer —, no typer variable is set and the
    copy can be read; otherwise typer renders the help.
    """
    if len(args) != 1 or args[0] not in _HELP_FLAGS:
        return None
    if any(name in (os.environ if environ is None else environ) for name in _TYPER_VARIABLES):
        return None
    import shutil  # what typer's help formatter asks for the width (COLUMNS, else the terminal, else 80)

    if shutil.get_terminal_size().columns < HELP_COLUMNS:
        return None
    try:
        with open(HELP_FILE, encoding="utf-8") as copy:
            return copy.read()
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line, or say in one line on stderr how to install it and exit with status 2."""
    missing = [name for name in _CLI_PACKAGES if find_spec(name) is None]
    if missing:
        print(f"sessionflow: the command line needs {' and '.join(missing)}: pip install 'sessionflow[cli]'",
              file=sys.stderr)
        raise SystemExit(MISSING_CLI)
    text = static_help(sys.argv[1:] if argv is None else argv)
    if text is not None:
        _print_help(text)
    from sessionflow.entrypoints.cli import main as cli_main

    cli_main(argv)


def _print_help(text: str) -> NoReturn:
    """Print ``text`` and exit 0; exit 1 without a word if the reader of stdout went away, as typer does."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left to flush goes nowhere
        raise SystemExit(1) from None
    raise SystemExit(0)


if __name__ == "__main__":
    main()
