"""``RedisEventStore``: the event store on Redis (redis-py; the ``redis`` extra).

Every write is one Lua script (``scripts.py``), which Redis runs atomically: the version check (optimistic
concurrency), the ``single_active_per_user`` check, the events, the projection, its indexes, the deadline
queue and the feed positions commit together or not at all. A session's events are a list that is only ever
appended to; the projection is a hash with the whole session as one document plus the fields the indexes
need. Reads are single commands (or a read-only script for a page of ``list`` or of the feed).

Durability is the server's: with ``appendonly yes`` and ``appendfsync always`` Redis writes and fsyncs the
append-only file before it answers, so an acknowledged event survives a crash of the server or the machine
(see ``docs/storage.md``).

A lost connection (server restarted, network) is retried on a new one with back-off; every script is safe to
repeat: an append that did commit before the connection broke is recognised by its first event's record id
and not applied twice, and a sweep batch that did commit finds its sessions no longer due at that version.

Longer than 400 lines: it is the one implementation of the whole ``EventStore`` port on Redis (about twenty
operations, each a command or a script call with its decoding), with the retry rule they share; the Lua itself
lives in ``scripts.py`` and the formats in ``codec.py``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast
from uuid import UUID

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

import redis
from sessionflow.adapters.outcome import WriteOutcome, failure
from sessionflow.adapters.redis import scripts
from sessionflow.adapters.redis.codec import (
    decode_event,
    decode_session,
    encode_event,
    encode_session,
    optional,
    session_fields,
)
from sessionflow.adapters.redis.retention import PURGE
from sessionflow.adapters.storage_format import from_millis, to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider, Query
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.errors import (
    ActiveSessionExists,
    BatchRejected,
    ConcurrencyConflict,
    OutcomeUnknown,
    SessionflowError,
    StoreError,
)

__all__ = ["DEFAULT_PREFIX", "RedisEventStore"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")

#: The key prefix of a store unless another is given (several stores may share one Redis database).
DEFAULT_PREFIX = "sessionflow:"
_LOST = (RedisConnectionError, RedisTimeoutError)
_IN_PROGRESS = SessionStatus.IN_PROGRESS.value
#: Rounds of one sweep batch: a round that lost sessions to other writers claims again to fill the batch.
_SWEEP_ROUNDS = 50

#: Called with an operation's name and its duration in seconds (see :meth:`RedisEventStore.observe_latency`).
LatencyObserver = Callable[[str, float], object]


def _never_sent(error: BaseException) -> bool:
    """Whether a lost-connection error came from making the connection (nothing was sent): redis-py words
    these "Error <n> connecting to <host>" (``AbstractConnection._error_message``)."""
    return isinstance(error, RedisConnectionError) and " connecting to " in str(error)


class _Script:
    """One Lua script: run by its SHA1, loaded again when the server does not know it (a restart)."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __call__(self, client: redis.Redis, args: Sequence[Any]) -> Any:
        try:
            return cast(Any, client).execute_command("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            client.script_load(self.text)
            return cast(Any, client).execute_command("EVALSHA", self.sha, 0, *args)


_APPLY = _Script(scripts.APPLY)
_CLAIM = _Script(scripts.CLAIM)
_QUERY = _Script(scripts.QUERY)
_READ_EVENTS = _Script(scripts.READ_EVENTS)
_SAVE_CONSUMER = _Script(scripts.SAVE_CONSUMER)
_PURGE = _Script(PURGE)


def _change_args(change: Change, args: list[Any]) -> None:
    """Add one change's arguments of the APPLY script to ``args``."""
    session = change.session
    events = change.events
    if not events:
        raise StoreError(f"a change of session {session.id} has no event", session_id=session.id)
    status, user, workspace, module, lifecycle, created, due, expires, deleted = session_fields(session)
    decided = change.decided_at
    args += (str(session.id), change.expected_version, encode_session(session), status, user, workspace, module,
             lifecycle, created, due, expires, deleted, optional(change.exclusive_user),
             "" if decided is None else to_millis(decided), str(events[0].record_id), len(events))
    args += [encode_event(e) for e in events]


def _check_versions(change: Change) -> None:
    expected = change.expected_version
    versions = [e.version for e in change.events]
    if (versions != list(range(expected + 1, expected + 1 + len(versions)))
            or change.session.version != expected + len(versions)):
        raise ConcurrencyConflict(change.session.id, expected_version=expected, actual_version=None)


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
    """

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, cache_size: int = 10_000,
                 retries: int = 6, owns_client: bool = True) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._client = client
        self.prefix = prefix
        self._retries = retries
        self._owns_client = owns_client
        self._closed = False
        self._cache_size = cache_size
        self._cache: OrderedDict[UUID, tuple[str, Session]] = OrderedDict()
        self._cache_lock = threading.Lock()
        #: Writes may start from the cached copy (``get(fresh=False)``); the append's version check catches it.
        self.caches_reads = cache_size > 0
        self._observe: LatencyObserver | None = None
        p = prefix
        self._due_key = p + "due"
        self._n_key = p + "n"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX, cache_size: int = 10_000, retries: int = 6,
                 socket_timeout: float | None = 10.0, max_connections: int | None = None) -> RedisEventStore:
        """A store on the Redis server at ``url`` (checked with a ``PING``: :class:`StoreError` if it does not
        answer)."""
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout,
                                      socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0),
                                      max_connections=max_connections)
        store = cls(client, prefix=prefix, cache_size=cache_size, retries=retries)
        try:
            store._run("ping", client.ping)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def client(self) -> redis.Redis:
        return self._client

    def observe_latency(self, observer: LatencyObserver | None) -> None:
        """Call ``observer(operation, seconds)`` after each operation's round trips to Redis (``None``: stop)."""
        self._observe = observer

    # ------------------------------------------------------------------ plumbing

    def _run(self, operation: str, work: Callable[[], T], outcome: WriteOutcome | None = None) -> T:
        """Run ``work`` (Redis commands), trying again on a new connection when one is lost, and translate
        Redis errors into :class:`StoreError`.

        A write passes its ``outcome``: ``work`` must then be safe to repeat and tell by itself what an earlier
        attempt did (every write script is). A connection lost after the write was sent makes the outcome
        unsure until an attempt is answered; a write that fails for good meanwhile raises
        :class:`~sessionflow.errors.OutcomeUnknown` instead of :class:`StoreError` (which means "not applied").
        """
        if self._closed:
            raise StoreError("the store is closed")
        observe = self._observe
        started = time.perf_counter() if observe is not None else 0.0
        delay = 0.05
        attempt = 0
        while True:
            try:
                result = work()
                break
            except SessionflowError:
                raise
            except _LOST as error:
                if outcome is not None and not _never_sent(error):
                    outcome.unsure = True
                if attempt >= self._retries or self._closed:
                    raise failure(f"redis unreachable: {error}", outcome) from error
                attempt += 1
                logger.warning("redis connection lost (%s); retrying on a new one", error)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except RedisError as error:
                raise failure(f"redis error: {error}", outcome) from error
        if outcome is not None:
            outcome.unsure = False
        if observe is not None:
            observe(operation, time.perf_counter() - started)
        return result

    def _key(self, kind: str, session_id: UUID | str) -> str:
        return f"{self.prefix}{kind}:{session_id}"

    def _remember(self, session_id: UUID, doc: str, session: Session) -> None:
        if not self._cache_size:
            return
        with self._cache_lock:
            cache = self._cache
            if session_id in cache:
                cache.move_to_end(session_id)
            cache[session_id] = (doc, session)
            if len(cache) > self._cache_size:
                cache.popitem(last=False)

    def _forget(self, session_id: UUID) -> None:
        with self._cache_lock:
            self._cache.pop(session_id, None)

    def _decode(self, session_id: UUID, doc: str) -> Session:
        if self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None and cached[0] == doc:
                return cached[1]
        session = decode_session(doc, session_id)
        self._remember(session_id, doc, session)
        return session

    # ------------------------------------------------------------------ writes

    def append(self, change: Change) -> None:
        """Append the change's events and store its projection, atomically (one script)."""
        _check_versions(change)
        args: list[Any] = [self.prefix, "1", 1]
        _change_args(change, args)
        session = change.session
        client = self._client
        try:
            outcome = self._run("append", lambda: _APPLY(client, args), WriteOutcome("append", (change,)))
        except BaseException:
            self._forget(session.id)
            raise
        code = int(outcome[0])
        if code == 1 or code == 3:
            if self._cache_size:
                self._remember(session.id, args[5], session)
            return
        self._forget(session.id)
        if code == 2:
            raise ActiveSessionExists(session.id, user_id=change.exclusive_user or "",
                                      active_session_id=UUID(str(outcome[1])))
        raise ConcurrencyConflict(session.id, expected_version=change.expected_version,
                                  actual_version=int(outcome[1]))

    def append_many(self, changes: Sequence[Change]) -> None:
        """Append every change, in order, atomically (one script that checks them all before it writes any:
        see :meth:`EventStore.append_many`)."""
        batch = list(changes)
        if not batch:
            return
        args: list[Any] = [self.prefix, "2", len(batch)]
        for index, change in enumerate(batch):
            try:
                _check_versions(change)
            except ConcurrencyConflict as error:
                raise BatchRejected(index, error) from error
            _change_args(change, args)
        client = self._client
        try:
            outcome = self._run("append_many", lambda: _APPLY(client, args), WriteOutcome("append_many", batch))
        finally:
            for change in batch:
                self._forget(change.session.id)
        if isinstance(outcome[0], list) or int(outcome[0]) == 3:
            return
        index = int(outcome[2])
        change = batch[index]
        refused: ConcurrencyConflict | ActiveSessionExists
        if int(outcome[0]) == 2:
            refused = ActiveSessionExists(change.session.id, user_id=change.exclusive_user or "",
                                          active_session_id=UUID(str(outcome[1])))
        else:
            refused = ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                          actual_version=int(outcome[1]))
        raise BatchRejected(index, refused) from refused

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        """The stored projection of a session (deleted ones included), or ``None``."""
        if not fresh and self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None:
                return cached[1]
        key = self._key("s", session_id)
        client = self._client
        doc = self._run("get", lambda: client.hget(key, "doc"))
        if doc is None:
            self._forget(session_id)
            return None
        return self._decode(session_id, str(doc))

    def history(self, session_id: UUID) -> list[SessionEvent]:
        """Every event of a session, oldest first."""
        key = self._key("e", session_id)
        client = self._client
        items: list[str] = self._run("history", lambda: cast(Any, client.lrange(key, 0, -1)))
        return [decode_event(item, session_id) for item in items]

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        """Projection and history in one ``MULTI``/``EXEC`` (nothing runs in between)."""
        skey, ekey = self._key("s", session_id), self._key("e", session_id)

        def work() -> list[Any]:
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(skey, "doc")
            pipe.lrange(ekey, 0, -1)
            return pipe.execute()

        doc, items = self._run("read_together", work)
        session = None if doc is None else decode_session(doc, session_id)
        return session, [decode_event(item, session_id) for item in items]

    def query(self, query: Query) -> list[Session]:
        """Sessions matching the filters, ordered by ``created_at`` then id: one script walks the most
        selective index in order and filters the rest."""
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
        lifecycle: str | None = getattr(query, "lifecycle", None)
        created_after: datetime | None = getattr(query, "created_after", None)
        created_before: datetime | None = getattr(query, "created_before", None)
        after: tuple[datetime, UUID] | None = getattr(query, "after", None)
        low = "-inf" if created_after is None else str(to_millis(created_after))
        if after is not None:  # keyset: from the cursor's creation time on (ties are settled by id in the script)
            low = str(max(to_millis(after[0]), int(low) if created_after is not None else to_millis(after[0])))
        high = "+inf" if created_before is None else f"({to_millis(created_before)}"
        args = [self.prefix, index, "1" if query.include_deleted else "", live_after,
                optional(query.user_id), optional(query.workspace_id), optional(query.module_name),
                optional(lifecycle), low, high, "" if after is None else to_millis(after[0]),
                "" if after is None else str(after[1]), query.offset, query.limit, *statuses]
        client = self._client
        docs = self._run("query", lambda: _QUERY(client, args))
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
        flat = self._run("read_events", lambda: _READ_EVENTS(client, args))
        return [decode_event(flat[k + 1], UUID(flat[k])) for k in range(0, len(flat), 2)]

    def last_position(self) -> int:
        """The highest feed position (0: no event yet)."""
        client = self._client
        return int(self._run("last_position", lambda: client.get(self.prefix + "pos")) or 0)

    def consumer_position(self, name: str) -> int:
        """The position stored for the feed consumer ``name`` (0: none stored)."""
        client = self._client
        return int(self._run("consumer_position", lambda: client.hget(self.prefix + "consumers", name)) or 0)

    def save_consumer_position(self, name: str, position: int, now: datetime) -> None:
        """Store ``position`` for ``name`` unless the stored one is higher."""
        client = self._client
        args = [self.prefix, name, int(position)]
        self._run("save_consumer_position", lambda: _SAVE_CONSUMER(client, args),
                  WriteOutcome("save_consumer_position"))

    # ------------------------------------------------------------------ sweeping

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        """Expire up to ``limit`` overdue sessions (see :meth:`EventStore.expire_due`)."""
        return self.expire_due_next(now, limit, decide).changes

    def expire_due_next(self, now: datetime, limit: int, decide: ExpiryDecider) -> ExpiredBatch:
        """:meth:`expire_due`, and the earliest deadline left once the batch is written.

        The overdue sessions are read earliest first with their documents (one script), decided here, and
        written by one script that skips every session whose version moved meanwhile (another sweeper
        expired it, a writer completed or touched it): each overdue session gets exactly one ``expired``
        event however many processes sweep. A batch that lost sessions that way claims again to fill up.
        """
        at = to_millis(now)
        client = self._client
        applied: list[Change] = []
        left_alone: set[str] = set()
        earliest = ""
        for _ in range(_SWEEP_ROUNDS):
            want = limit - len(applied)
            ask = want + len(left_alone)
            flat = self._run("claim", partial(_CLAIM, client, [self.prefix, at, ask]))
            earliest = flat[0]
            changes: list[Change] = []
            for k in range(1, len(flat), 2):
                if len(changes) >= want:
                    break
                sid = flat[k]
                if sid in left_alone:
                    continue
                session_id = UUID(sid)
                change = decide(self._decode(session_id, flat[k + 1]), now)
                if change is None:
                    left_alone.add(sid)
                else:
                    changes.append(change)
            if not changes:
                break
            args: list[Any] = [self.prefix, "0", len(changes)]
            for change in changes:
                _check_versions(change)
                _change_args(change, args)
            # (a repeat after a lost connection flags the changes the lost attempt applied as applied)
            try:
                flags, earliest = self._run("sweep", partial(_APPLY, client, args), WriteOutcome("expire", changes))
            except OutcomeUnknown as unknown:
                # The earlier rounds' sessions were expired (and their subscribers are not called: the event
                # feed carries them); say how many.
                self._refresh(applied)
                raise unknown.with_applied(len(applied)) from unknown
            lost = False
            for change, flag in zip(changes, flags, strict=True):
                if flag == "1":
                    applied.append(change)
                else:
                    lost = True
                    self._forget(change.session.id)
            if len(applied) >= limit or (not lost and (len(flat) - 1) // 2 < ask):
                break
        self._refresh(applied)
        next_deadline = from_millis(int(float(earliest))) if earliest else None
        return ExpiredBatch(applied, next_deadline, known=True)

    def _refresh(self, changes: list[Change]) -> None:
        """Forget the cached copies of swept sessions (a sweep of thousands of cold sessions must not evict the
        readers' working set)."""
        if not self._cache_size or not changes:
            return
        with self._cache_lock:
            for change in changes:
                self._cache.pop(change.session.id, None)

    # ------------------------------------------------------------------ maintenance

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        """Every session's whole history, in session-id order, ``batch_size`` sessions per round trip."""
        ids = sorted(self.session_ids(), key=str)
        for start in range(0, len(ids), batch_size):
            part = ids[start:start + batch_size]

            def work(part: list[UUID] = part) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for sid in part:
                    pipe.lrange(self._key("e", sid), 0, -1)
                return pipe.execute()

            for sid, items in zip(part, self._run("histories", work), strict=True):
                yield [decode_event(item, sid) for item in items]

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        """Every stored projection (deleted sessions included), in id order."""
        client = self._client
        key = self.prefix + "i:all"
        ids: list[str] = sorted(self._run("projections", lambda: cast(Any, client.zrange(key, 0, -1))))
        for start in range(0, len(ids), batch_size):
            part = ids[start:start + batch_size]

            def work(part: list[str] = part) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for sid in part:
                    pipe.hget(self._key("s", sid), "doc")
                return pipe.execute()

            for sid, doc in zip(part, self._run("projections", work), strict=True):
                if doc is not None:
                    yield decode_session(doc, UUID(sid))

    def _projection_keys(self) -> list[str]:
        keys: list[str] = [self.prefix + "i:all", self._due_key, self._n_key]
        for pattern in ("s:*", "i:*", "a:*"):
            keys.extend(self._client.scan_iter(match=self.prefix + pattern, count=1000))
        return keys

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        """Replace the whole projection (documents, indexes, deadlines, counts) by ``rebuilt`` in one
        ``MULTI``/``EXEC``; run it while no other writer is active."""
        sessions = list(rebuilt)  # fold everything first: a failure changes nothing
        with self._cache_lock:
            self._cache.clear()

        def work() -> int:
            old = self._projection_keys()
            pipe = self._client.pipeline(transaction=True)
            for start in range(0, len(old), 1000):
                pipe.delete(*old[start:start + 1000])
            p = self.prefix
            for s in sessions:
                sid = str(s.id)
                status, user, workspace, module, lifecycle, created, due, expires, deleted = session_fields(s)
                pipe.hset(p + "s:" + sid, mapping={
                    "v": s.version, "st": status, "u": user, "w": workspace, "m": module, "lc": lifecycle,
                    "c": created,
                    "due": due, "exp": expires, "del": deleted, "doc": encode_session(s)})
                pipe.zadd(p + "i:all", {sid: int(created)})
                pipe.zadd(p + "i:st:" + status, {sid: int(created)})
                for kind, value in (("u", user), ("w", workspace), ("m", module)):
                    if value:
                        pipe.zadd(f"{p}i:{kind}:{value}", {sid: int(created)})
                if due:
                    pipe.zadd(self._due_key, {sid: int(due)})
                if not deleted:
                    pipe.hincrby(self._n_key, status, 1)
                    if status == _IN_PROGRESS and user:
                        pipe.sadd(p + "a:" + user, sid)
            pipe.execute()
            return len(sessions)

        return self._run("replace_projection", work, WriteOutcome("replace_projection"))

    def purge_sessions(self, expected: Mapping[UUID, int]) -> list[UUID]:
        """Remove each session of ``expected`` still at that version, except the one holding the feed's newest
        event, atomically (one script: ``retention.py``); returns the ids removed."""
        if not expected:
            return []
        args: list[Any] = [self.prefix, len(expected)]
        for sid, version in expected.items():
            args += (str(sid), int(version))
        client = self._client
        outcome = WriteOutcome("purge", session_ids=list(expected))

        def work() -> list[str]:
            if not outcome.unsure:
                return cast(list[str], _PURGE(client, args))
            # A repeat after a lost attempt: the sessions already gone were removed by it (or by another purge
            # at the same moment), and count as removed.
            pipe = client.pipeline(transaction=False)
            for sid in expected:
                pipe.exists(self._key("s", sid))
            gone = [str(sid) for sid, there in zip(expected, pipe.execute(), strict=True) if not there]
            return [*cast(list[str], _PURGE(client, args)), *gone]

        removed = [UUID(sid) for sid in self._run("purge", work, outcome)]
        for sid in removed:
            self._forget(sid)
        return removed

    def change_watcher(self) -> Any:
        """A new (unstarted) :class:`~sessionflow.adapters.redis.watcher.RedisChangeWatcher` on this store's
        server and channels, with a connection of its own."""
        from sessionflow.adapters.redis.watcher import RedisChangeWatcher

        kwargs = dict(self._client.connection_pool.connection_kwargs)
        connection_class = self._client.connection_pool.connection_class

        def connect() -> redis.Redis:
            pool = redis.ConnectionPool(connection_class=connection_class, max_connections=1,
                                        **{**kwargs, "socket_timeout": None})
            return redis.Redis(connection_pool=pool)

        return RedisChangeWatcher(connect, self.prefix)

    def ping(self) -> bool:
        """True when Redis answers."""
        if self._closed:
            return False
        try:
            return bool(self._client.ping())
        except RedisError:
            return False

    def close(self) -> None:
        """Release the connections (if the store owns the client). The store is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        with self._cache_lock:
            self._cache.clear()
        if self._owns_client:
            self._client.close()
            self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
        return f"RedisEventStore({where!r}, prefix={self.prefix!r})"
