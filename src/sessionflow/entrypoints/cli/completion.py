"""The ``completion`` command: the shell completion script of ``sessionflow`` for bash, zsh or fish.

Owns :class:`Shell` and the command's typer function. The script is typer's (the one ``--show-completion``
prints): it asks ``sessionflow`` itself for the completions, through the ``_SESSIONFLOW_COMPLETE`` variable.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["COMPLETE_VAR", "Shell", "completion", "completion_script"]

#: The variable through which a shell asks ``sessionflow`` for completions.
COMPLETE_VAR = "_SESSIONFLOW_COMPLETE"


class Shell(StrEnum):
    """The shells ``sessionflow completion`` writes a script for."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def completion_script(shell: Shell | str, prog_name: str = "sessionflow") -> str:
    """The completion script of ``prog_name`` for ``shell``."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=prog_name, complete_var=COMPLETE_VAR, shell=str(shell))


def completion(
    shell: Annotated[Shell, typer.Argument(help="The shell: bash, zsh or fish.", case_sensitive=False,
                                           show_default=False)],
) -> None:
    """Print the shell completion script (bash: add `eval "$(sessionflow completion bash)"` to ~/.bashrc)."""
    typer.echo(completion_script(shell))
