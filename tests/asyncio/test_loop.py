"""The event loop is never blocked: a ticker keeps ticking during long operations, many tasks share one manager,
a cancelled call leaves the manager usable."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionflow import AsyncSessionManager, ConcurrencyConflict, replay
from sessionflow.testing import ManualClock
from tests.asyncio.conftest import Opener


class Ticker:
    """A task that wakes every millisecond and records the longest gap between two of its wake-ups."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None
        self._gc_was_enabled = True

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        # A full garbage collection in a process that has run thousands of tests can pause every thread for a
        # few hundred milliseconds: that is the interpreter, not the manager under test.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.01)
        self.ticks, self.longest = 0, 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._gc_was_enabled:
            gc.enable()


def test_a_long_operation_on_sqlite_never_blocks_the_loop(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))

    async def main() -> None:
        async with AsyncSessionManager.open(f"sqlite:///{tmp_path / 'long.db'}", clock=clock) as mgr:
            await mgr.run_sync(lambda m: [m.create(performer_id="u", ttl=timedelta(seconds=5)) for _ in range(3000)])
            clock.advance(timedelta(minutes=1))
            async with Ticker() as ticker:
                started = time.perf_counter()
                expired = await mgr.expire_sessions(batch_size=100)  # thirty transactions, one call
                rebuilt = await mgr.rebuild()
                elapsed = time.perf_counter() - started
            assert (expired, rebuilt) == (3000, 3000)
            # The ticker ran all along: a few milliseconds between ticks at worst (the worker thread holds the
            # interpreter for a switch interval at a time), never the whole operation.
            assert elapsed > 0.05
            assert ticker.ticks >= elapsed / 0.01
            assert ticker.longest < max(0.25, elapsed / 2)

    asyncio.run(main())


def test_a_waiting_query_on_postgres_never_blocks_the_loop(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open(pg_url) as mgr:
            s = await mgr.create(performer_id="u")

            def slow_read(m: object) -> object:
                from sqlalchemy import text

                store = mgr.store
                with store.engine.connect() as conn:  # type: ignore[attr-defined]
                    conn.execute(text("SELECT pg_sleep(0.3)"))
                return store.get(s.id)

            async with Ticker() as ticker:
                started = time.perf_counter()
                got, others = await asyncio.gather(mgr.run_sync(slow_read),
                                                   asyncio.gather(*(mgr.get(s.id) for _ in range(20))))
                elapsed = time.perf_counter() - started
            assert got is not None
            assert {o.id for o in others} == {s.id}
            assert elapsed >= 0.3
            assert ticker.ticks >= 100
            assert ticker.longest < 0.1

    asyncio.run(main())


def test_fifty_concurrent_tasks_on_postgres(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open(pg_url, pool_size=10, max_overflow=5) as mgr:
            received: Counter[str] = Counter()
            mgr.subscribe(lambda e: received.update([str(e.event)]))

            async def lifecycle(i: int) -> list[str]:
                ids = []
                for k in range(4):
                    s = await mgr.create(user_id=f"t{i}", file_paths=["a", "b"], performer_id=f"t{i}")
                    await mgr.start(s.id, performer_id=f"t{i}")
                    await mgr.record_file(s.id, "a", performer_id=f"t{i}")
                    if k % 2:
                        await mgr.fail(s.id, reason="odd", performer_id=f"t{i}")
                    else:
                        await mgr.record_file(s.id, "b", error="bad", performer_id=f"t{i}")
                        await mgr.complete(s.id, performer_id=f"t{i}")
                    ids.append(str(s.id))
                return ids

            results = await asyncio.gather(*(lifecycle(i) for i in range(50)))
            assert len({sid for ids in results for sid in ids}) == 200
            assert await mgr.count("completed") == await mgr.count("failed") == 100
            assert received["created"] == 200
            assert received["completed"] == 100
            assert received["failed"] == 100
            for ids in results[:5]:
                for sid in ids:
                    history = await mgr.history(sid)
                    assert [e.version for e in history] == list(range(1, len(history) + 1))
                    assert replay(history) == await mgr.get(sid)

    asyncio.run(main())


def test_fifty_tasks_racing_on_one_session_conflict_and_lose_nothing(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open(pg_url) as mgr:
            s = await mgr.create(performer_id="u")
            await mgr.start(s.id, performer_id="u")
            outcomes = await asyncio.gather(*(mgr.touch(s.id, performer_id="u", expected_version=2)
                                              for _ in range(50)), return_exceptions=True)
            won = [o for o in outcomes if not isinstance(o, BaseException)]
            lost = [o for o in outcomes if isinstance(o, ConcurrencyConflict)]
            assert len(won) == 1
            assert len(lost) == 49
            assert (await mgr.get(s.id)).version == 3

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_a_cancelled_call_leaves_the_manager_usable(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            sessions = [await mgr.create(performer_id="u") for _ in range(20)]
            tasks = [asyncio.create_task(mgr.start(s.id, performer_id="u")) for s in sessions]
            await asyncio.sleep(0)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in sessions:  # each start happened or not, whole; the manager goes on
                got = await mgr.get(s.id)
                assert got.version in (1, 2)
                if got.version == 1:
                    await mgr.start(s.id, performer_id="u")
            assert await mgr.count("in_progress") == 20

    asyncio.run(main())


def test_a_retry_after_a_lost_connection_waits_without_blocking_the_loop(pg_url: str) -> None:
    """The store's back-off before it retries on a new connection awaits: other tasks run meanwhile."""
    pauses: list[float] = []

    async def main() -> None:
        async with AsyncSessionManager.open(pg_url) as mgr:
            s = await mgr.create(performer_id="u")
            store = mgr.store
            lost = store._operational_error  # type: ignore[attr-defined]  # the driver's "connection lost"
            original_pause = store._pause  # type: ignore[attr-defined]
            attempts = {"n": 0}

            def flaky_read() -> object:
                attempts["n"] += 1
                if attempts["n"] <= 2:  # the first two attempts find the connection gone
                    raise lost("server closed the connection unexpectedly")
                return store.get(s.id)

            def pause(seconds: float) -> None:
                pauses.append(seconds)
                original_pause(seconds)

            store._pause = pause  # type: ignore[attr-defined]
            async with Ticker() as ticker:
                got = await mgr.run_sync(lambda m: m.store._run(flaky_read))  # type: ignore[attr-defined]
            assert got.id == s.id
            assert attempts["n"] == 3
            assert sum(pauses) >= 0.25  # 0.1 s then 0.2 s of back-off
            assert ticker.ticks >= 100  # the ticker kept ticking through them
            assert ticker.longest < 0.1

    asyncio.run(main())
