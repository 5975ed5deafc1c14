"""``python -m sessionflow`` and the ``sessionflow`` console script: the command line.

The command line needs the ``cli`` extra (typer and rich). :func:`main` looks for them before it imports the
command line, so a plain ``pip install sessionflow`` gets one line saying what to install, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.util import find_spec

__all__ = ["main"]

#: The packages of the ``cli`` extra that the command line imports.
_CLI_PACKAGES = ("typer", "rich")

#: Exit status when the ``cli`` extra is not installed (a usage error: nothing was run).
MISSING_CLI = 2


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line, or say in one line on stderr how to install it and exit with status 2."""
    missing = [name for name in _CLI_PACKAGES if find_spec(name) is None]
    if missing:
        print(f"sessionflow: the command line needs {' and '.join(missing)}: pip install 'sessionflow[cli]'",
              file=sys.stderr)
        raise SystemExit(MISSING_CLI)
    from sessionflow.entrypoints.cli import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main()
