"""The idempotency keys of the SQL stores (``idempotency_keys``, revision 0008), where the contract suite does not
reach: the key written by each store's one append path and nothing else (a refused change, a refused batch), a
real race of two connections with one key (SQLite, PostgreSQL), keyed writes whose reply was lost, the expired keys
dropped, and a purge taking its sessions' keys with it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, func, select, text

from sessionflow import IdempotencyKey, OutcomeUnknown, SessionManager
from sessionflow.adapters.sqlalchemy.tables import idempotency_keys
from sessionflow.application.idempotency import IdempotencyRecord
from sessionflow.application.ports import Change
from sessionflow.bootstrap import create_store
from sessionflow.errors import BatchRejected, ConcurrencyConflict, IdempotencyKeyInFlight
from sessionflow.testing import ManualClock
from tests.support.backends import reset_postgres

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _record(key: str, *, at: datetime = NOW, window: timedelta = timedelta(hours=1),
            fingerprint: str = "f" * 64) -> IdempotencyRecord:
    return IdempotencyRecord("tenant", key, fingerprint, at, at + window)


class _Dry:
    """A store that decides nothing itself: it keeps the changes a manager appends instead of applying them."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.changes: list[Change] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(self, change: Change) -> None:
        self.changes.append(change)


def _decided(store: Any, write: Callable[[SessionManager], object]) -> Change:
    """The change ``write`` makes on ``store``, not applied."""
    dry = _Dry(store)
    write(SessionManager(dry, clock=ManualClock(NOW), owns_store=False))
    return dry.changes[-1]


def _create(user: str = "u1") -> Callable[[SessionManager], object]:
    return lambda manager: manager.create(user_id=user, performer_id=user)


@pytest.fixture
def store(sql_url: str) -> Iterator[Any]:
    opened = create_store(sql_url)
    yield opened
    opened.close()


def _keys(store: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())


