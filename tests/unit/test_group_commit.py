"""Group commit: writes that arrive during a commit share the next one; each call returns after its own commit
with its own outcome. A store that holds its first commit until the others have queued makes the grouping
deterministic."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import (
    ActiveSessionExists,
    Change,
    ConcurrencyConflict,
    InMemoryEventStore,
    InvalidInput,
    SessionManager,
    SessionStatus,
    StoreError,
)
from sessionflow.application.group_commit import GroupCommit
from sessionflow.testing import ManualClock

WRITERS = 8


class HeldStore(InMemoryEventStore):
    """Records each commit; the first one waits until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        #: Set once the first commit is under way (and held).
        self.holding = threading.Event()
        self.commits: list[int] = []
        #: Fail the commit attempt of this index (0: the first) with ``failure``.
        self.fail_at: int | None = None
        self.failure: BaseException = StoreError("disk full")

    def _hold(self, size: int) -> None:
        if not self.commits:
            self.holding.set()
            assert self.release.wait(30)
        if self.fail_at == len(self.commits):
            self.commits.append(-size)
            raise self.failure
        self.commits.append(size)

    def append(self, change: Change) -> None:
        self._hold(1)
        super().append(change)

    def append_many(self, changes: Sequence[Change]) -> None:
        self._hold(len(changes))
        super().append_many(changes)


def queued(group: GroupCommit, count: int) -> None:
    """Wait until ``count`` changes are queued behind the commit under way."""
    for _ in range(3000):
        with group._lock:
            if len(group._queue) >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError("the writers did not queue")


def run(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def runner(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as error:
            results[i] = error

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return [threads, results]


def finish(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


@pytest.fixture
def store() -> HeldStore:
    return HeldStore()


@pytest.fixture
def mgr(store: HeldStore) -> SessionManager:
    return SessionManager(store, clock=ManualClock(), group_commit=True)


def test_writes_during_a_commit_share_the_next_one(store: HeldStore, mgr: SessionManager) -> None:
    group = mgr._delivery.group
    assert group is not None
    threads, results = run(WRITERS + 1, lambda i: mgr.create(performer_id=f"w{i}"))
    queued(group, WRITERS)  # one commit under way (held), the others waiting behind it
    store.release.set()
    finish(threads)
    assert store.commits == [1, WRITERS]
    assert group.commits == 2
    assert all(mgr.get(s.id) == s for s in results)
    assert mgr.count() == WRITERS + 1


def test_a_refused_change_leaves_the_group_and_the_others_commit(store: HeldStore, mgr: SessionManager) -> None:
    store.release.set()
    target = mgr.create(performer_id="svc")
    store.commits.clear()
    store.release.clear()
    store.holding.clear()
    group = mgr._delivery.group
    assert group is not None
    blocker = run(1, lambda i: mgr.create(performer_id="first"))
    assert store.holding.wait(30)  # the blocker's commit is the one under way
    # every writer starts the same session at version 1: one wins, the others lose the race, each alone
    threads, results = run(4, lambda i: mgr.start(target.id, performer_id="svc", expected_version=1))
    others, created = run(3, lambda i: mgr.create(performer_id=f"other{i}"))
    queued(group, 7)
    store.release.set()
    finish(blocker[0] + threads + others)
    started = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(started) == 1
    assert started[0].status is SessionStatus.IN_PROGRESS
    assert len(lost) == 3
    assert all(isinstance(e, ConcurrencyConflict) for e in lost)
    assert all(mgr.get(s.id) == s for s in created)
    assert mgr.get(target.id).version == 2
    # the group of seven was tried again without each loser in turn (nothing of a refused try is written)
    assert store.commits == [1, 7, 6, 5, 4]
    assert group.commits == 1 + 2


def test_single_active_per_user_under_group_commit(store: HeldStore) -> None:
    mgr = SessionManager(store, clock=ManualClock(), group_commit=True, single_active_per_user=True)
    store.release.set()
    sessions = mgr.create_many([{"user_id": "u1"} for _ in range(WRITERS)], performer_id="svc")
    store.release.clear()
    store.commits.clear()
    store.holding.clear()
    group = mgr._delivery.group
    assert group is not None
    threads, results = run(WRITERS, lambda i: mgr.start(sessions[i].id, performer_id="svc"))
    queued(group, WRITERS - 1)
    store.release.set()
    finish(threads)
    started = [r for r in results if not isinstance(r, BaseException)]
    assert len(started) == 1
    assert all(isinstance(r, ActiveSessionExists) for r in results if isinstance(r, BaseException))
    assert len(mgr.list(status="in_progress")) == 1


def test_a_store_failure_reaches_every_writer_of_the_group(store: HeldStore, mgr: SessionManager) -> None:
    group = mgr._delivery.group
    assert group is not None
    blocker = run(1, lambda i: mgr.create(performer_id="first"))
    assert store.holding.wait(30)  # the blocker's commit is the one under way
    threads, results = run(WRITERS, lambda i: mgr.create(performer_id=f"w{i}"))
    queued(group, WRITERS)
    store.fail_at = 1  # the first commit goes through once released; the group's fails
    store.release.set()
    finish(blocker[0] + threads)
    assert store.commits == [1, -WRITERS]
    assert all(isinstance(r, StoreError) and r.message == "disk full" for r in results)
    assert mgr.count() == 1


def test_a_lone_writer_commits_alone_and_at_once() -> None:
    mgr = SessionManager(InMemoryEventStore(), clock=ManualClock(), group_commit=4)
    s = mgr.create(performer_id="svc", ttl=timedelta(minutes=5))
    assert mgr.start(s.id, performer_id="svc").status is SessionStatus.IN_PROGRESS
    group = mgr._delivery.group
    assert group is not None
    assert group.commits == 2


@pytest.mark.parametrize("value", [0, -1, "yes", 1.5])
def test_group_commit_option_is_validated(value: Any) -> None:
    with pytest.raises(InvalidInput):
        SessionManager(InMemoryEventStore(), group_commit=value)


def test_the_group_commit_setting(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionflow import Settings

    monkeypatch.setenv("SESSIONFLOW_GROUP_COMMIT", "true")
    settings = Settings.from_env(database_url=f"sqlite:///{tmp_path}/settings.db")
    assert settings.group_commit is True
    with SessionManager.from_settings(settings) as grouped:
        assert grouped._delivery.group is not None
        session = grouped.create(performer_id="svc")
        assert grouped.get(session.id) == session
    with SessionManager.from_settings(Settings(database_url=f"sqlite:///{tmp_path}/plain.db")) as plain:
        assert plain._delivery.group is None
