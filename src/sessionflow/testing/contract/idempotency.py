"""Idempotency keys: a write sent again with its key is answered from the stored key, never applied twice — on
every store, whatever happened to the first attempt (see :mod:`sessionflow.application.idempotency`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import (
    BatchRejected,
    IdempotencyKey,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidTransition,
    OutcomeUnknown,
    Session,
    SessionManager,
    StoreError,
)
from sessionflow.testing import ManualClock
from sessionflow.testing._managers import StoreFactory
from sessionflow.testing.contract._support import ContractSuite, MakeManager, requires

__all__ = ["TestIdempotency", "TestIdempotentBatches"]


class _Proxy:
    """A store whose every member is the wrapped store's, but those a test replaces."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class _StaleRead(_Proxy):
    """Reads a session, the first time, as it was before another process's write: a process that read the session
    just before another one committed its write with the same key (the race two processes with one key run)."""

    def __init__(self, store: Any, stale: Session) -> None:
        super().__init__(store)
        self.stale: Session | None = stale

    def get(self, session_id: Any, *, fresh: bool = True) -> Any:
        stale, self.stale = self.stale, None
        if stale is not None and stale.id == session_id:
            return stale
        return self.store.get(session_id, fresh=fresh)


class _ReplyLost(_Proxy):
    """Commits the first append, then answers as if the connection broke before the reply came back; with
    ``down``, the database stays unreachable for lookups until :attr:`down` is cleared."""

    def __init__(self, store: Any, *, down: bool = False) -> None:
        super().__init__(store)
        self.lost = 0
        self.stays_down = down
        self.down = False

    def append(self, change: Any) -> None:
        self.store.append(change)
        if not self.lost:
            self.lost += 1
            self.down = self.stays_down
            raise OutcomeUnknown("append", session_ids=[change.session.id])

    def append_many(self, changes: Any) -> None:
        self.store.append_many(changes)
        if not self.lost:
            self.lost += 1
            self.down = self.stays_down
            raise OutcomeUnknown("append_many", session_ids=[change.session.id for change in changes])

    def find_key(self, scope: str, key: str) -> Any:
        if self.down:
            raise StoreError("the database is unreachable")
        return self.store.find_key(scope, key)


