"""``update`` (fields, a status through the lifecycle, both at once) and ``delete``, allowed and refused; a refused
write changes nothing; unknown and string ids."""

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
    SessionManager,
    SessionNotFound,
    SessionStatus,
    replay,
)
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager
from sessionflow.testing.contract.lifecycle import LIVE, TERMINAL, TTL, events, in_state, refused


class TestUpdateAndDelete(ContractSuite):
    """``update`` and ``delete``; unknown and string ids."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=TTL)

    # ---------------------------------------------------------------- update

    def test_update_fields(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_update_nothing_is_invalid(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1")
        error = refused(mgr, s.id, lambda: mgr.update(s.id, performer_id="u1"), InvalidInput)
        assert error.field == "update"

    def test_update_refuses_bad_fields(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1")
        refused(mgr, s.id, lambda: mgr.update(s.id, metadata={"n": float("inf")}, performer_id="u1"), InvalidInput)
        refused(mgr, s.id, lambda: mgr.update(s.id, metadata="text", performer_id="u1"), InvalidInput)
        refused(mgr, s.id, lambda: mgr.update(s.id, current_file="", performer_id="u1"), InvalidInput)
        error = refused(mgr, s.id, lambda: mgr.update(s.id, status="paused", performer_id="u1"), InvalidInput)
        assert error.field == "status"

    def test_update_status_goes_through_the_machine(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_update_status_failed_with_reason(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1")
        failed = mgr.update(s.id, status="failed", reason=" crashed ", performer_id="u1")
        assert failed.status is SessionStatus.FAILED
        assert failed.failure_reason == "crashed"

    def test_update_fields_and_status_append_both_events_atomically(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1", file_paths=["a.py"])
        both = mgr.update(s.id, current_file="a.py", metadata={"step": 1}, status="in_progress", performer_id="u1")
        assert both.status is SessionStatus.IN_PROGRESS
        assert both.progress.current_file == "a.py"
        assert both.metadata == {"step": 1}
        assert both.version == 3
        history = mgr.history(s.id)
        assert [(str(e.event), e.version, e.source_state, e.target_state) for e in history[1:]] == [
            ("updated", 2, SessionStatus.PENDING, SessionStatus.PENDING),
            ("started", 3, SessionStatus.PENDING, SessionStatus.IN_PROGRESS)]
        assert history[1].timestamp == history[2].timestamp
        # A refused status change takes the field changes down with it.
        error = refused(mgr, s.id, lambda: mgr.update(s.id, metadata={"step": 2}, status="completed",
                                                      performer_id="u1"))
        assert error.event == "complete"
        assert mgr.get(s.id).metadata == {"step": 1}

    def test_update_with_expected_version(self, mgr: SessionManager) -> None:
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
    def test_every_write_takes_an_expected_version(self, mgr: SessionManager, operation: str) -> None:
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
    def test_delete(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
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

    def test_writes_to_a_deleted_session_are_not_found(self, mgr: SessionManager, clock: ManualClock) -> None:
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

    def test_unknown_session(self, mgr: SessionManager) -> None:
        missing = UUID(int=12345)
        calls: list[Callable[[], object]] = [lambda: mgr.get(missing), lambda: mgr.history(missing),
                     lambda: mgr.start(missing, performer_id="u"), lambda: mgr.delete(missing, performer_id="u"),
                     lambda: mgr.expire(missing)]
        for call in calls:
            with pytest.raises(SessionNotFound) as info:
                call()
            assert info.value.session_id == missing
            assert isinstance(info.value, LookupError)
        assert mgr.get_active(missing) is None

    def test_string_ids_are_accepted(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1")
        assert mgr.get(str(s.id)) == s
        assert mgr.start(str(s.id), performer_id="u1").status is SessionStatus.IN_PROGRESS
        assert len(mgr.history(str(s.id))) == 2
