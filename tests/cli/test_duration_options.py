"""Every duration option of the command line reads the one grammar (`sessionflow.domain.durations`): `90`,
`90s`, `500ms`, `1h30m`, `1.5h`, `2d`; a malformed or out-of-range value is a usage error — exit 2 and one line,
never a traceback — even when it is hundreds of digits long."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionflow.entrypoints.cli import ExitCode, app, parse_duration
from sessionflow.entrypoints.cli.errors import CliError

HUGE = "99999999999999999999d"
DIGITS = "9" * 400


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "alice"
    return env


COMMANDS = {
    "create --ttl": ["create", "--ttl"],
    "worker --for": ["worker", "--for"],
    "worker --interval": ["worker", "--interval"],
    "events --for": ["events", "--follow", "--for"],
    "purge --closed-before": ["purge", "--closed-before"],
    "demo --ttl": ["demo", "--ttl"],
}


@pytest.mark.parametrize("value", [HUGE, DIGITS, "-1s", "soon", "1h30", "0", ""])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_duration_is_one_usage_line(command: str, value: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    result = CliRunner().invoke(app, ["--db", db, *COMMANDS[command], value], env=_env())
    assert result.exit_code == ExitCode.USAGE, (command, value, result.output)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: invalid {COMMANDS[command][-1]}: "), result.stderr


def test_as_a_json_error_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{tmp_path / 'd.db'}", "--json", "create", "--ttl", HUGE],
                                env=_env())
    assert result.exit_code == ExitCode.USAGE
    error = json.loads(result.stderr)
    assert (error["code"], error["exit_code"], error["exit_name"]) == ("usage", 2, "usage")
    assert "36500 days" in error["message"]


@pytest.mark.parametrize(("value", "seconds"), [("90", 90), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400),
                                                ("2d", 172800), (" 15m ", 900)])
def test_the_grammar_of_create_ttl(value: str, seconds: int, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{tmp_path / 'd.db'}", "create", "--json", "--ttl", value],
                                env=_env())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ttl_seconds"] == seconds


def test_a_duration_the_library_refuses_is_still_invalid_input(tmp_path: Path) -> None:
    """Below the minimum TTL: the grammar reads it, the manager refuses it (exit 6), as before."""
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{tmp_path / 'd.db'}", "create", "--ttl", "500ms"],
                                env=_env())
    assert result.exit_code == ExitCode.INVALID_INPUT


def test_the_console_script_prints_one_line_for_a_huge_worker_duration(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", f"sqlite:///{tmp_path / 'd.db'}", "worker",
                           "--for", "9" * 30 + "d"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == ExitCode.USAGE
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d.db").exists()  # refused before the database was opened


def test_parse_duration_raises_a_usage_error() -> None:
    with pytest.raises(CliError) as refused:
        parse_duration(HUGE, "--ttl")
    assert refused.value.exit_code == ExitCode.USAGE
