"""The asyncio facade itself: the same API and typed errors as the synchronous manager, ``async with``,
``async def`` subscribers, the constructors."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from sessionflow import (
    ActiveSessionExists,
    AsyncSessionManager,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    SessionEvent,
    SessionNotFound,
    SessionStatus,
    StoreError,
)
from sessionflow.adapters.aio import GreenletRunner, ThreadRunner
from sessionflow.adapters.memory import InMemoryEventStore
from tests.asyncio.conftest import Opener


def test_a_whole_lifecycle(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager(default_ttl=timedelta(hours=1)) as mgr:
            s = await mgr.create(user_id="u1", file_paths=["a.py", "b.py"], performer_id="u1")
            await mgr.start(s.id, performer_id="u1")
            await mgr.record_file(s.id, "a.py", performer_id="u1")
            await mgr.record_file(s.id, "b.py", error="parse error", performer_id="u1")
            await mgr.add_note(s.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="u1")
            await mgr.touch(s.id, performer_id="u1")
            await mgr.update(s.id, metadata={"k": 1}, performer_id="u1")
            done = await mgr.complete(s.id, performer_id="u1")
            assert done.status is SessionStatus.COMPLETED
            assert [e.event for e in await mgr.history(s.id)] == [
                "created", "started", "file_recorded", "file_recorded", "note_added", "touched", "updated",
                "completed"]
            assert await mgr.get(s.id) == done
            assert await mgr.get_active(s.id) is None
            assert [x.id for x in await mgr.list(status="completed")] == [s.id]
            assert await mgr.count() == 1
            assert await mgr.count("completed") == 1
            other = await mgr.create(performer_id="u2")
            await mgr.send(other.id, "start", performer_id="u2")
            await mgr.send_with(other.id, "fail", {"reason": "no"}, performer_id="u2")
            assert (await mgr.get(other.id)).status is SessionStatus.FAILED
            await mgr.delete(other.id, performer_id="u2")
            with pytest.raises(SessionNotFound):
                await mgr.get(other.id)
            assert await mgr.next_deadline() is None
            assert await mgr.verify() == []
            assert await mgr.rebuild() == 2
            assert await mgr.ping() is True

    asyncio.run(main())


def test_the_errors_are_the_same_typed_errors(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager(single_active_per_user=True) as mgr:
            with pytest.raises(SessionNotFound):
                await mgr.get("00000000-0000-4000-8000-000000000000")
            with pytest.raises(InvalidInput):
                await mgr.create(performer_id="")
            with pytest.raises(InvalidInput):
                await mgr.get("not-a-uuid")
            s = await mgr.create(user_id="u", performer_id="u")
            with pytest.raises(InvalidTransition):
                await mgr.complete(s.id, performer_id="u")
            await mgr.start(s.id, performer_id="u")
            with pytest.raises(ConcurrencyConflict) as conflict:
                await mgr.touch(s.id, performer_id="u", expected_version=1)
            assert conflict.value.actual_version == 2
            t = await mgr.create(user_id="u", performer_id="u")
            with pytest.raises(ActiveSessionExists):
                await mgr.start(t.id, performer_id="u")
            assert (await mgr.get(t.id)).version == 1  # a refused write appends nothing

    asyncio.run(main())


def test_async_with_closes_the_manager_and_its_store(open_manager: Opener) -> None:
    async def main() -> AsyncSessionManager:
        async with await open_manager() as mgr:
            await mgr.start_timeouts()
            waker = mgr.waker
            assert waker is not None
            assert getattr(waker, "running", False)
        assert mgr.closed
        assert not getattr(waker, "running", True)
        with pytest.raises(StoreError):
            await mgr.create(performer_id="u")
        assert await mgr.ping() is False
        await mgr.close()  # idempotent
        return mgr

    asyncio.run(main())


def test_open_is_awaitable_and_an_async_context_manager(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"

    async def main() -> None:
        async with AsyncSessionManager.open(url) as first:
            s = await first.create(performer_id="u")
        second = await AsyncSessionManager.open(url)
        try:
            assert (await second.get(s.id)).version == 1
        finally:
            await second.close()
        assert first.closed

    asyncio.run(main())


@pytest.mark.parametrize(("url", "field"), [("not a url", "url"), ("postgresql+asyncpg://h/db", "url"),
                                            ("nosuchdb://x", "url")])
def test_open_refuses_what_it_cannot_open(url: str, field: str) -> None:
    async def main() -> None:
        with pytest.raises(InvalidInput) as error:
            await AsyncSessionManager.open(url)
        assert error.value.field == field

    asyncio.run(main())


def test_the_default_runner_fits_the_store(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncSessionManager.in_memory() as mgr:
            assert isinstance(mgr.runner, GreenletRunner)
        async with AsyncSessionManager.open(f"sqlite:///{tmp_path / 'r.db'}") as mgr:
            assert isinstance(mgr.runner, ThreadRunner)
        async with AsyncSessionManager(InMemoryEventStore(), runner=ThreadRunner()) as mgr:
            s = await mgr.create(performer_id="u")  # any runner drives any store
            assert (await mgr.get(s.id)).id == s.id

    asyncio.run(main())


def test_async_subscribers_are_awaited_in_order_before_the_write_returns(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            calls: list[tuple[str, int]] = []

            async def slow(event: SessionEvent) -> None:
                await asyncio.sleep(0.01)
                calls.append(("slow", event.version))

            mgr.subscribe(slow)
            mgr.subscribe(lambda e: calls.append(("plain", e.version)))
            s = await mgr.create(performer_id="u")
            await mgr.start(s.id, performer_id="u")
            assert calls == [("slow", 1), ("plain", 1), ("slow", 2), ("plain", 2)]

    asyncio.run(main())


def test_a_failing_async_subscriber_is_skipped(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            seen: list[int] = []

            async def broken(event: SessionEvent) -> None:
                raise RuntimeError("boom")

            mgr.subscribe(broken)
            unsubscribe = mgr.subscribe(lambda e: seen.append(e.version))
            s = await mgr.create(performer_id="u")
            unsubscribe()
            await mgr.start(s.id, performer_id="u")
            assert seen == [1]
            assert (await mgr.get(s.id)).version == 2

    asyncio.run(main())


def test_an_async_subscriber_may_call_the_manager_again(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            seen: list[tuple[int, int]] = []

            async def reader(event: SessionEvent) -> None:
                seen.append((event.version, (await mgr.get(event.session_id)).version))

            mgr.subscribe(reader)
            sessions = await asyncio.gather(*(mgr.create(performer_id="u") for _ in range(5)))
            await asyncio.gather(*(mgr.start(s.id, performer_id="u") for s in sessions))
            assert sorted(seen) == [(1, 1)] * 5 + [(2, 2)] * 5

    asyncio.run(main())


def test_plain_subscribers_run_on_the_loop_thread_for_stores_on_the_loop(pg_url: str) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        for opening in (AsyncSessionManager.in_memory(), await AsyncSessionManager.open(pg_url)):
            async with opening as mgr:
                threads: list[int] = []
                mgr.subscribe(lambda e, threads=threads: threads.append(threading.get_ident()))
                await mgr.create(performer_id="u")
                assert threads == [loop_thread]

    asyncio.run(main())


def test_run_sync_reaches_the_synchronous_manager_and_its_store(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            s = await mgr.create(performer_id="u")
            assert await mgr.run_sync(lambda m: m.store.session_ids()) == [s.id]
            assert await mgr.run_sync(lambda m, sid: m.get(sid).version, s.id) == 1

    asyncio.run(main())


def test_a_custom_lifecycle_through_the_facade(open_manager: Opener) -> None:
    from sessionflow.loader import definition_from_document

    definition = definition_from_document({
        "name": "review-async", "version": 1,
        "states": {"draft": {"initial": True}, "in_review": {}, "approved": {"final": True}},
        "events": {"submit": [{"from": "draft", "to": "in_review"}],
                   "approve": [{"from": "in_review", "to": "approved"}]},
    })

    async def main() -> None:
        async with await open_manager(lifecycle=definition) as mgr:
            s = await mgr.create(performer_id="u")
            assert s.status == "draft"
            await mgr.send(s.id, "submit", performer_id="u")
            s = await mgr.send(s.id, "approve", performer_id="u")
            assert s.status == "approved"
            with pytest.raises(InvalidTransition):
                await mgr.send(s.id, "submit", performer_id="u")
            assert mgr.definition.name == "review-async"

    asyncio.run(main())


def test_from_settings_configures_the_manager_and_its_waker(tmp_path: Path) -> None:
    from sessionflow import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'settings.db'}",
                        session={"timeout_seconds": 90, "cleanup_interval_seconds": 70},
                        policies={"single_active_per_user": True})

    async def main() -> None:
        async with AsyncSessionManager.from_settings(settings) as mgr:
            assert mgr.single_active_per_user
            s = await mgr.create(performer_id="u")
            assert s.ttl_seconds == 90
            waker = await mgr.start_timeouts()
            assert type(waker.scheduler).__name__ == "AsyncIOScheduler"  # type: ignore[attr-defined]
            assert waker.cleanup_interval == timedelta(seconds=70)  # type: ignore[attr-defined]
        assert not waker.running  # type: ignore[attr-defined]

    asyncio.run(main())
