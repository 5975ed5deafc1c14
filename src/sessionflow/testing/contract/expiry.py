"""Deadlines: lazy expiry on reads, ``expire``, ``expire_sessions``, touch, sliding expiry and the lifetime cap."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import pytest

from sessionflow import EventType, InvalidInput, InvalidTransition, Session, SessionManager, SessionStatus, replay
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

MS = timedelta(milliseconds=1)


def expired_events(mgr: SessionManager, sid: UUID) -> list[tuple[str, str]]:
    return [(e.performer_id, str(e.source_state) if e.source_state else "")
            for e in mgr.history(sid) if e.event is EventType.EXPIRED]


class TestExpiry(ContractSuite):
    """Deadlines and expiry."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10))

    # ---------------------------------------------------------------- lazy expiry on reads

    @pytest.mark.parametrize("state", ["pending", "in_progress"])
    def test_get_expires_an_overdue_session_once(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=30))
        if state == "in_progress":
            s = mgr.start(s.id, performer_id="u1")
        clock.advance(timedelta(seconds=30) - MS)
        assert mgr.get(s.id).status is SessionStatus(state)
        assert mgr.get_active(s.id) is not None
        assert expired_events(mgr, s.id) == []
        clock.advance(MS)  # exactly at the deadline: due
        seen = mgr.get(s.id)
        assert seen.status is SessionStatus.EXPIRED
        assert seen.closed_by == "system"
        assert seen.closed_at == clock.now()
        assert seen.version == s.version + 1
        for _ in range(3):
            assert mgr.get(s.id) == seen
            assert mgr.get_active(s.id) is None
        mgr.list()
        mgr.expire_sessions()
        assert expired_events(mgr, s.id) == [("system", state)]
        last = mgr.history(s.id)[-1]
        assert (last.event, last.target_state, last.timestamp) == (EventType.EXPIRED, SessionStatus.EXPIRED,
                                                                    clock.now())
        assert replay(mgr.history(s.id)) == seen

    def test_get_active(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(minutes=1))
        assert mgr.get_active(s.id) == s
        started = mgr.start(s.id, performer_id="u1")
        assert mgr.get_active(s.id) == started
        done = mgr.create(performer_id="u1")
        mgr.fail(done.id, reason="r", performer_id="u1")
        assert mgr.get_active(done.id) is None
        clock.advance(timedelta(minutes=1))
        assert mgr.get_active(s.id) is None
        assert mgr.get(s.id).status is SessionStatus.EXPIRED
        assert len(expired_events(mgr, s.id)) == 1

    def test_list_never_shows_an_overdue_session_as_live(self, mgr: SessionManager, clock: ManualClock) -> None:
        short = [mgr.create(performer_id="u1", ttl=timedelta(seconds=10)) for _ in range(3)]
        mgr.start(short[0].id, performer_id="u1")
        long = mgr.create(performer_id="u1", ttl=timedelta(hours=1))
        clock.advance(timedelta(seconds=10))
        assert [s.id for s in mgr.list(status=["pending", "in_progress"])] == [long.id]
        assert [s.id for s in mgr.list(status="in_progress")] == []
        listed = {s.id: s.status for s in mgr.list()}
        assert listed == {**{s.id: SessionStatus.EXPIRED for s in short}, long.id: SessionStatus.PENDING}
        assert {s.id for s in mgr.list(status="expired")} == {s.id for s in short}
        for s in short:
            assert len(expired_events(mgr, s.id)) == 1
        assert expired_events(mgr, long.id) == []

    def test_writes_to_an_overdue_session_see_it_expired(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", file_paths=["a.py"], ttl=timedelta(seconds=5))
        mgr.start(s.id, performer_id="u1")
        clock.advance(timedelta(seconds=6))
        with pytest.raises(InvalidTransition) as info:
            mgr.touch(s.id, performer_id="u1")
        assert info.value.state == "expired"
        with pytest.raises(InvalidTransition):
            mgr.record_file(s.id, "a.py", performer_id="u1")
        with pytest.raises(InvalidTransition):
            mgr.fail(s.id, reason="late", performer_id="u1")
        assert [str(e.event) for e in mgr.history(s.id)] == ["created", "started", "expired"]

    # ---------------------------------------------------------------- expire(id)

    def test_expire_before_the_deadline_is_refused(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=30))
        clock.advance(timedelta(seconds=30) - MS)
        with pytest.raises(InvalidTransition) as info:
            mgr.expire(s.id)
        assert (info.value.session_id, info.value.state, info.value.event) == (s.id, "pending", "expire")
        assert "deadline_passed" in info.value.reason
        assert mgr.history(s.id)[-1].event is EventType.CREATED
        assert mgr.get(s.id) == s

    @pytest.mark.parametrize("state", ["pending", "in_progress"])
    def test_expire_when_due(self, mgr: SessionManager, clock: ManualClock, state: str) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=30))
        if state == "in_progress":
            mgr.start(s.id, performer_id="u1")
        clock.advance(timedelta(seconds=30))
        expired = mgr.expire(s.id)
        assert expired.status is SessionStatus.EXPIRED
        assert expired.closed_by == "system"
        assert expired_events(mgr, s.id) == [("system", state)]
        with pytest.raises(InvalidTransition) as info:
            mgr.expire(s.id)
        assert info.value.state == "expired"
        assert len(expired_events(mgr, s.id)) == 1

    @pytest.mark.parametrize("terminal", ["completed", "failed"])
    def test_expire_refused_once_terminal(self, mgr: SessionManager, clock: ManualClock, terminal: str) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=30))
        if terminal == "completed":
            mgr.start(s.id, performer_id="u1")
            mgr.complete(s.id, performer_id="u1")
        else:
            mgr.fail(s.id, reason="r", performer_id="u1")
        before = mgr.history(s.id)
        clock.advance(timedelta(hours=1))
        with pytest.raises(InvalidTransition) as info:
            mgr.expire(s.id)
        assert info.value.state == terminal
        assert mgr.expire_sessions() == 0
        assert mgr.history(s.id) == before
        assert mgr.get(s.id).status is SessionStatus(terminal)

    # ---------------------------------------------------------------- expire_sessions

    def test_expire_sessions_counts_and_expires_each_once(self, mgr: SessionManager, clock: ManualClock) -> None:
        due = [mgr.create(performer_id="u1", ttl=timedelta(seconds=s)) for s in (10, 20, 30)]
        mgr.start(due[1].id, performer_id="u1")
        later = mgr.create(performer_id="u1", ttl=timedelta(seconds=31))
        finished = mgr.create(performer_id="u1", ttl=timedelta(seconds=10))
        mgr.fail(finished.id, reason="r", performer_id="u1")
        deleted = mgr.create(performer_id="u1", ttl=timedelta(seconds=10))
        mgr.delete(deleted.id, performer_id="u1")
        assert mgr.expire_sessions() == 0
        clock.advance(timedelta(seconds=30))
        assert mgr.expire_sessions() == 3
        assert mgr.expire_sessions() == 0
        for s in due:
            assert mgr.get(s.id).status is SessionStatus.EXPIRED
            assert len(expired_events(mgr, s.id)) == 1
            assert replay(mgr.history(s.id)) == mgr.get(s.id)
        assert mgr.get(later.id).status is SessionStatus.PENDING
        assert mgr.get(finished.id).status is SessionStatus.FAILED
        assert [e.event for e in mgr.history(deleted.id)] == [EventType.CREATED, EventType.DELETED]
        clock.advance(timedelta(seconds=1))
        assert mgr.expire_sessions() == 1
        assert mgr.get(later.id).status is SessionStatus.EXPIRED

    def test_expire_sessions_in_small_batches(self, mgr: SessionManager, clock: ManualClock) -> None:
        sessions = [mgr.create(performer_id="u1", ttl=timedelta(seconds=1)) for _ in range(7)]
        clock.advance(timedelta(seconds=1))
        assert mgr.expire_sessions(batch_size=2) == 7
        assert all(len(expired_events(mgr, s.id)) == 1 for s in sessions)
        assert mgr.count("expired") == 7

    def test_expire_sessions_arguments(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=10))
        with pytest.raises(InvalidInput):
            mgr.expire_sessions(batch_size=0)
        with pytest.raises(InvalidInput):
            mgr.expire_sessions(now=datetime(2030, 1, 1, 13, 0))  # naive
        assert mgr.expire_sessions(now=clock.now() + timedelta(seconds=10)) == 1
        assert mgr.get(s.id).status is SessionStatus.EXPIRED

    def test_next_deadline(self, mgr: SessionManager, clock: ManualClock) -> None:
        assert mgr.next_deadline() is None
        a = mgr.create(performer_id="u1", ttl=timedelta(seconds=50))
        b = mgr.create(performer_id="u1", ttl=timedelta(seconds=20))
        assert mgr.next_deadline() == b.expires_at
        mgr.fail(b.id, reason="r", performer_id="u1")
        assert mgr.next_deadline() == a.expires_at
        clock.advance(timedelta(seconds=40))
        touched = mgr.touch(a.id, performer_id="u1")
        assert mgr.next_deadline() == touched.expires_at
        mgr.delete(a.id, performer_id="u1")
        assert mgr.next_deadline() is None

    # ---------------------------------------------------------------- deadline policies

    def test_sliding_expiry_moves_the_deadline_on_every_write(self, make_manager: MakeManager,
                                                              clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, sliding=True)
        ttl = timedelta(seconds=60)
        s = mgr.create(performer_id="u1", file_paths=["a.py"], ttl=ttl)
        writes: list[Callable[[], Session]] = [
            lambda: mgr.start(s.id, performer_id="u1"),
            lambda: mgr.update(s.id, current_file="a.py", performer_id="u1"),
            lambda: mgr.add_note(s.id, file_path="a.py", status="s", performer_id="u1"),
            lambda: mgr.record_file(s.id, "a.py", performer_id="u1"),
            lambda: mgr.touch(s.id, performer_id="u1"),
        ]
        for write in writes:
            clock.advance(timedelta(seconds=45))  # each step alone would pass a deadline that did not slide
            assert write().expires_at == clock.now() + ttl
        clock.advance(timedelta(seconds=45))
        done = mgr.complete(s.id, performer_id="u1")
        assert done.status is SessionStatus.COMPLETED
        assert done.expires_at == clock.now() - timedelta(seconds=45) + ttl  # a terminal event does not slide it

    def test_without_sliding_only_touch_moves_the_deadline(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", file_paths=["a.py"], ttl=timedelta(seconds=60))
        clock.advance(timedelta(seconds=10))
        assert mgr.start(s.id, performer_id="u1").expires_at == s.expires_at
        assert mgr.record_file(s.id, "a.py", performer_id="u1").expires_at == s.expires_at
        assert mgr.touch(s.id, performer_id="u1").expires_at == clock.now() + timedelta(seconds=60)

    def test_max_lifetime_caps_the_deadline(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, max_lifetime=timedelta(minutes=15))
        start = clock.now()
        s = mgr.create(performer_id="u1", ttl=timedelta(minutes=10))
        assert s.expires_at == start + timedelta(minutes=10)
        assert s.max_expires_at == start + timedelta(minutes=15)
        clock.advance(timedelta(minutes=8))
        assert mgr.touch(s.id, performer_id="u1").expires_at == start + timedelta(minutes=15)
        long = mgr.create(performer_id="u1", ttl=timedelta(hours=1))
        assert long.expires_at == clock.now() + timedelta(minutes=15)
        clock.set(start + timedelta(minutes=15))
        assert mgr.get(s.id).status is SessionStatus.EXPIRED
