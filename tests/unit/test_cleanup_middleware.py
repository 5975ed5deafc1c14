"""``SessionCleanupMiddleware`` / ``SessionCleanupWSGIMiddleware``: a host application's own traffic sweeps
overdue sessions — at most once per interval, never on the request's path, one sweep at a time, exactly-once
expiry with several sweepers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from sessionflow import AsyncSessionManager, InvalidInput, SessionManager, SessionStatus
from sessionflow.middleware import SessionCleanupMiddleware, SessionCleanupWSGIMiddleware, TrafficSweeper
from sessionflow.testing import ManualClock


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _request(app: Any, kind: str = "http") -> list[Any]:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": kind, "path": "/"}, receive, send)
    return sent


def _wait_idle(sweeper: TrafficSweeper) -> None:
    deadline = time.monotonic() + 10
    while sweeper._state.running:
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.005)


def test_a_request_after_the_interval_sweeps_once_and_requests_inside_it_none() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        app = SessionCleanupMiddleware(_app, manager, cleanup_interval=60)
        sid = manager.create(performer_id="p", ttl=timedelta(seconds=90)).id
        asyncio.run(_request(app))  # the first request sweeps (nothing due yet)
        _wait_idle(app.sweeper)
        assert app.sweeper.started == 1
        clock.advance(timedelta(seconds=100))  # overdue, and the interval has passed
        for _ in range(5):
            assert asyncio.run(_request(app))[0]["status"] == 200
        _wait_idle(app.sweeper)
        assert app.sweeper.started == 2  # five requests, one sweep
        assert manager.history(sid)[-1].event == "expired"
        clock.advance(timedelta(seconds=30))  # inside the interval: none
        asyncio.run(_request(app))
        assert app.sweeper.started == 2
        asyncio.run(_request(app, "lifespan"))  # not a request
        clock.advance(timedelta(seconds=31))
        asyncio.run(_request(app, "lifespan"))
        assert app.sweeper.started == 2
        asyncio.run(_request(app))
        _wait_idle(app.sweeper)
        assert app.sweeper.started == 3


def test_frozen_and_advanced_time_moves_it() -> None:
    with freeze_time("2026-01-01T00:00:00Z") as frozen, SessionManager.in_memory() as manager:
        sid = manager.create(performer_id="p", ttl=timedelta(minutes=2)).id
        app = SessionCleanupMiddleware(_app, manager, cleanup_interval=timedelta(minutes=5))
        asyncio.run(_request(app))
        _wait_idle(app.sweeper)
        frozen.tick(timedelta(minutes=3))
        asyncio.run(_request(app))
        assert app.sweeper.started == 1  # inside the interval
        assert manager.store.get(sid).status == SessionStatus.PENDING  # not swept yet (reads would expire it)
        frozen.tick(timedelta(minutes=3))
        asyncio.run(_request(app))
        _wait_idle(app.sweeper)
        assert app.sweeper.started == 2
        assert manager.store.get(sid).status == SessionStatus.EXPIRED


class _BlockingSweep:
    """A manager whose sweep blocks until released."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.clock = manager.clock
        self.release = threading.Event()
        self.sweeps = 0

    def sweep(self, **options: Any) -> Any:
        self.sweeps += 1
        self.release.wait(10)
        return self.manager.sweep(**options)


def test_a_blocking_sweep_never_delays_a_request_and_runs_alone() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        blocking = _BlockingSweep(manager)
        app = SessionCleanupMiddleware(_app, blocking, cleanup_interval=30)
        started = time.perf_counter()
        asyncio.run(_request(app))  # starts the sweep, which blocks
        assert time.perf_counter() - started < 1.0
        clock.advance(timedelta(seconds=60))
        asyncio.run(_request(app))  # due again, but one is running: none started
        assert blocking.sweeps == 1
        assert app.sweeper.started == 1
        blocking.release.set()
        _wait_idle(app.sweeper)
        clock.advance(timedelta(seconds=60))
        asyncio.run(_request(app))
        _wait_idle(app.sweeper)
        assert blocking.sweeps == 2


def test_each_sweep_is_bounded() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        ids = [manager.create(performer_id="p", ttl=timedelta(seconds=60)).id for _ in range(25)]
        clock.advance(timedelta(seconds=61))
        sweeper = TrafficSweeper(manager, cleanup_interval=30, max_sessions=10, batch_size=5)
        sweeper.poke()
        _wait_idle(sweeper)
        assert sum(manager.store.get(sid).status == SessionStatus.EXPIRED for sid in ids) == 10


def test_the_wsgi_middleware() -> None:
    clock = ManualClock()
    with SessionManager.in_memory(clock=clock) as manager:
        sid = manager.create(performer_id="p", ttl=timedelta(seconds=60)).id
        clock.advance(timedelta(seconds=61))

        def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            start_response("200 OK", [])
            return [b"ok"]

        app = SessionCleanupWSGIMiddleware(wsgi_app, manager, cleanup_interval=30)
        assert list(app({}, lambda *a: None)) == [b"ok"]
        _wait_idle(app.sweeper)
        assert manager.store.get(sid).status == SessionStatus.EXPIRED


def test_the_asgi_middleware_with_the_asyncio_facade() -> None:
    async def main() -> None:
        clock = ManualClock()
        async with AsyncSessionManager.in_memory(clock=clock) as manager:
            sid = (await manager.create(performer_id="p", ttl=timedelta(seconds=60))).id
            clock.advance(timedelta(seconds=61))
            app = SessionCleanupMiddleware(_app, manager, cleanup_interval=30)
            await _request(app)
            for _ in range(100):
                if not app.sweeper._state.running:
                    break
                await asyncio.sleep(0.01)
            assert (await manager.get(sid)).status == SessionStatus.EXPIRED
            with pytest.raises(InvalidInput):
                SessionCleanupWSGIMiddleware(lambda e, s: [], manager)

    asyncio.run(main())


def test_arguments_are_checked() -> None:
    with SessionManager.in_memory() as manager:
        for bad in (29.9, 0, -1, True, "300", timedelta(seconds=10)):
            with pytest.raises(InvalidInput):
                TrafficSweeper(manager, cleanup_interval=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            TrafficSweeper(manager, max_sessions=0)
        with pytest.raises(InvalidInput):
            TrafficSweeper(object())


def test_several_processes_sweeping_expire_each_session_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = ManualClock()
    with SessionManager.open(url, clock=clock) as a, SessionManager.open(url, clock=clock) as b:
        ids = [a.create(performer_id="p", ttl=timedelta(seconds=60)).id for _ in range(200)]
        clock.advance(timedelta(seconds=61))
        sweepers = [TrafficSweeper(m, cleanup_interval=30, batch_size=7) for m in (a, b)]
        for sweeper in sweepers:
            sweeper.poke()
        for sweeper in sweepers:
            _wait_idle(sweeper)
        for sid in ids:
            assert [e.event for e in a.history(sid)].count("expired") == 1
