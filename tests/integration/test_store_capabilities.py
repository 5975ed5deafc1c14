"""Each store of sessionflow has, by type, the capabilities of ``sessionflow.application.ports`` that it offers
(and no other): the manager, the asyncio facade and the metrics find what a store can do from them alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from sessionflow import AsyncSessionManager
from sessionflow.application.ports import (
    AwaitsIO,
    CachesReads,
    CountsByStatus,
    EventStore,
    ListsConsumers,
    PurgesSessions,
    ReportsLatency,
    SweepsToNextDeadline,
    WatchesChanges,
)
from tests.support.backends import open_store

CAPABILITIES = {"SweepsToNextDeadline": SweepsToNextDeadline, "PurgesSessions": PurgesSessions,
                "CachesReads": CachesReads, "WatchesChanges": WatchesChanges, "AwaitsIO": AwaitsIO,
                "CountsByStatus": CountsByStatus, "ListsConsumers": ListsConsumers, "ReportsLatency": ReportsLatency}

#: What each store can do beyond :class:`EventStore`.
EXPECTED = {
    "memory": {"PurgesSessions", "ListsConsumers"},
    "sqlite": {"SweepsToNextDeadline", "PurgesSessions", "CachesReads", "WatchesChanges", "CountsByStatus",
               "ListsConsumers"},
    "postgres": {"SweepsToNextDeadline", "PurgesSessions", "CachesReads", "WatchesChanges", "CountsByStatus",
                 "ListsConsumers"},
    "redis": {"SweepsToNextDeadline", "PurgesSessions", "CachesReads", "WatchesChanges", "CountsByStatus",
              "ListsConsumers", "ReportsLatency"},
}


@pytest.fixture
def store(backend: str, database_url: str | None) -> Iterator[EventStore]:
    opened = open_store(backend, database_url)
    yield opened
    opened.close()


def test_each_store_declares_its_capabilities_by_type(backend: str, store: EventStore) -> None:
    assert isinstance(store, EventStore)
    assert {name for name, protocol in CAPABILITIES.items() if isinstance(store, protocol)} == EXPECTED[backend]


def test_the_capabilities_work_as_declared(backend: str, database_url: str | None, store: EventStore) -> None:
    if isinstance(store, CachesReads):
        assert store.caches_reads is True
        uncached = open_store(backend, database_url, cache_size=0)
        try:
            assert isinstance(uncached, CachesReads)
            assert uncached.caches_reads is False
        finally:
            uncached.close()
    if isinstance(store, WatchesChanges):
        watcher = store.change_watcher(poll_interval=0.2)
        assert watcher is not None
        watcher.start()
        watcher.stop()
    if isinstance(store, CountsByStatus):
        assert store.count_by_status() == {}
    if isinstance(store, ListsConsumers):
        store.save_consumer_position("billing", 3, datetime.now(UTC))
        store.save_consumer_position("audit", 1, datetime.now(UTC))
        store.save_consumer_position("billing", 2, datetime.now(UTC))  # never back
        assert store.consumer_positions() == {"billing": 3, "audit": 1}
    if isinstance(store, PurgesSessions):
        assert store.purge_sessions({}) == []
    if isinstance(store, SweepsToNextDeadline):
        assert store.expire_due_next(datetime.now(UTC), 10, lambda session, now: None).changes == []


def test_postgresql_on_the_asyncio_driver_declares_that_its_io_awaits_the_loop(postgres_url: str) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open(postgres_url) as manager:
            store = manager.store
            assert isinstance(store, AwaitsIO)
            assert store.awaits_io is True
            assert isinstance(store, SweepsToNextDeadline)
            assert isinstance(store, WatchesChanges)

    asyncio.run(main())
