"""A database written by sessionflow 0.1.0 (tests/data/sessionflow-0.1.0.sql, an SQLite dump) still opens:
its sessions and histories load in today's shape, and rebuild and verify stay clean."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessionflow import Session, SessionManager, SessionStatus, replay
from sessionflow.testing import ManualClock

DUMP = Path(__file__).resolve().parents[1] / "data" / "sessionflow-0.1.0.sql"
#: When the dump was written (its clock): the live sessions in it are not overdue then.
WRITTEN_AT = datetime(2026, 11, 1, 0, 3, tzinfo=UTC)


@pytest.fixture
def old_database(tmp_path: Path) -> str:
    path = tmp_path / "written-by-0.1.0.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(DUMP.read_text(encoding="utf-8"))
    conn.close()
    return f"sqlite:///{path}"


def _by_user(manager: SessionManager) -> dict[str | None, Session]:
    return {s.user_id: s for s in manager.list(limit=100)}


def test_its_sessions_load_with_the_paths_of_their_failed_files(old_database: str) -> None:
    with SessionManager.open(old_database, clock=ManualClock(WRITTEN_AT)) as manager:
        sessions = _by_user(manager)
        alice = sessions["alice"]
        assert alice.status is SessionStatus.COMPLETED
        assert alice.progress.failed_files == ("b.py", "c.py")  # in the order they failed
        progress = alice.progress
        assert (progress.processed_files, progress.failed_count, progress.total_files) == (1, 2, 3)
        bob = sessions["bob"]
        assert bob.progress.failed_files == ("y.py",)
        assert bob.progress.current_file == "x.py"
        assert sessions["carol"].progress.failed_files == ()
        assert sessions["dave"].status is SessionStatus.EXPIRED
        assert "erin" not in sessions  # deleted
        for session in sessions.values():
            assert replay(manager.history(session.id)) == session


def test_verify_and_rebuild_stay_clean(old_database: str) -> None:
    with SessionManager.open(old_database, clock=ManualClock(WRITTEN_AT)) as manager:
        before = {s.id: s for s in manager.list(limit=100)}
        assert manager.verify() == []
        assert manager.rebuild() == 6
        assert manager.verify() == []
        assert {s.id: s for s in manager.list(limit=100)} == before


def test_it_takes_new_writes(old_database: str) -> None:
    with SessionManager.open(old_database, clock=ManualClock(WRITTEN_AT)) as manager:
        frank = next(s for s in manager.list(limit=100) if s.user_id == "frank")
        manager.start(frank.id, performer_id="frank")
        done = manager.record_file(frank.id, "p.py", error="late", performer_id="frank")
        assert done.progress.failed_files == ("p.py",)
        assert manager.get(frank.id) == done
        assert manager.verify() == []


def test_its_events_get_feed_positions_in_timestamp_session_version_order(old_database: str) -> None:
    with sqlite3.connect(old_database.removeprefix("sqlite:///")) as conn:
        stored = conn.execute("SELECT session_id, version, timestamp FROM session_events").fetchall()
    conn.close()
    with SessionManager.open(old_database, clock=ManualClock(WRITTEN_AT)) as manager:
        feed = manager.events(limit=10_000)
        assert [e.position for e in feed] == list(range(1, len(stored) + 1))
        expected = sorted(stored, key=lambda row: (row[2], row[0], row[1]))
        assert [(e.session_id.hex, e.version) for e in feed] == [(sid, v) for sid, v, _t in expected]
        # New events continue after them.
        s = manager.create(performer_id="frank")
        assert [e.position for e in manager.history(s.id)] == [len(stored) + 1]
