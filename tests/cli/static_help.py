"""typer's rendering of ``sessionflow --help``, and the copy of it the package ships
(``src/sessionflow/entrypoints/cli/help.txt``, printed by ``sessionflow --help`` without importing typer).

After changing a command's docstring, the list of commands or a global option, write the copy again::

    python -m tests.cli.static_help --write
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sessionflow.__main__ import HELP_COLUMNS, HELP_FILE

__all__ = ["HELP_COPY", "environment", "rendered"]

HELP_COPY = Path(HELP_FILE)

#: typer's own rendering: the command line's ``main``, which never serves the copy.
_TYPER_HELP = "import sys; from sessionflow.entrypoints.cli import main; main(sys.argv[1:])"


def environment(columns: int | None = HELP_COLUMNS, **extra: str) -> dict[str, str]:
    """The environment of a command: this one without the package's and typer's variables, ``COLUMNS`` set (or
    unset with ``None``), and ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SESSIONFLOW_", "_SESSIONFLOW_", "_TYPER_")) and k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env.update(extra)
    return env


def rendered(flag: str = "--help", env: Mapping[str, str] | None = None) -> str:
    """What typer prints for ``sessionflow FLAG`` (in a process of its own, stdout a pipe)."""
    done = subprocess.run([sys.executable, "-c", _TYPER_HELP, flag], env=dict(env or environment()),
                          capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"sessionflow {flag} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.cli.static_help --write")
    HELP_COPY.write_text(rendered(), encoding="utf-8", newline="\n")
    print(f"wrote {HELP_COPY}")
