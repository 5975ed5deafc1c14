"""Redis behind Sentinel: the ``redis+sentinel://`` URL and the clients it makes (redis-py's own Sentinel support).

``redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service[/db][?sentinel_password=...
&sentinel_username=...]``: the Sentinels to ask (port 26379 when left out), the name of the monitored primary
(``service``, as in ``sentinel monitor <service> ...``), the database number (default 0); ``username`` and
``password`` are those of the Redis servers, ``sentinel_username`` / ``sentinel_password`` those of the Sentinels
when they ask for one. A password's ``/ @ : %`` are written percent-encoded.

Every connection asks the Sentinels where the primary is (redis-py's ``SentinelConnectionPool``), so after a
failover the store's next connection reaches the promoted replica, and a connection still open to a former
primary that was turned into a replica is dropped on its first ``READONLY`` answer and made again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

import redis

__all__ = ["SCHEME", "SentinelTarget", "parse_sentinel_url", "sentinel_clients"]

#: The URL scheme of a Redis primary found through Sentinel.
SCHEME = "redis+sentinel"
_DEFAULT_PORT = 26379
_QUERY = frozenset({"sentinel_password", "sentinel_username"})


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The :class:`SentinelTarget` of ``url``; :class:`ValueError` saying what is wrong (never quoting a
    password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise ValueError(f"expected a {SCHEME}:// URL")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host(part) for part in hosts.split(","))
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("expected /<service>[/<db>] after the Sentinels")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError("the database number must be a non-negative integer")
        db = int(parts[1])
    options = parse_qs(query, keep_blank_values=True) if query else {}
    unknown = set(options) - _QUERY
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_QUERY))})")
    return SentinelTarget(sentinels, parts[0], db, username, password,
                          options.get("sentinel_username", [None])[0], options.get("sentinel_password", [None])[0])


def _host(part: str) -> tuple[str, int]:
    host, colon, port = part.strip().rpartition(":")
    if not colon:
        host, port = part.strip(), ""
    if not host:
        raise ValueError("each Sentinel needs a host")
    if port and not port.isdigit():
        raise ValueError("a Sentinel's port must be a number")
    return host, int(port) if port else _DEFAULT_PORT


def sentinel_clients(target: SentinelTarget, *, socket_timeout: float | None, max_connections: int | None
                     ) -> tuple[redis.Redis, Callable[[], redis.Redis]]:
    """A client of ``target``'s primary for the store (``decode_responses=True``, no retries of redis-py's own:
    the store retries), and a function making a one-connection client of it for a change watcher."""
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
    if target.sentinel_username is not None:
        sentinel_kwargs["username"] = target.sentinel_username
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs, db=target.db,
                        username=target.username, password=target.password, decode_responses=True)
    pool_kwargs: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections}
    client = sentinel.master_for(target.service, socket_timeout=socket_timeout,
                                 socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0), **pool_kwargs)

    def connect() -> redis.Redis:
        watcher: redis.Redis = sentinel.master_for(target.service, socket_timeout=None, max_connections=1,
                                                   socket_connect_timeout=socket_timeout)
        return watcher

    return client, connect
