"""The global feed on the asyncio facade: pages, ``consume`` with plain and ``async def`` handlers, and
``follow``, which stores an event's position when the next one is requested."""

from __future__ import annotations

import asyncio

import pytest

from sessionflow import AsyncSessionManager, InvalidInput, SessionEvent
from tests.asyncio.conftest import Opener


async def _write(mgr: AsyncSessionManager, sessions: int) -> None:
    for _ in range(sessions):
        s = await mgr.create(performer_id="u")
        await mgr.start(s.id, performer_id="u")


def test_pages_and_positions(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            await _write(mgr, 3)
            feed = await mgr.events()
            assert [e.position for e in feed] == sorted(e.position for e in feed)
            assert len(feed) == 6
            assert await mgr.last_position() == feed[-1].position
            assert await mgr.events(after=feed[3].position or 0, limit=1) == [feed[4]]

    asyncio.run(main())


def test_consume_with_an_async_handler_stores_the_position_of_each_batch(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            await _write(mgr, 4)
            seen: list[SessionEvent] = []

            async def handler(event: SessionEvent) -> None:
                await asyncio.sleep(0)
                seen.append(event)

            assert await mgr.consume("billing", handler, follow=False, batch_size=3) == 8
            assert await mgr.consumer_position("billing") == seen[-1].position
            assert await mgr.consume("billing", seen.append, follow=False) == 0
            await _write(mgr, 1)
            assert await mgr.consume("billing", seen.append, follow=False) == 2
            assert [e.position for e in seen] == sorted({e.position for e in seen})

    asyncio.run(main())


def test_a_failing_handler_keeps_the_events_before_it(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            await _write(mgr, 2)
            feed = await mgr.events()

            async def handler(event: SessionEvent) -> None:
                if event.position == feed[2].position:
                    raise RuntimeError("boom")

            with pytest.raises(RuntimeError):
                await mgr.consume("mail", handler, follow=False)
            assert await mgr.consumer_position("mail") == feed[1].position

    asyncio.run(main())


def test_a_following_consumer_waits_on_the_loop_and_stops_when_asked(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            stop = asyncio.Event()
            seen: list[SessionEvent] = []

            def handler(event: SessionEvent) -> None:
                seen.append(event)
                if len(seen) == 4:
                    stop.set()

            consumer = asyncio.create_task(mgr.consume("follower", handler, stop=stop, poll_interval=0.01))
            await asyncio.sleep(0.05)  # it waits with nothing to read, and the loop runs
            assert not consumer.done()
            await _write(mgr, 2)
            assert await asyncio.wait_for(consumer, 10) == 4
            assert await mgr.consumer_position("follower") == seen[-1].position

    asyncio.run(main())


def test_follow_stores_a_position_once_the_next_event_is_requested(open_manager: Opener) -> None:
    async def main() -> None:
        async with await open_manager() as mgr:
            await _write(mgr, 2)
            feed = await mgr.events()
            positions: list[int | None] = []
            async for event in mgr.follow("audit", batch_size=3, poll_interval=0.01):
                positions.append(await mgr.consumer_position("audit"))
                if event.position == feed[2].position:
                    break  # the body of this event did not return: its position is not stored
            # Before each event, the position of the one before it had been stored.
            assert positions == [0, feed[0].position, feed[1].position]
            assert await mgr.consumer_position("audit") == feed[1].position
            resumed = mgr.follow("audit")
            assert await anext(resumed) == feed[2]  # at-least-once: seen again
            await resumed.aclose()

    asyncio.run(main())


def test_follow_waits_for_new_events_with_asyncio_sleep() -> None:
    async def main() -> None:
        async with AsyncSessionManager.in_memory() as mgr:
            received: list[SessionEvent] = []

            async def read() -> None:
                async for event in mgr.follow("late", poll_interval=0.01):
                    received.append(event)
                    if len(received) == 2:
                        return

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.05)
            assert not reader.done()
            await _write(mgr, 1)
            await asyncio.wait_for(reader, 10)
            assert [str(e.event) for e in received] == ["created", "started"]
            assert await mgr.consumer_position("late") == received[0].position

    asyncio.run(main())


@pytest.mark.parametrize(("call", "field"), [
    (lambda m: m.consume("", print, follow=False), "name"),
    (lambda m: m.consume("c", "not callable", follow=False), "handler"),
    (lambda m: m.consume("c", print, batch_size=0, follow=False), "batch_size"),
    (lambda m: m.consume("c", print, poll_interval=0), "poll_interval"),
    (lambda m: m.consume("c", print, stop=object()), "stop"),
    (lambda m: m.events(after=-1), "after"),
    (lambda m: anext(m.follow("bad\nname")), "name"),
])
def test_feed_arguments_are_checked(call: object, field: str) -> None:
    async def main() -> None:
        async with AsyncSessionManager.in_memory() as mgr:
            with pytest.raises(InvalidInput) as error:
                await call(mgr)  # type: ignore[operator]
            assert error.value.field == field

    asyncio.run(main())
