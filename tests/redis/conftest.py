"""Fixtures of the Redis tests: a Redis server of the test's own (to kill and restart), and managers sharing one
Redis store as several processes would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.application.ports import Clock, EventStore
from sessionflow.bootstrap import create_redis_store
from tests.support.redis import RedisServer, RedisUnavailable, require_redis, reset_redis, throwaway_redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` for this test alone (AOF, ``appendfsync always``): the test may kill and restart it."""
    try:
        with throwaway_redis() as server:
            yield server
    except RedisUnavailable as error:
        require_redis(error)


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    """The shared test server, emptied."""
    reset_redis(redis_url)
    return redis_url


SharedManagers = Callable[..., SessionManager]


@pytest.fixture
def shared_managers(clean_redis_url: str) -> Iterator[SharedManagers]:
    """``factory(clock=None, **options)``: managers over one Redis database, each with a store of its own."""
    stores: list[EventStore] = []
    managers: list[SessionManager] = []

    def factory(clock: Clock | None = None, **options: Any) -> SessionManager:
        store = create_redis_store(clean_redis_url)
        stores.append(store)
        manager = SessionManager(store, clock=clock, owns_store=False, **options)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()
    for store in stores:
        store.close()
