"""Batches: ``create_many`` and ``send_many`` commit many changes at once, each decided and validated as alone;
one refused item refuses the batch (``BatchRejected`` naming it) and nothing of it is written. The store's own
``append_many`` is atomic too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from sessionflow import (
    ActiveSessionExists,
    BatchRejected,
    Change,
    ConcurrencyConflict,
    EventType,
    InvalidInput,
    InvalidTransition,
    SendItem,
    SessionEvent,
    SessionManager,
    SessionNotFound,
    SessionStatus,
    apply,
    replay,
)
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager, positions_of


def snapshot(mgr: SessionManager) -> tuple[int, int, list[Any]]:
    """What a refused batch must leave unchanged: the sessions, the feed, every projection."""
    sessions = mgr.list(limit=1000)
    return mgr.count(), mgr.last_position(), [(s.id, s.version, s.status) for s in sessions]


def _creation_like(event: SessionEvent) -> Change:
    """A new session's creation, copied from ``event`` (another session's ``created`` event)."""
    copy = event.evolve(session_id=uuid4(), record_id=uuid4(), position=None)
    return Change(apply(None, copy), (copy,), 0)


class TestBatches(ContractSuite):
    """create_many, send_many and the store's append_many."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10))

    def test_create_many_creates_each_item_in_order(self, mgr: SessionManager) -> None:
        created = mgr.create_many([{"user_id": "u1", "file_paths": ["a.py"]}, {},
                                   {"workspace_id": "w", "metadata": {"k": 1}, "ttl": timedelta(minutes=5)}],
                                  performer_id="svc")
        assert [s.version for s in created] == [1, 1, 1]
        assert created[0].user_id == "u1"
        assert created[0].progress.total_files == 1
        assert created[2].workspace_id == "w"
        assert created[2].metadata == {"k": 1}
        assert created[2].expires_at == created[2].created_at + timedelta(minutes=5)
        for session in created:
            assert mgr.get(session.id) == session
            history = mgr.history(session.id)
            assert [e.event for e in history] == [EventType.CREATED]
            assert history[0].performer_id == "svc"
            assert replay(history) == session
        positions = positions_of([mgr.history(s.id)[0] for s in created])
        assert positions == sorted(positions)
        assert len(set(positions)) == 3
        assert mgr.create_many([], performer_id="svc") == []
        assert mgr.count() == 3

    @pytest.mark.parametrize("bad", [
        {"metadata": {"k": object()}},
        {"ttl": timedelta(seconds=-1)},
        {"user_id": ""},
        {"colour": "red"},
        "not a mapping",
    ])
    def test_create_many_one_bad_item_writes_nothing(self, mgr: SessionManager, bad: Any) -> None:
        mgr.create(performer_id="svc")
        before = snapshot(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.create_many([{}, {"user_id": "u2"}, bad, {}], performer_id="svc")
        assert caught.value.index == 2
        assert isinstance(caught.value.error, InvalidInput)
        assert caught.value.__cause__ is caught.value.error
        assert "item 2" in str(caught.value)
        assert caught.value.to_dict()["item_error"]["code"] == "invalid_input"
        assert snapshot(mgr) == before

    def test_batch_arguments_are_validated(self, mgr: SessionManager) -> None:
        with pytest.raises(InvalidInput):
            mgr.create_many([{}], performer_id="")
        with pytest.raises(InvalidInput):
            mgr.create_many({"user_id": "u1"}, performer_id="svc")  # type: ignore[dict-item]
        with pytest.raises(InvalidInput):
            mgr.send_many("abc", performer_id="svc")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            mgr.create_many(({} for _ in range(10_001)), performer_id="svc")
        assert mgr.count() == 0

    def test_send_many_decides_each_item_in_order(self, mgr: SessionManager) -> None:
        a, b, c = mgr.create_many([{}, {}, {}], performer_id="svc")
        results = mgr.send_many([(a.id, "start"), SendItem(b.id, "start"), (a.id, "complete"),
                                 (str(c.id), "fail", {"reason": "no input"}), (b.id, "complete", None, 2)],
                                performer_id="svc")
        assert [(s.id, s.status, s.version) for s in results] == [
            (a.id, SessionStatus.IN_PROGRESS, 2), (b.id, SessionStatus.IN_PROGRESS, 2),
            (a.id, SessionStatus.COMPLETED, 3), (c.id, SessionStatus.FAILED, 2), (b.id, SessionStatus.COMPLETED, 3)]
        assert mgr.get(a.id) == results[2]
        assert mgr.get(b.id) == results[4]
        assert mgr.get(c.id) == results[3]
        assert [e.event for e in mgr.history(a.id)] == [EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
        assert mgr.history(c.id)[-1].payload["reason"] == "no input"
        assert mgr.send_many([], performer_id="svc") == []

    @pytest.mark.parametrize(("item", "error"), [
        (lambda s: (s.id, "complete"), InvalidTransition),  # pending: cannot complete
        (lambda s: (uuid4(), "start"), SessionNotFound),
        (lambda s: (s.id, "start", None, 7), ConcurrencyConflict),
        (lambda s: (s.id, "fail", {"reason": ""}), InvalidTransition),  # the guard refuses an empty reason
        (lambda s: (s.id, "no-such-event"), InvalidTransition),
        (lambda s: (s.id, "start", {"now": 1}), InvalidInput),
        (lambda s: ("not-an-id", "start"), InvalidInput),
        (lambda s: (s.id,), InvalidInput),
        (lambda s: (s.id, "touch"), InvalidInput),
    ])
    def test_send_many_one_refused_item_writes_nothing(self, mgr: SessionManager, item: Any,
                                                       error: type[Exception]) -> None:
        a, b = mgr.create_many([{}, {}], performer_id="svc")
        before = snapshot(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(a.id, "start"), item(b), (a.id, "complete")], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, error)
        assert snapshot(mgr) == before
        assert [e.event for e in mgr.history(a.id)] == [EventType.CREATED]

    def test_a_later_item_is_decided_on_what_the_earlier_one_left(self, mgr: SessionManager) -> None:
        a = mgr.create(performer_id="svc")
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(a.id, "start"), (a.id, "start")], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, InvalidTransition)
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(a.id, "start", None, 1), (a.id, "complete", None, 1)], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, ConcurrencyConflict)
        assert mgr.get(a.id).version == 1

    def test_single_active_per_user_holds_inside_a_batch(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, single_active_per_user=True)
        a, b, c, other = mgr.create_many([{"user_id": "u1"}, {"user_id": "u1"}, {"user_id": "u1"}, {"user_id": "u2"}],
                                         performer_id="svc")
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(other.id, "start"), (a.id, "start"), (b.id, "start")], performer_id="svc")
        assert caught.value.index == 2
        assert isinstance(caught.value.error, ActiveSessionExists)
        assert caught.value.error.active_session_id == a.id
        assert mgr.list(status="in_progress") == []
        # one finishing and the next starting in one batch is allowed; a start beside a stored one is not
        mgr.send_many([(a.id, "start"), (other.id, "start")], performer_id="svc")
        mgr.send_many([(a.id, "complete"), (b.id, "start")], performer_id="svc")
        assert mgr.get(b.id).status is SessionStatus.IN_PROGRESS
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(c.id, "start")], performer_id="svc")
        assert caught.value.index == 0
        assert isinstance(caught.value.error, ActiveSessionExists)
        assert caught.value.error.active_session_id == b.id

    def test_an_overdue_session_in_a_batch_writes_nothing(self, mgr: SessionManager, clock: ManualClock) -> None:
        a, b = mgr.create_many([{}, {"ttl": timedelta(hours=2)}], performer_id="svc")
        clock.advance(timedelta(minutes=11))  # a is overdue, b is not
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(b.id, "start"), (a.id, "start")], performer_id="svc")
        assert caught.value.index == 1
        assert isinstance(caught.value.error, InvalidTransition)
        assert len(mgr.history(a.id)) == 1
        assert len(mgr.history(b.id)) == 1
        assert mgr.get(a.id).status is SessionStatus.EXPIRED  # the read expires it, as always

    def test_owner_policy_holds_for_each_item(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, enforce_owner=True)
        mine, theirs = mgr.create_many([{"user_id": "u1"}, {"user_id": "u2"}], performer_id="svc")
        with pytest.raises(BatchRejected) as caught:
            mgr.send_many([(mine.id, "start"), (theirs.id, "start")], performer_id="u1")
        assert caught.value.index == 1
        assert caught.value.error.code == "session_user_mismatch"
        assert mgr.send_many([(mine.id, "start")], performer_id="u1")[0].status is SessionStatus.IN_PROGRESS

    def test_subscribers_hear_a_batch_after_its_commit(self, mgr: SessionManager) -> None:
        heard: list[SessionEvent] = []
        mgr.subscribe(heard.append)
        a, b = mgr.create_many([{}, {}], performer_id="svc")
        mgr.send_many([(a.id, "start"), (b.id, "start"), (a.id, "complete")], performer_id="svc")
        assert [(e.session_id, e.version) for e in heard] == [(a.id, 1), (b.id, 1), (a.id, 2), (b.id, 2), (a.id, 3)]
        with pytest.raises(BatchRejected):
            mgr.send_many([(b.id, "complete"), (a.id, "start")], performer_id="svc")
        assert len(heard) == 5

    def test_store_append_many_is_atomic(self, mgr: SessionManager) -> None:
        existing = mgr.create(performer_id="svc")
        created = mgr.history(existing.id)[0]
        fresh = _creation_like(created)
        again = created.evolve(record_id=uuid4(), position=None)  # a second creation of an existing session
        before = snapshot(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.store.append_many([fresh, Change(apply(None, again), (again,), 0)])
        assert caught.value.index == 1
        assert isinstance(caught.value.error, ConcurrencyConflict)
        assert mgr.store.get(fresh.session.id) is None
        assert snapshot(mgr) == before
        mgr.store.append_many([fresh, _creation_like(created)])
        assert mgr.get(fresh.session.id) == fresh.session
        assert mgr.count() == 3

    def test_store_append_many_refuses_a_stale_update(self, mgr: SessionManager) -> None:
        session = mgr.create(performer_id="svc")
        started = mgr.start(session.id, performer_id="svc")
        first, second = mgr.history(session.id)
        replayed = second.evolve(record_id=uuid4(), position=None)  # version 2 again, on version 1: stale
        fresh = _creation_like(first)
        before = snapshot(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.store.append_many([fresh, Change(apply(session, replayed), (replayed,), 1, previous=session)])
        assert caught.value.index == 1
        assert isinstance(caught.value.error, ConcurrencyConflict)
        assert caught.value.error.actual_version in (2, None)
        assert snapshot(mgr) == before
        assert mgr.store.get(fresh.session.id) is None
        assert mgr.get(session.id) == started

    def test_store_append_many_refuses_a_stale_update_among_good_ones(self, mgr: SessionManager) -> None:
        stale_target = mgr.create(performer_id="svc")
        mgr.start(stale_target.id, performer_id="svc")
        pending = mgr.create(performer_id="svc")
        started = mgr.history(stale_target.id)[1]
        # the same kind of change for two sessions: one applies, the other is a replay on a version that moved
        good = started.evolve(session_id=pending.id, record_id=uuid4(), position=None)
        stale = started.evolve(record_id=uuid4(), position=None)
        before = snapshot(mgr)
        with pytest.raises(BatchRejected) as caught:
            mgr.store.append_many([Change(apply(pending, good), (good,), 1, previous=pending),
                                   Change(apply(stale_target, stale), (stale,), 1, previous=stale_target)])
        assert caught.value.index == 1
        assert isinstance(caught.value.error, ConcurrencyConflict)
        assert snapshot(mgr) == before
        assert mgr.get(pending.id).version == 1
