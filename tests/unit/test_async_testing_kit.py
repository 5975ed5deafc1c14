"""The asyncio testing kit: ``await aadvance(manager, delta)``, ``AsyncTimeTravel`` and the
``sessionflow_async_time`` fixture step an ``AsyncSessionManager`` deadline by deadline, as the synchronous kit
steps a ``SessionManager``; each kit refuses the other kind of manager with a message naming the right one."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sessionflow import AsyncSessionManager, EventType, SessionEvent, SessionManager
from sessionflow.testing import AsyncTimeTravel, ManualClock, TimeTravel, aadvance, advance

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def expiries(manager: AsyncSessionManager, session_id: object) -> list[tuple[str, datetime]]:
    return [(e.performer_id, e.timestamp) for e in await manager.history(session_id)  # type: ignore[arg-type]
            if e.event is EventType.EXPIRED]


def test_aadvance_expires_each_session_at_its_own_deadline_in_deadline_order() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        async with AsyncSessionManager.in_memory(clock=clock) as manager:
            heard: list[tuple[object, datetime, datetime]] = []

            def on_event(event: SessionEvent) -> None:
                if event.event is EventType.EXPIRED:
                    heard.append((event.session_id, event.timestamp, clock.now()))

            manager.subscribe(on_event)
            sessions = [await manager.create(performer_id="u", ttl=timedelta(minutes=m)) for m in (7, 2, 5, 9)]
            late = await manager.create(performer_id="u", ttl=timedelta(minutes=30))

            assert await aadvance(manager, timedelta(minutes=10)) == 4
            assert clock.now() == T0 + timedelta(minutes=10)
            by_deadline = sorted(sessions, key=lambda s: s.expires_at)
            assert heard == [(s.id, s.expires_at, s.expires_at) for s in by_deadline]
            for s in sessions:
                assert await expiries(manager, s.id) == [("system", s.expires_at)]
            assert (await manager.get(late.id)).status.value == "pending"
            assert await aadvance(manager, timedelta(0)) == 0

    run(scenario())


def test_async_time_travel_drives_every_attached_manager_and_stops_at_the_target() -> None:
    async def scenario() -> None:
        travel = AsyncTimeTravel()
        async with AsyncSessionManager.in_memory(clock=travel.clock) as first, \
                AsyncSessionManager.in_memory(clock=travel.clock) as second:
            assert travel.attach(first) is first
            travel.attach(second)
            travel.attach(first)  # once only
            assert travel.managers == (first, second)
            a = await first.create(performer_id="u", ttl=timedelta(minutes=3))
            b = await second.create(performer_id="u", ttl=timedelta(minutes=1))
            c = await second.create(performer_id="u", ttl=timedelta(hours=1))

            assert await travel.advance_to(T0 + timedelta(minutes=5)) == 2
            assert travel.now() == T0 + timedelta(minutes=5)
            assert await expiries(first, a.id) == [("system", a.expires_at)]
            assert await expiries(second, b.id) == [("system", b.expires_at)]
            assert await expiries(second, c.id) == []
            with pytest.raises(ValueError, match="does not go back"):
                await travel.advance_to(T0)
            with pytest.raises(ValueError, match="does not go back"):
                await travel.advance(timedelta(seconds=-1))
            assert await aadvance(travel, timedelta(hours=1)) == 1

    run(scenario())


def test_a_session_touched_on_the_way_expires_at_its_new_deadline(tmp_path: Path) -> None:
    """On an SQLite file (the store runs on a worker thread): the kit awaits each step."""

    async def scenario() -> None:
        clock = ManualClock()
        async with AsyncSessionManager.open(f"sqlite:///{tmp_path / 'kit.db'}", clock=clock) as manager:
            travel = AsyncTimeTravel(clock, manager)
            s = await manager.create(user_id="u", performer_id="u", ttl=timedelta(hours=1))
            assert await travel.advance(timedelta(minutes=59)) == 0
            beat = await manager.touch(s.id, performer_id="u")
            assert await travel.advance(timedelta(minutes=61)) == 1
            assert await expiries(manager, s.id) == [("system", beat.expires_at)]

    run(scenario())


def test_each_kit_refuses_the_other_kind_of_manager() -> None:
    clock = ManualClock()
    async_manager = AsyncSessionManager.in_memory(clock=clock)
    with pytest.raises(TypeError, match=r"await aadvance\(manager, delta\)"):
        advance(async_manager, timedelta(minutes=10))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncTimeTravel"):
        TimeTravel(clock, async_manager)  # type: ignore[arg-type]
    with SessionManager.in_memory(clock=clock) as manager, \
            pytest.raises(TypeError, match=r"advance\(manager, delta\)"):
        run(aadvance(manager, timedelta(minutes=10)))  # type: ignore[arg-type]
    run(async_manager.close())


def test_the_manager_must_run_on_a_manual_clock_and_on_the_kits_clock() -> None:
    async def scenario() -> None:
        async with AsyncSessionManager.in_memory() as on_system_clock:
            with pytest.raises(TypeError, match="ManualClock"):
                await aadvance(on_system_clock, timedelta(minutes=1))
            with pytest.raises(ValueError, match="clock="):
                AsyncTimeTravel(ManualClock(), on_system_clock)

    run(scenario())


def test_the_fixture_drives_managers_built_on_the_fixture_clock(
        sessionflow_clock: ManualClock, sessionflow_async_time: AsyncTimeTravel) -> None:
    assert sessionflow_async_time.clock is sessionflow_clock

    async def scenario() -> None:
        async with AsyncSessionManager.in_memory(clock=sessionflow_clock) as manager:
            sessionflow_async_time.attach(manager)
            s = await manager.create(performer_id="u", ttl=timedelta(minutes=5))
            assert await sessionflow_async_time.advance(timedelta(minutes=5)) == 1
            assert await expiries(manager, s.id) == [("system", T0 + timedelta(minutes=5))]

    run(scenario())
