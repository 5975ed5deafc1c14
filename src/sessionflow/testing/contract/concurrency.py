"""Many threads on one manager: versions stay contiguous, no acknowledged event is lost, conflicts surface.

Threads start together on a barrier; nothing here sleeps.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

import pytest

from sessionflow import ConcurrencyConflict, EventType, SessionManager, SessionStatus, replay
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

THREADS = 8
BARRIER_TIMEOUT = 60


def run_threads(count: int, work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(i, barrier)`` in ``count`` threads; return their results, re-raising the first error."""
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def runner(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=runner, args=(i,), name=f"writer-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BARRIER_TIMEOUT * 2)
        assert not thread.is_alive(), "a writer thread hung"
    if errors:
        raise errors[0]
    return results


def assert_contiguous(mgr: SessionManager, sid: UUID) -> None:
    history = mgr.history(sid)
    assert [e.version for e in history] == list(range(1, len(history) + 1))
    assert len({e.record_id for e in history}) == len(history)
    assert replay(history) == mgr.get(sid)


class TestConcurrency(ContractSuite):
    """Many threads on one manager."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(hours=1))

    def test_eight_threads_writing_one_session(self, mgr: SessionManager) -> None:
        rounds = 6
        paths = [f"t{i}/f{k}.py" for i in range(THREADS) for k in range(rounds)]
        s = mgr.create(performer_id="setup", file_paths=paths)
        mgr.start(s.id, performer_id="setup")

        def work(i: int, barrier: threading.Barrier) -> tuple[list[tuple[int, str]], list[ConcurrencyConflict]]:
            me = f"t{i}"
            acknowledged: list[tuple[int, str]] = []
            conflicts: list[ConcurrencyConflict] = []
            operations: list[tuple[str, Callable[[], Any]]] = []
            for k in range(rounds):
                path = f"{me}/f{k}.py"
                operations += [
                    ("file_recorded", partial(mgr.record_file, s.id, path, performer_id=me)),
                    ("note_added", partial(mgr.add_note, s.id, file_path=path, memory_id=f"{me}-{path}",
                                           status="stored", performer_id=me)),
                    ("touched", lambda: mgr.touch(s.id, performer_id=me)),
                ]
            barrier.wait()
            for kind, operation in operations:
                while True:
                    try:
                        result = operation()
                    except ConcurrencyConflict as conflict:
                        conflicts.append(conflict)
                        continue
                    acknowledged.append((result.version, kind))
                    break
            return acknowledged, conflicts

        results = run_threads(THREADS, work)
        for _, conflicts in results:  # each retried conflict named this session and a version it had passed
            for conflict in conflicts:
                assert conflict.session_id == s.id
                assert conflict.actual_version is None or conflict.actual_version > conflict.expected_version
        history = mgr.history(s.id)
        by_version = {e.version: e for e in history}
        acknowledged = [(version, kind, f"t{i}") for i, (acks, _) in enumerate(results) for version, kind in acks]
        assert len(acknowledged) == THREADS * rounds * 3
        # Every acknowledged write is in the history, at the version it was acknowledged with, by its writer.
        assert len({version for version, _, _ in acknowledged}) == len(acknowledged)
        for version, kind, performer in acknowledged:
            event = by_version[version]
            assert (str(event.event), event.performer_id) == (kind, performer)
        # Nothing else was appended: created, started, then exactly the acknowledged writes.
        assert len(history) == 2 + len(acknowledged)
        assert_contiguous(mgr, s.id)
        final = mgr.get(s.id)
        assert final.version == len(history)
        assert final.progress.processed_files == len(paths)
        assert len(final.notes) == len(paths)
        assert Counter(e.performer_id for e in history if e.event is EventType.NOTE_ADDED) == {
            f"t{i}": rounds for i in range(THREADS)}
        assert mgr.complete(s.id, performer_id="setup").status is SessionStatus.COMPLETED

    def test_conflicts_are_surfaced_never_swallowed(self, mgr: SessionManager) -> None:
        """All threads read the same version, then all write with it: exactly one wins each round."""
        rounds = 5
        s = mgr.create(performer_id="setup")

        def work(i: int, barrier: threading.Barrier) -> list[tuple[int, Any]]:
            outcomes: list[tuple[int, Any]] = []
            for _ in range(rounds):
                barrier.wait()
                read = mgr.get(s.id).version
                barrier.wait()  # nobody writes until everybody has read
                try:
                    written: Any = mgr.add_note(s.id, file_path="x", status=f"t{i}", expected_version=read,
                                                performer_id=f"t{i}")
                except ConcurrencyConflict as conflict:
                    written = conflict
                outcomes.append((read, written))
            return outcomes

        results = run_threads(THREADS, work)
        for read, outcome in (pair for outcomes in results for pair in outcomes):
            if isinstance(outcome, ConcurrencyConflict):
                assert outcome.session_id == s.id
                assert outcome.expected_version == read
                assert outcome.actual_version is None or outcome.actual_version > read
            else:
                assert outcome.version == read + 1
        per_round = Counter((read, "conflict" if isinstance(outcome, ConcurrencyConflict) else "written")
                            for outcomes in results for read, outcome in outcomes)
        assert per_round == {
            **{(1 + r, "written"): 1 for r in range(rounds)},
            **{(1 + r, "conflict"): THREADS - 1 for r in range(rounds)},
        }
        history = mgr.history(s.id)
        assert len(history) == 1 + rounds
        assert_contiguous(mgr, s.id)

    def test_concurrent_reads_expire_an_overdue_session_once(self, mgr: SessionManager, clock: ManualClock) -> None:
        s = mgr.create(performer_id="u1", ttl=timedelta(seconds=1))
        mgr.start(s.id, performer_id="u1")
        clock.advance(timedelta(seconds=1))

        def work(i: int, barrier: threading.Barrier) -> tuple[str, int]:
            barrier.wait()
            seen = mgr.get(s.id) if i % 2 else mgr.get_active(s.id) or mgr.get(s.id)
            return seen.status, seen.version

        results = run_threads(THREADS, work)
        assert set(results) == {(SessionStatus.EXPIRED, 3)}
        assert [e.event for e in mgr.history(s.id)].count(EventType.EXPIRED) == 1
        assert_contiguous(mgr, s.id)

    def test_concurrent_sweeps_expire_each_session_once(self, mgr: SessionManager, clock: ManualClock) -> None:
        sessions = [mgr.create(performer_id="u1", ttl=timedelta(seconds=1)) for _ in range(24)]
        clock.advance(timedelta(seconds=1))

        def work(i: int, barrier: threading.Barrier) -> int:
            barrier.wait()
            return mgr.expire_sessions(batch_size=5)

        assert sum(run_threads(THREADS, work)) == len(sessions)
        for s in sessions:
            assert [e.event for e in mgr.history(s.id)] == [EventType.CREATED, EventType.EXPIRED]
        assert mgr.expire_sessions() == 0

    def test_threads_driving_their_own_sessions(self, mgr: SessionManager) -> None:
        per_thread = 4

        def work(i: int, barrier: threading.Barrier) -> list[UUID]:
            barrier.wait()
            made = []
            for k in range(per_thread):
                s = mgr.create(performer_id=f"t{i}", user_id=f"t{i}", file_paths=["a", "b"])
                mgr.start(s.id, performer_id=f"t{i}")
                mgr.record_file(s.id, "a", performer_id=f"t{i}")
                if k % 2:
                    mgr.fail(s.id, reason="odd", performer_id=f"t{i}")
                else:
                    mgr.record_file(s.id, "b", error="bad", performer_id=f"t{i}")
                    mgr.complete(s.id, performer_id=f"t{i}")
                made.append(s.id)
            return made

        results = run_threads(THREADS, work)
        all_ids = [sid for made in results for sid in made]
        assert len(set(all_ids)) == THREADS * per_thread
        assert set(mgr.store.session_ids()) == set(all_ids)
        assert mgr.count("completed") == mgr.count("failed") == THREADS * per_thread // 2
        for i, made in enumerate(results):
            assert {s.id for s in mgr.list(user_id=f"t{i}")} == set(made)  # one frozen instant: order is by id
            for sid in made:
                assert_contiguous(mgr, sid)
                assert {e.performer_id for e in mgr.history(sid)} == {f"t{i}"}
