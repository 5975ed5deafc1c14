"""``ApschedulerWaker`` in real time: prompt expiry, re-arming, a constant job count, restart catch-up,
clean shutdown, the asyncio variant, failures retried without spinning.

Deadlines here are a fraction of a second away: the sessions are written by a manager whose clock runs
behind the real one (the minimum TTL is one second). Progress is observed through subscribers or the raw
store — never ``manager.get``, whose lazy expiry would hide a waker that did nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from sessionflow import (
    ApschedulerWaker,
    EventType,
    InMemoryEventStore,
    InvalidInput,
    SessionEvent,
    SessionManager,
    SessionStatus,
    StoreError,
    SystemClock,
)
from sessionflow.testing import ManualClock
from tests.timeouts.conftest import SharedManagers, ShiftedClock, thread_idents, threads_back_to, wait_for

TTL = timedelta(seconds=1)


def behind(lead: float) -> ShiftedClock:
    """A writer's clock such that a session with the minimum TTL is due ``lead`` seconds from now."""
    return ShiftedClock(-(TTL - timedelta(seconds=lead)))


def started(manager: SessionManager, **options: Any) -> ApschedulerWaker:
    waker = ApschedulerWaker(**options)
    manager.start_timeouts(waker)
    return waker


def expiries(manager: SessionManager) -> dict[Any, datetime]:
    """session id → wall-clock time its ``expired`` event was delivered to a subscriber."""
    seen: dict[Any, datetime] = {}

    def on_event(event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED:
            seen.setdefault(event.session_id, datetime.now(UTC))

    manager.subscribe(on_event)
    return seen


def raw_status(manager: SessionManager, sid: Any) -> SessionStatus:
    session = manager.store.get(sid)
    assert session is not None
    return session.status


# ---------------------------------------------------------------- prompt, precise, re-armed


def test_each_session_expires_promptly_at_its_deadline(shared_managers: SharedManagers) -> None:
    sweeper = shared_managers()
    seen = expiries(sweeper)
    waker = started(sweeper)  # the safety net is five minutes away: only the date job can do this
    writer = shared_managers(clock=behind(0.15), waker=waker)
    sessions = []
    for _ in range(20):  # staggered deadlines, 10 ms apart
        sessions.append(writer.create(performer_id="w", ttl=TTL))
        time.sleep(0.01)
    assert wait_for(lambda: len(seen) == len(sessions), timeout=5), f"{len(seen)}/{len(sessions)} expired"
    lateness = sorted((seen[s.id] - s.expires_at).total_seconds() for s in sessions)
    assert lateness[0] >= 0, "expired before its deadline"
    assert statistics.median(lateness) < 0.1, lateness
    assert lateness[-1] < 0.5, lateness
    for s in sessions:
        events = [e for e in sweeper.history(s.id) if e.event is EventType.EXPIRED]
        assert len(events) == 1
        assert events[0].performer_id == "system"
        assert s.expires_at <= events[0].timestamp < s.expires_at + timedelta(seconds=0.5)
    assert len(waker.scheduler.get_jobs()) == 2


def test_an_earlier_deadline_rearms_the_date_job_and_a_later_one_does_not(shared_managers: SharedManagers) -> None:
    sweeper = shared_managers()
    waker = started(sweeper)
    assert waker.armed_at is None  # nothing live: the date job is paused
    writer = shared_managers(clock=behind(0.2), waker=waker)
    far = writer.create(performer_id="w", ttl=timedelta(hours=1))
    assert waker.armed_at == far.expires_at
    later = writer.create(performer_id="w", ttl=timedelta(hours=2))
    assert waker.armed_at == far.expires_at
    soon = writer.create(performer_id="w", ttl=TTL)
    assert waker.armed_at == soon.expires_at
    job = waker.scheduler.get_job(waker.deadline_job_id)
    assert job.next_run_time == soon.expires_at
    assert wait_for(lambda: raw_status(sweeper, soon.id) is SessionStatus.EXPIRED, timeout=3)
    assert wait_for(lambda: waker.armed_at == far.expires_at, timeout=2)
    assert raw_status(sweeper, far.id) is raw_status(sweeper, later.id) is SessionStatus.PENDING
    assert waker.scheduler.get_job(waker.deadline_job_id).next_run_time == far.expires_at


def test_the_interval_job_is_a_safety_net_for_deadlines_written_elsewhere() -> None:
    store = InMemoryEventStore()
    with SessionManager(store, owns_store=False) as sweeper, \
            SessionManager(store, clock=behind(0.1), owns_store=False) as elsewhere:  # no waker: no notify
        waker = started(sweeper, cleanup_interval=timedelta(seconds=1))
        far = sweeper.create(performer_id="w", ttl=timedelta(hours=1))
        assert waker.armed_at == far.expires_at
        s = elsewhere.create(performer_id="w", ttl=TTL)
        time.sleep(0.3)
        assert raw_status(sweeper, s.id) is SessionStatus.PENDING  # the date job does not know about it
        assert wait_for(lambda: raw_status(sweeper, s.id) is SessionStatus.EXPIRED, timeout=2)


def test_a_deadline_written_during_a_sweep_is_armed_when_the_sweep_ends(shared_managers: SharedManagers) -> None:
    sweeper = shared_managers()
    seen = expiries(sweeper)
    waker = ApschedulerWaker(sweeper)  # no change watcher: only the writer's notice tells of the new deadline
    writer = shared_managers(clock=behind(0.3), waker=waker)
    written: list[Any] = []

    def on_event(event: SessionEvent) -> None:  # inside the sweep: after its claim read the next deadline
        if event.event is EventType.EXPIRED and not written:
            written.append(writer.create(performer_id="w", ttl=TTL))

    sweeper.subscribe(on_event)
    waker.start()  # the safety net is five minutes away
    try:
        first = writer.create(performer_id="w", ttl=TTL)
        assert wait_for(lambda: first.id in seen and bool(written), timeout=3)
        assert wait_for(lambda: written[0].id in seen, timeout=3), "the deadline written during the sweep was lost"
        assert seen[written[0].id] >= written[0].expires_at
    finally:
        waker.stop()


# ---------------------------------------------------------------- two jobs, whatever the number of sessions


def test_two_jobs_with_thousands_of_sessions() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        for i in range(3000):
            manager.create(performer_id="w", ttl=timedelta(minutes=1 + i % 60))
        waker = manager.start_timeouts()
        scheduler = waker.scheduler
        assert {job.id for job in scheduler.get_jobs()} == {waker.deadline_job_id, waker.interval_job_id}
        for i in range(2000):
            manager.create(performer_id="w", ttl=timedelta(seconds=30 + i))
        assert len(scheduler.get_jobs()) == 2
        assert waker.armed_at == manager.next_deadline() == clock.now() + timedelta(seconds=30)
        clock.advance(timedelta(hours=2))
        waker.wakeup()
        assert wait_for(lambda: manager.count(SessionStatus.EXPIRED) == 5000, timeout=20)
        assert wait_for(lambda: not waker.sweeping, timeout=2)
        assert waker.armed_at is None
        assert len(scheduler.get_jobs()) == 2
        assert scheduler.get_job(waker.deadline_job_id).next_run_time is None  # paused, still there
        assert waker.expired == 5000


def test_both_jobs_never_drop_a_late_run_nor_overlap() -> None:
    with SessionManager.in_memory() as manager:
        manager.create(performer_id="w")
        waker = started(manager, cleanup_interval=timedelta(seconds=45))
        date_job = waker.scheduler.get_job(waker.deadline_job_id)
        interval_job = waker.scheduler.get_job(waker.interval_job_id)
        for job in (date_job, interval_job):
            assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (None, True, 1)
            assert job.executor == waker.executor_alias
        assert isinstance(date_job.trigger, DateTrigger)
        assert isinstance(interval_job.trigger, IntervalTrigger)
        assert interval_job.trigger.interval == timedelta(seconds=45)


# ---------------------------------------------------------------- restart catch-up


def test_sessions_that_fell_due_while_nothing_ran_expire_when_the_waker_starts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    clock = ManualClock()
    with SessionManager.open(url, clock=clock) as before_restart:
        overdue = [before_restart.create(performer_id="w", ttl=timedelta(minutes=10)).id for _ in range(40)]
        pending = [before_restart.create(performer_id="w", ttl=timedelta(hours=2)) for _ in range(5)]
    clock.advance(timedelta(minutes=30))  # nothing runs meanwhile
    with SessionManager.open(url, clock=clock) as after_restart:
        assert after_restart.store.get(overdue[0]).status is SessionStatus.PENDING  # type: ignore[union-attr]
        waker = after_restart.start_timeouts()
        # The first sweep ran before start_timeouts returned.
        assert after_restart.count(SessionStatus.EXPIRED) == 40
        assert waker.expired == 40
        for sid in overdue:
            events = [e for e in after_restart.history(sid) if e.event is EventType.EXPIRED]
            assert [(e.performer_id, e.timestamp) for e in events] == [("system", clock.now())]
        assert after_restart.count(SessionStatus.PENDING) == 5
        assert waker.armed_at == min(s.expires_at for s in pending)


def test_a_failing_first_sweep_starts_nothing() -> None:
    class Down:
        clock = SystemClock()

        def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
            raise StoreError("database unreachable")

        def next_deadline(self) -> datetime | None:
            return None

    before = thread_idents()
    waker = ApschedulerWaker(Down())
    with pytest.raises(StoreError):
        waker.start()
    assert not waker.running
    assert waker.scheduler is None
    assert thread_idents() <= before


# ---------------------------------------------------------------- clean shutdown


@pytest.mark.parametrize("how", ["stop_timeouts", "close", "with"])
def test_stopping_leaves_no_thread_behind(how: str) -> None:
    before = thread_idents()
    store = InMemoryEventStore()
    with SessionManager(store, owns_store=False) as manager:
        waker = started(manager)
        writer = SessionManager(store, clock=behind(0.05), waker=waker, owns_store=False)
        s = writer.create(performer_id="w", ttl=TTL)
        assert wait_for(lambda: raw_status(manager, s.id) is SessionStatus.EXPIRED, timeout=3)
        names = {t.name for t in threading.enumerate() if t.ident not in before}
        assert "APScheduler" in names  # the waker's own scheduler; its sweeps run on that thread
        if how == "stop_timeouts":
            manager.stop_timeouts()
        elif how == "close":
            manager.close()
        if how != "with":
            assert thread_idents() <= before, [t.name for t in threading.enumerate() if t.ident not in before]
            assert not waker.running
            assert waker.scheduler is None
    assert thread_idents() <= before
    writer.create(performer_id="w")  # notifying a stopped waker is harmless
    writer.close()


def test_a_subscriber_may_stop_the_waker_from_inside_a_sweep() -> None:
    before = thread_idents()
    store = InMemoryEventStore()
    manager = SessionManager(store, owns_store=False)
    stopped = threading.Event()

    def on_event(event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED:
            manager.stop_timeouts()
            stopped.set()

    manager.subscribe(on_event)
    waker = started(manager)
    writer = SessionManager(store, clock=behind(0.05), waker=waker, owns_store=False)
    writer.create(performer_id="w", ttl=TTL)
    assert stopped.wait(3)
    assert not waker.running
    assert threads_back_to(before, timeout=3)
    manager.close()
    writer.close()


def test_stopping_while_a_subscriber_inside_the_sweep_also_stops_does_not_deadlock() -> None:
    before = thread_idents()
    store = InMemoryEventStore()
    manager = SessionManager(store, owns_store=False)
    in_sweep = threading.Event()

    def on_event(event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED:
            in_sweep.set()
            time.sleep(0.2)  # meanwhile the main thread is stopping the waker and waiting for this sweep
            manager.stop_timeouts()

    manager.subscribe(on_event)
    waker = started(manager)
    writer = SessionManager(store, clock=behind(0.05), waker=waker, owns_store=False)
    writer.create(performer_id="w", ttl=TTL)
    assert in_sweep.wait(3)
    stopper = threading.Thread(target=manager.stop_timeouts)
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive(), "stop deadlocked"
    assert not waker.running
    assert threads_back_to(before)
    manager.close()
    writer.close()


def test_start_is_idempotent_and_misuse_is_refused() -> None:
    with pytest.raises(InvalidInput):
        ApschedulerWaker(cleanup_interval=timedelta(milliseconds=10))
    with pytest.raises(InvalidInput, match="bind"):
        ApschedulerWaker().start()
    with SessionManager.in_memory() as manager, SessionManager.in_memory() as other:
        waker = manager.start_timeouts()
        scheduler = waker.scheduler
        assert manager.start_timeouts() is waker
        assert waker.scheduler is scheduler
        assert manager.waker is waker
        with pytest.raises(InvalidInput, match="another manager"):
            other.start_timeouts(waker)
        manager.stop_timeouts()
        manager.stop_timeouts()
        assert manager.start_timeouts() is waker  # restartable
        assert waker.running
    with pytest.raises(StoreError, match="closed"):
        manager.start_timeouts()


def test_a_scheduler_given_to_the_waker_is_left_running_with_its_own_jobs() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(lambda: None, "interval", hours=1, id="theirs")
    scheduler.start()
    try:
        with SessionManager.in_memory() as manager:
            waker = started(manager, scheduler=scheduler)
            assert {j.id for j in scheduler.get_jobs()} == {"theirs", waker.deadline_job_id, waker.interval_job_id}
        assert scheduler.running
        assert [j.id for j in scheduler.get_jobs()] == ["theirs"]
        assert waker.executor_alias not in scheduler._executors
    finally:
        scheduler.shutdown()


def test_on_a_given_scheduler_sweeps_run_on_the_wakers_thread_and_every_deadline_is_met() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        store = InMemoryEventStore()
        with SessionManager(store, owns_store=False) as sweeper:
            seen = expiries(sweeper)
            names: set[str] = set()
            sweeper.subscribe(lambda e: names.add(threading.current_thread().name)
                              if e.event is EventType.EXPIRED else None)
            waker = started(sweeper, scheduler=scheduler)  # the safety net is five minutes away
            writer = SessionManager(store, clock=behind(0.15), waker=waker, owns_store=False)
            sessions = []
            for _ in range(20):  # staggered deadlines, 10 ms apart: the date job fires and is re-armed each time
                sessions.append(writer.create(performer_id="w", ttl=TTL))
                time.sleep(0.01)
            assert wait_for(lambda: len(seen) == len(sessions), timeout=5), f"{len(seen)}/{len(sessions)} expired"
            assert all(seen[s.id] >= s.expires_at for s in sessions)
            assert names
            assert all(name.startswith("sessionflow-waker") for name in names), names
            writer.close()
    finally:
        scheduler.shutdown()


def test_a_subscriber_may_stop_a_waker_sweeping_on_its_own_thread() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        before = thread_idents()
        store = InMemoryEventStore()
        manager = SessionManager(store, owns_store=False)
        stopped = threading.Event()

        def on_event(event: SessionEvent) -> None:
            if event.event is EventType.EXPIRED:
                manager.stop_timeouts()
                stopped.set()

        manager.subscribe(on_event)
        waker = started(manager, scheduler=scheduler)
        writer = SessionManager(store, clock=behind(0.05), waker=waker, owns_store=False)
        writer.create(performer_id="w", ttl=TTL)
        assert stopped.wait(3)
        assert not waker.running
        assert scheduler.get_jobs() == []
        assert threads_back_to(before, timeout=3)
        manager.close()
        writer.close()
    finally:
        scheduler.shutdown()


class SlowCatchUp:
    """A target whose first sweep (the catch-up of ``start``) waits until ``release`` is set."""

    clock = SystemClock()

    def __init__(self) -> None:
        self.in_catch_up = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        self.calls += 1
        if self.calls == 1:
            self.in_catch_up.set()
            assert self.release.wait(5)
        return 0

    def next_deadline(self) -> datetime | None:
        return None


def test_a_stop_during_a_start_wins_and_leaves_no_thread_behind() -> None:
    before = thread_idents()
    target = SlowCatchUp()
    waker = ApschedulerWaker(target)
    starter = threading.Thread(target=waker.start)
    starter.start()
    assert target.in_catch_up.wait(3)
    waker.stop()  # does not wait for the start: it cancels it
    target.release.set()
    starter.join(5)
    assert not starter.is_alive()
    assert not waker.running
    assert waker.scheduler is None
    assert threads_back_to(before)
    waker.start()  # and the waker can start again
    assert waker.running
    waker.stop()
    assert threads_back_to(before)


def test_a_start_during_a_start_does_not_start_a_second_scheduler() -> None:
    before = thread_idents()
    target = SlowCatchUp()
    waker = ApschedulerWaker(target)
    starter = threading.Thread(target=waker.start)
    starter.start()
    assert target.in_catch_up.wait(3)
    waker.start()  # returns at once: the start in progress will run the waker
    target.release.set()
    starter.join(5)
    assert waker.running
    assert target.calls == 1
    assert len([t for t in threading.enumerate() if t.name == "APScheduler"]) == 1
    waker.stop()
    assert threads_back_to(before)


# ---------------------------------------------------------------- asyncio hosts


def test_the_asyncio_variant_sweeps_off_the_event_loop() -> None:
    before = thread_idents()
    sweeper_threads: list[threading.Thread] = []

    async def main() -> None:
        store = InMemoryEventStore()
        with SessionManager(store, owns_store=False) as manager:
            manager.subscribe(lambda e: sweeper_threads.append(threading.current_thread())
                              if e.event is EventType.EXPIRED else None)
            waker = manager.start_timeouts(ApschedulerWaker.for_asyncio())
            assert isinstance(waker.scheduler, AsyncIOScheduler)
            writer = SessionManager(store, clock=behind(0.1), waker=waker, owns_store=False)
            s = writer.create(performer_id="w", ttl=TTL)
            for _ in range(300):
                if raw_status(manager, s.id) is SessionStatus.EXPIRED:
                    break
                await asyncio.sleep(0.01)
            assert raw_status(manager, s.id) is SessionStatus.EXPIRED
            writer.close()

    asyncio.run(main())
    assert sweeper_threads
    assert all(t is not threading.main_thread() for t in sweeper_threads)  # the loop never blocked on a sweep
    assert threads_back_to(before)


# ---------------------------------------------------------------- failures: retried, never a busy loop


class Target:
    """A stand-in manager whose sweeps fail ``failures`` times; counts the calls."""

    def __init__(self, failures: int = 0, overdue: bool = False, clock: SystemClock | None = None,
                 deadline: datetime | None = None) -> None:
        self.clock = clock or SystemClock()
        self.failures = failures
        self.overdue = overdue
        self.deadline = deadline
        self.calls = 0

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        self.calls += 1
        if 1 < self.calls <= 1 + self.failures:
            raise StoreError("database unreachable")
        return 0

    def next_deadline(self) -> datetime | None:
        # ``overdue``: a row always due yet never expired here (another process holds it).
        return datetime(2000, 1, 1, tzinfo=UTC) if self.overdue else self.deadline


def test_a_failing_sweep_is_retried_with_backoff() -> None:
    target = Target(failures=3)
    waker = ApschedulerWaker(target)
    waker.start()
    try:
        waker.wakeup()
        assert wait_for(lambda: target.calls == 5 and waker.last_error is None, timeout=3)
        calls = target.calls
        time.sleep(0.3)
        assert target.calls == calls  # healthy again and nothing due: the date job sleeps
    finally:
        waker.stop()


def test_rows_that_stay_overdue_are_retried_with_backoff_not_in_a_busy_loop() -> None:
    target = Target(overdue=True)
    waker = ApschedulerWaker(target)
    waker.start()
    try:
        time.sleep(0.8)
        # 50 + 100 + 200 + 400 ms: about five sweeps, not thousands.
        assert 2 <= target.calls <= 8, target.calls
    finally:
        waker.stop()


def test_a_clock_other_than_the_system_clock_is_translated_to_scheduler_time() -> None:
    class Lagging(SystemClock):  # a day behind the time the scheduler reads
        def now(self) -> datetime:
            return super().now() - timedelta(days=1)

    clock = Lagging()
    target = Target(clock=clock, deadline=clock.now() + timedelta(hours=1))
    waker = ApschedulerWaker(target)
    waker.start()
    try:
        run_at = waker.scheduler.get_job(waker.deadline_job_id).next_run_time
        assert abs(run_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)
        time.sleep(0.3)
        assert target.calls == 1  # the catch-up sweep only
    finally:
        waker.stop()


def test_a_wake_up_before_the_clock_reaches_the_deadline_pauses_instead_of_spinning() -> None:
    freezegun = pytest.importorskip("freezegun")
    # The engine's clock is frozen in the past while the scheduler's thread reads the real time: every
    # deadline looks overdue to the scheduler, yet none is due for the engine.
    with freezegun.freeze_time("2020-01-01 00:00:00", ignore=["apscheduler"]), \
            SessionManager.in_memory() as manager:
        manager.create(performer_id="w", ttl=timedelta(hours=1))
        waker = manager.start_timeouts()
        time.sleep(0.5)
        assert waker.sweeps <= 3, waker.sweeps
        assert waker.armed_at is None
        manager.create(performer_id="w", ttl=timedelta(hours=1))  # a write wakes it once more, no more
        time.sleep(0.3)
        assert waker.sweeps <= 5, waker.sweeps
        assert manager.count(SessionStatus.PENDING) == 2


def test_a_clock_frozen_in_the_past_does_not_make_the_waker_spin() -> None:
    freezegun = pytest.importorskip("freezegun")
    before = thread_idents()
    with freezegun.freeze_time("2020-01-01 00:00:00"), SessionManager.in_memory() as manager:
        manager.create(performer_id="w", ttl=timedelta(hours=1))
        waker = manager.start_timeouts()
        time.sleep(0.5)
        assert waker.sweeps <= 8, waker.sweeps
        assert manager.count(SessionStatus.PENDING) == 1
    assert threads_back_to(before)
