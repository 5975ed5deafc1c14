"""Every transition and guard through the manager, allowed and refused; a refused write changes nothing.

These tests use only the public ``SessionManager`` API, so they run unchanged on every store backend.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from sessionflow import (
    ConcurrencyConflict,
    EventType,
    InvalidInput,
    InvalidTransition,
    Session,
    SessionflowError,
    SessionManager,
    SessionNotFound,
    SessionStatus,
    replay,
)
from sessionflow.testing import ManualClock

MakeManager = Callable[..., SessionManager]
TTL = timedelta(minutes=10)
LIVE = ["pending", "in_progress"]
TERMINAL = ["completed", "failed", "expired"]


@pytest.fixture
def mgr(make_manager: MakeManager, clock: ManualClock) -> SessionManager:
    return make_manager(clock=clock, default_ttl=TTL)


def in_state(mgr: SessionManager, clock: ManualClock, state: str, files: tuple[str, ...] = ("a.py",)) -> Session:
    """A fresh session of user ``u1`` in ``state``, its files unrecorded where the state allows."""
    if state == "expired":
        s = mgr.create(performer_id="u1", user_id="u1", file_paths=list(files), ttl=timedelta(seconds=1))
        clock.advance(timedelta(seconds=1))
        return mgr.expire(s.id)
    s = mgr.create(performer_id="u1", user_id="u1", file_paths=list(files))
    if state == "pending":
        return s
    if state == "failed":
        return mgr.fail(s.id, reason="boom", performer_id="u1")
    s = mgr.start(s.id, performer_id="u1")
    if state == "in_progress":
        return s
    for path in files:
        mgr.record_file(s.id, path, performer_id="u1")
    return mgr.complete(s.id, performer_id="u1")


def refused(mgr: SessionManager, sid: UUID, call: Callable[[], Any],
            error: type[SessionflowError] = InvalidTransition) -> Any:
    """Run ``call``, expect ``error``, and check that nothing about the session changed."""
    before = mgr.get(sid)
    history = mgr.history(sid)
    with pytest.raises(error) as info:
        call()
    after = mgr.get(sid)
    assert after == before
    assert after.version == before.version
    assert mgr.history(sid) == history
    assert replay(mgr.history(sid)) == after
    return info.value


def events(mgr: SessionManager, sid: UUID) -> list[str]:
    return [e.event.value for e in mgr.history(sid)]


# ---------------------------------------------------------------- the quick start


def test_quick_start_history(make_manager: MakeManager) -> None:
    mgr = make_manager(default_ttl=timedelta(hours=1))
    s = mgr.create(user_id="u1", workspace_id="ws", module_name="auth",
                   file_paths=["a.py", "b.py"], ttl=timedelta(minutes=30), performer_id="u1")
    mgr.start(s.id, performer_id="u1")
    mgr.record_file(s.id, "a.py", performer_id="u1")
    mgr.record_file(s.id, "b.py", error="parse error", performer_id="u1")
    mgr.add_note(s.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="u1")
    done = mgr.complete(s.id, performer_id="u1")
    assert done.status is SessionStatus.COMPLETED
    assert events(mgr, s.id) == ["created", "started", "file_recorded", "file_recorded", "note_added", "completed"]
    assert [e.version for e in mgr.history(s.id)] == [1, 2, 3, 4, 5, 6]
    assert replay(mgr.history(s.id)) == mgr.get(s.id) == done


# ---------------------------------------------------------------- create


def test_create(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="p", user_id="u", workspace_id="w", module_name="m", file_paths=["x", "y"],
                   metadata={"k": [1]}, ttl=timedelta(seconds=90))
    assert s.status is SessionStatus.PENDING
    assert s.version == 1
    assert (s.user_id, s.workspace_id, s.module_name) == ("u", "w", "m")
    assert s.file_paths == ("x", "y")
    assert s.progress.total_files == 2
    assert (s.progress.processed_files, s.progress.failed_files, s.progress.current_file) == (0, (), None)
    assert s.metadata == {"k": [1]}
    assert s.created_at == s.updated_at == clock.now()
    assert s.expires_at == clock.now() + timedelta(seconds=90)
    assert (s.closed_at, s.closed_by, s.failure_reason) == (None, None, None)
    assert s.id.version == 4
    assert mgr.get(s.id) == s
    (created,) = mgr.history(s.id)
    assert created.event is EventType.CREATED
    assert (created.source_state, created.target_state) == (None, SessionStatus.PENDING)
    assert created.performer_id == "p"
    assert created.timestamp == clock.now()
    assert created.record_id.version == 4


def test_create_uses_the_default_ttl(mgr: SessionManager, clock: ManualClock) -> None:
    assert mgr.create(performer_id="p").expires_at == clock.now() + TTL


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"file_paths": ["a", "a"]}, "file_paths"),
        ({"file_paths": "a.py"}, "file_paths"),
        ({"file_paths": ["ok", " "]}, "file_paths"),
        ({"metadata": {"n": float("nan")}}, "metadata"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": {"k": "x" * 70_000}}, "metadata"),
        ({"ttl": timedelta(0)}, "ttl"),
        ({"ttl": 60}, "ttl"),
        ({"user_id": ""}, "user_id"),
        ({"workspace_id": "a\nb"}, "workspace_id"),
        ({"module_name": "m" * 300}, "module_name"),
        ({"performer_id": " "}, "performer_id"),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(mgr: SessionManager, kwargs: dict[str, Any],
                                                       field: str) -> None:
    args: dict[str, Any] = {"performer_id": "p", **kwargs}
    with pytest.raises(InvalidInput) as info:
        mgr.create(**args)
    assert info.value.field == field
    assert mgr.list() == []
    assert mgr.count() == 0


# ---------------------------------------------------------------- start


def test_start(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="u1", user_id="u1")
    clock.advance(timedelta(seconds=3))
    started = mgr.start(s.id, performer_id="worker")
    assert started.status is SessionStatus.IN_PROGRESS
    assert started.version == 2
    assert started.updated_at == clock.now()
    assert started.expires_at == s.expires_at  # start does not move the deadline
    last = mgr.history(s.id)[-1]
    assert (last.event, last.source_state, last.target_state) == (
        EventType.STARTED, SessionStatus.PENDING, SessionStatus.IN_PROGRESS)
    assert last.performer_id == "worker"
    assert mgr.get(s.id) == started


@pytest.mark.parametrize("state", ["in_progress", *TERMINAL])
def test_start_refused_unless_pending(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state)
    error = refused(mgr, s.id, lambda: mgr.start(s.id, performer_id="u1"))
    assert (error.state, error.event, error.session_id) == (state, "start", s.id)


def test_start_refused_once_the_deadline_has_passed(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="u1", ttl=timedelta(seconds=30))
    clock.advance(timedelta(seconds=30))
    with pytest.raises(InvalidTransition) as info:
        mgr.start(s.id, performer_id="u1")
    assert info.value.event == "start"
    # The refusal appends nothing of its own; the overdue session is seen expired by the engine.
    after = mgr.get(s.id)
    assert after.status is SessionStatus.EXPIRED
    assert events(mgr, s.id) == ["created", "expired"]
    assert mgr.history(s.id)[-1].performer_id == "system"


# ---------------------------------------------------------------- complete


def test_complete_when_every_file_is_accounted(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "in_progress", files=("a.py", "b.py"))
    mgr.record_file(s.id, "a.py", performer_id="u1")
    mgr.record_file(s.id, "b.py", error="bad", performer_id="u1")
    clock.advance(timedelta(seconds=1))
    done = mgr.complete(s.id, performer_id="u2")
    assert done.status is SessionStatus.COMPLETED
    assert done.closed_at == clock.now()
    assert done.closed_by == "u2"
    assert done.failure_reason is None
    last = mgr.history(s.id)[-1]
    assert (last.event, last.source_state, last.target_state) == (
        EventType.COMPLETED, SessionStatus.IN_PROGRESS, SessionStatus.COMPLETED)


def test_complete_without_files(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "in_progress", files=())
    assert mgr.complete(s.id, performer_id="u1").status is SessionStatus.COMPLETED


@pytest.mark.parametrize("recorded", [0, 1])
def test_complete_refused_while_files_are_unaccounted(mgr: SessionManager, clock: ManualClock,
                                                      recorded: int) -> None:
    s = in_state(mgr, clock, "in_progress", files=("a.py", "b.py"))
    if recorded:
        mgr.record_file(s.id, "a.py", performer_id="u1")
    error = refused(mgr, s.id, lambda: mgr.complete(s.id, performer_id="u1"))
    assert (error.state, error.event) == ("in_progress", "complete")
    assert "all_files_accounted" in error.reason


@pytest.mark.parametrize("state", ["pending", *TERMINAL])
def test_complete_refused_unless_in_progress(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state, files=())
    error = refused(mgr, s.id, lambda: mgr.complete(s.id, performer_id="u1"))
    assert (error.state, error.event) == (state, "complete")


# ---------------------------------------------------------------- fail


@pytest.mark.parametrize("state", LIVE)
def test_fail_from_a_live_state(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state)
    failed = mgr.fail(s.id, reason="  out of memory ", performer_id="u9")
    assert failed.status is SessionStatus.FAILED
    assert failed.failure_reason == "out of memory"
    assert failed.closed_by == "u9"
    assert failed.closed_at == clock.now()
    last = mgr.history(s.id)[-1]
    assert (last.event, last.source_state, last.target_state) == (
        EventType.FAILED, SessionStatus(state), SessionStatus.FAILED)
    assert last.payload["reason"] == "out of memory"


@pytest.mark.parametrize("reason", ["", " ", "\t\n"])
@pytest.mark.parametrize("state", LIVE)
def test_fail_needs_a_reason(mgr: SessionManager, clock: ManualClock, state: str, reason: str) -> None:
    s = in_state(mgr, clock, state)
    error = refused(mgr, s.id, lambda: mgr.fail(s.id, reason=reason, performer_id="u1"))
    assert (error.state, error.event) == (state, "fail")
    assert "has_reason" in error.reason


def test_fail_reason_must_be_text(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "pending")
    refused(mgr, s.id, lambda: mgr.fail(s.id, reason=42, performer_id="u1"), InvalidInput)  # type: ignore[arg-type]
    refused(mgr, s.id, lambda: mgr.fail(s.id, reason="x" * 9000, performer_id="u1"), InvalidInput)


@pytest.mark.parametrize("state", TERMINAL)
def test_fail_refused_once_terminal(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state)
    error = refused(mgr, s.id, lambda: mgr.fail(s.id, reason="late", performer_id="u1"))
    assert (error.state, error.event) == (state, "fail")


# ---------------------------------------------------------------- record_file, add_note, touch


@pytest.mark.parametrize("state", LIVE)
def test_record_file(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state, files=("a.py", "b.py", "c.py"))
    one = mgr.record_file(s.id, "a.py", performer_id="u1")
    assert one.status is SessionStatus(state)
    assert (one.progress.processed_files, one.progress.failed_files) == (1, ())
    two = mgr.record_file(s.id, "b.py", error="syntax error", performer_id="u1")
    assert (two.progress.processed_files, two.progress.failed_files, two.progress.total_files) == (1, ("b.py",), 3)
    assert two.progress.failed_count == 1
    assert [(r.path, r.error) for r in two.file_results] == [("a.py", None), ("b.py", "syntax error")]
    assert two.file_results[1].failed
    last = mgr.history(s.id)[-1]
    assert last.event is EventType.FILE_RECORDED
    assert last.source_state == last.target_state == SessionStatus(state)
    assert (last.payload["path"], last.payload["error"]) == ("b.py", "syntax error")
    assert two.version == s.version + 2


def test_record_file_rules(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "in_progress", files=("a.py",))
    error = refused(mgr, s.id, lambda: mgr.record_file(s.id, "nope.py", performer_id="u1"), InvalidInput)
    assert error.field == "path"
    assert error.session_id == s.id
    mgr.record_file(s.id, "a.py", performer_id="u1")
    error = refused(mgr, s.id, lambda: mgr.record_file(s.id, "a.py", performer_id="u1"), InvalidInput)
    assert "already recorded" in error.problem
    refused(mgr, s.id, lambda: mgr.record_file(s.id, "a.py", error="again", performer_id="u1"), InvalidInput)
    refused(mgr, s.id, lambda: mgr.record_file(s.id, " ", performer_id="u1"), InvalidInput)
    refused(mgr, s.id, lambda: mgr.record_file(s.id, "a.py", error="", performer_id="u1"), InvalidInput)


def test_add_note(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "in_progress")
    clock.advance(timedelta(seconds=2))
    noted = mgr.add_note(s.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="u1")
    noted = mgr.add_note(s.id, file_path="other.py", status="skipped", performer_id="u1")
    assert [(n.file_path, n.memory_id, n.status, n.created_at) for n in noted.notes] == [
        ("a.py", "m-1", "stored", clock.now()), ("other.py", None, "skipped", clock.now())]
    assert noted.status is SessionStatus.IN_PROGRESS
    assert events(mgr, s.id)[-2:] == ["note_added", "note_added"]
    refused(mgr, s.id, lambda: mgr.add_note(s.id, file_path="a.py", status=" ", performer_id="u1"), InvalidInput)
    refused(mgr, s.id, lambda: mgr.add_note(s.id, file_path="", status="x", performer_id="u1"), InvalidInput)


def test_touch_moves_the_deadline(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="u1", ttl=timedelta(minutes=5))
    clock.advance(timedelta(minutes=4))
    touched = mgr.touch(s.id, performer_id="u1")
    assert touched.expires_at == clock.now() + timedelta(minutes=5)
    assert touched.expires_at > s.expires_at
    last = mgr.history(s.id)[-1]
    assert last.event is EventType.TOUCHED
    clock.advance(timedelta(minutes=4))  # past the original deadline, not the new one
    assert mgr.get(s.id).status is SessionStatus.PENDING
    assert mgr.get_active(s.id) is not None


@pytest.mark.parametrize("state", TERMINAL)
@pytest.mark.parametrize("operation", ["record_file", "add_note", "touch", "update"])
def test_non_transition_events_refused_once_terminal(mgr: SessionManager, clock: ManualClock, state: str,
                                                     operation: str) -> None:
    s = in_state(mgr, clock, state, files=("a.py", "b.py"))
    calls: dict[str, Callable[[], Any]] = {
        "record_file": lambda: mgr.record_file(s.id, "b.py", performer_id="u1"),
        "add_note": lambda: mgr.add_note(s.id, file_path="a.py", status="stored", performer_id="u1"),
        "touch": lambda: mgr.touch(s.id, performer_id="u1"),
        "update": lambda: mgr.update(s.id, current_file="a.py", performer_id="u1"),
    }
    # The lifecycle decides first: even a file already recorded is refused as an invalid transition.
    error = refused(mgr, s.id, calls[operation])
    assert (error.state, error.event) == (state, operation)


# ---------------------------------------------------------------- update


def test_update_fields(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="u1", file_paths=["a.py"], metadata={"old": True})
    one = mgr.update(s.id, current_file="a.py", performer_id="u1")
    assert one.progress.current_file == "a.py"
    assert one.metadata == {"old": True}
    two = mgr.update(s.id, metadata={"new": [1, 2]}, performer_id="u1")
    assert two.metadata == {"new": [1, 2]}
    assert two.progress.current_file == "a.py"
    three = mgr.update(s.id, current_file=None, metadata=None, performer_id="u1")
    assert three.progress.current_file is None
    assert three.metadata == {}
    assert three.status is SessionStatus.PENDING
    assert events(mgr, s.id) == ["created", "updated", "updated", "updated"]
    assert mgr.history(s.id)[1].payload == {"current_file": "a.py"}
    assert three.version == 4


def test_update_nothing_is_invalid(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1")
    error = refused(mgr, s.id, lambda: mgr.update(s.id, performer_id="u1"), InvalidInput)
    assert error.field == "update"


def test_update_refuses_bad_fields(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1")
    refused(mgr, s.id, lambda: mgr.update(s.id, metadata={"n": float("inf")}, performer_id="u1"), InvalidInput)
    refused(mgr, s.id, lambda: mgr.update(s.id, metadata="text", performer_id="u1"), InvalidInput)
    refused(mgr, s.id, lambda: mgr.update(s.id, current_file="", performer_id="u1"), InvalidInput)
    error = refused(mgr, s.id, lambda: mgr.update(s.id, status="paused", performer_id="u1"), InvalidInput)
    assert error.field == "status"


def test_update_status_goes_through_the_machine(mgr: SessionManager, clock: ManualClock) -> None:
    s = mgr.create(performer_id="u1", file_paths=["a.py"])
    started = mgr.update(s.id, status=SessionStatus.IN_PROGRESS, performer_id="u1")
    assert started.status is SessionStatus.IN_PROGRESS
    assert events(mgr, s.id) == ["created", "started"]
    error = refused(mgr, s.id, lambda: mgr.update(s.id, status="completed", performer_id="u1"))
    assert "all_files_accounted" in error.reason
    refused(mgr, s.id, lambda: mgr.update(s.id, status="failed", performer_id="u1"))
    refused(mgr, s.id, lambda: mgr.update(s.id, status="failed", reason="  ", performer_id="u1"))
    refused(mgr, s.id, lambda: mgr.update(s.id, status="expired", performer_id="u1"))
    refused(mgr, s.id, lambda: mgr.update(s.id, status="pending", performer_id="u1"))
    refused(mgr, s.id, lambda: mgr.update(s.id, status="in_progress", performer_id="u1"))
    mgr.record_file(s.id, "a.py", performer_id="u1")
    done = mgr.update(s.id, status="completed", performer_id="u1")
    assert done.status is SessionStatus.COMPLETED
    assert done.closed_by == "u1"
    assert events(mgr, s.id) == ["created", "started", "file_recorded", "completed"]


def test_update_status_failed_with_reason(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1")
    failed = mgr.update(s.id, status="failed", reason=" crashed ", performer_id="u1")
    assert failed.status is SessionStatus.FAILED
    assert failed.failure_reason == "crashed"


def test_update_fields_and_status_append_both_events_atomically(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1", file_paths=["a.py"])
    both = mgr.update(s.id, current_file="a.py", metadata={"step": 1}, status="in_progress", performer_id="u1")
    assert both.status is SessionStatus.IN_PROGRESS
    assert both.progress.current_file == "a.py"
    assert both.metadata == {"step": 1}
    assert both.version == 3
    history = mgr.history(s.id)
    assert [(e.event.value, e.version, e.source_state, e.target_state) for e in history[1:]] == [
        ("updated", 2, SessionStatus.PENDING, SessionStatus.PENDING),
        ("started", 3, SessionStatus.PENDING, SessionStatus.IN_PROGRESS)]
    assert history[1].timestamp == history[2].timestamp
    # A refused status change takes the field changes down with it.
    error = refused(mgr, s.id, lambda: mgr.update(s.id, metadata={"step": 2}, status="completed",
                                                  performer_id="u1"))
    assert error.event == "complete"
    assert mgr.get(s.id).metadata == {"step": 1}


def test_update_with_expected_version(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1")
    ok = mgr.update(s.id, metadata={"a": 1}, expected_version=1, performer_id="u1")
    assert ok.version == 2
    error = refused(mgr, s.id, lambda: mgr.update(s.id, metadata={"a": 2}, expected_version=1,
                                                  performer_id="u1"), ConcurrencyConflict)
    assert (error.expected_version, error.actual_version, error.session_id) == (1, 2, s.id)
    refused(mgr, s.id, lambda: mgr.update(s.id, status="in_progress", expected_version=3, performer_id="u1"),
            ConcurrencyConflict)
    refused(mgr, s.id, lambda: mgr.update(s.id, metadata={}, expected_version=0, performer_id="u1"), InvalidInput)
    assert mgr.get(s.id).metadata == {"a": 1}


@pytest.mark.parametrize("operation", ["start", "record_file", "add_note", "touch", "fail", "delete"])
def test_every_write_takes_an_expected_version(mgr: SessionManager, operation: str) -> None:
    s = mgr.create(performer_id="u1", file_paths=["a.py"])
    mgr.update(s.id, metadata={"v": 2}, performer_id="u1")
    call: dict[str, Callable[[int], Any]] = {
        "start": lambda v: mgr.start(s.id, expected_version=v, performer_id="u1"),
        "record_file": lambda v: mgr.record_file(s.id, "a.py", expected_version=v, performer_id="u1"),
        "add_note": lambda v: mgr.add_note(s.id, file_path="a.py", status="s", expected_version=v,
                                           performer_id="u1"),
        "touch": lambda v: mgr.touch(s.id, expected_version=v, performer_id="u1"),
        "fail": lambda v: mgr.fail(s.id, reason="r", expected_version=v, performer_id="u1"),
        "delete": lambda v: mgr.delete(s.id, expected_version=v, performer_id="u1"),
    }
    error = refused(mgr, s.id, lambda: call[operation](1), ConcurrencyConflict)
    assert (error.expected_version, error.actual_version) == (1, 2)
    assert call[operation](2).version == 3


# ---------------------------------------------------------------- delete


@pytest.mark.parametrize("state", [*LIVE, *TERMINAL])
def test_delete(mgr: SessionManager, clock: ManualClock, state: str) -> None:
    s = in_state(mgr, clock, state)
    keep = mgr.create(performer_id="u1")
    before = mgr.history(s.id)
    gone = mgr.delete(s.id, performer_id="u2")
    assert gone.deleted_at == clock.now()
    assert gone.status is SessionStatus(state)
    with pytest.raises(SessionNotFound) as info:
        mgr.get(s.id)
    assert info.value.session_id == s.id
    assert mgr.get_active(s.id) is None
    assert [x.id for x in mgr.list()] == [keep.id]
    assert [x.id for x in mgr.list(status=state)] == ([keep.id] if state == "pending" else [])
    history = mgr.history(s.id)
    assert history[:-1] == before
    assert (history[-1].event, history[-1].performer_id, history[-1].version) == (
        EventType.DELETED, "u2", len(before) + 1)
    assert replay(history) == gone
    assert mgr.count() == 1


def test_writes_to_a_deleted_session_are_not_found(mgr: SessionManager, clock: ManualClock) -> None:
    s = in_state(mgr, clock, "in_progress")
    mgr.delete(s.id, performer_id="u1")
    history = mgr.history(s.id)
    writes: list[Callable[[], Any]] = [
        lambda: mgr.start(s.id, performer_id="u1"),
        lambda: mgr.record_file(s.id, "a.py", performer_id="u1"),
        lambda: mgr.add_note(s.id, file_path="a.py", status="s", performer_id="u1"),
        lambda: mgr.touch(s.id, performer_id="u1"),
        lambda: mgr.update(s.id, metadata={}, performer_id="u1"),
        lambda: mgr.complete(s.id, performer_id="u1"),
        lambda: mgr.fail(s.id, reason="r", performer_id="u1"),
        lambda: mgr.expire(s.id),
        lambda: mgr.delete(s.id, performer_id="u1"),
    ]
    for write in writes:
        with pytest.raises(SessionNotFound):
            write()
    clock.advance(timedelta(days=1))
    assert mgr.expire_sessions() == 0
    assert mgr.history(s.id) == history


def test_unknown_session(mgr: SessionManager) -> None:
    missing = UUID(int=12345)
    for call in [lambda: mgr.get(missing), lambda: mgr.history(missing), lambda: mgr.start(missing, performer_id="u"),
                 lambda: mgr.delete(missing, performer_id="u"), lambda: mgr.expire(missing)]:
        with pytest.raises(SessionNotFound) as info:
            call()
        assert info.value.session_id == missing
        assert isinstance(info.value, LookupError)
    assert mgr.get_active(missing) is None


def test_string_ids_are_accepted(mgr: SessionManager) -> None:
    s = mgr.create(performer_id="u1")
    assert mgr.get(str(s.id)) == s
    assert mgr.start(str(s.id), performer_id="u1").status is SessionStatus.IN_PROGRESS
    assert len(mgr.history(str(s.id))) == 2