class _SlowAppend(_Proxy):
    """Holds its first append until released, so a second write with the same key arrives meanwhile."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, change: Any) -> None:
        self.entered.set()
        assert self.release.wait(10), "the test never released the append"
        self.store.append(change)


def _state(mgr: SessionManager, session: Session) -> tuple[int, list[str]]:
    return mgr.count(), [str(e.event) for e in mgr.history(session.id)]


#: Each write of a started session with one file, and its arguments (sent twice with one key).
WRITES: dict[str, Callable[[SessionManager, Session, str], Session]] = {
    "start": lambda m, s, k: m.start(s.id, performer_id="u1", idempotency_key=k),
    "fail": lambda m, s, k: m.fail(s.id, reason="broken", performer_id="u1", idempotency_key=k),
    "touch": lambda m, s, k: m.touch(s.id, performer_id="u1", idempotency_key=k),
    "add_note": lambda m, s, k: m.add_note(s.id, file_path="a.md", status="ok", performer_id="u1",
                                           idempotency_key=k),
    "update": lambda m, s, k: m.update(s.id, metadata={"step": 2}, performer_id="u1", idempotency_key=k),
    "delete": lambda m, s, k: m.delete(s.id, performer_id="u1", idempotency_key=k),
    "send": lambda m, s, k: m.send(s.id, "fail", reason="sent", performer_id="u1", idempotency_key=k),
}


@requires("idempotency")
class TestIdempotency(ContractSuite):
    """Writes given ``idempotency_key``."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock)

    def test_a_create_sent_twice_makes_one_session(self, mgr: SessionManager) -> None:
        first = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"], metadata={"n": 1},
                           idempotency_key="create-1")
        again = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"], metadata={"n": 1},
                           idempotency_key="create-1")
        assert again == first
        assert mgr.count() == 1
        assert len(mgr.history(first.id)) == 1

    def test_a_created_and_started_session_is_answered_as_it_was(self, mgr: SessionManager) -> None:
        first = mgr.create(user_id="u1", performer_id="u1", start=True, idempotency_key="k")
        mgr.touch(first.id, performer_id="u1")
        again = mgr.create(user_id="u1", performer_id="u1", start=True, idempotency_key="k")
        assert (again.id, again.version, again.status) == (first.id, 2, "in_progress")
        assert mgr.count() == 1

    @pytest.mark.parametrize("operation", sorted(WRITES))
    def test_every_write_sent_twice_is_applied_once(self, mgr: SessionManager, operation: str) -> None:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"])
        if operation not in ("start", "delete"):
            session = mgr.start(session.id, performer_id="u1")
        write = WRITES[operation]
        first = write(mgr, session, f"{operation}-key")
        before = _state(mgr, session)
        again = write(mgr, session, f"{operation}-key")
        assert again == first
        assert _state(mgr, session) == before

    def test_the_answer_is_the_session_right_after_the_first_write(self, mgr: SessionManager) -> None:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md", "b.md"])
        started = mgr.start(session.id, performer_id="u1", idempotency_key="start")
        mgr.record_file(session.id, "a.md", performer_id="u1")
        handle = IdempotencyKey("start")
        again = mgr.start(session.id, performer_id="u1", idempotency_key=handle)
        assert handle.replayed is True
        assert (again.version, again.status, again.progress.processed_files) == (2, "in_progress", 0)
        assert again == started
        assert mgr.get(session.id).version == 3

    def test_a_key_sent_with_another_request_is_refused_and_writes_nothing(self, mgr: SessionManager) -> None:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"], idempotency_key="k")
        mgr.start(session.id, performer_id="u1", idempotency_key="s")
        before = _state(mgr, session)
        with pytest.raises(IdempotencyKeyReused) as refused:
            mgr.create(user_id="u2", performer_id="u1", idempotency_key="k")
        assert refused.value.code == "idempotency_key_reused"
        assert str(session.id) not in str(refused.value.to_dict())  # names the key only
        with pytest.raises(IdempotencyKeyReused):
            mgr.fail(session.id, reason="no", performer_id="u1", idempotency_key="s")
        with pytest.raises(IdempotencyKeyReused):
            mgr.record_file(session.id, "a.md", performer_id="u1", idempotency_key="s")
        assert _state(mgr, session) == before

    def test_keys_are_scoped_to_the_performer(self, mgr: SessionManager) -> None:
        mine = mgr.create(user_id="u1", performer_id="u1", idempotency_key="same")
        theirs = mgr.create(user_id="u1", performer_id="u2", idempotency_key="same")
        assert mine.id != theirs.id
        handle_one = IdempotencyKey("shared", scope="tenant-a")
        one = mgr.create(user_id="u1", performer_id="u1", idempotency_key=handle_one)
        handle_two = IdempotencyKey("shared", scope="tenant-a")
        two = mgr.create(user_id="u1", performer_id="u1", idempotency_key=handle_two)
        assert (one.id, handle_one.replayed, handle_two.replayed) == (two.id, False, True)
        assert mgr.count() == 3

    def test_after_the_window_the_key_writes_again(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, idempotency_window=timedelta(minutes=5))
        first = mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
        clock.advance(timedelta(minutes=4, seconds=59))
        assert mgr.create(user_id="u1", performer_id="u1", idempotency_key="k") == first
        clock.advance(timedelta(seconds=1))
        later = mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
        assert later.id != first.id
        assert mgr.create(user_id="u1", performer_id="u1", idempotency_key="k") == later
        assert mgr.count() == 2

    def test_expired_keys_are_dropped(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, idempotency_window=timedelta(minutes=5))
        store: Any = mgr.store
        session = mgr.create(user_id="u1", performer_id="u1", idempotency_key="old")
        clock.advance(timedelta(minutes=3))
        mgr.start(session.id, performer_id="u1", idempotency_key="new")
        clock.advance(timedelta(minutes=2))
        assert store.drop_expired_keys(clock.now()) == 1
        assert store.find_key("performer:u1", "old") is None
        kept = store.find_key("performer:u1", "new")
        assert (kept.session_id, kept.version) == (session.id, 2)
        assert mgr.drop_expired_keys() == 0
        clock.advance(timedelta(minutes=3))
        assert mgr.drop_expired_keys() == 1

    def test_a_refused_write_keeps_no_key(self, mgr: SessionManager) -> None:
        session = mgr.create(user_id="u1", performer_id="u1")
        with pytest.raises(InvalidTransition):
            mgr.complete(session.id, performer_id="u1", idempotency_key="early")
        mgr.start(session.id, performer_id="u1")
        done = mgr.complete(session.id, performer_id="u1", idempotency_key="early")
        assert done.status == "completed"

    @pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", 7])
    def test_a_malformed_key_is_refused_before_anything_is_written(self, mgr: SessionManager, key: Any) -> None:
        with pytest.raises(InvalidInput) as refused:
            mgr.create(user_id="u1", performer_id="u1", idempotency_key=key)
        assert refused.value.field == "idempotency_key"
        assert mgr.count() == 0

    def test_a_write_whose_reply_was_lost_is_answered_on_retry(self, sessionflow_store_factory: StoreFactory,
                                                               clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            store = _ReplyLost(mgr.store, down=True)
            lossy = SessionManager(store, clock=clock, owns_store=False)
            with pytest.raises(OutcomeUnknown):
                lossy.create(user_id="u1", performer_id="u1", idempotency_key="k")
            store.down = False
            retried = lossy.create(user_id="u1", performer_id="u1", idempotency_key="k")
            assert mgr.count() == 1
            assert [s.id for s in mgr.list()] == [retried.id]

    def test_a_lost_reply_is_looked_up_by_its_key_before_anything_is_raised(
            self, sessionflow_store_factory: StoreFactory, clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            session = mgr.create(user_id="u1", performer_id="u1")
            lossy = SessionManager(_ReplyLost(mgr.store), clock=clock, owns_store=False)
            handle = IdempotencyKey("k")
            started = lossy.start(session.id, performer_id="u1", idempotency_key=handle)
            assert (started.version, started.status, handle.replayed) == (2, "in_progress", True)
            assert len(mgr.history(session.id)) == 2

    def test_two_processes_racing_with_one_key_write_once(self, sessionflow_store_factory: StoreFactory,
                                                          clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            session = mgr.create(user_id="u1", performer_id="u1")
            first = mgr.start(session.id, performer_id="u1", idempotency_key="k")
            late = SessionManager(_StaleRead(mgr.store, session), clock=clock, owns_store=False)
            again = late.start(session.id, performer_id="u1", idempotency_key="k")  # decided on the stale read
            assert again == first
            created = mgr.create(user_id="u1", performer_id="u1", idempotency_key="c")
            other = SessionManager(mgr.store, clock=clock, owns_store=False)
            assert other.create(user_id="u1", performer_id="u1", idempotency_key="c") == created
            assert mgr.count() == 2
            assert len(mgr.history(session.id)) == 2

    def test_the_same_key_in_flight_is_refused(self, sessionflow_store_factory: StoreFactory,
                                               clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            slow = _SlowAppend(mgr.store)
            shared = SessionManager(slow, clock=clock, owns_store=False)
            results: list[Session] = []
            worker = threading.Thread(target=lambda: results.append(
                shared.create(user_id="u1", performer_id="u1", idempotency_key="k")))
            worker.start()
            try:
                assert slow.entered.wait(10)
                with pytest.raises(IdempotencyKeyInFlight) as refused:
                    shared.create(user_id="u1", performer_id="u1", idempotency_key="k")
                assert refused.value.code == "idempotency_key_in_flight"
            finally:
                slow.release.set()
                worker.join(10)
            assert shared.create(user_id="u1", performer_id="u1", idempotency_key="k") == results[0]
            assert mgr.count() == 1

    @requires("purge")
    def test_purging_a_session_removes_its_keys(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock, idempotency_window=timedelta(days=7))
        session = mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
        mgr.fail(session.id, reason="done", performer_id="u1", idempotency_key="f")
        kept = mgr.create(user_id="u1", performer_id="u1", idempotency_key="kept")  # holds the newest event
        clock.advance(timedelta(days=2))
        assert mgr.purge(closed_before=clock.now() - timedelta(days=1)).sessions == 1
        store: Any = mgr.store
        assert store.find_key("performer:u1", "k") is None
        assert store.find_key("performer:u1", "f") is None
        assert store.find_key("performer:u1", "kept").session_id == kept.id


@requires("idempotency")
class TestIdempotentBatches(ContractSuite):
    """``create_many`` and ``send_many`` items given an ``idempotency_key``."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock)

    def test_a_keyed_batch_sent_twice_is_written_once(self, mgr: SessionManager) -> None:
        items: list[dict[str, Any]] = [{"user_id": f"u{n}", "idempotency_key": f"c{n}"} for n in range(3)]
        first = mgr.create_many(items, performer_id="ops")
        assert mgr.create_many(items, performer_id="ops") == first
        assert mgr.count() == 3
        sends = [(s.id, "start", None, None, f"s{n}") for n, s in enumerate(first)]
        started = mgr.send_many(sends, performer_id="ops")
        before = mgr.last_position()
        assert mgr.send_many(sends, performer_id="ops") == started
        assert mgr.last_position() == before
        assert [s.version for s in started] == [2, 2, 2]

    def test_items_answered_and_items_written_in_one_batch(self, mgr: SessionManager) -> None:
        single = mgr.create(user_id="u1", performer_id="ops", idempotency_key="one")
        batch = mgr.create_many([{"user_id": "u1", "idempotency_key": "one"}, {"user_id": "u2"},
                                 {"user_id": "u3", "idempotency_key": "three"}], performer_id="ops")
        assert batch[0] == single
        assert mgr.count() == 3
        started = mgr.start(single.id, performer_id="ops", idempotency_key="go")
        sent = mgr.send_many([(single.id, "start", None, None, "go"), (batch[1].id, "start")], performer_id="ops")
        assert sent[0] == started
        assert (sent[1].status, mgr.get(single.id).version) == ("in_progress", 2)

    def test_a_key_reused_or_doubled_in_a_batch_refuses_it(self, mgr: SessionManager) -> None:
        mgr.create(user_id="u1", performer_id="ops", idempotency_key="k")
        with pytest.raises(BatchRejected) as refused:
            mgr.create_many([{"user_id": "u2"}, {"user_id": "u9", "idempotency_key": "k"}], performer_id="ops")
        assert (refused.value.index, type(refused.value.error)) == (1, IdempotencyKeyReused)
        with pytest.raises(BatchRejected) as doubled:
            mgr.create_many([{"idempotency_key": "d"}, {"user_id": "u2"}, {"idempotency_key": "d"}],
                            performer_id="ops")
        assert (doubled.value.index, doubled.value.error.code) == (2, "invalid_input")
        assert mgr.count() == 1

    def test_a_batch_whose_reply_was_lost_is_answered(self, sessionflow_store_factory: StoreFactory,
                                                      clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            lossy = SessionManager(_ReplyLost(mgr.store), clock=clock, owns_store=False)
            items: list[dict[str, Any]] = [{"user_id": "u1", "idempotency_key": "a"},
                                           {"user_id": "u2", "idempotency_key": "b"}]
            created = lossy.create_many(items, performer_id="ops")
            assert mgr.count() == 2
            assert sorted(s.id for s in mgr.list()) == sorted(s.id for s in created)

    def test_a_lost_reply_of_a_batch_with_unkeyed_items_is_not_written_again(
            self, sessionflow_store_factory: StoreFactory, clock: ManualClock) -> None:
        with SessionManager(sessionflow_store_factory(), clock=clock) as mgr:
            lossy = SessionManager(_ReplyLost(mgr.store), clock=clock, owns_store=False)
            with pytest.raises(OutcomeUnknown):
                lossy.create_many([{"user_id": "u1", "idempotency_key": "a"}, {"user_id": "u2"}],
                                  performer_id="ops")
            assert mgr.count() == 2  # applied once; the unkeyed item was not written again
