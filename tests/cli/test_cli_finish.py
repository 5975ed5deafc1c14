"""The command line's finish: shell completion, `list` and `history` readable at 80 columns, progress bars that
know their totals, one option name per idea (the old spellings still work, with a deprecation warning), the
asyncio extra named by its install line."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow._deprecation import deprecation_message
from sessionflow.entrypoints.cli import ExitCode, app
from sessionflow.entrypoints.cli.options import DEPRECATED_SINCE, deprecation_text
from sessionflow.entrypoints.cli.render import Output
from sessionflow.errors import InvalidInput

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_") and k not in ("COLUMNS", "LINES")}
    return {**env, "SESSIONFLOW_PERFORMER": "alice", **extra}


def in_terminal(args: list[str], columns: int, cwd: Path) -> str:
    """What ``python -m sessionflow ARGS`` shows on a terminal ``columns`` wide (escape sequences removed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "sessionflow", *args], stdin=slave, stdout=slave, stderr=slave,
                               cwd=cwd, env=_env(COLUMNS=str(columns), TERM="xterm", NO_COLOR="1"))
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal is gone: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=120) == 0, b"".join(chunks).decode()
    return _ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture
def populated(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """An SQLite file with a completed, a failed, an in-progress and a pending session; their ids by status."""
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    with SessionManager.open(url) as m:
        done = m.create(performer_id="alice", user_id="demo-user", module_name="auth",
                        file_paths=["auth/login.py", "auth/tokens.py"])
        m.start(done.id, performer_id="alice")
        m.record_file(done.id, "auth/login.py", performer_id="alice")
        m.record_file(done.id, "auth/tokens.py", error="parse error at line 12", performer_id="alice")
        m.complete(done.id, performer_id="alice")
        failed = m.create(performer_id="alice", user_id="u2")
        m.fail(failed.id, reason="upstream down", performer_id="alice")
        running = m.create(performer_id="alice", user_id="someone-with-a-long-name", module_name="reports-and-more")
        m.start(running.id, performer_id="alice")
        pending = m.create(performer_id="alice", user_id="u4", module_name="billing", ttl=timedelta(days=2))
        return url, {"completed": str(done.id), "failed": str(failed.id), "in_progress": str(running.id),
                     "pending": str(pending.id)}


@pytest.mark.parametrize("columns", [80, 200])
def test_list_is_readable_at_80_and_200_columns(populated: tuple[str, dict[str, str]], tmp_path: Path,
                                                columns: int) -> None:
    url, ids = populated
    shown = in_terminal(["--db", url, "list"], columns, tmp_path)
    lines = shown.splitlines()
    assert all(len(line.rstrip()) <= columns for line in lines), shown
    assert "…" not in shown
    for status, sid in ids.items():
        row = next(line for line in lines if sid in line)  # the whole id, on one line
        assert f" {status} " in f"{row} ", shown  # the whole status, beside it
    flat = " ".join(shown.split())
    for text in ("demo-user", "auth", "2/2 (1 failed)", "someone-with-a-long-name", "4 sessions"):
        assert text in flat or text in shown.replace("\n", ""), (text, shown)


@pytest.mark.parametrize("columns", [80, 200])
def test_history_keeps_its_details_at_80_and_200_columns(populated: tuple[str, dict[str, str]], tmp_path: Path,
                                                         columns: int) -> None:
    url, ids = populated
    shown = in_terminal(["--db", url, "history", ids["completed"]], columns, tmp_path)
    assert all(len(line.rstrip()) <= columns for line in shown.splitlines()), shown
    assert "details" in shown
    assert "…" not in shown
    squeezed = "".join(shown.split())
    for text in ("path=auth/tokens.py", "error=parseerroratline12", "user_id=demo-user", "file_recorded",
                 "in_progress", "completed"):
        assert text in squeezed, (text, shown)
    if columns == 200:
        assert "pending → in_progress" in shown


# ---------------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(app, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_SESSIONFLOW_COMPLETE" in result.stdout
    assert "sessionflow" in result.stdout
    assert len(result.stdout.strip().splitlines()) >= 1


def test_completion_completes_commands_and_options(tmp_path: Path) -> None:
    def complete(**variables: str) -> str:
        return subprocess.run([sys.executable, "-m", "sessionflow"], env=_env(**variables), cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=True).stdout

    assert "start" in complete(_SESSIONFLOW_COMPLETE="complete_bash", COMP_WORDS="sessionflow sta", COMP_CWORD="1")
    fish = complete(_SESSIONFLOW_COMPLETE="complete_fish", _TYPER_COMPLETE_ARGS="sessionflow events --f",
                    _TYPER_COMPLETE_FISH_ACTION="get-args")
    assert "--follow" in fish
    assert "--for" in fish
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).stdout
    assert CliRunner().invoke(app, ["completion", "tcsh"]).exit_code == ExitCode.USAGE


