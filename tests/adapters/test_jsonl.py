"""The JSONL audit trail: the live subscriber and export write the same files, matching history()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sessionflow import SessionManager
from sessionflow.adapters.jsonl import NO_USER_DIR, JsonlAuditTrail, audit_path, export
from sessionflow.bootstrap import build
from sessionflow.errors import InvalidInput
from sessionflow.testing import ManualClock

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["record_id", "session_id", "version", "user_id", "performer_id", "source", "event", "from", "to",
        "timestamp", "payload"]


@pytest.fixture(params=["memory", "sqlite"])
def manager(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[SessionManager]:
    if request.param == "memory":
        mgr = SessionManager.in_memory(clock=clock)
    else:
        mgr = build(f"sqlite:///{tmp_path / 'audit.db'}", clock=clock)
    with mgr:
        yield mgr


def scripted_run(manager: SessionManager, clock: ManualClock) -> list[str]:
    """Every lifecycle path, a user-less session, a deletion and an expiry; returns the session ids."""
    done = manager.create(user_id="alice", workspace_id="ws", file_paths=["a.py", "b.py"], performer_id="alice",
                          metadata={"z": 1, "a": {"y": [1, "é"], "b": None}})
    manager.start(done.id, performer_id="alice")
    clock.advance(timedelta(milliseconds=7))
    manager.record_file(done.id, "a.py", performer_id="alice")
    manager.record_file(done.id, "b.py", error="parse error", performer_id="alice")
    manager.add_note(done.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="alice")
    manager.update(done.id, current_file="b.py", metadata={"k": "v"}, performer_id="alice")
    manager.complete(done.id, performer_id="alice")
    failed = manager.create(user_id="bob", performer_id="orchestrator")
    manager.fail(failed.id, reason="upstream down", performer_id="orchestrator")
    anonymous = manager.create(performer_id="cron", ttl=timedelta(seconds=30))
    manager.touch(anonymous.id, performer_id="cron")
    deleted = manager.create(user_id="alice", performer_id="alice")
    manager.delete(deleted.id, performer_id="alice")
    clock.advance(timedelta(minutes=1))
    assert manager.expire_sessions() == 1
    return [str(s.id) for s in (done, failed, anonymous, deleted)]


def read_lines(path: Path) -> list[dict[str, object]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_the_jsonl_of_a_scripted_run_matches_history(manager: SessionManager, clock: ManualClock,
                                                     tmp_path: Path) -> None:
    root = tmp_path / "audit"
    trail = JsonlAuditTrail.attach(manager, root)
    ids = scripted_run(manager, clock)
    trail.detach()

    users = {ids[0]: "alice", ids[1]: "bob", ids[2]: None, ids[3]: "alice"}
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))
    assert files == sorted([f"users/alice/sessions/{ids[0]}.jsonl", f"users/bob/sessions/{ids[1]}.jsonl",
                            f"{NO_USER_DIR}/sessions/{ids[2]}.jsonl", f"users/alice/sessions/{ids[3]}.jsonl"])
    for sid, user in users.items():
        lines = read_lines(audit_path(root, sid, user))
        history = manager.history(sid)
        assert len(lines) == len(history)
        for line, event in zip(lines, history, strict=True):
            assert list(line) == KEYS
            assert line == {
                "record_id": str(event.record_id), "session_id": sid, "version": event.version, "user_id": user,
                "performer_id": event.performer_id, "source": "sessionflow", "event": event.event.value,
                "from": None if event.source_state is None else event.source_state.value,
                "to": event.target_state.value, "timestamp": event.model_dump(mode="json")["timestamp"],
                "payload": event.model_dump(mode="json")["payload"]}
            assert str(line["timestamp"]).endswith("Z")
            assert len(str(line["timestamp"])) == len("2030-01-01T12:00:00.000Z")
    expired = read_lines(audit_path(root, ids[2], None))[-1]
    assert (expired["event"], expired["performer_id"], expired["from"], expired["to"]) == (
        "expired", "system", "pending", "expired")


def test_export_writes_the_same_files_and_is_idempotent(manager: SessionManager, clock: ManualClock,
                                                        tmp_path: Path) -> None:
    live = tmp_path / "live"
    JsonlAuditTrail.attach(manager, live)
    scripted_run(manager, clock)
    exported = tmp_path / "exported"
    ticks: list[int] = []
    first = export(manager, exported, progress=ticks.append)
    assert (first.sessions, first.events, first.files_written, first.files_unchanged) == (4, 14, 4, 0)
    assert ticks == [1, 2, 3, 4]

    def snapshot(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert snapshot(exported) == snapshot(live)
    before = snapshot(exported)
    mtimes = {p: p.stat().st_mtime_ns for p in exported.rglob("*.jsonl")}
    second = export(manager, exported)
    assert (second.files_written, second.files_unchanged) == (0, 4)
    assert snapshot(exported) == before
    assert {p: p.stat().st_mtime_ns for p in exported.rglob("*.jsonl")} == mtimes

    # A damaged file (a torn last line, a missing event) is rebuilt whole, atomically.
    damaged = next(iter(exported.rglob("*.jsonl")))
    damaged.write_bytes(damaged.read_bytes()[:-20])
    third = export(manager, exported)
    assert (third.files_written, third.files_unchanged) == (1, 3)
    assert snapshot(exported) == before
    assert not [p for p in exported.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("user_id", ["..", ".", "../escape", "a/b", "/etc", "a\\b", "x" * 256, "é" * 128])
def test_ids_that_would_escape_the_root_are_refused(user_id: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        audit_path(tmp_path, "8d3c1a52-3f0e-4f4b-9d76-0c1f0a3e6f11", user_id)
    assert refused.value.field == "user_id"
    for session_id in ("../x", "a/b", "", "x\x00y"):
        with pytest.raises(InvalidInput):
            audit_path(tmp_path, session_id, None)
    with pytest.raises(InvalidInput):
        audit_path(tmp_path, "s", "nul\x00byte")


def test_a_session_of_an_unsafe_user_is_not_written_and_export_says_so(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "audit"
    with SessionManager.in_memory() as manager:
        JsonlAuditTrail.attach(manager, root)
        bad = manager.create(user_id="../../outside", performer_id="p")
        good = manager.create(user_id="fine", performer_id="p")
        assert "subscriber" in caplog.text  # the refusal is logged by the manager; the commit stands
        assert manager.get(bad.id).user_id == "../../outside"
        assert [p.name for p in tmp_path.rglob("*.jsonl")] == [f"{good.id}.jsonl"]
        with pytest.raises(InvalidInput) as refused:
            export(manager, tmp_path / "exported")
        assert refused.value.session_id == bad.id
        result = export(manager, tmp_path / "exported2", skip_invalid=True)
        assert result.sessions == 1
        assert [sid for sid, _ in result.skipped] == [bad.id]
    assert not (tmp_path.parent / "outside").exists()


def test_with_fsync_and_a_store_lookup_for_later_events(tmp_path: Path) -> None:
    with SessionManager.in_memory() as manager:
        session = manager.create(user_id="u", performer_id="u")  # before the trail: its user is looked up
        trail = JsonlAuditTrail(tmp_path, store=manager.store, fsync=True)
        manager.subscribe(trail)
        manager.start(session.id, performer_id="u")
        lines = read_lines(audit_path(tmp_path, session.id, "u"))
        assert [line["event"] for line in lines] == ["started"]
        storeless = JsonlAuditTrail(tmp_path / "other")
        with pytest.raises(InvalidInput, match="store"):
            storeless(manager.history(session.id)[1])


_WRITER = """
import sys, time
from sessionflow import SessionManager
from sessionflow.adapters.jsonl import JsonlAuditTrail
manager = SessionManager.in_memory()
JsonlAuditTrail.attach(manager, sys.argv[1])
session = manager.create(user_id="u", performer_id="u", file_paths=[f"f{i}" for i in range(5000)])
print("ready", session.id, flush=True)
while True:
    manager.add_note(session.id, file_path="f1", status="x" * 200, memory_id="m" * 200, performer_id="u")
"""


def test_a_killed_writer_leaves_only_whole_lines(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True,
                               env=env)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[0] == "ready", ready
        time.sleep(0.4)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    path = audit_path(root, ready[1], "u")
    lines = read_lines(path)  # every line parses, and the file ends with a newline
    assert len(lines) > 10
    assert [line["version"] for line in lines] == list(range(1, len(lines) + 1))
