"""Subscribers: called after the commit with each event in order, isolated from each other's failures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from sessionflow import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    SessionEvent,
    SessionManager,
    SessionStatus,
)
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager


def drive(mgr: SessionManager) -> list[SessionEvent]:
    """One session through several writes; returns its history."""
    s = mgr.create(performer_id="u1", file_paths=["a.py"])
    mgr.start(s.id, performer_id="u1")
    mgr.update(s.id, current_file="a.py", metadata={"k": 1}, performer_id="u1")
    mgr.record_file(s.id, "a.py", performer_id="u1")
    mgr.add_note(s.id, file_path="a.py", status="stored", performer_id="u1")
    mgr.complete(s.id, performer_id="u1")
    return mgr.history(s.id)


class TestSubscribers(ContractSuite):
    """Subscribers."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10))

    def test_each_committed_event_in_order(self, mgr: SessionManager) -> None:
        received: list[SessionEvent] = []
        mgr.subscribe(received.append)
        history = drive(mgr)
        assert received == history
        assert [e.version for e in received] == list(range(1, 7))

    def test_update_with_fields_and_status_delivers_both_events(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1")
        received: list[SessionEvent] = []
        mgr.subscribe(received.append)
        mgr.update(s.id, metadata={"a": 1}, status="in_progress", performer_id="u1")
        assert [(str(e.event), e.version) for e in received] == [("updated", 2), ("started", 3)]

    def test_subscribers_are_called_after_the_commit(self, mgr: SessionManager) -> None:
        seen: list[tuple[int, int, str]] = []

        def check(event: SessionEvent) -> None:
            # The event is already stored and the projection already shows it.
            stored = mgr.store.history(event.session_id)
            assert stored[-1] == event
            projected = mgr.store.get(event.session_id)
            assert projected is not None
            seen.append((event.version, projected.version, projected.status))

        mgr.subscribe(check)
        history = drive(mgr)
        assert seen == [(e.version, e.version, e.target_state) for e in history]

    def test_subscribers_are_called_in_subscription_order(self, mgr: SessionManager) -> None:
        calls: list[tuple[str, int]] = []

        def subscriber(name: str) -> Callable[[SessionEvent], None]:
            return lambda event: calls.append((name, event.version))

        for name in ("first", "second", "third"):
            mgr.subscribe(subscriber(name))
        s = mgr.create(performer_id="u1")
        mgr.start(s.id, performer_id="u1")
        assert calls == [("first", 1), ("second", 1), ("third", 1), ("first", 2), ("second", 2), ("third", 2)]

    def test_a_failing_subscriber_is_logged_and_isolated(self, mgr: SessionManager,
                                                         caplog: pytest.LogCaptureFixture) -> None:
        before: list[int] = []
        after: list[int] = []
        mgr.subscribe(lambda e: before.append(e.version))

        def broken(event: SessionEvent) -> None:
            raise RuntimeError(f"subscriber broke on v{event.version}")

        mgr.subscribe(broken)
        mgr.subscribe(lambda e: after.append(e.version))
        with caplog.at_level(logging.ERROR, logger="sessionflow"):
            s = mgr.create(performer_id="u1")
            started = mgr.start(s.id, performer_id="u1")
        assert started.status is SessionStatus.IN_PROGRESS
        assert mgr.get(s.id) == started
        assert [str(e.event) for e in mgr.history(s.id)] == ["created", "started"]
        assert before == after == [1, 2]
        failures = [r for r in caplog.records if r.name == "sessionflow" and r.exc_info]
        assert len(failures) == 2
        assert "subscriber broke on v1" in str(failures[0].exc_info[1])  # type: ignore[index]
        assert str(s.id) in failures[0].getMessage()

    def test_unsubscribe(self, mgr: SessionManager) -> None:
        kept: list[int] = []
        dropped: list[int] = []
        mgr.subscribe(lambda e: kept.append(e.version))
        unsubscribe = mgr.subscribe(lambda e: dropped.append(e.version))
        s = mgr.create(performer_id="u1")
        unsubscribe()
        unsubscribe()  # idempotent
        mgr.start(s.id, performer_id="u1")
        assert kept == [1, 2]
        assert dropped == [1]

    def test_the_same_callback_twice_is_called_twice_and_unsubscribed_once(self, mgr: SessionManager) -> None:
        received: list[int] = []

        def callback(event: SessionEvent) -> None:
            received.append(event.version)

        mgr.subscribe(callback)
        mgr.subscribe(callback)
        s = mgr.create(performer_id="u1")
        assert received == [1, 1]
        assert mgr.get(s.id).version == 1

    def test_refused_writes_notify_nobody(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u1", file_paths=["a.py"])
        received: list[SessionEvent] = []
        mgr.subscribe(received.append)
        with pytest.raises(InvalidTransition):
            mgr.complete(s.id, performer_id="u1")
        with pytest.raises(InvalidInput):
            mgr.record_file(s.id, "nope.py", performer_id="u1")
        assert received == []

    def test_expiry_is_delivered_too(self, mgr: SessionManager, clock: ManualClock) -> None:
        lazy = mgr.create(performer_id="u1", ttl=timedelta(seconds=5))
        swept = mgr.create(performer_id="u1", ttl=timedelta(seconds=5))
        received: list[SessionEvent] = []
        mgr.subscribe(received.append)
        clock.advance(timedelta(seconds=5))
        mgr.get(lazy.id)
        assert [(e.session_id, str(e.event), e.performer_id) for e in received] == [(lazy.id, "expired", "system")]
        assert mgr.expire_sessions() == 1
        assert [(e.session_id, str(e.event)) for e in received[1:]] == [(swept.id, "expired")]

    def test_a_subscriber_may_write_through_the_manager(self, mgr: SessionManager) -> None:
        """A subscriber that reacts by writing sees its own write delivered after the current one."""
        order: list[tuple[str, int]] = []

        def starter(event: SessionEvent) -> None:
            order.append((str(event.event), event.version))
            if str(event.event) == "created":
                mgr.start(event.session_id, performer_id="reactor")

        mgr.subscribe(starter)
        s = mgr.create(performer_id="u1")
        assert order == [("created", 1), ("started", 2)]
        assert mgr.get(s.id).status is SessionStatus.IN_PROGRESS

    def test_subscribe_needs_a_callable(self, mgr: SessionManager) -> None:
        with pytest.raises(InvalidInput):
            mgr.subscribe("not callable")  # type: ignore[arg-type]

    def test_a_subscriber_joining_during_concurrent_writes_sees_each_session_in_order(
            self, mgr: SessionManager) -> None:
        """Writers on shared sessions while a subscriber joins: for each session it gets a contiguous run of
        versions, in order, ending with the last one (what was committed before it joined may be missing)."""
        import threading

        sessions = [mgr.create(performer_id="u").id for _ in range(4)]
        seen: dict[object, list[int]] = {sid: [] for sid in sessions}
        lock = threading.Lock()
        joined = threading.Event()

        def record(event: SessionEvent) -> None:
            with lock:
                seen[event.session_id].append(event.version)

        errors: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                write(k)
            except BaseException as error:  # reported below
                errors.append(error)

        def write(k: int) -> None:
            for i in range(60):
                if k == 0 and i == 20:
                    mgr.subscribe(record)
                    joined.set()
                sid = sessions[(k + i) % len(sessions)]
                while True:
                    try:
                        mgr.touch(sid, performer_id="u")
                        break
                    except ConcurrencyConflict:  # another writer got there first: the loser tries again
                        continue

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert joined.is_set()
        for sid in sessions:
            versions = seen[sid]
            last = mgr.get(sid).version
            assert versions, sid
            assert versions == list(range(versions[0], last + 1)), (sid, versions)
