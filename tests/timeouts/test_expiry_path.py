"""The expiry path of the SQL store, as a wake-up of the waker runs it: how many driver calls it makes (each
one gives the GIL away, and in a process with busy threads getting it back may cost a switch interval), the
next deadline it finds without a read of its own, and what it must keep: lifecycle guards, custom lifecycles'
state timeouts, exactly-once when a session changes between the read and the write, no half-written batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from statemachine import State, StateMachine

from sessionflow import EventType, Session, SessionManager, SessionStatus, StoreError, replay
from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore
from sessionflow.adapters.sqlalchemy import postgres as postgres_module
from sessionflow.application.ports import Change
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry, StateTimeout
from sessionflow.domain.replay import apply
from sessionflow.testing import ManualClock
from tests.timeouts.conftest import SharedManagers, wait_for

#: Text a SQL literal must carry intact (the SQLite batch is written as one).
NASTY = "it's \"quoted\"; DROP TABLE sessions; -- \\ é ☃ \u2028 ' ''"


def on_hold(session: Session, **_: Any) -> bool:
    return bool(session.metadata.get("hold"))


class Lease(StateMachine):
    """held → lapsed by a timeout, unless the lease is on hold; held → grace by another one, with its own."""

    held = State(initial=True)
    grace = State()
    lapsed = State(final=True)
    released = State(final=True)

    lapse = held.to(lapsed, unless=on_hold) | grace.to(lapsed)
    extend = held.to(grace)
    release = held.to(released) | grace.to(released)


LEASES = LifecycleDefinition("test-leases", 1, Lease, timeouts={
    "held": StateTimeout("lapse", after=timedelta(minutes=1), args={"note": NASTY}),
    "grace": StateTimeout("lapse", after=timedelta(minutes=30)),
})
GRACE = LifecycleDefinition("test-grace", 1, Lease, timeouts={
    "held": StateTimeout("extend", after=timedelta(minutes=1)),
    "grace": StateTimeout("lapse", after=timedelta(minutes=30)),
})


class DriverCalls(Counter[str]):
    """The calls one store's sweeps make on their driver connection, by name."""


