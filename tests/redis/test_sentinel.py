"""The Redis store behind Sentinel (``redis+sentinel://``), the replica wait (``redis_wait_replicas``), and a
failover under writers (``test_sentinel_failover.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import redis
from sessionflow import IdempotencyKey, SessionManager
from sessionflow.adapters.redis.sentinel import SentinelTarget, parse_sentinel_url
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.errors import InvalidInput, OutcomeUnknown
from sessionflow.settings import _masked_url
from tests.support.redis import RedisUnavailable, require_redis
from tests.support.sentinel import SentinelSetup, sentinel_setup


def test_sentinel_urls() -> None:
    assert parse_sentinel_url("redis+sentinel://a,b:26380/svc") == SentinelTarget(
        (("a", 26379), ("b", 26380)), "svc")
    target = parse_sentinel_url("REDIS+SENTINEL://us%40r:p%2Fw%3Ad@h:1/svc/3?sentinel_password=s&sentinel_username=u")
    assert target == SentinelTarget((("h", 1),), "svc", 3, "us@r", "p/w:d", "u", "s")
    assert "p/w:d" not in repr(target)
    assert "'s'" not in repr(target)


@pytest.mark.parametrize("url", ["redis+sentinel://h", "redis+sentinel://h/", "redis+sentinel://h/svc/x",
                                 "redis+sentinel://h/svc/0/1", "redis+sentinel://h:port/svc",
                                 "redis+sentinel://,h/svc", "redis+sentinel://h/svc?password=x"])
def test_a_malformed_sentinel_url_is_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SessionManager.open(url)
    assert info.value.field == "url"


def test_a_password_in_a_malformed_url_is_never_shown() -> None:
    with pytest.raises(InvalidInput) as info:
        SessionManager.open("redis+sentinel://:hunter2@h/svc/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("mask", [mask_url, _masked_url])
def test_passwords_of_a_sentinel_url_are_masked(mask: Any) -> None:
    shown = mask("redis+sentinel://h1,h2/svc?sentinel_password=s3cret&sentinel_username=u")
    assert "s3cret" not in shown
    assert "sentinel_username=u" in shown
    assert "hunter2" not in mask("redis+sentinel://:hunter2@h1:26379,h2:26379/svc")


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    try:
        with sentinel_setup() as setup:
            yield setup
    except RedisUnavailable as error:
        require_redis(error)


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


def test_the_store_finds_its_primary_through_the_sentinels(sentinels: SentinelSetup) -> None:
    with SessionManager.open(sentinels.url, redis_prefix="t1:") as manager:
        session = manager.create(performer_id="p", user_id="u")
        manager.start(session.id, performer_id="p")
        assert manager.complete(session.id, performer_id="p").status == "completed"
        assert [s.id for s in manager.list(user_id="u")] == [session.id]
    assert _client(sentinels.primary.port).exists(f"t1:s:{session.id}")


def test_a_write_is_acknowledged_once_its_replica_has_it(sentinels: SentinelSetup) -> None:
    with SessionManager.open(sentinels.url, redis_prefix="t2:", redis_wait_replicas=1) as manager:
        session = manager.create(performer_id="p")
        manager.start(session.id, performer_id="p")
        # (WAIT answered: the replica holds both writes already, no sleep needed)
        assert _client(sentinels.replica.port).hget(f"t2:s:{session.id}", "doc") is not None
        assert len(_client(sentinels.replica.port).lrange(f"t2:e:{session.id}", 0, -1)) == 2


def test_a_write_too_few_replicas_acknowledge_may_have_been_applied(sentinels: SentinelSetup) -> None:
    """Two replicas asked for, one there: the primary applied the write, so the answer is "outcome unknown",
    never "not applied"."""
    with SessionManager.open(sentinels.url, redis_prefix="t3:", redis_wait_replicas=2,
                             redis_wait_timeout=0.2) as manager, pytest.raises(OutcomeUnknown):
        manager.create(performer_id="p", user_id="waited")
    with SessionManager.open(sentinels.url, redis_prefix="t3:") as manager:
        assert len(manager.list(user_id="waited")) == 1  # it was applied


def test_a_write_answered_from_its_idempotency_key_is_one_the_replica_has(sentinels: SentinelSetup) -> None:
    with SessionManager.open(sentinels.url, redis_prefix="t5:", redis_wait_replicas=1) as manager:
        first = manager.create(performer_id="p", idempotency_key="k")
        handle = IdempotencyKey("k")
        assert manager.create(performer_id="p", idempotency_key=handle) == first
        assert handle.replayed is True
    assert _client(sentinels.replica.port).exists("t5:k:11:performer:p:k")


@pytest.mark.parametrize(("option", "value"), [("redis_wait_replicas", -1), ("redis_wait_replicas", True),
                                               ("redis_wait_timeout", 0), ("redis_wait_timeout", 61)])
def test_bad_wait_options_are_refused(sentinels: SentinelSetup, option: str, value: Any) -> None:
    with pytest.raises((InvalidInput, ValueError)):
        SessionManager.open(sentinels.url, redis_prefix="t4:", **{option: value})
