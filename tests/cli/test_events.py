"""``sessionflow events``: the global feed from the shell — a page after a position, a named consumer that
resumes where it stopped, and ``--follow`` in one process while another writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sessionflow.entrypoints.cli import ExitCode, app


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def _run(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args], env={"SESSIONFLOW_PERFORMER": "alice"})


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _sessions(db: str, n: int) -> None:
    for _ in range(n):
        sid = json.loads(_run(db, "create", "--json").stdout)["id"]
        assert _run(db, "start", sid).exit_code == 0


def test_events_after_a_position_with_their_positions(db: str) -> None:
    _sessions(db, 3)
    every = _lines(_run(db, "events", "--json"))
    assert [e["position"] for e in every] == [1, 2, 3, 4, 5, 6]
    assert [e["event"] for e in every[:2]] == ["created", "started"]
    assert _lines(_run(db, "events", "--json", "--after", "4")) == every[4:]
    assert _lines(_run(db, "events", "--json", "--after", "1", "--limit", "2")) == every[1:3]
    table = _run(db, "events")
    assert table.exit_code == 0
    assert every[0]["session_id"] in table.stdout
    assert "started" in table.stdout


def test_a_named_consumer_resumes_after_what_it_printed(db: str) -> None:
    _sessions(db, 2)
    assert [e["position"] for e in _lines(_run(db, "events", "--json", "--consumer", "billing"))] == [1, 2, 3, 4]
    assert _lines(_run(db, "events", "--json", "--consumer", "billing")) == []
    _sessions(db, 1)
    assert [e["position"] for e in _lines(_run(db, "events", "--json", "--consumer", "billing"))] == [5, 6]
    # Another consumer starts from the beginning.
    assert len(_lines(_run(db, "events", "--json", "--consumer", "audit", "--limit", "3"))) == 3


@pytest.mark.parametrize("args", [["--after", "-1"], ["--limit", "0"], ["--after", "2", "--consumer", "c"],
                                  ["--consumer", "bad\tname"]])
def test_bad_options_are_usage_errors(db: str, args: list[str]) -> None:
    _sessions(db, 1)
    result = _run(db, "events", *args)
    assert result.exit_code in (ExitCode.USAGE, ExitCode.INVALID_INPUT), result.output
    assert result.stdout == ""


def test_follow_prints_what_another_process_writes_and_stops_on_sigterm(db: str, tmp_path: Path) -> None:
    env = {**os.environ, "SESSIONFLOW_PERFORMER": "alice"}
    command = [sys.executable, "-m", "sessionflow", "--db", db]
    subprocess.run([*command, "db", "upgrade"], check=True, env=env, capture_output=True)
    follower = subprocess.Popen([*command, "events", "--follow", "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        created = subprocess.run([*command, "create", "--json"], check=True, env=env, capture_output=True,
                                 text=True)
        sid = json.loads(created.stdout)["id"]
        subprocess.run([*command, "start", sid], check=True, env=env, capture_output=True)
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        second = json.loads(follower.stdout.readline())
        assert (first["session_id"], first["event"], second["event"]) == (sid, "created", "started")
        assert second["position"] > first["position"]
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
