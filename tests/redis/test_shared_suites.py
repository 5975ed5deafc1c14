"""Suites written for every store, run here on Redis: the hypothesis state machine of the contract suite and the
exactly-once expiry tests (four spawned processes sweeping one Redis database; threads racing expiry with
complete, fail and touch). The tests are the very same functions; only the store differs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from sessionflow import SessionManager
from sessionflow.bootstrap import create_redis_store
from tests.contract import test_stateful
from tests.support.redis import reset_redis
from tests.timeouts.test_exactly_once import (  # noqa: F401  (collected here, on Redis)
    processes,
    test_each_outcome_is_possible_and_recorded,
    test_four_processes_sweeping_at_once_expire_each_session_exactly_once,
    test_four_wakers_starting_at_once_catch_up_exactly_once,
    test_processes_racing_expiry_with_complete_fail_and_touch,
    test_threads_racing_expiry_with_complete_fail_and_touch,
)

_server: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _redis_for_the_state_machine(redis_url: str) -> Iterator[None]:
    _server["url"] = redis_url
    yield
    _server.clear()


@pytest.fixture
def sql_url(clean_redis_url: str) -> str:
    """The exactly-once tests' database: here, the Redis server (the fixture keeps their name)."""
    return clean_redis_url


class RedisVersusModel(test_stateful.ManagerVersusModel):
    """The contract suite's state machine, with the manager on a Redis store (emptied for each example)."""

    def __init__(self) -> None:
        super().__init__()
        self.mgr.close()  # the in-memory manager the base class builds
        url = _server["url"]
        reset_redis(url)
        self.mgr = SessionManager(create_redis_store(url), clock=self.clock, default_ttl=timedelta(minutes=10),
                                  single_active_per_user=True)


RedisVersusModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestRedisVersusModel = RedisVersusModel.TestCase
