"""``sessionflow --help`` prints the copy of typer's rendering the package ships, without importing typer, and
exactly what typer would print: the copy equals typer's rendering of today's commands, and every case where
typer's output would differ (a narrower terminal, shell completion, other arguments) is left to typer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sessionflow.__main__ import HELP_COLUMNS, static_help
from tests.cli.static_help import HELP_COPY, environment, rendered


def _sessionflow(*args: str, env: dict[str, str], importtime: bool = False) -> subprocess.CompletedProcess[str]:
    options = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *options, "-m", "sessionflow", *args], env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=120, check=False)


def _imports_typer(done: subprocess.CompletedProcess[str]) -> bool:
    return any(line.rsplit("|", 1)[1].strip() == "typer" for line in done.stderr.splitlines()
               if line.startswith("import time:"))


def test_the_shipped_copy_is_typers_rendering_of_todays_commands() -> None:
    assert HELP_COPY.read_text(encoding="utf-8") == rendered(), (
        "the commands or the global options changed: write the copy again with "
        "`python -m tests.cli.static_help --write`")


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("columns", [HELP_COLUMNS, 132, None], ids=["80 columns", "132 columns", "a pipe"])
def test_help_is_typers_output_without_typer(flag: str, columns: int | None) -> None:
    env = environment(columns, SESSIONFLOW_PERFORMER="alice", SESSIONFLOW_DATABASE_URL="sqlite:///elsewhere.db")
    done = _sessionflow(flag, env=env, importtime=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == rendered(flag, env)
    assert "Usage: sessionflow [OPTIONS] COMMAND [ARGS]..." in done.stdout  # the comparison is not vacuous
    assert not _imports_typer(done)


def test_a_narrower_terminal_gets_typers_own_wrapping() -> None:
    env = environment(60)
    done = _sessionflow("--help", env=env, importtime=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == rendered("--help", env)
    assert done.stdout != HELP_COPY.read_text(encoding="utf-8")
    assert _imports_typer(done)


def test_shell_completion_is_answered_by_typer() -> None:
    env = environment(_SESSIONFLOW_COMPLETE="complete_bash", COMP_WORDS="sessionflow sta", COMP_CWORD="1")
    done = _sessionflow("--help", env=env, importtime=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "start" in done.stdout.split()
    assert done.stdout != HELP_COPY.read_text(encoding="utf-8")
    assert _imports_typer(done)


@pytest.mark.parametrize("args", [[], ["--help", "start"], ["start", "--help"], ["--json", "--help"], ["--HELP"],
                                  ["db", "--help"], ["help"]], ids=str)
def test_only_the_top_level_help_alone_is_served_from_the_copy(args: list[str]) -> None:
    assert static_help(args, environ={}) is None


def test_the_copy_is_served_for_the_help_flag_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert static_help(["--help"], environ={}) == HELP_COPY.read_text(encoding="utf-8")
    assert static_help(["-h"], environ={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}) is None
    monkeypatch.setenv("COLUMNS", str(HELP_COLUMNS - 1))
    assert static_help(["--help"], environ={}) is None


def test_an_unreadable_copy_leaves_the_help_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr("sessionflow.__main__.HELP_FILE", str(HELP_COPY.with_name("no-such-help.txt")))
    assert static_help(["--help"], environ={}) is None


@pytest.mark.parametrize("served", ["copy", "typer"])
def test_a_reader_gone_away_ends_the_help_with_status_1_and_no_traceback(served: str) -> None:
    """As typer does when the reader of stdout closed the pipe (``sessionflow --help | true``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "sessionflow", "--help"],
                              env=environment(HELP_COLUMNS if served == "copy" else 60), stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")
