"""The built-in Redis store: ``redis://``, ``rediss://``, ``unix://`` and ``redis+sentinel://`` URLs (the ``redis``
extra)."""

from __future__ import annotations

from typing import Any

from sessionflow.errors import InvalidInput
from sessionflow.stores.sql import ENGINE_OPTIONS

__all__ = ["IGNORED_OPTIONS", "REDIS_OPTIONS", "create_redis_store", "is_redis_url", "open_redis"]

#: The options of ``open(url, ...)`` that the Redis store takes (those of :func:`create_redis_store`).
REDIS_OPTIONS = frozenset({"redis_prefix", "redis_retries", "redis_socket_timeout", "redis_max_connections",
                           "redis_wait_replicas", "redis_wait_timeout"})
#: The SQL engine's options, accepted on a Redis URL and ignored (as they always were).
IGNORED_OPTIONS = ENGINE_OPTIONS


def is_redis_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis server (``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``)
    rather than a database."""
    return url is not None and url.split(":", 1)[0].lower() in ("redis", "rediss", "unix", "redis+sentinel")


def create_redis_store(url: str, *, cache_size: int = 10_000, redis_prefix: str = "sessionflow:",
                       redis_retries: int = 6, redis_socket_timeout: float | None = 10.0,
                       redis_max_connections: int | None = None, redis_wait_replicas: int = 0,
                       redis_wait_timeout: float = 1.0) -> Any:
    """A :class:`~sessionflow.adapters.redis.RedisEventStore` on ``url`` (the ``redis`` extra). Raises
    :class:`~sessionflow.errors.InvalidInput` without redis-py or for a malformed URL, and
    :class:`~sessionflow.errors.StoreError` if the server does not answer."""
    try:
        from sessionflow.adapters.redis import RedisEventStore
    except ImportError as error:
        raise InvalidInput("url", f"the Redis store needs redis-py (pip install 'sessionflow[redis]'): {error}"
                           ) from None
    try:
        return RedisEventStore.from_url(url, prefix=redis_prefix, cache_size=cache_size, retries=redis_retries,
                                        socket_timeout=redis_socket_timeout, max_connections=redis_max_connections,
                                        wait_replicas=redis_wait_replicas, wait_timeout=redis_wait_timeout)
    except (ValueError, TypeError) as error:
        # redis-py's message may quote a piece of a URL it misread: not when the URL carries credentials
        detail = f": {error}" if "@" not in url else (
            " (redis://[user:password@]host[:port][/db]; a password's / @ : % are written percent-encoded)")
        raise InvalidInput("url", f"not a Redis URL{detail}") from None


def open_redis(url: str, *, cache_size: int = 10_000, retries: int | None = None, **options: Any) -> Any:
    """The factory of the Redis schemes: :func:`create_redis_store` with the ``redis_…`` options of ``options``
    (the others, such as ``migrate`` — nothing to migrate — are ignored); ``retries``, when given, stands for
    ``redis_retries`` (default 6)."""
    redis_options = {k: v for k, v in options.items() if k in REDIS_OPTIONS}
    if retries is not None:
        redis_options["redis_retries"] = retries
    return create_redis_store(url, cache_size=cache_size, **redis_options)
