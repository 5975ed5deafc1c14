"""The Redis store's change watcher: Redis pub/sub on the channels its scripts publish to.

The append script publishes on ``<prefix>deadline`` (payload: the deadline in epoch milliseconds) when a
session's deadline is new or earlier than it was, and on ``<prefix>events`` when events were appended, in the
same atomic step as the write. :class:`RedisChangeWatcher` subscribes to both on a connection of its own, on a
daemon thread, and reports :class:`~sessionflow.application.watching.Notice` values. A lost connection is
opened again with back-off (50 ms, doubling, at most 5 s); each time the subscription takes effect the watcher
sends ``"changed"``, since messages published meanwhile were missed (pub/sub keeps nothing).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import RedisError

import redis
from sessionflow.adapters.storage_format import from_millis
from sessionflow.adapters.watcher_thread import RETRY_START, WatcherThread
from sessionflow.application.watching import Notice

__all__ = ["RedisChangeWatcher"]

logger = logging.getLogger("sessionflow.watcher")

_CHANGED: Final = Notice("changed")
_EVENTS: Final = Notice("events")


class RedisChangeWatcher(WatcherThread):
    """Listens on the store's ``deadline`` and ``events`` channels and reports the notices.

    Args:
        connect: makes a new ``redis.Redis`` client (``decode_responses=True``) for the subscription.
        prefix: the store's key prefix (the channels are ``prefix + "deadline"`` and ``prefix + "events"``).
        poll: seconds between two checks for a stop request while no message arrives.

    Messages read together are folded: one ``"deadline"`` notice (the earliest) and one ``"events"`` notice.
    """

    _thread_name = "sessionflow-redis-watcher"

    def __init__(self, connect: Callable[[], redis.Redis], prefix: str, *, poll: float = 0.2) -> None:
        super().__init__()
        self._connect = connect
        self._deadline_channel = prefix + "deadline"
        self._events_channel = prefix + "events"
        self._poll = poll
        self._pubsub: Any = None
        #: How many times the watcher (re)connected and subscribed.
        self.connections = 0

    def _run(self, stopping: threading.Event) -> None:
        delay = RETRY_START
        while not stopping.is_set():
            client: redis.Redis | None = None
            try:
                client = self._connect()
                pubsub = client.pubsub()
                self._pubsub = pubsub
                pubsub.subscribe(self._deadline_channel, self._events_channel)
                # Wait for both confirmations: only then is nothing published from now on missed.
                confirmed = 0
                while confirmed < 2 and not stopping.is_set():
                    message = pubsub.get_message(timeout=self._poll)
                    if message is not None and message.get("type") == "subscribe":
                        confirmed += 1
                if stopping.is_set():
                    break
                self.connections += 1
                self._listening.set()
                delay = RETRY_START
                self._emit(_CHANGED)
                self._listen(pubsub, stopping)
            except (RedisError, OSError, ValueError) as error:
                self._listening.clear()
                if stopping.is_set():
                    break
                logger.warning("redis change watcher: %s; reconnecting in %.2f s", error, delay)
                delay = self._retry(stopping, delay)
            finally:
                self._listening.clear()
                self._close(client)

    def _listen(self, pubsub: Any, stopping: threading.Event) -> None:
        while not stopping.is_set():
            message = pubsub.get_message(timeout=self._poll)
            if message is None:
                continue
            earliest: int | None = None
            events = False
            while message is not None:
                channel, data = message.get("channel"), message.get("data")
                if message.get("type") != "message":
                    pass
                elif channel == self._events_channel:
                    events = True
                elif channel == self._deadline_channel:
                    try:
                        value = int(data)
                    except (TypeError, ValueError):
                        self._emit(_CHANGED)
                    else:
                        earliest = value if earliest is None else min(earliest, value)
                message = pubsub.get_message(timeout=0)
            if earliest is not None:
                self._emit(Notice("deadline", from_millis(earliest)))
            if events:
                self._emit(_EVENTS)

    def _close(self, client: redis.Redis | None) -> None:
        pubsub, self._pubsub = self._pubsub, None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                pubsub.close()
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()
