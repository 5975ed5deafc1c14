"""The demo (``make demo``) runs every path of the lifecycle and prints each history."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from sessionflow import SessionManager, SessionStatus
from sessionflow.demo import durable_store_available, format_history, run_demo


def test_demo_drives_every_path_and_prints_the_histories() -> None:
    out = io.StringIO()
    with SessionManager.in_memory() as manager:
        ids = run_demo(manager, out)
        statuses = {key: manager.history(sid)[-1].target_state for key, sid in ids.items()}
        events = {key: [e.event.value for e in manager.history(sid)] for key, sid in ids.items()}
    assert statuses == {
        "completed": SessionStatus.COMPLETED,
        "failed": SessionStatus.FAILED,
        "expired by the sweep": SessionStatus.EXPIRED,
        "expired on read": SessionStatus.EXPIRED,
        "deleted": SessionStatus.PENDING,
    }
    assert events["completed"] == ["created", "started", "updated", "file_recorded", "file_recorded",
                                   "note_added", "touched", "completed"]
    assert events["failed"] == ["created", "started", "failed"]
    assert events["expired by the sweep"] == ["created", "started", "expired"]
    assert events["expired on read"] == ["created", "expired"]
    assert events["deleted"] == ["created", "deleted"]
    text = out.getvalue()
    assert "refused as expected" in text
    assert "expire_sessions() expired 1 overdue session(s)" in text
    for sid in ids.values():
        assert str(sid) in text


def test_history_table_has_one_row_per_event() -> None:
    with SessionManager.in_memory() as manager:
        session = manager.create(user_id="u1", file_paths=["a.py"], performer_id="u1")
        manager.start(session.id, performer_id="u1")
        table = format_history(manager.history(session.id)).splitlines()
    assert table[0].split()[:3] == ["v", "event", "state"]
    assert table[2].split()[:4] == ["1", "created", "->", "pending"]
    assert table[3].split()[:5] == ["2", "started", "pending", "->", "in_progress"]
    assert len(table) == 4


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_demo_runs_as_a_module(store: str, tmp_path: Path) -> None:
    if store == "sqlite" and not durable_store_available():
        pytest.skip("no durable store in this installation")
    args = ["--in-memory"] if store == "memory" else ["--url", f"sqlite:///{tmp_path / 'demo.db'}"]
    result = subprocess.run([sys.executable, "-m", "sessionflow.demo", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("timestamp (UTC)") == 5
    assert "Traceback" not in result.stderr
