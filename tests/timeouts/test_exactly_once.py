"""Exactly-once expiry: four processes sweeping one database (SQLite file, PostgreSQL) give every overdue
session exactly one ``expired`` event by ``"system"``; a session completed, failed or touched while its
expiry races gets exactly one consistent outcome, and its history shows which.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from sessionflow import ConcurrencyConflict, EventType, InvalidTransition, SessionManager, SessionStatus, replay
from sessionflow.testing import ManualClock
from tests.timeouts import workers
from tests.timeouts.conftest import SharedManagers

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=1)
DEADLINE = T0 + TTL
ACTIONS = ("complete", "fail", "touch")
WORKER_EVENTS = {"complete": EventType.COMPLETED, "fail": EventType.FAILED, "touch": EventType.TOUCHED}


def act(manager: SessionManager, sid: UUID, action: str) -> None:
    if action == "complete":
        manager.complete(sid, performer_id="worker")
    elif action == "fail":
        manager.fail(sid, reason="gave up", performer_id="worker")
    else:
        manager.touch(sid, performer_id="worker")


@pytest.fixture(scope="module")
def processes() -> Iterator[Callable[[list[tuple[Callable[..., Any], tuple[Any, ...]]]], list[Any]]]:
    """``run(jobs)``: run each ``(function, args)`` in its own process of a pool of four spawned (and
    warmed-up) processes, all released together by a barrier; returns their results in order."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as sync, ctx.Pool(4, initializer=workers.warm_up) as pool:

        def run(jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
            assert len(jobs) == 4
            barrier = sync.Barrier(len(jobs))
            return list(pool.starmap_async(_call, [(f, (*args, barrier)) for f, args in jobs],
                                           chunksize=1).get(timeout=120))

        yield run


def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return function(*args)


Run = Callable[[list[tuple[Callable[..., Any], tuple[Any, ...]]]], list[Any]]


def create_due_sessions(manager: SessionManager, count: int) -> list[UUID]:
    ids = []
    for i in range(count):
        s = manager.create(performer_id="setup", ttl=TTL)
        if i % 2:
            manager.start(s.id, performer_id="setup")
        ids.append(s.id)
    return ids


def assert_expired_exactly_once(manager: SessionManager, ids: list[UUID], at: datetime) -> None:
    assert manager.count(SessionStatus.EXPIRED) == len(ids)
    for sid in ids:
        history = manager.history(sid)
        expired = [e for e in history if e.event is EventType.EXPIRED]
        assert [(e.performer_id, e.timestamp) for e in expired] == [("system", at)], sid
        assert [e.version for e in history] == list(range(1, len(history) + 1))
        assert replay(history) == manager.get(sid)
    assert manager.verify() == []


# ---------------------------------------------------------------- four processes, one database


def test_four_processes_sweeping_at_once_expire_each_session_exactly_once(sql_url: str, processes: Run) -> None:
    with SessionManager.open(sql_url, clock=ManualClock(T0)) as manager:
        ids = create_due_sessions(manager, 500)
        alive = manager.create(performer_id="setup", ttl=timedelta(hours=1)).id
    at = T0 + timedelta(minutes=2)
    results = processes([(workers.sweep, (sql_url, at.isoformat(), 10))] * 4)
    assert sum(results) == len(ids), results
    if sql_url.startswith("postgresql"):
        # SKIP LOCKED lets the sweepers share the work (SQLite serialises them: one often takes it all).
        assert sum(1 for count in results if count) >= 2, results
    with SessionManager.open(sql_url, clock=ManualClock(at), cache_size=0) as manager:
        assert_expired_exactly_once(manager, ids, at)
        assert manager.store.get(alive).status is SessionStatus.PENDING  # type: ignore[union-attr]


def test_four_wakers_starting_at_once_catch_up_exactly_once(sql_url: str, processes: Run) -> None:
    with SessionManager.open(sql_url, clock=ManualClock(T0)) as manager:
        ids = create_due_sessions(manager, 300)
    at = T0 + timedelta(minutes=30)  # they fell due while nothing ran; four processes restart together
    results = processes([(workers.start_waker, (sql_url, at.isoformat()))] * 4)
    assert sum(results) == len(ids), results
    with SessionManager.open(sql_url, clock=ManualClock(at), cache_size=0) as manager:
        assert_expired_exactly_once(manager, ids, at)


# ---------------------------------------------------------------- expiry racing complete / fail / touch


def check_race(manager: SessionManager, ids: list[UUID], actions: dict[UUID, str],
               outcomes: dict[UUID, str], swept: int) -> Counter[str]:
    """Every session has exactly one outcome, the history shows it, and it matches what the writer saw."""
    seen: Counter[str] = Counter()
    expired_total = 0
    for sid in ids:
        action, outcome = actions[sid], outcomes[sid]
        history = manager.history(sid)
        kinds = [e.event for e in history]
        expired = [e for e in history if e.event is EventType.EXPIRED]
        by_worker = [e for e in history if e.performer_id == "worker"]
        final = replay(history)
        assert final == manager.store.get(sid)
        if outcome == "done":
            # The writer won: its event is recorded and the session never expired.
            assert [e.event for e in by_worker] == [WORKER_EVENTS[action]], kinds
            assert expired == [], kinds
            if action == "touch":
                assert final.status is SessionStatus.IN_PROGRESS
                assert final.expires_at == DEADLINE - timedelta(milliseconds=1) + TTL
            else:
                assert final.status is SessionStatus(WORKER_EVENTS[action].value)
        else:
            # The expiry won: the writer was refused (or told it lost the race) and recorded nothing.
            assert outcome in ("refused", "conflict")
            assert by_worker == [], kinds
            assert [(e.performer_id, e.timestamp) for e in expired] == [("system", DEADLINE)], kinds
            assert final.status is SessionStatus.EXPIRED
            assert kinds[-1] is EventType.EXPIRED
        expired_total += len(expired)
        seen[f"{action}:{'writer' if outcome == 'done' else 'expiry'}"] += 1
    assert expired_total == swept
    assert manager.verify() == []
    return seen


def create_racing_sessions(manager: SessionManager, count: int) -> tuple[list[UUID], dict[UUID, str]]:
    ids: list[UUID] = []
    actions: dict[UUID, str] = {}
    for i in range(count):
        s = manager.create(performer_id="setup", ttl=TTL)
        manager.start(s.id, performer_id="setup")
        ids.append(s.id)
        actions[s.id] = ACTIONS[i % len(ACTIONS)]
    return ids, actions


def test_processes_racing_expiry_with_complete_fail_and_touch(sql_url: str, processes: Run) -> None:
    with SessionManager.open(sql_url, clock=ManualClock(T0)) as manager:
        ids, actions = create_racing_sessions(manager, 150)
    halves = [[(str(sid), actions[sid]) for sid in ids[k::2]] for k in range(2)]
    writer_time = (DEADLINE - timedelta(milliseconds=1)).isoformat()  # not yet due for the writers
    sweep_a, finished_a, sweep_b, finished_b = processes([
        (workers.sweep, (sql_url, DEADLINE.isoformat(), 5)),
        (workers.finish, (sql_url, writer_time, halves[0])),
        (workers.sweep, (sql_url, DEADLINE.isoformat(), 5)),
        (workers.finish, (sql_url, writer_time, halves[1])),
    ])
    swept = sweep_a + sweep_b
    outcomes = {UUID(sid): outcome for sid, _, outcome in (*finished_a, *finished_b)}
    assert set(outcomes) == set(ids)
    with SessionManager.open(sql_url, clock=ManualClock(DEADLINE), cache_size=0) as manager:
        check_race(manager, ids, actions, outcomes, swept)


def test_threads_racing_expiry_with_complete_fail_and_touch(shared_managers: SharedManagers) -> None:
    sweeper = shared_managers(clock=ManualClock(DEADLINE))
    writer = shared_managers(clock=ManualClock(DEADLINE - timedelta(milliseconds=1)))
    setup = shared_managers(clock=ManualClock(T0))
    ids, actions = create_racing_sessions(setup, 150)
    outcomes: dict[UUID, str] = {}
    swept: list[int] = []
    barrier = threading.Barrier(4)

    def sweep() -> None:
        barrier.wait()
        swept.append(sweeper.expire_sessions(batch_size=3))

    def finish(part: list[UUID]) -> None:
        barrier.wait()
        for sid in part:
            try:
                act(writer, sid, actions[sid])
                outcomes[sid] = "done"
            except InvalidTransition:
                outcomes[sid] = "refused"
            except ConcurrencyConflict:
                outcomes[sid] = "conflict"

    threads = [threading.Thread(target=sweep), threading.Thread(target=sweep),
               threading.Thread(target=finish, args=(ids[0::2],)), threading.Thread(target=finish, args=(ids[1::2],))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(outcomes) == set(ids)
    check_race(sweeper, ids, actions, outcomes, sum(swept))


@pytest.mark.parametrize("action", ACTIONS)
def test_each_outcome_is_possible_and_recorded(shared_managers: SharedManagers, action: str) -> None:
    # Deterministic halves of the race: the writer first, then the expiry first.
    sweeper = shared_managers(clock=ManualClock(DEADLINE))
    writer = shared_managers(clock=ManualClock(DEADLINE - timedelta(milliseconds=1)))
    setup = shared_managers(clock=ManualClock(T0))
    first, second = (setup.start(setup.create(performer_id="setup", ttl=TTL).id, performer_id="setup").id
                     for _ in range(2))
    act(writer, first, action)
    assert sweeper.expire_sessions() == 1  # only the second one is still due
    with pytest.raises(InvalidTransition):
        act(writer, second, action)
    outcomes = {first: "done", second: "refused"}
    seen = check_race(sweeper, [first, second], {first: action, second: action}, outcomes, 1)
    assert seen == Counter({f"{action}:writer": 1, f"{action}:expiry": 1})