@pytest.fixture
def driver_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[SessionManager], DriverCalls]:
    """``count(manager)``: from now on, count the driver calls of ``manager``'s sweeps. SQLite: every method
    called on the sqlite3 connection; PostgreSQL: every ``PQexec`` round trip (``exec``) and every psycopg
    call that would make others."""

    def count(manager: SessionManager) -> DriverCalls:
        store = manager.store
        assert isinstance(store, SqlAlchemyEventStore)
        calls = DriverCalls()
        if store.dialect == "sqlite":
            original = store._sweep_connection

            class Connection:
                def __init__(self, conn: Any) -> None:
                    self._conn = conn

                def __getattr__(self, name: str) -> Any:
                    value = getattr(self._conn, name)
                    if not callable(value):
                        return value

                    def call(*args: Any, **kwargs: Any) -> Any:
                        calls[name] += 1
                        return value(*args, **kwargs)

                    return call

            class Fairy:
                def __init__(self, fairy: Any) -> None:
                    self.fairy = fairy
                    self.driver_connection = Connection(fairy.driver_connection)

                def close(self) -> None:
                    self.fairy.close()

                def invalidate(self) -> None:
                    self.fairy.invalidate()

            monkeypatch.setattr(store, "_sweep_connection", lambda: Fairy(original()))
        else:
            exec_ = postgres_module._pg_exec

            def counted_exec(*args: Any, **kwargs: Any) -> Any:
                calls["exec"] += 1
                return exec_(*args, **kwargs)

            monkeypatch.setattr(postgres_module, "_pg_exec", counted_exec)
            sweeper = store._connections.sweeper
            assert sweeper is not None, "sweep once before counting: the store keeps its connection then"
            conn = sweeper.driver_connection
            for name in ("execute", "pipeline", "commit", "rollback", "cursor"):
                method = getattr(conn, name)

                def call(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
                    calls[_name] += 1
                    return _method(*args, **kwargs)

                monkeypatch.setattr(conn, name, call)
        return calls

    return count


def test_a_wake_up_makes_two_driver_calls_and_finds_the_next_deadline_with_them(
        sql_url: str, clock: ManualClock, driver_calls: Callable[[SessionManager], DriverCalls]) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager:
        manager.create(performer_id="a", ttl=timedelta(minutes=1))
        soon = manager.create(performer_id="a", ttl=timedelta(minutes=3))
        also = manager.create(performer_id="a", ttl=timedelta(minutes=3))
        later = manager.create(performer_id="a", ttl=timedelta(minutes=10))
        clock.advance(timedelta(minutes=2))
        assert manager.sweep() == (1, soon.expires_at)  # the connection's first write sets it up
        calls = driver_calls(manager)
        clock.advance(timedelta(minutes=2))

        assert manager.sweep() == (2, later.expires_at)
        # SQLite: the claim and the write, one statement each; PostgreSQL: BEGIN + the claim, then the write +
        # COMMIT + which events are there, one round trip each. Nothing else: no BEGIN, COMMIT, pool checkout
        # or reset of their own, no read of the next deadline.
        assert calls == ({"executescript": 2} if manager.store.dialect == "sqlite" else {"exec": 2})
        calls.clear()
        assert manager.sweep() == (0, later.expires_at)
        assert calls == ({"executescript": 1} if manager.store.dialect == "sqlite" else {"exec": 2})
        for sid in (soon.id, also.id):
            assert manager.store.get(sid).status is SessionStatus.EXPIRED  # type: ignore[union-attr]
            assert replay(manager.history(sid)) == manager.store.get(sid)
        clock.advance(timedelta(minutes=10))
        assert manager.sweep() == (1, None)
        assert manager.verify() == []


def test_the_waker_rearms_at_the_deadline_its_sweep_found_without_reading_the_store(
        shared_managers: SharedManagers) -> None:
    from tests.timeouts.test_waker import behind, expiries, started

    sweeper = shared_managers()
    # The writers below are other stores on the same database: without this, the change watcher would (rightly)
    # make the waker read the next deadline after their commits, or once when it starts listening.
    sweeper._new_watcher = lambda: None  # type: ignore[method-assign]
    seen = expiries(sweeper)
    waker = started(sweeper)
    reads = Counter[str]()
    store = sweeper.store
    original = store.next_deadline

    def counted() -> Any:
        reads["next_deadline"] += 1
        return original()

    store.next_deadline = counted  # type: ignore[method-assign]
    writer = shared_managers(clock=behind(0.1), waker=waker)
    first = writer.create(performer_id="w", ttl=timedelta(seconds=1))
    second = shared_managers(clock=behind(0.3), waker=waker).create(performer_id="w", ttl=timedelta(seconds=1))
    far = writer.create(performer_id="w", ttl=timedelta(hours=1))
    assert wait_for(lambda: {first.id, second.id} <= set(seen), timeout=5)
    assert wait_for(lambda: waker.armed_at == far.expires_at, timeout=2)
    if not isinstance(store, SqlAlchemyEventStore):
        return  # the in-memory store has no expire_due_next: the waker reads its (free) next deadline
    assert reads["next_deadline"] == 0
    assert waker.sweeps >= 3  # the catch-up sweep and at least one per deadline


def test_guards_apply_and_refused_or_rescheduled_sessions_give_the_next_deadline(sql_url: str,
                                                                                  clock: ManualClock) -> None:
    registry = LifecycleRegistry()
    registry.register(GRACE)
    with SessionManager.open(sql_url, clock=clock, lifecycle=LEASES, registry=registry) as manager:
        free = manager.create(performer_id="a")
        held = manager.create(performer_id="a", metadata={"hold": True})
        graced = manager.create(performer_id="a", lifecycle="test-grace")
        delivered: list[Any] = []
        manager.subscribe(delivered.append)
        clock.advance(timedelta(minutes=2))

        result = manager.sweep()
        # ``free`` lapsed; ``held`` was refused by its guard and stays due (the waker retries it, backing off);
        # ``graced`` moved to a state with a deadline of its own.
        assert result.expired == 2
        assert result.next_deadline == held.expires_at
        assert sorted(str(e.session_id) for e in delivered) == sorted(str(s.id) for s in (free, graced))
        lapsed = manager.store.get(free.id)
        assert lapsed is not None
        assert (lapsed.status, lapsed.closed_by) == ("lapsed", "system")
        event = manager.history(free.id)[-1]
        assert (event.performer_id, event.payload["args"]) == ("system", {"note": NASTY})
        assert manager.store.get(held.id).status == "held"  # type: ignore[union-attr]
        moved = manager.store.get(graced.id)
        assert moved is not None
        assert (moved.status, moved.expires_at) == ("grace", clock.now() + timedelta(minutes=30))
        assert manager.sweep() == (0, held.expires_at)
        clock.advance(timedelta(minutes=31))
        assert manager.sweep() == (1, held.expires_at)
        assert manager.store.get(graced.id).status == "lapsed"  # type: ignore[union-attr]
        assert manager.verify() == []


@pytest.mark.parametrize("others", [3, 150], ids=["one-statement", "executemany-then-per-session"])
def test_a_session_changed_between_the_read_and_the_write_is_skipped_once(tmp_path: Any, clock: ManualClock,
                                                                          others: int) -> None:
    """SQLite reads the batch without a lock: a writer may change a session before the batch is written. Its
    compare-and-set then fails, its event is not written nor delivered, and the next deadline is read anew.
    (A large batch, written with executemany, is rolled back and written again session by session, which
    skips that session.) PostgreSQL locks the claimed rows, so a writer waits for the batch instead."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with SessionManager.open(url, clock=clock) as manager, SessionManager.open(url, clock=clock) as writer:
        racing = manager.create(performer_id="a", ttl=timedelta(minutes=1))
        expiring = [manager.create(performer_id="a", ttl=timedelta(minutes=1)).id for _ in range(others)]
        clock.advance(timedelta(minutes=2))
        decide = manager._expiry_change
        delivered: list[Any] = []
        manager.subscribe(delivered.append)

        def racing_decide(session: Session, now: Any) -> Change | None:
            change = decide(session, now)
            if session.id == racing.id:  # a writer fails it meanwhile
                failed = manager._pipeline.event(session, session.id, session.version + 1, EventType.FAILED,
                                                 SessionStatus.FAILED, "w", now, {"reason": "x"})
                writer.store.append(Change(apply(session, failed), (failed,), session.version, previous=session))
            return change

        store = manager.store
        assert isinstance(store, SqlAlchemyEventStore)
        batch = store.expire_due_next(clock.now(), 1000, racing_decide)
        assert sorted(str(c.session.id) for c in batch.changes) == sorted(map(str, expiring))
        assert not batch.known  # a session changed: the caller reads the next deadline itself
        history = manager.history(racing.id)
        assert [e.event for e in history] == [EventType.CREATED, EventType.FAILED]
        assert manager.expire_sessions() == 0
        for sid in expiring:
            assert [e.event for e in manager.history(sid)].count(EventType.EXPIRED) == 1
        assert manager.verify() == []


@pytest.mark.parametrize("size", [5, 450], ids=["small-batch", "large-batch-in-chunks"])
def test_a_failing_batch_writes_nothing(sql_url: str, clock: ManualClock, size: int) -> None:
    """The database refuses the batch's last event (a record id it already wrote in this batch): nothing of the
    batch stays. A large PostgreSQL batch has sent its earlier chunks' statements by then (``_PG_CHUNK``)."""
    with SessionManager.open(sql_url, clock=clock) as manager:
        sessions = [manager.create(performer_id="a", ttl=timedelta(minutes=1)).id for _ in range(size)]
        clock.advance(timedelta(minutes=2))
        decide = manager._expiry_change
        decided: list[Change] = []

        def clashing(session: Session, now: Any) -> Change | None:
            change = decide(session, now)
            assert change is not None
            if len(decided) == size - 1:  # the last one reuses the first one's record id
                clash = change.events[0].evolve(record_id=decided[0].events[0].record_id)
                change = Change(change.session, (clash,), change.expected_version)
            decided.append(change)
            return change

        store = manager.store
        with pytest.raises(StoreError):
            store.expire_due(clock.now(), 1000, clashing)
        assert len(decided) == size
        _nothing_written(manager, sessions)


def test_a_decider_failing_half_way_through_a_large_batch_writes_nothing(sql_url: str, clock: ManualClock) -> None:
    """The decider raises on the batch's 301st session, after (on PostgreSQL) the first chunks were sent: the
    error propagates, the transaction is rolled back, and the store's connection works on."""
    with SessionManager.open(sql_url, clock=clock) as manager:
        sessions = [manager.create(performer_id="a", ttl=timedelta(minutes=1)).id for _ in range(450)]
        clock.advance(timedelta(minutes=2))
        decide = manager._expiry_change
        seen: list[Session] = []

        def failing(session: Session, now: Any) -> Change | None:
            seen.append(session)
            if len(seen) == 301:
                raise RuntimeError("the decider broke")
            return decide(session, now)

        with pytest.raises(RuntimeError, match="the decider broke"):
            manager.store.expire_due(clock.now(), 1000, failing)
        _nothing_written(manager, sessions)


def _nothing_written(manager: SessionManager, sessions: list[Any]) -> None:
    for sid in sessions[:3] + sessions[-3:]:
        assert [e.event for e in manager.history(sid)] == [EventType.CREATED]
    assert manager.count(SessionStatus.PENDING) == len(sessions)
    assert manager.count(SessionStatus.EXPIRED) == 0
    assert manager.expire_sessions() == len(sessions)
    for sid in sessions[:3] + sessions[-3:]:
        assert [e.event for e in manager.history(sid)] == [EventType.CREATED, EventType.EXPIRED]
    assert manager.verify() == []
