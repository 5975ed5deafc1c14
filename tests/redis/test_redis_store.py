"""What only the Redis store has to show: durability across a SIGKILL of the server, recovery from lost
connections, Redis errors as ``StoreError``, its change watcher, its key layout staying consistent."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

import redis
from sessionflow import SessionManager, StoreError
from sessionflow.adapters.redis import RedisEventStore
from sessionflow.application.watching import Notice
from sessionflow.bootstrap import create_redis_store, is_redis_url
from sessionflow.errors import InvalidInput
from sessionflow.testing import ManualClock
from tests.support.redis import RedisServer

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_redis_urls_open_the_redis_store(clean_redis_url: str) -> None:
    assert all(is_redis_url(url) for url in ("redis://h:1/0", "rediss://h/0", "unix:///tmp/r.sock"))
    assert not any(is_redis_url(url) for url in ("sqlite:///x.db", "postgresql+psycopg://h/db", None))
    with SessionManager.open(clean_redis_url, migrate=False, clock=ManualClock(T0)) as mgr:
        assert isinstance(mgr.store, RedisEventStore)
        s = mgr.create(user_id="u1", file_paths=["a.py"], performer_id="u1")
        mgr.start(s.id, performer_id="u1")
    with SessionManager.open(clean_redis_url) as again:  # a new manager (another process) sees the same
        assert again.get(s.id).version == 2
        assert [e.event for e in again.history(s.id)] == ["created", "started"]


def test_an_unreachable_server_is_a_store_error() -> None:
    from tests.support.postgres import free_port

    started = time.monotonic()
    with pytest.raises(StoreError):
        create_redis_store(f"redis://127.0.0.1:{free_port()}/0", redis_retries=1, redis_socket_timeout=1.0)
    assert time.monotonic() - started < 5
    with pytest.raises(InvalidInput):
        create_redis_store("redis://127.0.0.1:notaport/0")


def test_a_redis_error_is_a_store_error(clean_redis_url: str) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        s = mgr.create(performer_id="p")
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        store.client.delete(f"{store.prefix}e:{s.id}")
        store.client.set(f"{store.prefix}e:{s.id}", "not a list")  # WRONGTYPE for the next append
        with pytest.raises(StoreError):
            mgr.start(s.id, performer_id="p")
        store.close()
        with pytest.raises(StoreError):
            store.get(s.id)
        assert not store.ping()


def test_a_lost_connection_recovers(clean_redis_url: str) -> None:
    admin = redis.Redis.from_url(clean_redis_url)
    try:
        with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
            s = mgr.create(performer_id="p")
            for _ in range(3):
                admin.client_kill_filter(_type="normal", skipme=True)  # every connection of the store dropped
                s = mgr.touch(s.id, performer_id="p")
            assert mgr.get(s.id).version == 4
            assert [e.version for e in mgr.history(s.id)] == [1, 2, 3, 4]
    finally:
        admin.close()


def test_an_append_repeated_after_a_lost_reply_is_not_applied_twice(clean_redis_url: str) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        store = mgr.store
        assert isinstance(store, RedisEventStore)
        s = mgr.create(performer_id="p")
        original = store._client.execute_command
        calls = {"n": 0}

        def lose_first_reply(*args: object, **kwargs: object) -> object:
            result = original(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 1:  # the script ran, but its reply never arrived
                raise redis.ConnectionError("connection lost after the write")
            return result

        store._client.execute_command = lose_first_reply  # type: ignore[method-assign]
        try:
            started = mgr.start(s.id, performer_id="p")
        finally:
            store._client.execute_command = original  # type: ignore[method-assign]
        assert started.version == 2
        assert [e.event for e in mgr.history(s.id)] == ["created", "started"]
        assert mgr.verify() == []


def test_the_change_watcher_reports_other_managers_writes(clean_redis_url: str) -> None:
    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as watching, \
            SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as writer:
        watcher = watching._new_watcher()
        assert watcher is not None
        seen: list[Notice] = []
        ready = threading.Event()

        def note(notice: Notice) -> None:
            seen.append(notice)
            ready.set()

        watcher.subscribe(note)
        assert watcher.wait_listening(5)  # type: ignore[attr-defined]
        seen.clear()
        s = writer.create(performer_id="p", ttl=timedelta(minutes=5))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(n.kind == "deadline" for n in seen):
            time.sleep(0.01)
        assert Notice("deadline", s.expires_at) in seen
        assert Notice("events") in seen


def _writer(url: str, acknowledged: list[tuple[UUID, int]], errors: list[BaseException], stop: threading.Event) -> None:
    with SessionManager.open(url, redis_retries=20) as mgr:
        while not stop.is_set():
            try:
                s = mgr.create(performer_id="w", user_id="u", file_paths=["a.py"])
                acknowledged.append((s.id, s.version))
                s = mgr.start(s.id, performer_id="w")
                acknowledged.append((s.id, s.version))
                s = mgr.record_file(s.id, "a.py", performer_id="w")
                acknowledged.append((s.id, s.version))
                s = mgr.complete(s.id, performer_id="w")
                acknowledged.append((s.id, s.version))
            except StoreError as error:  # the server was down for longer than the retries: not acknowledged
                errors.append(error)


def test_sigkill_of_the_server_mid_run_loses_no_acknowledged_write(own_redis: RedisServer) -> None:
    assert own_redis.appendfsync == "always"
    acknowledged: list[tuple[UUID, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(own_redis.url, acknowledged, errors, stop)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            time.sleep(0.4)
            before = len(acknowledged)
            own_redis.kill()  # SIGKILL: no shutdown, no final write
            time.sleep(0.2)
            own_redis.start()  # same port, same data directory: the server replays its append-only file
            assert before > 0
        time.sleep(0.4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(acknowledged) > 20
    with SessionManager.open(own_redis.url) as mgr:
        for sid, version in acknowledged:
            stored = mgr.store.get(sid)
            assert stored is not None
            assert stored.version >= version, (sid, version)
            assert [e.version for e in mgr.history(sid)] == list(range(1, stored.version + 1))
        assert mgr.verify() == []
        feed = mgr.store.read_events(0, 1_000_000)
        assert len(feed) == sum(len(mgr.history(sid)) for sid in mgr.store.session_ids())
        positions = [e.position for e in feed]
        assert positions == sorted(set(positions))


def test_the_prometheus_metrics_work_on_redis_with_command_latency(clean_redis_url: str) -> None:
    from prometheus_client import CollectorRegistry

    from sessionflow.adapters.metrics import SessionflowMetrics

    with SessionManager.open(clean_redis_url, clock=ManualClock(T0)) as mgr:
        metrics = SessionflowMetrics(CollectorRegistry()).instrument(mgr)
        s = mgr.create(performer_id="p", file_paths=["a.py"])
        mgr.start(s.id, performer_id="p")
        mgr.get(s.id)
        samples = list(metrics.samples())
        assert ("sessionflow_transitions_total", {"event": "started", "source": "pending", "target": "in_progress"},
                1.0) in samples
        assert ("sessionflow_sessions", {"status": "in_progress"}, 1.0) in samples
        latency = {labels["operation"]: value for name, labels, value in samples
                   if name == "sessionflow_store_command_seconds_count"}
        assert latency["append"] == 2
        assert latency["get"] >= 1
        metrics.detach()
        mgr.touch(s.id, performer_id="p")
        after = {labels["operation"]: value for name, labels, value in metrics.samples()
                 if name == "sessionflow_store_command_seconds_count"}
        assert after["append"] == 2
