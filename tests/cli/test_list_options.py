"""``sessionflow list``: ``--lifecycle``, ``--created-after``/``--created-before`` and ``--cursor``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sessionflow.entrypoints.cli import ExitCode, app


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["--db", db, *args], env={"SESSIONFLOW_PERFORMER": "alice"})

    return invoke


def lines(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_cursor_pages_end_with_the_next_cursor_line(run) -> None:  # type: ignore[no-untyped-def]
    ids = [lines(run("create", "--json"))[0]["id"] for _ in range(5)]
    listed = [s["id"] for s in lines(run("list", "--json"))]
    assert sorted(listed) == sorted(ids)
    assert all("next_cursor" not in s for s in lines(run("list", "--json", "--limit", "2")))  # unchanged
    seen: list[object] = []
    cursor = ""
    while True:
        out = lines(run("list", "--json", "--limit", "2", "--cursor", cursor))
        *sessions, tail = out
        assert set(tail) == {"next_cursor"}
        seen.extend(s["id"] for s in sessions)
        if tail["next_cursor"] is None:
            break
        cursor = str(tail["next_cursor"])
    assert seen == listed
    assert [s["id"] for s in lines(run("list", "--json", "--limit", "2", "--all"))] == listed
    table = run("list", "--limit", "2")
    assert "--cursor" in table.stderr


def test_lifecycle_and_creation_range_options(run) -> None:  # type: ignore[no-untyped-def]
    made = lines(run("create", "--json"))[0]
    created = str(made["created_at"])
    assert [s["id"] for s in lines(run("list", "--json", "--created-after", created))] == [made["id"]]
    assert lines(run("list", "--json", "--created-before", created)) == []
    assert [s["id"] for s in lines(run("list", "--json", "--lifecycle", "session"))] == [made["id"]]
    assert lines(run("list", "--json", "--lifecycle", "jobs")) == []
    assert run("list", "--created-after", "yesterday").exit_code == ExitCode.USAGE
    assert run("list", "--created-after", "2030-01-01T00:00:00").exit_code == ExitCode.USAGE
    assert run("list", "--cursor", "bogus").exit_code == ExitCode.INVALID_INPUT


def test_newest_first(run) -> None:  # type: ignore[no-untyped-def]
    ids = [lines(run("create", "--json"))[0]["id"] for _ in range(5)]
    assert [s["id"] for s in lines(run("list", "--json"))] == ids
    assert [s["id"] for s in lines(run("list", "--json", "--newest-first"))] == ids[::-1]
    assert [s["id"] for s in lines(run("list", "--json", "--newest-first", "--limit", "2", "--all"))] == ids[::-1]
    *first, tail = lines(run("list", "--json", "--newest-first", "--limit", "2", "--cursor", ""))
    assert [s["id"] for s in first] == ids[:2:-1]
    *rest, _tail = lines(run("list", "--json", "--newest-first", "--limit", "5", "--cursor", str(tail["next_cursor"])))
    assert [s["id"] for s in rest] == ids[2::-1]
    crossed = run("list", "--json", "--cursor", str(tail["next_cursor"]))
    assert crossed.exit_code != 0
