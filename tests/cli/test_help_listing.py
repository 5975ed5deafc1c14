"""``sessionflow --help`` lists every command from its function's docstring without building any command (the
build reads each signature and costs more than the rest of ``--help``), and lists what a built command would."""

from __future__ import annotations

import inspect

import pytest
import typer

from sessionflow.entrypoints.cli import COMMANDS, app


def test_help_lists_every_command_without_building_one(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    group = typer.main.get_command(app)
    lazy = group.lazy_commands  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as exited:
        group.main(["--help"], prog_name="sessionflow")
    assert exited.value.code == 0
    output = capsys.readouterr().out
    assert not lazy._built.keys() & COMMANDS.keys()  # no command was built (sub-groups are kept as they are)
    for name, function in COMMANDS.items():
        first_line = (inspect.getdoc(function) or "").splitlines()[0].rstrip(".")
        assert any(line.split()[:1] == [name] and first_line[:30] in line for line in output.splitlines()), name


def test_the_listing_is_what_the_built_commands_give() -> None:
    group = typer.main.get_command(app)
    lazy = group.lazy_commands  # type: ignore[attr-defined]
    for name in COMMANDS:
        assert lazy.listed(name).get_short_help_str(80) == lazy[name].get_short_help_str(80), name
