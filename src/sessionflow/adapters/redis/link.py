"""The Redis store's link to its server: the client, the key prefix, the Lua scripts run by their SHA1, and the
rule every operation's round trips follow.

A lost connection (server restarted, network) is retried on a new one with back-off, from 50 ms doubling to at
most 1 s between tries; every script is safe to repeat (see ``store.py``). Any other Redis error becomes a
:class:`~sessionflow.errors.StoreError`, or an :class:`~sessionflow.errors.OutcomeUnknown` for a write that may
have been applied before its connection broke (:mod:`sessionflow.adapters.outcome`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar, cast
from uuid import UUID

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import redis
from sessionflow.adapters.outcome import WriteOutcome, failure
from sessionflow.adapters.redis import scripts
from sessionflow.adapters.redis.retention import PURGE as PURGE_TEXT
from sessionflow.errors import SessionflowError, StoreError

__all__ = ["APPLY", "CLAIM", "DROP_KEYS", "PURGE", "QUERY", "READ_EVENTS", "RESCORE", "SAVE_CONSUMER",
           "LatencyObserver", "RedisLink", "Script"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")

#: Called with an operation's name and its duration in seconds (see :meth:`RedisLink.observe`).
LatencyObserver = Callable[[str, float], object]

_LOST = (RedisConnectionError, RedisTimeoutError)
_RETRY_START: Final = 0.05
_RETRY_MAX: Final = 1.0


def _never_sent(error: BaseException) -> bool:
    """Whether a lost-connection error came from making the connection (nothing was sent): redis-py words
    these "Error <n> connecting to <host>" (``AbstractConnection._error_message``); behind Sentinel, no
    primary to connect to is :class:`~redis.sentinel.MasterNotFoundError`."""
    return isinstance(error, RedisConnectionError) and (
        " connecting to " in str(error) or type(error).__name__ == "MasterNotFoundError")


class NotReplicated(RedisError):
    """A write the primary applied that fewer replicas than asked acknowledged within the wait (``WAIT``): it
    would not survive the loss of the primary, so its outcome is unknown to the caller."""


class Script:
    """One Lua script: run by its SHA1, loaded again when the server does not know it (a restart)."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __call__(self, client: redis.Redis, args: Sequence[Any]) -> Any:
        """Run the script with ``args`` (no keys: the scripts build their keys from the prefix in ``args``)."""
        try:
            return cast(Any, client).execute_command("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            client.script_load(self.text)
            return cast(Any, client).execute_command("EVALSHA", self.sha, 0, *args)


#: The scripts of ``scripts.py`` and ``retention.py`` (their arguments are documented there).
APPLY: Final = Script(scripts.APPLY)
CLAIM: Final = Script(scripts.CLAIM)
DROP_KEYS: Final = Script(scripts.DROP_KEYS)
QUERY: Final = Script(scripts.QUERY)
READ_EVENTS: Final = Script(scripts.READ_EVENTS)
RESCORE: Final = Script(scripts.RESCORE)
SAVE_CONSUMER: Final = Script(scripts.SAVE_CONSUMER)
PURGE: Final = Script(PURGE_TEXT)


class RedisLink:
    """The client and key prefix of one store, and how its operations run their commands.

    Args:
        client: the redis-py client (made with ``decode_responses=True``; its pool is shared by the threads).
        prefix: the prefix of every key and channel of the store.
        retries: how many times an operation is tried again after a lost connection before it fails.
    """

    __slots__ = ("client", "closed", "observer", "prefix", "retries", "wait_replicas", "wait_timeout_ms")

    def __init__(self, client: redis.Redis, prefix: str, retries: int, *, wait_replicas: int = 0,
                 wait_timeout: float = 1.0) -> None:
        self.client = client
        self.prefix = prefix
        self.retries = retries
        #: A session write is acknowledged once this many replicas have it (``WAIT``; 0: the primary alone).
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = max(1, round(wait_timeout * 1000))
        #: Set by the store's ``close``: no operation runs afterwards, and none is tried again.
        self.closed = False
        #: Called after each operation's round trips (``None``: nobody listens).
        self.observer: LatencyObserver | None = None

    def key(self, kind: str, session_id: UUID | str) -> str:
        """The key of one session's ``kind`` (``"s"``: its projection, ``"e"``: its events)."""
        return f"{self.prefix}{kind}:{session_id}"

    def write(self, script: Script, args: Sequence[Any]) -> Any:
        """Run a session-writing ``script``; with ``wait_replicas``, followed on the same connection (one round
        trip, a pipeline) by ``WAIT wait_replicas timeout``: :class:`NotReplicated` when fewer replicas than
        that acknowledged the write in time."""
        client = self.client
        if not self.wait_replicas:
            return script(client, args)
        for attempt in range(2):
            pipe: Any = client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", script.sha, 0, *args)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            try:
                result, acknowledged = pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
                client.script_load(script.text)
                continue
            if int(acknowledged) < self.wait_replicas:
                raise NotReplicated(f"written on the primary, but {acknowledged} of the {self.wait_replicas} "
                                    f"replica(s) asked for acknowledged it within {self.wait_timeout_ms} ms")
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def confirm_replicated(self) -> None:
        """Wait until ``wait_replicas`` replicas hold everything the primary held when this was called, at most
        the wait's timeout: a ``PUBLISH`` on ``<prefix>sync`` (nobody listens; Redis hands it to its replicas
        and stores nothing) then ``WAIT``, on one connection in one round trip — ``WAIT`` waits for the
        connection's last write, which comes after every write the primary had applied. Raises
        :class:`NotReplicated` when fewer replicas acknowledge in time. Nothing to wait for without
        ``wait_replicas``."""
        if not self.wait_replicas:
            return
        pipe: Any = self.client.pipeline(transaction=False)
        pipe.publish(self.prefix + "sync", "")
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        acknowledged = int(pipe.execute()[1])
        if acknowledged < self.wait_replicas:
            raise NotReplicated(f"held by the primary, but {acknowledged} of the {self.wait_replicas} replica(s) "
                                f"asked for acknowledged it within {self.wait_timeout_ms} ms")

    def run(self, operation: str, work: Callable[[], T], outcome: WriteOutcome | None = None) -> T:
        """Run ``work`` (Redis commands), trying again on a new connection when one is lost, and translate
        Redis errors into :class:`StoreError`.

        A write passes its ``outcome``: ``work`` must then be safe to repeat and tell by itself what an earlier
        attempt did (every write script is). A connection lost after the write was sent makes the outcome
        unsure until an attempt is answered; a write that fails for good meanwhile raises
        :class:`~sessionflow.errors.OutcomeUnknown` instead of :class:`StoreError` (which means "not applied").
        """
        if self.closed:
            raise StoreError("the store is closed")
        observe = self.observer
        started = time.perf_counter() if observe is not None else 0.0
        delay = _RETRY_START
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
                if attempt >= self.retries or self.closed:
                    raise failure(f"redis unreachable: {error}", outcome) from error
                attempt += 1
                logger.warning("redis connection lost (%s); retrying on a new one", error)
                time.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
            except RedisError as error:
                if isinstance(error, NotReplicated) and outcome is not None:  # applied: lost if the primary fails
                    raise outcome.unknown(str(error), "the primary applied it, too few replicas confirmed it"
                                          ) from error
                raise failure(f"redis error: {error}", outcome) from error
        if outcome is not None:
            outcome.unsure = False
        if observe is not None:
            observe(operation, time.perf_counter() - started)
        return result
