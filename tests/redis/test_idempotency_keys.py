"""The Redis store's idempotency keys as Redis holds them: one string per (scope, key) whose Redis expiry is the
key's window, an index scanned by the drop, the keys of purged sessions removed by the purge's script, a
duplicate refused by the append script itself, and the replica wait covering a write answered from its key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

import redis
from sessionflow import BatchRejected, Change, SessionManager, apply
from sessionflow.adapters.redis import RedisEventStore
from sessionflow.adapters.redis.keys import key_name, window_ms
from sessionflow.application.idempotency import IdempotencyRecord, StoredKey
from sessionflow.errors import IdempotencyKeyInFlight, OutcomeUnknown
from sessionflow.testing import ManualClock

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
P = "sessionflow:"


@pytest.fixture
def client(clean_redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the emptied test server (what the tests read Redis with)."""
    plain = redis.Redis.from_url(clean_redis_url, decode_responses=True)
    yield plain
    plain.close()


def _name(key: str, scope: str = "performer:u1") -> str:
    return key_name(P, scope, key)


def _record(key: str, created: datetime, window: timedelta = timedelta(minutes=5)) -> IdempotencyRecord:
    return IdempotencyRecord("performer:u1", key, "f" * 64, created, created + window)


def _creation(mgr: SessionManager, record: IdempotencyRecord | None) -> Change:
    """A new session's creation (a copy of another session's ``created`` event), keeping ``record``."""
    template = mgr.history(mgr.create(user_id="u1", performer_id="u1").id)[0]
    event = template.evolve(session_id=uuid4(), record_id=uuid4(), position=None)
    return Change(apply(None, event), (event,), 0, idempotency=record)


def test_a_keys_redis_expiry_is_its_window_and_the_only_one(clean_redis_url: str, client: redis.Redis) -> None:
    clock = ManualClock(T0)
    with SessionManager.open(clean_redis_url, clock=clock, idempotency_window=timedelta(minutes=5)) as mgr:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"], idempotency_key="k")
        mgr.start(session.id, performer_id="u1", idempotency_key="s")
    ttl = client.pttl(_name("k"))
    assert 295_000 < ttl <= 300_000  # the window, not the distance from Redis's clock to 2030
    expires, sid, version, fingerprint = str(client.get(_name("s"))).split(",")
    assert (int(expires), UUID(sid), int(version), len(fingerprint)) == (
        int((T0 + timedelta(minutes=5)).timestamp() * 1000), session.id, 2, 64)
    others = [key for key in client.scan_iter(match="*") if not key.startswith(P + "k:")]
    assert others
    assert all(client.pttl(key) == -1 for key in others)  # no other key of the store expires


def test_the_expiry_is_computed_from_the_record_and_at_least_one_millisecond() -> None:
    assert window_ms(_record("k", T0, timedelta(hours=24))) == 86_400_000
    assert window_ms(_record("k", T0, timedelta(microseconds=10))) == 1
    assert window_ms(_record("k", T0, timedelta(0))) == 1


def test_the_key_name_tells_scope_and_key_apart() -> None:
    assert key_name(P, "a:b", "c") != key_name(P, "a", "b:c")
    assert key_name(P, "\u00e9", "x") == P + "k:2:\u00e9:x"


def test_purge_removes_the_keys_of_the_sessions_it_removes(clean_redis_url: str, client: redis.Redis) -> None:
    clock = ManualClock(T0)
    with SessionManager.open(clean_redis_url, clock=clock, idempotency_window=timedelta(minutes=5)) as mgr:
        first = mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
        mgr.fail(first.id, reason="done", performer_id="u1", idempotency_key="f")
        clock.advance(timedelta(minutes=10))
        # "k" expired: a later write takes it over, for another session (Redis still holds the old one)
        assert client.exists(_name("k"))
        later = mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
        assert later.id != first.id
        assert client.zrange(P + "kx", 0, -1) == [f"{first.id}:{_name('f')}", f"{later.id}:{_name('k')}"]
        assert client.smembers(P + f"ks:{first.id}") == {_name("f")}
        assert mgr.purge(closed_before=clock.now()).sessions == 1
        assert not client.exists(_name("f"), P + f"ks:{first.id}")
        store: Any = mgr.store
        assert store.find_key("performer:u1", "k").session_id == later.id  # the later write's key stays
        assert client.zrange(P + "kx", 0, -1) == [f"{later.id}:{_name('k')}"]


def test_purge_leaves_a_key_taken_over_after_redis_expired_it(clean_redis_url: str, client: redis.Redis) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        first = _creation(mgr, _record("k", datetime.now(UTC), timedelta(milliseconds=1)))
        store.append(first)
        while client.exists(_name("k")):  # Redis expires it by itself (its window: 1 ms)
            time.sleep(0.005)
        later = _creation(mgr, _record("k", datetime.now(UTC)))
        store.append(later)  # Redis no longer told the first key's session: its set still names the key
        assert client.smembers(P + f"ks:{first.session.id}") == {_name("k")}
        assert store.purge_sessions({first.session.id: 1}) == [first.session.id]
        assert store.find_key("performer:u1", "k").session_id == later.session.id  # type: ignore[union-attr]
        assert client.zrange(P + "kx", 0, -1) == [f"{later.session.id}:{_name('k')}"]
        assert not client.exists(P + f"ks:{first.session.id}")


