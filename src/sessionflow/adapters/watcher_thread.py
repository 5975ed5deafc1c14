"""The thread of a change watcher: its subscribers, its start and stop, and the back-off between reconnections.

Every change watcher (PostgreSQL ``LISTEN``, SQLite ``PRAGMA data_version``, Redis pub/sub) watches on one
daemon thread of its own and hands each :class:`~sessionflow.application.watching.Notice` to its subscribers on
that thread; :class:`WatcherThread` is that part, the same for all of them. A lost connection is opened again
after :data:`RETRY_START` seconds, doubling each time, at most 5 s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from sessionflow.application.watching import Notice, NoticeCallback

__all__ = ["RETRY_START", "WatcherThread"]

logger = logging.getLogger("sessionflow.watcher")

#: The first wait before reconnecting, in seconds (each further one doubles, up to 5 s).
RETRY_START: Final = 0.05
_RETRY_MAX: Final = 5.0


class WatcherThread:
    """Subscribers, and one daemon thread started and stopped on demand: the shared part of the change watchers.

    A subclass watches in :meth:`_run` (until ``stopping`` is set), reports with :meth:`_emit`, sets
    ``_listening`` while it watches, and waits between reconnections with :meth:`_retry`; :meth:`_prepare`,
    :meth:`_interrupt` and :meth:`_release` are its hooks around the thread.
    """

    _thread_name = "sessionflow-watcher"

    def __init__(self) -> None:
        self._subscribers: tuple[NoticeCallback, ...] = ()
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._listening = threading.Event()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def listening(self) -> bool:
        """True while the watcher is watching the database (connected, ``LISTEN`` done / the poll running)."""
        return self._listening.is_set()

    def wait_listening(self, timeout: float | None = None) -> bool:
        """Wait until the watcher is watching the database; returns whether it is."""
        return self._listening.wait(timeout)

    def subscribe(self, callback: NoticeCallback) -> Callable[[], None]:
        """Call ``callback(notice)`` for each notice from now on, on the watcher's thread; returns a function
        that unsubscribes (idempotent)."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                subscribers = list(self._subscribers)
                if callback in subscribers:
                    subscribers.remove(callback)
                self._subscribers = tuple(subscribers)

        return unsubscribe

    def start(self) -> None:
        """Begin watching on a daemon thread. Idempotent."""
        with self._lifecycle:
            if self._thread is not None:
                return
            self._stopping = threading.Event()
            self._listening.clear()
            self._prepare()
            thread = threading.Thread(target=self._run, args=(self._stopping,), name=self._thread_name, daemon=True)
            self._thread = thread
            thread.start()

    def stop(self) -> None:
        """Stop watching and join the thread (not when called by a subscriber, on that thread). Idempotent."""
        with self._lifecycle:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._stopping.set()
            self._interrupt()
            if thread is not threading.current_thread():
                thread.join()
            self._listening.clear()
            self._release()

    def _emit(self, notice: Notice) -> None:
        for callback in self._subscribers:
            try:
                callback(notice)
            except Exception:  # a subscriber's error never stops the watcher or the other subscribers
                logger.exception("a change subscriber failed on %r", notice)

    def _retry(self, stopping: threading.Event, delay: float) -> float:
        """Wait ``delay`` (unless stopping); the next delay."""
        stopping.wait(delay)
        return min(delay * 2, _RETRY_MAX)

    def _prepare(self) -> None:
        """Before the thread starts (under the lifecycle lock)."""

    def _interrupt(self) -> None:
        """Wake the thread up so that it sees it must stop."""

    def _release(self) -> None:
        """After the thread ended (under the lifecycle lock)."""

    def _run(self, stopping: threading.Event) -> None:  # pragma: no cover - overridden
        raise NotImplementedError
