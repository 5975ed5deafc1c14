"""What a write reports when its connection breaks: applied, not applied (``StoreError``), or not known
(``OutcomeUnknown``) — and that it is true.

The faults are injected at the driver boundary of each store (the reply of a committed write lost, the lookups
and reconnections refused for a while, a connection refused before anything was sent), so every branch runs
deterministically; ``tests/reliability/test_outcome_truth.py`` does the same through a real TCP proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import redis.exceptions

from sessionflow import OutcomeUnknown, SessionManager, StoreError
from sessionflow.adapters.redis import link as redis_link
from sessionflow.bootstrap import create_redis_store, create_store
from sessionflow.testing import ManualClock
from tests.support.backends import reset_postgres
from tests.support.redis import reset_redis

LOST = "server closed the connection unexpectedly"


class Faults:
    """Counters of the faults still to inject."""

    def __init__(self) -> None:
        self.lose_reply = 0  # single writes and sweeps that commit, then lose their reply
        self.lose_batch_reply = 0  # the same, for batches (append_many)
        self.lose_purge_reply = 0  # the same, for purges
        self.refuse = 0  # operations (lookups, reconnections) refused before anything is sent
        self.refuse_after = 0  # ``refuse`` once a reply was lost (the server went away with it)

    def lost(self) -> None:
        self.refuse = self.refuse_after


def _pg_store(url: str, faults: Faults, retries: int) -> Any:
    store = create_store(url, retries=retries)
    append_on, many_on, expire_on = store._append_on, store._append_many_on, store._expire_on
    event_exists, existing, checkout = store._event_exists, store._existing_events, store._checkout

    def after(write: Callable[..., Any], counter: str = "lose_reply") -> Callable[..., Any]:
        def faulty(*args: Any) -> Any:
            result = write(*args)
            if getattr(faults, counter):
                setattr(faults, counter, getattr(faults, counter) - 1)
                faults.lost()
                raise psycopg.OperationalError(LOST)
            return result
        return faulty

    def refusing(read: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any) -> Any:
            if faults.refuse:
                faults.refuse -= 1
                raise psycopg.OperationalError("connection refused")
            return read(*args)
        return faulty

    store._append_on, store._expire_on = after(append_on), after(expire_on)
    store._append_many_on = after(many_on, "lose_batch_reply")
    store._transaction = refusing(after(store._transaction, "lose_purge_reply"))  # (the purge: a transaction)
    store._event_exists, store._existing_events = refusing(event_exists), refusing(existing)
    store._checkout = refusing(checkout)
    return store


def _redis_store(url: str, faults: Faults, retries: int) -> Any:
    store = create_redis_store(url, redis_retries=retries)
    client = store.client
    execute = client.execute_command
    purge_sha, apply_sha = redis_link.PURGE.sha, redis_link.APPLY.sha

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if faults.refuse:
            faults.refuse -= 1
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        result = execute(*args, **kwargs)
        if args[0] == "EVALSHA" and args[1] in (purge_sha, apply_sha):
            sha = args[1]
            counter = ("lose_purge_reply" if sha == purge_sha else
                       "lose_batch_reply" if str(args[4]) == "2" else "lose_reply")
            if getattr(faults, counter):
                setattr(faults, counter, getattr(faults, counter) - 1)
                faults.lost()
                raise redis.exceptions.ConnectionError("Connection closed by server.")
        return result

    client.execute_command = faulty
    return store


@pytest.fixture(params=["postgres", "redis"])
def setup(request: pytest.FixtureRequest) -> Iterator[Callable[..., tuple[SessionManager, Faults]]]:
    backend = request.param
    url = str(request.getfixturevalue("postgres_url" if backend == "postgres" else "redis_url"))
    (reset_postgres if backend == "postgres" else reset_redis)(url)
    managers: list[SessionManager] = []

    def make(retries: int = 2, **options: Any) -> tuple[SessionManager, Faults]:
        faults = Faults()
        store = (_pg_store if backend == "postgres" else _redis_store)(url, faults, retries)
        manager = SessionManager(store, **options)
        managers.append(manager)
        return manager, faults

    yield make
    for manager in managers:
        manager.close()


def test_a_lost_reply_that_cannot_be_looked_up_is_outcome_unknown_and_was_applied(setup: Any) -> None:
    manager, faults = setup(retries=2)
    sid = manager.create(performer_id="p").id
    faults.lose_reply, faults.refuse_after = 1, 10  # the reply is lost, then every lookup refused
    with pytest.raises(OutcomeUnknown) as caught:
        manager.start(sid, performer_id="p")
    faults.refuse = 0
    error = caught.value
    assert not isinstance(error, StoreError)
    assert error.code == 'outcome_unknown'
    assert error.session_ids == (sid,)
    history = manager.store.history(sid)
    assert [e.event for e in history] == ["created", "started"]  # it was applied: the error did not say otherwise
    assert error.record_ids == (history[-1].record_id,)
    assert error.to_dict()["may_have_been_applied"] is True


def test_a_lost_reply_looked_up_is_success_applied_once(setup: Any) -> None:
    manager, faults = setup(retries=3)
    sid = manager.create(performer_id="p").id
    faults.lose_reply, faults.refuse_after = 1, 1  # the reply is lost; one lookup refused, the next one tells
    session = manager.start(sid, performer_id="p")
    assert session.version == 2
    assert [e.version for e in manager.store.history(sid)] == [1, 2]


def test_a_create_whose_reply_is_lost_is_never_store_error(setup: Any) -> None:
    manager, faults = setup(retries=1)
    faults.lose_reply, faults.refuse_after = 1, 10
    with pytest.raises(OutcomeUnknown) as caught:
        manager.create(performer_id="p")
    faults.refuse = 0
    (sid,) = caught.value.session_ids
    assert manager.get(sid).version == 1


def test_nothing_sent_is_store_error_and_not_applied(setup: Any) -> None:
    manager, faults = setup(retries=2)
    sid = manager.create(performer_id="p").id
    faults.refuse = 10  # every connection refused: the write never left
    with pytest.raises(StoreError):
        manager.touch(sid, performer_id="p")
    faults.refuse = 0
    assert manager.get(sid).version == 1


def test_a_batch_whose_reply_is_lost(setup: Any) -> None:
    manager, faults = setup(retries=3)
    faults.lose_batch_reply, faults.refuse_after = 1, 10
    with pytest.raises(OutcomeUnknown) as caught:
        manager.create_many([{"user_id": f"u{i}"} for i in range(3)], performer_id="p")
    faults.refuse = 0
    assert len(caught.value.session_ids) == 3
    assert all(manager.get(sid) is not None for sid in caught.value.session_ids)
    # Looked up: the batch is reported applied, once.
    faults.lose_batch_reply, faults.refuse_after = 1, 1
    made = manager.create_many([{"user_id": "v"}, {"user_id": "w"}], performer_id="p")
    assert all(len(manager.store.history(s.id)) == 1 for s in made)


def test_a_sweep_whose_reply_is_lost_reports_what_it_expired(setup: Any) -> None:
    clock = ManualClock()
    manager, faults = setup(retries=3, clock=clock)
    ids = [manager.create(performer_id="p", ttl=timedelta(seconds=60)).id for _ in range(3)]
    clock.advance(timedelta(seconds=61))
    faults.lose_reply, faults.refuse_after = 1, 1
    result = manager.sweep()
    assert result.expired == 3  # looked up after the lost reply: the three it expired, once each
    assert all(manager.get(sid).status == "expired" for sid in ids)
    assert all([e.event for e in manager.store.history(sid)] == ["created", "expired"] for sid in ids)


def test_a_sweep_that_cannot_be_looked_up_is_outcome_unknown(setup: Any) -> None:
    clock = ManualClock()
    manager, faults = setup(retries=1, clock=clock)
    ids = {manager.create(performer_id="p", ttl=timedelta(seconds=60)).id for _ in range(2)}
    clock.advance(timedelta(seconds=61))
    faults.lose_reply, faults.refuse_after = 1, 10
    with pytest.raises(OutcomeUnknown) as caught:
        manager.sweep()
    faults.refuse = 0
    assert set(caught.value.session_ids) == ids
    assert caught.value.operation == "expire"
    assert all(manager.get(sid).status == "expired" for sid in ids)


def test_a_purge_whose_reply_is_lost_counts_what_it_removed(setup: Any) -> None:
    manager, faults = setup(retries=3)
    ids = []
    for _ in range(3):
        sid = manager.create(performer_id="p").id
        manager.complete(manager.start(sid, performer_id="p").id, performer_id="p")
        ids.append(sid)
    keep = manager.create(performer_id="p").id  # holds the feed's newest event
    store = manager.store
    expected = {sid: store.get(sid).version for sid in ids}
    faults.lose_purge_reply, faults.refuse_after = 1, 1  # the purge commits, its reply is lost; the retry tells
    removed = store.purge_sessions(expected)
    assert set(removed) == set(ids)  # counted although the retry found them gone
    assert all(store.get(sid) is None for sid in ids)
    assert store.get(keep) is not None


def test_a_purge_that_cannot_be_retried_is_outcome_unknown(setup: Any) -> None:
    manager, faults = setup(retries=1)
    sid = manager.create(performer_id="p").id
    manager.delete(sid, performer_id="p")
    manager.create(performer_id="p")
    store = manager.store
    faults.lose_purge_reply, faults.refuse_after = 1, 10
    with pytest.raises(OutcomeUnknown) as caught:
        store.purge_sessions({sid: store.get(sid).version})
    faults.refuse = 0
    assert caught.value.operation == 'purge'
    assert caught.value.session_ids == (sid,)
    assert store.get(sid) is None


def test_group_commit_followers_of_a_lost_commit_are_each_told(setup: Any) -> None:
    manager, faults = setup(retries=1, group_commit=True)
    ids = [manager.create(performer_id="p").id for _ in range(4)]
    store = manager.store
    group = manager._delivery.group
    assert group is not None
    release = threading.Event()
    append = store.append

    def held_append(change: Any) -> None:  # the first leader's lone commit waits until the others queue up
        release.wait(10)
        append(change)

    store.append = held_append
    errors: dict[int, BaseException | None] = {}

    def write(i: int) -> None:
        try:
            manager.start(ids[i], performer_id="p")
            errors[i] = None
        except BaseException as error:
            errors[i] = error

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads[0].start()
    while not group._busy:
        threading.Event().wait(0.005)
    for t in threads[1:]:
        t.start()
    while len(group._queue) < 3:
        threading.Event().wait(0.005)
    faults.lose_batch_reply, faults.refuse_after = 1, 10  # the group's one commit is applied and its reply lost
    release.set()
    for t in threads:
        t.join(20)
    faults.refuse = 0
    store.append = append
    assert errors[0] is None
    for i in range(1, 4):
        error = errors[i]
        assert isinstance(error, OutcomeUnknown), error
        assert error.session_ids == (ids[i],)
        assert error.record_ids == (store.history(ids[i])[-1].record_id,)
        assert store.get(ids[i]).version == 2  # applied
