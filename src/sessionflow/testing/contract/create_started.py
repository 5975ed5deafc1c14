"""``create(..., start=True)``: a session created and started in ONE change — both events decided before
anything is written, appended in one transaction in which the store checks ``single_active_per_user``. A
refusal or a failure leaves no session, no event, no feed position and calls no subscriber."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import (
    ActiveSessionExists,
    BatchRejected,
    EventType,
    InvalidInput,
    SessionEvent,
    SessionManager,
    SessionStatus,
    SessionUserMismatch,
    StoreError,
)
from sessionflow.testing import ManualClock
from sessionflow.testing._managers import StoreFactory
from sessionflow.testing.contract._support import ContractSuite, MakeManager


def snapshot(mgr: SessionManager) -> tuple[int, int, list[Any]]:
    """What a refused start must leave unchanged: the sessions, the feed, every projection."""
    return mgr.count(), mgr.last_position(), [(s.id, s.version, s.status) for s in mgr.list(limit=1000)]


class _FailingAppends:
    """A store whose appends fail (the database went away before the commit); everything else is the store's."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[int] = []

    def append(self, change: Any) -> None:
        self.calls.append(len(change.events))
        raise StoreError("the database went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class TestCreateStarted(ContractSuite):
    """create(..., start=True)."""

    @pytest.fixture
    def single(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, single_active_per_user=True)

    def test_created_and_started_in_one_commit(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        heard: list[SessionEvent] = []
        mgr.subscribe(heard.append)
        before = mgr.last_position()
        session = mgr.create(user_id="u1", performer_id="u1", start=True, metadata={"k": 1})
        assert session.status == SessionStatus.IN_PROGRESS
        assert session.version == 2
        assert mgr.get(session.id) == session
        history = mgr.history(session.id)
        assert [e.event for e in history] == [EventType.CREATED, EventType.STARTED]
        first, second = (e.position for e in history)
        assert first is not None  # one commit: consecutive positions
        assert second == first + 1
        assert first > before
        assert history[0].timestamp == history[1].timestamp
        assert [e.event for e in heard] == [EventType.CREATED, EventType.STARTED]

    def test_a_refused_start_creates_nothing_and_names_the_active_session(self, single: SessionManager) -> None:
        active = single.create(user_id="u1", performer_id="u1", start=True)
        heard: list[SessionEvent] = []
        single.subscribe(heard.append)
        before = snapshot(single)
        with pytest.raises(ActiveSessionExists) as caught:
            single.create(user_id="u1", performer_id="u1", start=True)
        assert caught.value.session_id is None  # no made-up id: nothing was created
        assert caught.value.active_session_id == active.id
        assert caught.value.to_dict()["active_session_id"] == str(active.id)
        assert snapshot(single) == before
        assert heard == []
        # Another user is not held back.
        assert single.create(user_id="u2", performer_id="u2", start=True).status == SessionStatus.IN_PROGRESS

    def test_the_owner_rule_is_decided_before_anything_is_written(self, make_manager: MakeManager,
                                                                  clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, enforce_owner=True)
        before = snapshot(mgr)
        with pytest.raises(SessionUserMismatch):
            mgr.create(user_id="u1", performer_id="someone-else", start=True)
        assert snapshot(mgr) == before
        assert mgr.create(user_id="u1", performer_id="u1", start=True).version == 2

    def test_start_must_be_a_bool(self, make_manager: MakeManager) -> None:
        mgr = make_manager()
        with pytest.raises(InvalidInput) as caught:
            mgr.create(performer_id="p", start="yes")  # type: ignore[arg-type]
        assert caught.value.field == "start"
        assert mgr.count() == 0

    def test_a_store_failure_leaves_nothing(self, sessionflow_store_factory: StoreFactory, clock: ManualClock) -> None:
        """On the store itself, under synchronous managers (an asyncio facade shares their pipeline)."""
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            failing = _FailingAppends(mgr.store)
            broken = SessionManager(failing, clock=clock, owns_store=False)
            heard: list[SessionEvent] = []
            broken.subscribe(heard.append)
            before = snapshot(mgr)
            with pytest.raises(StoreError):
                broken.create(user_id="u1", performer_id="u1", start=True)
            assert failing.calls == [2]  # ONE append of both events: nothing to clean up after a failure
            assert snapshot(mgr) == before
            assert heard == []

    def test_concurrent_starts_of_one_user_let_exactly_one_through(self, single: SessionManager) -> None:
        results: list[Any] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def start() -> None:
            barrier.wait()
            try:
                outcome: Any = single.create(user_id="u1", performer_id="u1", start=True)
            except ActiveSessionExists as error:
                outcome = error
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=start) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = [r for r in results if not isinstance(r, ActiveSessionExists)]
        assert len(started) == 1, results
        assert all(r.active_session_id == started[0].id for r in results if isinstance(r, ActiveSessionExists))
        assert single.count() == 1
        positions = [e.position for e in single.history(started[0].id)]
        assert single.last_position() == positions[-1]  # no event of a refused start anywhere
        assert [e.session_id for e in single.events(after=0, limit=100)] == [started[0].id] * 2

    def test_create_many_items_may_start(self, single: SessionManager) -> None:
        made = single.create_many([{"user_id": "a", "start": True}, {"user_id": "b"}, {"user_id": "c", "start": True}],
                                  performer_id="svc")
        assert [s.status for s in made] == [SessionStatus.IN_PROGRESS, SessionStatus.PENDING, SessionStatus.IN_PROGRESS]
        before = snapshot(single)
        with pytest.raises(BatchRejected) as caught:
            single.create_many([{"user_id": "d", "start": True}, {"user_id": "a", "start": True}], performer_id="svc")
        assert caught.value.index == 1
        error = caught.value.error
        assert isinstance(error, ActiveSessionExists)
        assert error.session_id is None
        assert error.active_session_id == made[0].id
        assert snapshot(single) == before
        with pytest.raises(BatchRejected) as caught:  # two starts of one user in one batch
            single.create_many([{"user_id": "e", "start": True}, {"user_id": "e", "start": True}], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, ActiveSessionExists)
        assert snapshot(single) == before
        with pytest.raises(BatchRejected) as caught:
            single.create_many([{"start": 1}], performer_id="svc")
        assert isinstance(caught.value.error, InvalidInput)

    def test_a_short_ttl_start_is_decided_at_creation(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        session = mgr.create(performer_id="p", ttl=timedelta(seconds=2), start=True)
        assert session.status == SessionStatus.IN_PROGRESS
        assert session.expires_at is not None
        assert session.expires_at > clock.now()
