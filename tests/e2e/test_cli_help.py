"""Every ``--help`` of the command line reads cleanly on whatever typer version is installed: arguments are written
``SESSION_ID``, ``[SESSION_ID]`` and ``FILE...``, never ``{SESSION_ID}``, ``SESSION_ID <str>``, ``FILE... <list[Path]>``
or ``\\[required]``, and each argument's help text is shown.

Run by ``make versions`` on the lowest and on the newest dependency versions allowed (``-m slow``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.slow

#: Left out of ``make test``; run when slow tests are asked for (tests/conftest.py).
ONLY_WHEN_SLOW = True

#: What typer's help writers put around or after an argument's name in some versions.
ARTIFACTS = re.compile(r"\{[A-Z_.]+\}|<[a-z][\w\[\], ]*>|\\\[|\[\[")


def _commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    import typer.main

    from sessionflow.entrypoints.cli import app

    def walk(path: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk((*path, name), sub)

    yield from walk((), typer.main.get_command(app))


def _help(path: tuple[str, ...]) -> str:
    from typer.testing import CliRunner

    from sessionflow.entrypoints.cli import app

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="sessionflow", terminal_width=120)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_is_free_of_typer_artifacts_and_shows_each_arguments_help() -> None:
    problems: list[str] = []
    for path, command in _commands():
        text = _help(path)
        name = " ".join(("sessionflow", *path))
        problems += [f"{name} --help: {m.group(0)!r}" for m in ARTIFACTS.finditer(text)]
        flat = " ".join(text.split())
        for param in command.params:
            helptext = getattr(param, "help", None)
            if param.param_type_name == "argument" and helptext and " ".join(helptext.split())[:40] not in flat:
                problems.append(f"{name} --help: the help of {param.name} is missing")
    assert problems == []


@pytest.mark.parametrize(("path", "usage"), [
    (("fail",), "Usage: sessionflow fail [OPTIONS] SESSION_ID\n"),
    (("record-file",), "Usage: sessionflow record-file [OPTIONS] SESSION_ID PATH\n"),
    (("expire",), "Usage: sessionflow expire [OPTIONS] [SESSION_ID]\n"),
    (("scenario", "run"), "Usage: sessionflow scenario run [OPTIONS] FILE...\n"),
    ((), "Usage: sessionflow [OPTIONS] COMMAND [ARGS]...\n"),
])
def test_usage_lines_name_the_arguments_plainly(path: tuple[str, ...], usage: str) -> None:
    assert _help(path).startswith(usage)