def test_the_key_table_adds_the_fewest_b_trees_a_key_needs(store: Any) -> None:
    """Every keyed write pays for each b-tree of the table: the primary key (scope, key) and the index on
    expires_at, nothing else (no index on session_id; on SQLite no rowid table beside the primary key)."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            indexes = sorted(row[0] for row in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'idempotency_keys'")))
            assert indexes == ["ix_idempotency_keys_expires_at"]  # (the primary key is the table itself)
            created = conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'idempotency_keys'")).scalar_one()
            assert created.rstrip().upper().endswith("WITHOUT ROWID")
        else:
            indexes = sorted(row[0] for row in conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'idempotency_keys'")))
            assert indexes == ["ix_idempotency_keys_expires_at", "pk_idempotency_keys"]


def test_the_key_is_kept_for_the_session_and_version_the_change_leaves(store: Any) -> None:
    created = _decided(store, _create())
    store.append(replace(created, idempotency=_record("c")))
    started = _decided(store, lambda m: m.start(created.session.id, performer_id="u1"))
    store.append(replace(started, idempotency=_record("s", at=NOW + timedelta(minutes=1))))
    assert store.find_key("tenant", "c") == ("f" * 64, created.session.id, 1, NOW + timedelta(hours=1))
    assert store.find_key("tenant", "s")[1:] == (created.session.id, 2, NOW + timedelta(hours=1, minutes=1))
    assert store.find_key("tenant", "x") is None
    assert store.find_key("other", "c") is None


def test_a_live_key_refuses_the_change_and_an_expired_one_is_replaced(store: Any) -> None:
    first = _decided(store, _create())
    store.append(replace(first, idempotency=_record("k")))
    second = _decided(store, _create("u2"))
    with pytest.raises(IdempotencyKeyInFlight):  # live at the record's creation
        store.append(replace(second, idempotency=_record("k", at=NOW + timedelta(minutes=59, seconds=59))))
    assert store.get(second.session.id) is None
    assert store.history(second.session.id) == []
    store.append(replace(second, idempotency=_record("k", at=NOW + timedelta(hours=1), fingerprint="e" * 64)))
    assert store.find_key("tenant", "k") == ("e" * 64, second.session.id, 1, NOW + timedelta(hours=2))
    assert _keys(store) == 1


def test_a_change_whose_version_check_fails_stores_no_key(store: Any) -> None:
    created = _decided(store, _create())
    store.append(created)
    touch = _decided(store, lambda m: m.touch(created.session.id, performer_id="u1"))
    store.append(touch)
    stale = replace(touch, idempotency=_record("late"))  # decided on version 1: the session is at 2 now
    with pytest.raises(ConcurrencyConflict):
        store.append(stale)
    assert store.find_key("tenant", "late") is None
    assert _keys(store) == 0


def test_a_batch_with_a_key_stored_or_twice_is_rejected_whole(store: Any) -> None:
    one, two = _decided(store, _create("a")), _decided(store, _create("b"))
    with pytest.raises(BatchRejected) as twice:
        store.append_many([replace(one, idempotency=_record("k")), replace(two, idempotency=_record("k"))])
    assert twice.value.index == 1
    assert isinstance(twice.value.error, IdempotencyKeyInFlight)
    assert (store.get(one.session.id), _keys(store)) == (None, 0)
    store.append(replace(_decided(store, _create("c")), idempotency=_record("stored")))
    with pytest.raises(BatchRejected) as stored:
        store.append_many([replace(one, idempotency=_record("new")), replace(two, idempotency=_record("stored"))])
    assert (stored.value.index, type(stored.value.error)) == (1, IdempotencyKeyInFlight)
    assert (store.get(one.session.id), store.find_key("tenant", "new")) == (None, None)
    store.append_many([replace(one, idempotency=_record("new")), replace(two, idempotency=_record("other"))])
    assert store.find_key("tenant", "new")[1] == one.session.id
    assert store.find_key("tenant", "other")[1] == two.session.id


def test_drop_expired_keys_removes_the_earliest_expired_up_to_the_limit(store: Any) -> None:
    for minutes in (30, 10, 20, 90):
        change = _decided(store, _create(f"u{minutes}"))
        store.append(replace(change, idempotency=_record(f"k{minutes}", window=timedelta(minutes=minutes))))
    at = NOW + timedelta(minutes=30)
    assert store.drop_expired_keys(at, limit=2) == 2
    assert [store.find_key("tenant", f"k{m}") is None for m in (10, 20, 30, 90)] == [True, True, False, False]
    assert store.drop_expired_keys(at) == 1
    assert store.drop_expired_keys(at) == 0
    assert store.find_key("tenant", "k90") is not None


def test_purge_removes_the_keys_of_the_sessions_it_removes(store: Any) -> None:
    gone = _decided(store, _create("a"))
    store.append(replace(gone, idempotency=_record("gone")))
    failed = _decided(store, lambda m: m.fail(gone.session.id, reason="r", performer_id="a"))
    store.append(replace(failed, idempotency=_record("gone-too")))
    kept = _decided(store, _create("b"))  # holds the feed's newest event
    store.append(replace(kept, idempotency=_record("kept")))
    assert store.purge_sessions({gone.session.id: 2, kept.session.id: 1}) == [gone.session.id]
    assert store.find_key("tenant", "gone") is None
    assert store.find_key("tenant", "gone-too") is None
    assert store.find_key("tenant", "kept")[1] == kept.session.id
    assert _keys(store) == 1


def test_an_append_without_a_key_sends_no_statement_for_keys(tmp_path: Path) -> None:
    """SQLite: the statements of an unkeyed append, traced on the thread's connection, touch no key; a keyed
    one adds the key's one statement in the same transaction."""
    opened: Any = create_store(f"sqlite:///{tmp_path / 'traced.db'}")
    try:
        statements: list[str] = []
        opened.append(_decided(opened, _create("warm")))  # the thread's connection is kept from here
        opened._connections.held().driver_connection.set_trace_callback(statements.append)
        opened.append(_decided(opened, _create()))
        assert statements
        assert not any("idempotency_keys" in s for s in statements)
        plain = len(statements)
        statements.clear()
        opened.append(replace(_decided(opened, _create("u2")), idempotency=_record("k")))
        assert next(s for s in statements if "idempotency_keys" in s).startswith("INSERT INTO idempotency_keys")
        assert len(statements) == plain + 1
        assert statements[-1] == "COMMIT"
    finally:
        opened.close()


# --------------------------------------------------------------------------- PostgreSQL: races, lost replies

_postgres = pytest.mark.postgres


def _waiting_on_locks(url: str, count: int) -> None:
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                waiting = conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar_one()
            if waiting >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"fewer than {count} statements wait for the lock")
    finally:
        engine.dispose()


