"""The Redis store (the ``redis`` extra): :class:`RedisEventStore` and its change watcher.

``store.py`` the store and its reads (every write one Lua script of ``scripts.py``), ``link.py`` its round trips,
``writes.py`` the appends, ``sweep.py`` the sweep, ``maintenance.py`` rebuild and purge, ``cache.py`` the decoded
sessions, ``codec.py`` the stored formats, ``watcher.py`` the change watcher (Redis pub/sub on the channels the
scripts publish to).
"""

from __future__ import annotations

from sessionflow.adapters.redis.store import DEFAULT_PREFIX, RedisEventStore

__all__ = ["DEFAULT_PREFIX", "RedisEventStore", "is_redis_url"]


def is_redis_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis server (``redis://``, ``rediss://``, ``unix://``)."""
    return url is not None and url.split(":", 1)[0].lower() in ("redis", "rediss", "unix")