# ---------------------------------------------------------------------- progress bars know their totals


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int | None]]]:
    """The progress bars commands draw (as if on a terminal): description and total."""
    drawn: list[tuple[str, int | None]] = []

    from contextlib import contextmanager

    @contextmanager
    def progress(self: Output, description: str, total: int | None) -> Iterator[Any]:
        drawn.append((description, total))
        yield lambda n: None

    monkeypatch.setattr(Output, "interactive", property(lambda self: True))
    monkeypatch.setattr(Output, "progress", progress)
    return drawn


def test_purge_export_and_migrate_store_know_their_totals(bars: list[tuple[str, int | None]],
                                                          tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bars.db'}"
    with SessionManager.open(url) as m:
        for _ in range(3):
            m.delete(m.create(performer_id="alice").id, performer_id="alice")
        m.create(performer_id="alice")  # live: not purged
    runner = CliRunner()
    assert runner.invoke(app, ["--db", url, "export", str(tmp_path / "audit")], env=_env()).exit_code == 0
    copied = runner.invoke(app, ["migrate-store", "--from", url, "--to", f"sqlite:///{tmp_path / 'to.db'}"],
                           env=_env())
    assert copied.exit_code == 0, copied.output
    purged = runner.invoke(app, ["--db", url, "purge", "--closed-before", "2099-01-01T00:00:00Z"], env=_env())
    assert purged.exit_code == 0, purged.output
    assert bars == [("exporting audit files", 4), ("copying sessions", 4), ("purging closed sessions", 3)]


# ---------------------------------------------------------------------- one option name per idea


def events(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", f"sqlite:///{tmp_path / 'feed.db'}", "events", "--json", *args],
                              env=_env())


def test_events_follow_for_a_duration(tmp_path: Path) -> None:
    result = events(tmp_path, "-F", "--for", "300ms")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert events(tmp_path, "--follow", "--for", "0.2s").exit_code == 0


def test_the_old_spellings_still_work_with_a_deprecation_warning(tmp_path: Path) -> None:
    old_follow = events(tmp_path, "-f", "--for", "200ms")
    assert old_follow.exit_code == 0, old_follow.output
    assert old_follow.stderr == ("warning: " + deprecation_message(
        "the option -f of sessionflow events", "--follow (or -F)", since=DEPRECATED_SINCE) + "\n")
    old_duration = events(tmp_path, "--follow", "--duration", "0.2")
    assert old_duration.exit_code == 0, old_duration.output
    assert "--duration SECONDS of sessionflow events is deprecated since" in old_duration.stderr
    assert "use --for DURATION instead" in old_duration.stderr
    both = events(tmp_path, "--follow", "--duration", "1", "--for", "1s")
    assert both.exit_code == ExitCode.USAGE
    shown = CliRunner().invoke(app, ["events", "--help"]).stdout
    assert "--duration" not in shown
    assert " -f," not in shown
    assert "-F, --follow" in shown
    assert "--for DURATION" in shown
    assert CliRunner().invoke(app, ["create", "--help"]).stdout.count("-f, --file") == 1


def test_the_warning_reads_as_every_deprecation_warning() -> None:
    assert deprecation_text("the option -x", "--y") == deprecation_message("the option -x", "--y",
                                                                           since=DEPRECATED_SINCE)


# ---------------------------------------------------------------------- the asyncio extra


def test_an_asyncio_driver_names_the_asyncio_extra() -> None:
    with pytest.raises(InvalidInput, match=re.escape("pip install 'sessionflow[asyncio]'")):
        SessionManager.open("postgresql+psycopg_async://u@127.0.0.1:1/db")


def test_without_greenlet_the_error_names_the_asyncio_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['greenlet'] = None\n"
            "from sessionflow.entrypoints.cli import main\n"
            "main(['--db', 'postgresql+psycopg_async://u@127.0.0.1:1/db', 'list'])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == ExitCode.INVALID_INPUT, done.stderr
    assert "pip install 'sessionflow[asyncio]'" in done.stderr
    assert "sqlalchemy[asyncio]" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
