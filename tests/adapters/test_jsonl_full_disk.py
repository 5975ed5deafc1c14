"""The live JSONL audit trail on a full disk: a line that cannot be written whole leaves nothing of itself, so the
next line, once there is space again, starts at a line boundary ("no partial lines")."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sessionflow import SessionEvent, SessionManager
from sessionflow.adapters.jsonl import JsonlAuditTrail, audit_line, audit_path

Write = Callable[[int, bytes], int]


@pytest.fixture
def events() -> Iterator[list[SessionEvent]]:
    """Four events of one session (with a user), from a manager in memory."""
    with SessionManager.in_memory() as mgr:
        s = mgr.create(user_id="alice", file_paths=["a.py"], performer_id="alice")
        mgr.start(s.id, performer_id="alice")
        mgr.record_file(s.id, "a.py", performer_id="alice")
        mgr.complete(s.id, performer_id="alice")
        yield mgr.history(s.id)


def lines_of(path: Path) -> list[dict[str, object]]:
    """Every line of the file, each a whole JSON object (a torn line fails to parse)."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def failing_write(monkeypatch: pytest.MonkeyPatch, fail: Callable[[Write, int, bytes], int]) -> Callable[[], None]:
    """``os.write`` of an audit line goes through ``fail`` until the returned function restores space."""
    real_write: Write = os.write

    def write(fd: int, data: bytes) -> int:
        if bytes(data[:13]) == b'{"record_id":':
            return fail(real_write, fd, data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return lambda: monkeypatch.setattr(os, "write", real_write)


def half_then_enospc(real_write: Write, fd: int, data: bytes) -> int:
    """Writes half the line, then reports the disk full (as a write interrupted part-way)."""
    real_write(fd, data[:len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def short_write(real_write: Write, fd: int, data: bytes) -> int:
    """Writes half the line and says so (a short write: what a regular file does when the disk fills)."""
    return real_write(fd, data[:len(data) // 2])


@pytest.mark.parametrize("fail", [half_then_enospc, short_write], ids=["enospc", "short"])
def test_a_failed_line_leaves_nothing_and_the_next_starts_a_line(
        tmp_path: Path, events: list[SessionEvent], monkeypatch: pytest.MonkeyPatch,
        fail: Callable[[Write, int, bytes], int]) -> None:
    trail = JsonlAuditTrail(tmp_path)
    created, started, recorded, completed = events
    path = audit_path(tmp_path, created.session_id, "alice")
    trail(created)
    trail(started)
    before = path.read_bytes()

    space_again = failing_write(monkeypatch, fail)
    with pytest.raises(OSError, match=r"No space left|short write") as caught:
        trail(recorded)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before  # truncated back to its length before the write

    space_again()
    trail(completed)
    assert [line["event"] for line in lines_of(path)] == ["created", "started", "completed"]
    assert path.read_bytes() == before + audit_line(completed, "alice")


def test_a_line_torn_by_a_failed_truncation_is_cut_before_the_next(
        tmp_path: Path, events: list[SessionEvent], monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when cutting the partial line off fails too (the disk is failing), the trail cuts it before the next
    line it writes to that file."""
    trail = JsonlAuditTrail(tmp_path)
    created, started, recorded, _ = events
    path = audit_path(tmp_path, created.session_id, "alice")
    trail(created)
    real_truncate = os.ftruncate

    def broken_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    space_again = failing_write(monkeypatch, half_then_enospc)
    monkeypatch.setattr(os, "ftruncate", broken_truncate)
    with pytest.raises(OSError, match="Input/output error"):
        trail(started)
    assert not path.read_bytes().endswith(b"\n")  # torn: the truncation failed
    monkeypatch.setattr(os, "ftruncate", real_truncate)
    space_again()
    trail(recorded)
    assert [line["event"] for line in lines_of(path)] == ["created", "file_recorded"]


def test_a_full_disk_does_not_stop_the_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attached to a manager: the write is committed, the trail's failure is logged, and the trail goes on."""
    with SessionManager.in_memory() as mgr:
        trail = JsonlAuditTrail.attach(mgr, tmp_path)
        s = mgr.create(user_id="bob", performer_id="bob")
        space_again = failing_write(monkeypatch, half_then_enospc)
        started = mgr.start(s.id, performer_id="bob")
        space_again()
        mgr.fail(s.id, reason="stop", performer_id="bob")
        trail.detach()
        assert started.version == 2
        assert [e.event for e in mgr.history(s.id)] == ["created", "started", "failed"]
    path = audit_path(tmp_path, s.id, "bob")
    assert [line["event"] for line in lines_of(path)] == ["created", "failed"]
