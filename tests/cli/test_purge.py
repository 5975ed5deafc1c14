"""``sessionflow purge``: removes the sessions closed before the cutoff, archives them first, reports it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sessionflow import SessionManager
from sessionflow.adapters.archive import read_archive
from sessionflow.entrypoints.cli import app, exit_code_for
from sessionflow.errors import InvalidInput, SessionNotFound
from sessionflow.testing import ManualClock


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _run(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args], env={"SESSIONFLOW_PERFORMER": "alice"})


def _populate(db: str) -> tuple[list[str], list[str]]:
    """Three sessions closed in 2020 and two recent ones (one closed, one live holding the newest event)."""
    old: list[str] = []
    with SessionManager.open(db, clock=ManualClock(datetime(2020, 1, 1, tzinfo=UTC))) as mgr:
        for i in range(3):
            s = mgr.create(user_id="u1" if i else None, performer_id="p")
            old.append(str(mgr.fail(s.id, reason="r", performer_id="p").id))
    with SessionManager.open(db) as mgr:
        s = mgr.create(performer_id="p")
        recent = [str(mgr.fail(s.id, reason="r", performer_id="p").id),
                  str(mgr.create(performer_id="p", ttl=timedelta(days=1)).id)]
    return old, recent


def test_purge_archives_and_removes_the_sessions_closed_before_the_cutoff(db: str, tmp_path: Path) -> None:
    old, recent = _populate(db)
    archive = tmp_path / "archive"
    result = _run(db, "purge", "--closed-before", "30d", "--archive", str(archive), "--batch-size", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sessions"] == 3
    assert report["events"] == 6
    assert report["archive_files"] == 3
    assert report["skipped"] == 0
    assert report["archive"] == str(archive)
    assert report["closed_before"].endswith("Z")
    assert sorted(str(h[0].session_id) for h in read_archive(archive)) == sorted(old)
    with SessionManager.open(db) as mgr:
        for sid in old:
            with pytest.raises(SessionNotFound):
                mgr.history(sid)
        assert [len(mgr.history(sid)) for sid in recent] == [2, 1]
        assert mgr.verify() == []
    again = _run(db, "purge", "--closed-before", "2021-01-01T00:00:00Z")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("purged 0 sessions (0 events) closed before 2021-01-01T00:00:00.000Z")


def test_purge_prints_a_summary_line(db: str) -> None:
    _populate(db)
    result = _run(db, "purge", "--closed-before", "2021-01-01T00:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "purged 3 sessions (6 events) closed before 2021-01-01T00:00:00.000Z"


@pytest.mark.parametrize("args", [
    ["--closed-before", "soon"],
    ["--closed-before", "2021-01-01T00:00:00"],
    ["--closed-before", "30d", "--batch-size", "0"],
    [],
])
def test_bad_options_are_usage_errors_and_change_nothing(db: str, args: list[str]) -> None:
    _populate(db)
    result = _run(db, "purge", *args)
    assert result.exit_code == 2, result.output
    with SessionManager.open(db) as mgr:
        assert len(mgr.store.session_ids()) == 5


def test_an_archive_that_is_a_file_is_refused(db: str, tmp_path: Path) -> None:
    _populate(db)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = _run(db, "purge", "--closed-before", "30d", "--archive", str(a_file), "--json")
    assert result.exit_code == exit_code_for(InvalidInput("archive", "x"))
    assert json.loads(result.stderr)["field"] == "archive"
    with SessionManager.open(db) as mgr:
        assert len(mgr.store.session_ids()) == 5
