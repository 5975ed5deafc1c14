"""Timeouts on the asyncio facade: the real waker (APScheduler's ``AsyncIOScheduler`` on the running loop) expires
sessions at their deadlines, its sweeps run through the manager's runner, and it stops with the manager."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from sessionflow import ApschedulerWaker, AsyncSessionManager, SessionEvent, SessionStatus
from tests.asyncio.conftest import Opener

SECOND = timedelta(seconds=1)


def test_timeouts_fire_on_the_loop_with_the_real_waker(open_manager: Opener) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        async with await open_manager() as mgr:
            expired = asyncio.Event()
            seen: list[tuple[str, int]] = []

            async def on_event(event: SessionEvent) -> None:
                # An async subscriber always runs on the loop, whichever runner committed the event.
                seen.append((str(event.event), threading.get_ident()))
                if event.event == "expired":
                    expired.set()

            mgr.subscribe(on_event)
            waker = await mgr.start_timeouts(cleanup_interval=timedelta(minutes=1))
            assert isinstance(waker, ApschedulerWaker)
            assert waker.running
            assert type(waker.scheduler).__name__ == "AsyncIOScheduler"
            s = await mgr.create(performer_id="u", ttl=SECOND)
            await asyncio.wait_for(expired.wait(), 10)
            got = await mgr.get(s.id)
            assert got.status is SessionStatus.EXPIRED
            assert got.closed_by == "system"
            assert seen == [("created", loop_thread), ("expired", loop_thread)]
        assert not waker.running

    asyncio.run(main())


def test_start_timeouts_catches_up_and_is_idempotent(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            s = await mgr.create(performer_id="u", ttl=SECOND)
            await asyncio.sleep(1.05)
            waker = await mgr.start_timeouts()
            # Sessions that fell due while nothing ran are expired when start_timeouts returns.
            assert (await mgr.run_sync(lambda m: m.store.get(s.id))).status is SessionStatus.EXPIRED
            assert await mgr.start_timeouts() is waker
            await mgr.stop_timeouts()
            assert not waker.running
            await mgr.stop_timeouts()  # idempotent

    asyncio.run(main())


def test_a_waker_given_to_the_constructor_is_used(open_manager: Opener) -> None:
    async def main() -> None:
        waker = ApschedulerWaker.for_asyncio(cleanup_interval=timedelta(seconds=30))
        async with await open_manager(waker=waker) as mgr:
            assert await mgr.start_timeouts() is waker
            assert waker.running
            assert mgr.waker is waker
        assert not waker.running

    asyncio.run(main())


def test_a_deadline_written_after_start_rearms_the_waker() -> None:
    async def main() -> None:
        async with AsyncSessionManager.in_memory() as mgr:
            await mgr.start_timeouts()
            first = await mgr.create(performer_id="u", ttl=timedelta(hours=1))
            second = await mgr.create(performer_id="u", ttl=SECOND)
            waker = mgr.waker
            assert isinstance(waker, ApschedulerWaker)
            assert waker.armed_at == second.expires_at
            for _ in range(400):
                if (await mgr.run_sync(lambda m: m.store.get(second.id))).status is SessionStatus.EXPIRED:
                    break
                await asyncio.sleep(0.01)
            assert (await mgr.get(second.id)).status is SessionStatus.EXPIRED
            assert (await mgr.get(first.id)).status is SessionStatus.PENDING

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"], indirect=True)  # what another process can write to
def test_a_deadline_written_by_another_process_wakes_the_loops_waker(open_manager: Opener) -> None:
    """The waker follows the store's change watcher: a session another process creates expires at its deadline,
    not at the next safety-net sweep (one hour away here)."""

    async def main() -> None:
        async with await open_manager() as mgr, await open_manager() as other:
            expired = asyncio.Event()
            mgr.subscribe(lambda event: expired.set() if event.event == "expired" else None)
            await mgr.start_timeouts(cleanup_interval=timedelta(hours=1))
            await asyncio.sleep(0.3)  # the watcher is listening
            # Another manager on the same database stands for another process: its write does not reach
            # ``mgr``'s waker through the manager, only through the database.
            s = await other.create(performer_id="u", ttl=SECOND)
            await asyncio.wait_for(expired.wait(), 5)
            got = await mgr.get(s.id)
            assert got.status is SessionStatus.EXPIRED
            assert got.closed_at is not None
            assert got.expires_at is not None
            assert got.closed_at - got.expires_at < SECOND

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"], indirect=True)  # what another process can write to
def test_a_following_consumer_wakes_on_another_process_commit(open_manager: Opener) -> None:

    async def main() -> None:
        async with await open_manager() as mgr, await open_manager() as other:
            got: list[SessionEvent] = []
            stop = asyncio.Event()

            async def handler(event: SessionEvent) -> None:
                got.append(event)
                stop.set()

            # A long poll interval: only the change notice can wake it in time.
            task = asyncio.ensure_future(mgr.consume("c", handler, stop=stop, poll_interval=60))
            await asyncio.sleep(0.3)
            await other.create(performer_id="u")
            await asyncio.wait_for(task, 5)
            assert [e.event for e in got] == ["created"]

    asyncio.run(main())