@_postgres
def test_two_connections_racing_with_one_key_commit_once(postgres_url: str) -> None:
    """Two stores (two engines, two connections) append a new session each with one key, both statements held
    at the key table's lock until both are sent, then released together: exactly one commits, the other is
    refused whole (no session, no event)."""
    reset_postgres(postgres_url)
    stores = [create_store(postgres_url), create_store(postgres_url)]
    try:
        changes = [replace(_decided(s, _create(f"u{i}")), idempotency=_record("race")) for i, s in enumerate(stores)]
        outcomes: list[BaseException | None] = [None, None]
        locker = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            locker.execute("LOCK TABLE idempotency_keys IN SHARE MODE")  # (in a transaction: held to its end)

            def append(index: int) -> None:
                try:
                    stores[index].append(changes[index])
                except BaseException as error:  # reported below
                    outcomes[index] = error

            threads = [threading.Thread(target=append, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            _waiting_on_locks(postgres_url, 2)
            locker.commit()
            for thread in threads:
                thread.join(10)
        finally:
            locker.close()
        refused = [i for i, error in enumerate(outcomes) if error is not None]
        assert len(refused) == 1, outcomes
        loser = refused[0]
        winner = 1 - loser
        assert isinstance(outcomes[loser], IdempotencyKeyInFlight)
        assert isinstance(outcomes[loser].__cause__, psycopg.errors.UniqueViolation)
        assert stores[0].find_key("tenant", "race")[1] == changes[winner].session.id
        assert stores[0].get(changes[loser].session.id) is None
        assert stores[0].history(changes[loser].session.id) == []
        assert stores[0].get(changes[winner].session.id) is not None
    finally:
        for store in stores:
            store.close()


def test_two_sqlite_connections_racing_with_one_key_commit_once(tmp_path: Path) -> None:
    """Two stores on one SQLite file append a new session each with one key while a third connection holds the
    write lock; released, the write lock orders them: exactly one commits, the other is refused whole."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    stores = [create_store(url), create_store(url)]
    try:
        changes = [replace(_decided(s, _create(f"u{i}")), idempotency=_record("race")) for i, s in enumerate(stores)]
        outcomes: list[BaseException | None] = [None, None]
        started = threading.Barrier(3)
        locker = sqlite3.connect(tmp_path / "race.db", isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")

            def append(index: int) -> None:
                started.wait()
                try:
                    stores[index].append(changes[index])
                except BaseException as error:  # reported below
                    outcomes[index] = error

            threads = [threading.Thread(target=append, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            started.wait()
            time.sleep(0.2)  # both wait for the write lock
            locker.execute("COMMIT")
            for thread in threads:
                thread.join(10)
        finally:
            locker.close()
        refused = [i for i, error in enumerate(outcomes) if error is not None]
        assert len(refused) == 1, outcomes
        loser = refused[0]
        assert isinstance(outcomes[loser], IdempotencyKeyInFlight)
        assert stores[0].find_key("tenant", "race")[1] == changes[1 - loser].session.id
        assert stores[0].get(changes[loser].session.id) is None
        assert stores[0].history(changes[loser].session.id) == []
    finally:
        for store in stores:
            store.close()


def _losing_replies(store: Any, refuse_lookups: int) -> list[int]:
    """The next append commits, then its reply is lost (a broken connection); the next ``refuse_lookups``
    lookups of its record id are refused. Returns the counters [replies to lose, lookups to refuse]."""
    faults = [1, refuse_lookups]
    append_on, event_exists = store._append_on, store._event_exists

    def faulty_append(*args: Any) -> None:
        append_on(*args)
        if faults[0]:
            faults[0] -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def faulty_lookup(*args: Any) -> bool:
        if faults[1]:
            faults[1] -= 1
            raise psycopg.OperationalError("connection refused")
        result: bool = event_exists(*args)
        return result

    store._append_on, store._event_exists = faulty_append, faulty_lookup
    return faults


@_postgres
def test_a_keyed_write_whose_reply_was_lost_is_looked_up_and_its_key_kept_once(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    with SessionManager(create_store(postgres_url, retries=3), clock=ManualClock(NOW)) as manager:
        session = manager.create(user_id="u1", performer_id="u1")
        _losing_replies(manager.store, refuse_lookups=1)
        handle = IdempotencyKey("start")
        started = manager.start(session.id, performer_id="u1", idempotency_key=handle)
        assert (started.version, handle.replayed) == (2, False)  # the retry found its event: applied, once
        assert len(manager.history(session.id)) == 2
        store: Any = manager.store
        assert store.find_key("performer:u1", "start")[1:3] == (session.id, 2)
        assert manager.start(session.id, performer_id="u1", idempotency_key=handle) == started
        assert handle.replayed is True


@_postgres
def test_a_keyed_write_whose_outcome_is_unknown_is_answered_by_its_key(postgres_url: str) -> None:
    """The record-id lookups refused until the retries run out: the store raises OutcomeUnknown, and the
    manager answers the write from its key, which the write's own transaction stored."""
    reset_postgres(postgres_url)
    with SessionManager(create_store(postgres_url, retries=1), clock=ManualClock(NOW)) as manager:
        session = manager.create(user_id="u1", performer_id="u1")
        store: Any = manager.store
        _losing_replies(store, refuse_lookups=10)
        with pytest.raises(OutcomeUnknown):
            store.append(replace(_decided(store, lambda m: m.touch(session.id, performer_id="u1")),
                                 idempotency=_record("t")))
        _losing_replies(store, refuse_lookups=10)
        handle = IdempotencyKey("start")
        started = manager.start(session.id, performer_id="u1", idempotency_key=handle)
        assert (started.version, started.status, handle.replayed) == (3, "in_progress", True)
        assert [e.version for e in manager.history(session.id)] == [1, 2, 3]
