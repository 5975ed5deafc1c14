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
    EventType,
    InvalidInput,
    InvalidTransition,
    Session,
    SessionflowError,
    SessionManager,
    SessionStatus,
    replay,
)
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

TTL = timedelta(minutes=10)
LIVE = ["pending", "in_progress"]
TERMINAL = ["completed", "failed", "expired"]


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
    return [str(e.event) for e in mgr.history(sid)]


class TestLifecycle(ContractSuite):
    """Every transition and guard, allowed and refused."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=TTL)

    # ---------------------------------------------------------------- the quick start

    def test_quick_start_history(self, make_manager: MakeManager) -> None:
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

    def test_create(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_create_uses_the_default_ttl(self, mgr: SessionManager, clock: ManualClock) -> None:
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
    def test_create_refuses_bad_input_and_creates_nothing(self, mgr: SessionManager, kwargs: dict[str, Any],
                                                          field: str) -> None:
        args: dict[str, Any] = {"performer_id": "p", **kwargs}
        with pytest.raises(InvalidInput) as info:
            mgr.create(**args)
        assert info.value.field == field
        assert mgr.list() == []
        assert mgr.count() == 0

    # ---------------------------------------------------------------- start

    def test_start(self, mgr: SessionManager, clock: ManualClock) -> None:
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
    def test_start_refused_unless_pending(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
        s = in_state(mgr, clock, state)
        error = refused(mgr, s.id, lambda: mgr.start(s.id, performer_id="u1"))
        assert (error.state, error.event, error.session_id) == (state, "start", s.id)

    def test_start_refused_once_the_deadline_has_passed(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_complete_when_every_file_is_accounted(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_complete_without_files(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = in_state(mgr, clock, "in_progress", files=())
        assert mgr.complete(s.id, performer_id="u1").status is SessionStatus.COMPLETED

    @pytest.mark.parametrize("recorded", [0, 1])
    def test_complete_refused_while_files_are_unaccounted(self, mgr: SessionManager, clock: ManualClock,
                                                          recorded: int) -> None:
        s = in_state(mgr, clock, "in_progress", files=("a.py", "b.py"))
        if recorded:
            mgr.record_file(s.id, "a.py", performer_id="u1")
        error = refused(mgr, s.id, lambda: mgr.complete(s.id, performer_id="u1"))
        assert (error.state, error.event) == ("in_progress", "complete")
        assert "all_files_accounted" in error.reason

    @pytest.mark.parametrize("state", ["pending", *TERMINAL])
    def test_complete_refused_unless_in_progress(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
        s = in_state(mgr, clock, state, files=())
        error = refused(mgr, s.id, lambda: mgr.complete(s.id, performer_id="u1"))
        assert (error.state, error.event) == (state, "complete")

    # ---------------------------------------------------------------- fail

    @pytest.mark.parametrize("state", LIVE)
    def test_fail_from_a_live_state(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
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
    def test_fail_needs_a_reason(self, mgr: SessionManager, clock: ManualClock, state: str, reason: str) -> None:
        s = in_state(mgr, clock, state)
        error = refused(mgr, s.id, lambda: mgr.fail(s.id, reason=reason, performer_id="u1"))
        assert (error.state, error.event) == (state, "fail")
        assert "has_reason" in error.reason

    def test_fail_reason_must_be_text(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = in_state(mgr, clock, "pending")
        refused(mgr, s.id, lambda: mgr.fail(s.id, reason=42, performer_id="u1"), InvalidInput)  # type: ignore[arg-type]
        refused(mgr, s.id, lambda: mgr.fail(s.id, reason="x" * 9000, performer_id="u1"), InvalidInput)

    @pytest.mark.parametrize("state", TERMINAL)
    def test_fail_refused_once_terminal(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
        s = in_state(mgr, clock, state)
        error = refused(mgr, s.id, lambda: mgr.fail(s.id, reason="late", performer_id="u1"))
        assert (error.state, error.event) == (state, "fail")

    # ---------------------------------------------------------------- record_file, add_note, touch

    @pytest.mark.parametrize("state", LIVE)
    def test_record_file(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
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

    def test_record_file_rules(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_add_note(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_touch_moves_the_deadline(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(minutes=5))
        clock.advance(timedelta(minutes=4))
        touched = mgr.touch(s.id, performer_id="u1")
        assert touched.expires_at == clock.now() + timedelta(minutes=5)
        assert touched.expires_at is not None
        assert s.expires_at is not None
        assert touched.expires_at > s.expires_at
        last = mgr.history(s.id)[-1]
        assert last.event is EventType.TOUCHED
        clock.advance(timedelta(minutes=4))  # past the original deadline, not the new one
        assert mgr.get(s.id).status is SessionStatus.PENDING
        assert mgr.get_active(s.id) is not None

    @pytest.mark.parametrize("state", TERMINAL)
    @pytest.mark.parametrize("operation", ["record_file", "add_note", "touch", "update"])
    def test_non_transition_events_refused_once_terminal(self, mgr: SessionManager, clock: ManualClock, state: str,
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