def test_drop_uses_the_managers_clock_and_cleans_what_redis_expired(clean_redis_url: str,
                                                                   client: redis.Redis) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        # created "now" by Redis's own clock, with a window so short that Redis expires it by itself at once
        gone = _creation(mgr, _record("gone", datetime.now(UTC), timedelta(milliseconds=1)))
        store.append(gone)
        kept = _creation(mgr, _record("kept", T0))
        store.append(kept)
        assert store.drop_expired_keys(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert store.find_key("performer:u1", "kept") == StoredKey("f" * 64, kept.session.id, 1,
                                                                   T0 + timedelta(minutes=5))
        assert store.drop_expired_keys(T0 + timedelta(minutes=4)) == 1  # "gone" only
        assert client.smembers(P + f"ks:{gone.session.id}") == set()
        assert client.exists(_name("kept"))  # Redis holds it (its own clock is years before the window's end)
        assert store.drop_expired_keys(T0 + timedelta(minutes=5)) == 1
        assert not client.exists(_name("kept"), P + "kx", P + f"ks:{kept.session.id}")
        assert store.find_key("performer:u1", "kept") is None


class _Racing:
    """A store whose first append waits at ``gate`` for the other process's: both have decided their write, then
    both append; what each append raised is kept in ``refused``."""

    def __init__(self, store: Any, gate: threading.Barrier) -> None:
        self.store = store
        self.gate = gate
        self.looked = False
        self.refused: list[BaseException] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append(self, change: Any) -> None:
        if not self.looked:
            self.looked = True
            self.gate.wait(10)
        try:
            self.store.append(change)
        except IdempotencyKeyInFlight as error:
            self.refused.append(error)
            raise


@pytest.mark.parametrize("round_", range(5))
def test_two_clients_racing_with_one_key_are_refused_by_the_script(clean_redis_url: str, round_: int) -> None:
    clock = ManualClock(T0)
    gate = threading.Barrier(2)
    with SessionManager.open(clean_redis_url, clock=clock) as one, SessionManager.open(clean_redis_url,
                                                                                       clock=clock) as two:
        racers = [_Racing(one.store, gate), _Racing(two.store, gate)]
        managers = [SessionManager(r, clock=clock, owns_store=False) for r in racers]
        answers: list[Any] = [None, None]

        def create(index: int) -> None:
            answers[index] = managers[index].create(user_id="u1", performer_id="u1", idempotency_key="k")

        threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert answers[0] is not None
        assert answers[0] == answers[1]  # the loser is answered with the winner's
        assert sorted(len(r.refused) for r in racers) == [0, 1]  # refused by the script, nothing written
        assert one.count() == 1
        assert one.store.find_key("performer:u1", "k").session_id == answers[0].id  # type: ignore[attr-defined]


def test_a_batch_refuses_a_key_stored_or_taken_by_an_earlier_change(clean_redis_url: str) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        store.append(_creation(mgr, _record("stored", T0)))
        before = mgr.count(), mgr.last_position()
        for keys, index in ((("a", "stored"), 1), (("b", "b"), 1), (("stored", "c"), 0)):
            batch = [_creation(mgr, _record(key, T0 + timedelta(minutes=1))) for key in keys]
            before = mgr.count(), mgr.last_position()
            with pytest.raises(BatchRejected) as refused:
                store.append_many(batch)
            assert (refused.value.index, type(refused.value.error)) == (index, IdempotencyKeyInFlight)
            assert (mgr.count(), mgr.last_position()) == before
            assert all(store.find_key("performer:u1", key) is None for key in keys if key != "stored")
        # expired by the changes' created time: replaced
        store.append_many([_creation(mgr, _record("stored", T0 + timedelta(minutes=5))),
                           replacement := _creation(mgr, _record("d", T0 + timedelta(minutes=5)))])
        assert store.find_key("performer:u1", "d").session_id == replacement.session.id  # type: ignore[union-attr]


def test_a_keyed_append_repeated_after_a_lost_reply_is_applied_once(clean_redis_url: str) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        change = _creation(mgr, _record("k", T0))
        original = store.client.execute_command
        calls = {"n": 0}

        def lose_first_reply(*args: object, **kwargs: object) -> object:
            result = original(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 1:  # the script ran and stored the key, but its reply never arrived
                raise redis.ConnectionError("connection lost after the write")
            return result

        store.client.execute_command = lose_first_reply  # type: ignore[method-assign]
        try:
            store.append(change)  # the repeat recognises its own change (not refused by its own key)
        finally:
            store.client.execute_command = original  # type: ignore[method-assign]
        assert calls["n"] == 2
        assert len(mgr.history(change.session.id)) == 1
        assert store.find_key("performer:u1", "k") == StoredKey("f" * 64, change.session.id, 1,
                                                                T0 + timedelta(minutes=5))


def test_a_write_too_few_replicas_acknowledge_is_not_answered_from_its_key(clean_redis_url: str) -> None:
    """No replica: the keyed write is applied on the primary and unknown to the caller; a retry with its key must
    not turn it into an acknowledged answer."""
    clock = ManualClock(T0)
    with SessionManager.open(clean_redis_url, clock=clock, redis_wait_replicas=1, redis_wait_timeout=0.05) as mgr:
        for _ in range(2):
            with pytest.raises(OutcomeUnknown):
                mgr.create(user_id="u1", performer_id="u1", idempotency_key="k")
    with SessionManager.open(clean_redis_url, clock=clock) as alone:
        assert alone.count() == 1  # applied once, on the primary
        assert alone.create(user_id="u1", performer_id="u1", idempotency_key="k").id == alone.list()[0].id
