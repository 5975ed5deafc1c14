"""``RedisEventStore``: the event store on Redis (redis-py; the ``redis`` extra).

Every write is one Lua script (``scripts.py``), which Redis runs atomically: the version check (optimistic
concurrency), the ``single_active_per_user`` check, the events, the projection, its indexes, the deadline
queue and the feed positions commit together or not at all. A session's events are a list that is only ever
appended to; the projection is a hash with the whole session as one document plus the fields the indexes
need. Reads are single commands (or a read-only script for a page of ``list`` or of the feed).

Durability is the server's: with ``appendonly yes`` and ``appendfsync always`` Redis writes and fsyncs the
append-only file before it answers, so an acknowledged event survives a crash of the server or the machine
(see ``docs/storage.md``).

A lost connection (server restarted, network) is retried on a new one with back-off (``link.py``); every
script is safe to repeat: an append that did commit before the connection broke is recognised by its first
event's record id and not applied twice (nor is its idempotency key checked again), and a sweep batch that did
commit finds its sessions no longer due at that version.

This module is the store's face and its reads; the appends are ``writes.py``, the sweep ``sweep.py``, the
whole-store operations (rebuild, purge) ``maintenance.py``, the idempotency keys ``keys.py``, the cache of
decoded sessions ``cache.py``, the formats ``codec.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

import redis
from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.redis import keys, maintenance, overview, sweep, writes
from sessionflow.adapters.redis.cache import SessionCache
from sessionflow.adapters.redis.codec import decode_event, decode_session, optional
from sessionflow.adapters.redis.link import QUERY, READ_EVENTS, RESCORE, SAVE_CONSUMER, LatencyObserver, RedisLink
from sessionflow.adapters.redis.sentinel import SCHEME as SENTINEL_SCHEME
from sessionflow.adapters.redis.sentinel import parse_sentinel_url, sentinel_clients
from sessionflow.adapters.storage_format import from_millis, to_millis
from sessionflow.application.idempotency import StoredKey
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider, Query
from sessionflow.domain.models import Session, SessionEvent

__all__ = ["DEFAULT_PREFIX", "LatencyObserver", "RedisEventStore"]

#: The key prefix of a store unless another is given (several stores may share one Redis database).
DEFAULT_PREFIX = "sessionflow:"


class RedisEventStore:
    """An event store on one Redis server (standalone, or the primary of a replicated set; not Redis Cluster).

    Build one with :meth:`from_url` (``redis://host:port/db``, ``rediss://...``, ``unix:///path?db=0``) or
    pass a ``redis.Redis`` client made with ``decode_responses=True``.

    Args:
        client: the redis-py client (its pool is shared by the store's threads).
        prefix: the prefix of every key and channel of this store.
        cache_size: sessions kept decoded (0: none). A read still fetches the stored document and uses the
            cached session only when the document is the very same, so it never returns a stale session.
        retries: how many times an operation is tried again after a lost connection (back-off from 50 ms,
            doubling, at most 1 s between tries) before it fails with :class:`StoreError`.
        owns_client: close the client's connections on :meth:`close`.
        wait_replicas: acknowledge a session write (an append, a batch, a sweep's batch) only once that many
            replicas have it: ``WAIT`` after the write's script, on its connection, in the same round trip; a
            write fewer acknowledge within ``wait_timeout`` seconds raises
            :class:`~sessionflow.errors.OutcomeUnknown` (applied on the primary, lost if it fails now). On Redis
            before 7.2 a replica acknowledges what it holds in memory: such a write survives the loss of the
            primary alone. 0 (the default): acknowledged by the primary.
        wait_timeout: the longest ``WAIT``, in seconds.
        connect_watcher: makes the one-connection client of a change watcher (default: like ``client``'s).
    """

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, cache_size: int = 10_000,
                 retries: int = 6, owns_client: bool = True, wait_replicas: int = 0, wait_timeout: float = 1.0,
                 connect_watcher: Callable[[], redis.Redis] | None = None) -> None:
        if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
            raise ValueError("wait_replicas must be an integer >= 0")
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float) or not 0 < wait_timeout <= 60:
            raise ValueError("wait_timeout must be a number of seconds in (0, 60]")
        self._cache = SessionCache(cache_size)
        self._client = client
        self.prefix = prefix
        self._link = RedisLink(client, prefix, retries, wait_replicas=wait_replicas, wait_timeout=wait_timeout)
        self._connect_watcher = connect_watcher
        self._run = self._link.run
        self._owns_client = owns_client
        #: Writes may start from the cached copy (``get(fresh=False)``); the append's version check catches it.
        self.caches_reads = cache_size > 0
        self._due_key = prefix + "due"
        self._n_key = prefix + "n"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX, cache_size: int = 10_000, retries: int = 6,
                 socket_timeout: float | None = 10.0, max_connections: int | None = None, wait_replicas: int = 0,
                 wait_timeout: float = 1.0) -> RedisEventStore:
        """A store on the Redis server at ``url`` (checked with a ``PING``: :class:`StoreError` if it does not
        answer): ``redis://``, ``rediss://``, ``unix://``, or ``redis+sentinel://`` for the primary the
        Sentinels name (:mod:`~sessionflow.adapters.redis.sentinel`). ``wait_replicas``: a session write is
        acknowledged only once that many replicas have it (``WAIT``, at most ``wait_timeout`` seconds; else
        :class:`~sessionflow.errors.OutcomeUnknown`)."""
        connect: Callable[[], redis.Redis] | None = None
        if url.split(":", 1)[0].lower() == SENTINEL_SCHEME:
            client, connect = sentinel_clients(parse_sentinel_url(url), socket_timeout=socket_timeout,
                                               max_connections=max_connections)
        else:
            client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout,
                                          socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0),
                                          max_connections=max_connections)
        store = cls(client, prefix=prefix, cache_size=cache_size, retries=retries, wait_replicas=wait_replicas,
                    wait_timeout=wait_timeout, connect_watcher=connect)
        try:
            store._run("ping", client.ping)
            # data stored while the list indexes were scored by creation time: scored by the list order, once
            store._run("rescore", lambda: RESCORE(client, [prefix]), WriteOutcome("rescore"))
        except BaseException:
            store.close()
            raise
        return store

    @property
    def client(self) -> redis.Redis:
        """The redis-py client the store runs its commands on."""
        return self._client

    def observe_latency(self, observer: LatencyObserver | None) -> None:
        """Call ``observer(operation, seconds)`` after each operation's round trips to Redis (``None``: stop)."""
        self._link.observer = observer

    # ------------------------------------------------------------------ writes

    def append(self, change: Change) -> None:
        """Append the change's events and store its projection, atomically (one script)."""
        writes.append(self._link, self._cache, change)

    def append_many(self, changes: Sequence[Change]) -> None:
        """Append every change, in order, atomically (one script that checks them all before it writes any:
        see :meth:`EventStore.append_many`)."""
        writes.append_many(self._link, self._cache, changes)

    # ------------------------------------------------------------------ idempotency keys

    def find_key(self, scope: str, key: str) -> StoredKey | None:
        """The stored idempotency key ``key`` of ``scope`` (see
        :class:`~sessionflow.application.ports.KeepsIdempotencyKeys` and ``keys.py``), or ``None``."""
        return keys.find_key(self._link, scope, key)

    def drop_expired_keys(self, now: datetime, limit: int = 10_000) -> int:
        """Remove up to ``limit`` idempotency keys expired at or before ``now`` (one script); how many. Redis
        also drops each key by itself once its window has passed on the server's clock."""
        return keys.drop_expired_keys(self._link, now, limit)

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        """The stored projection of a session (deleted ones included), or ``None``."""
        if not fresh:
            cached = self._cache.cached(session_id)
            if cached is not None:
                return cached
        key = self._link.key("s", session_id)
        client = self._client
        doc = self._run("get", lambda: client.hget(key, "doc"))
        if doc is None:
            self._cache.forget((session_id,))
            return None
        return self._cache.decode(session_id, str(doc))

    def history(self, session_id: UUID) -> list[SessionEvent]:
        """Every event of a session, oldest first."""
        key = self._link.key("e", session_id)
        client = self._client
        items: list[str] = self._run("history", lambda: cast(Any, client.lrange(key, 0, -1)))
        return [decode_event(item, session_id) for item in items]

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        """Projection and history in one ``MULTI``/``EXEC`` (nothing runs in between)."""
        skey, ekey = self._link.key("s", session_id), self._link.key("e", session_id)

        def work() -> list[Any]:
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(skey, "doc")
            pipe.lrange(ekey, 0, -1)
            return pipe.execute()

        doc, items = self._run("read_together", work)
        session = None if doc is None else decode_session(doc, session_id)
        return session, [decode_event(item, session_id) for item in items]

    def query(self, query: Query) -> list[Session]:
        """Sessions matching the filters, in creation order (the feed positions of their ``created`` events;
        newest first when ``query.newest_first``): one script walks the most selective index in that order and
        filters the rest."""
        if query.limit <= 0:
            return []
        index = "i:all"
        statuses = sorted(str(s) for s in query.status) if query.status is not None else []
        if query.status is not None and not statuses:
            return []
        if query.user_id is not None:
            index = "i:u:" + optional(query.user_id)
        elif query.workspace_id is not None:
            index = "i:w:" + optional(query.workspace_id)
        elif query.module_name is not None:
            index = "i:m:" + optional(query.module_name)
        elif len(statuses) == 1:
            index = "i:st:" + statuses[0]
        live_after = "" if query.live_after is None else to_millis(query.live_after)
        created_after, created_before = query.created_after, query.created_before
        args = [self.prefix, index, "1" if query.include_deleted else "", live_after,
                optional(query.user_id), optional(query.workspace_id), optional(query.module_name),
                optional(query.lifecycle), "" if created_after is None else to_millis(created_after),
                "" if created_before is None else to_millis(created_before),
                "" if query.after is None else str(query.after), "1" if query.newest_first else "",
                query.offset, query.limit, *statuses]
        client = self._client
        docs = self._run("query", lambda: QUERY(client, args))
        return [decode_session(doc) for doc in docs]

    def count(self, status: str | None = None) -> int:
        """How many sessions (not deleted) there are, optionally of one status."""
        client = self._client
        if status is not None:
            value = self._run("count", lambda: client.hget(self._n_key, str(status)))
            return int(value or 0)
        values = self._run("count", lambda: client.hvals(self._n_key))
        return sum(int(v) for v in values)

    def count_by_status(self) -> dict[str, int]:
        """How many sessions (not deleted) are in each status."""
        client = self._client
        counts: dict[str, str] = self._run("count", lambda: cast(Any, client.hgetall(self._n_key)))
        return {status: int(n) for status, n in counts.items() if int(n)}

    def count_query(self, query: Query) -> dict[str, int]:
        """How many sessions match the filters of ``query``, per status (one script: ``overview.py``)."""
        return overview.count_query(self._link, query)

    def query_deadlines(self, after: datetime, until: datetime, limit: int, *,
                        user_id: str | None = None) -> list[Session]:
        """Up to ``limit`` live sessions whose deadline is ``after < d <= until``, soonest first."""
        return overview.query_deadlines(self._link, after, until, limit, user_id)

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a live session."""
        client = self._client
        first = self._run("next_deadline", lambda: client.zrange(self._due_key, 0, 0, withscores=True))
        return from_millis(int(first[0][1])) if first else None

    def has_due(self, now: datetime) -> bool:
        """Whether a live session's deadline is at or before ``now``."""
        client = self._client
        at = to_millis(now)
        found = self._run("has_due", lambda: client.zrangebyscore(self._due_key, "-inf", at, start=0, num=1))
        return bool(found)

    def session_ids(self) -> list[UUID]:
        """The id of every session that has events."""
        client = self._client
        members: set[str] = self._run("session_ids", lambda: cast(Any, client.smembers(self.prefix + "ids")))
        return [UUID(m) for m in members]

    # ------------------------------------------------------------------ the global feed

    def read_events(self, after: int, limit: int, *, user_id: str | None = None) -> list[SessionEvent]:
        """Up to ``limit`` events with a feed position above ``after``, in position order."""
        if limit <= 0:
            return []
        args = [self.prefix, int(after), int(limit), optional(user_id)]
        client = self._client
        flat = self._run("read_events", lambda: READ_EVENTS(client, args))
        return [decode_event(flat[k + 1], UUID(flat[k])) for k in range(0, len(flat), 2)]

    def read_named_events(self, after: int, limit: int, names: frozenset[str], *,
                          user_id: str | None = None) -> list[SessionEvent]:
        """Up to ``limit`` events named in ``names`` with a feed position above ``after``, in position order."""
        return overview.read_named_events(self._link, after, limit, names, user_id)

    def last_position(self) -> int:
        """The highest feed position (0: no event yet)."""
        client = self._client
        return int(self._run("last_position", lambda: client.get(self.prefix + "pos")) or 0)

    def consumer_position(self, name: str) -> int:
        """The position stored for the feed consumer ``name`` (0: none stored)."""
        client = self._client
        return int(self._run("consumer_position", lambda: client.hget(self.prefix + "consumers", name)) or 0)

    def consumer_positions(self) -> dict[str, int]:
        """The position stored for each feed consumer that has one."""
        client = self._client
        found = self._run("consumer_positions", lambda: client.hgetall(self.prefix + "consumers"))
        return {str(name): int(position) for name, position in found.items()}

    def save_consumer_position(self, name: str, position: int, now: datetime) -> None:
        """Store ``position`` for ``name`` unless the stored one is higher."""
        client = self._client
        args = [self.prefix, name, int(position)]
        self._run("save_consumer_position", lambda: SAVE_CONSUMER(client, args),
                  WriteOutcome("save_consumer_position"))

    # ------------------------------------------------------------------ sweeping

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        """Expire up to ``limit`` overdue sessions (see :meth:`EventStore.expire_due`)."""
        return self.expire_due_next(now, limit, decide).changes

    def expire_due_next(self, now: datetime, limit: int, decide: ExpiryDecider) -> ExpiredBatch:
        """:meth:`expire_due`, and the earliest deadline left once the batch is written.

        Each overdue session gets exactly one ``expired`` event however many processes sweep: the batch is
        written by one script that skips every session whose version moved meanwhile (see ``sweep.py``).
        """
        return sweep.expire_due_next(self._link, self._cache, now, limit, decide)

    # ------------------------------------------------------------------ maintenance

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        """Every session's whole history, in session-id order, ``batch_size`` sessions per round trip."""
        yield from maintenance.histories(self._link, sorted(self.session_ids(), key=str), batch_size)

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        """Every stored projection (deleted sessions included), in id order."""
        return maintenance.projections(self._link, batch_size)

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        """Replace the whole projection (documents, indexes, deadlines, counts) by ``rebuilt`` in one
        ``MULTI``/``EXEC``; run it while no other writer is active."""
        return maintenance.replace_projection(self._link, self._cache, rebuilt)

    def purge_sessions(self, expected: Mapping[UUID, int]) -> list[UUID]:
        """Remove each session of ``expected`` still at that version, except the one holding the feed's newest
        event, atomically (one script: ``retention.py``); returns the ids removed."""
        return maintenance.purge_sessions(self._link, self._cache, expected)

    def change_watcher(self, *, poll_interval: float | None = None) -> Any:
        """A new (unstarted) :class:`~sessionflow.adapters.redis.watcher.RedisChangeWatcher` on this store's
        server and channels, with a connection of its own (told of writes: no ``poll_interval``)."""
        from sessionflow.adapters.redis.watcher import RedisChangeWatcher

        if self._connect_watcher is not None:  # (behind Sentinel: a client that finds the primary itself)
            return RedisChangeWatcher(self._connect_watcher, self.prefix)
        kwargs = dict(self._client.connection_pool.connection_kwargs)
        connection_class = self._client.connection_pool.connection_class

        def connect() -> redis.Redis:
            pool = redis.ConnectionPool(connection_class=connection_class, max_connections=1,
                                        **{**kwargs, "socket_timeout": None})
            return redis.Redis(connection_pool=pool)

        return RedisChangeWatcher(connect, self.prefix)

    def ping(self) -> bool:
        """True when Redis answers."""
        if self._link.closed:
            return False
        try:
            return bool(self._client.ping())
        except RedisError:
            return False

    def close(self) -> None:
        """Release the connections (if the store owns the client). The store is unusable afterwards."""
        if self._link.closed:
            return
        self._link.closed = True
        self._cache.clear()
        if self._owns_client:
            self._client.close()
            self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
        return f"RedisEventStore({where!r}, prefix={self.prefix!r})"
