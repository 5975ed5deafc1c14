"""Fixtures of the Redis tests: a Redis server of the test's own (to kill and restart), and managers sharing one
Redis store as several processes would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis import RedisServer, RedisUnavailable, require_redis, reset_redis, throwaway_redis
from tests.timeouts.conftest import SharedManagers, managers_over


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




@pytest.fixture
def shared_managers(clean_redis_url: str) -> Iterator[SharedManagers]:
    """``factory(clock=None, **options)``: managers over one Redis database, each with a store of its own."""
    yield from managers_over("redis", clean_redis_url)
