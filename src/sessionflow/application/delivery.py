"""After the commit: events to the subscribers, new deadlines to the waker.

Subscribers hear every event committed through one manager, after its commit, in subscription order; one
session's events arrive in version order (its commits are queued under a per-session stripe lock while
anybody listens). A subscriber that raises is logged and skipped. The waker, when there is one, hears each
deadline a commit sets, so it can re-arm earlier.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Final

from sessionflow.application.group_commit import GroupCommit
from sessionflow.application.ports import Change, EventStore, Waker
from sessionflow.application.tracing import Tracing, in_span
from sessionflow.domain.models import SessionEvent
from sessionflow.errors import InvalidInput

__all__ = ["Delivery", "Subscriber"]

logger = logging.getLogger("sessionflow")

#: A callback that receives each committed event.
Subscriber = Callable[[SessionEvent], object]

_STRIPES: Final = 64


class Delivery:
    """Commits changes to a store and tells the subscribers and the waker about them, in order.

    ``waker`` may be replaced at any time (see :meth:`~sessionflow.SessionManager.start_timeouts`).
    ``lock_factory`` makes the per-session locks that keep one session's deliveries in version order (default
    ``threading.Lock``; the asyncio facade gives locks that make a task wait instead of its thread). Call
    :meth:`use_locks` to change them before the first write.
    """

    __slots__ = ("_append", "_append_many", "_deliver_lock", "_outbox", "_stripes", "_subscribe_lock", "group", "store",
                 "subscribers", "waker")

    def __init__(self, store: EventStore, waker: Waker | None,
                 lock_factory: Callable[[], AbstractContextManager[Any]] = threading.Lock, *,
                 group: GroupCommit | None = None) -> None:
        self.store = store
        self.waker = waker
        #: Single commits go through this group commit when set (see :mod:`~sessionflow.application.group_commit`).
        self.group = group
        self._append: Callable[[Change], None] = store.append if group is None else group.append
        self._append_many: Callable[[Sequence[Change]], None] = store.append_many
        self.subscribers: tuple[Subscriber, ...] = ()
        self._subscribe_lock = threading.Lock()
        self._stripes: tuple[AbstractContextManager[Any], ...] = ()
        self.use_locks(lock_factory)
        self._outbox: deque[tuple[SessionEvent, ...]] = deque()
        self._deliver_lock = threading.Lock()

    def trace(self, tracing: Tracing, store_kind: str) -> None:
        """Make each append a child span (``sessionflow.store.append``, ``sessionflow.store.append_many``) of the
        operation's span, while ``tracing`` is active (before any write is under way)."""
        append, append_many = self._append, self._append_many

        def traced_append(change: Change) -> None:
            if not tracing.active():
                return append(change)
            return in_span(tracing, "sessionflow.store.append", {
                "db.system.name": store_kind, "sessionflow.session.id": str(change.session.id),
                "sessionflow.batch.size": len(change.events)}, lambda: append(change))

        def traced_append_many(changes: Sequence[Change]) -> None:
            if not tracing.active():
                return append_many(changes)
            return in_span(tracing, "sessionflow.store.append_many", {
                "db.system.name": store_kind, "sessionflow.batch.size": len(changes)}, lambda: append_many(changes))

        self._append, self._append_many = traced_append, traced_append_many

    def use_locks(self, lock_factory: Callable[[], AbstractContextManager[Any]]) -> None:
        """Make the per-session delivery locks with ``lock_factory`` (before any write is under way)."""
        self._stripes = tuple(lock_factory() for _ in range(_STRIPES))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it."""
        if not callable(callback):
            raise InvalidInput("callback", "must be callable")
        with self._subscribe_lock:
            self.subscribers = (*self.subscribers, callback)

        def unsubscribe() -> None:
            with self._subscribe_lock:
                self.subscribers = tuple(s for s in self.subscribers if s is not callback)

        return unsubscribe

    def commit(self, change: Change) -> None:
        """Append ``change`` to the store; then deliver its events and tell the waker its deadline."""
        session = change.session
        if not self.subscribers:
            # Nobody to deliver to: nothing to order, so no lock held across the database round trip. A
            # subscriber that arrives meanwhile sees the session's later events only (never out of order).
            self._append(change)
        else:
            # Commit and queue under the session's stripe, so its events are queued in version order.
            with self._stripes[hash(session.id) % _STRIPES]:
                self._append(change)
                self._outbox.append(change.events)
        if self._outbox:
            self.deliver()
        due = session.due_at
        waker = self.waker
        if waker is not None and due is not None:
            waker.notify_deadline(due)

    def commit_many(self, changes: Sequence[Change]) -> None:
        """Append ``changes`` in one transaction (:meth:`EventStore.append_many`); then deliver their events
        and tell the waker the earliest deadline they set."""
        if not self.subscribers:
            self._append_many(changes)
        else:
            with ExitStack() as stack:  # every session's stripe, in one order (no deadlock between batches)
                for stripe in sorted({hash(change.session.id) % _STRIPES for change in changes}):
                    stack.enter_context(self._stripes[stripe])
                self._append_many(changes)
                for change in changes:
                    self._outbox.append(change.events)
        if self._outbox:
            self.deliver()
        waker = self.waker
        if waker is not None:
            dues = [due for due in (change.session.due_at for change in changes) if due is not None]
            if dues:
                waker.notify_deadline(min(dues))

    def committed(self, changes: Iterable[Change]) -> None:
        """Deliver the events of ``changes``, which a store has already committed (a sweep's batch)."""
        if self.subscribers:
            for change in changes:
                self._outbox.append(change.events)
            self.deliver()

    def deliver(self) -> None:
        """Call the subscribers for every queued event; another thread already delivering takes ours too."""
        while self._outbox:
            if not self._deliver_lock.acquire(blocking=False):
                return  # another thread is delivering; it will pick our events up
            try:
                while True:
                    try:
                        events = self._outbox.popleft()
                    except IndexError:
                        break
                    subscribers = self.subscribers
                    for event in events:
                        for callback in subscribers:
                            try:
                                callback(event)
                            except Exception:
                                logger.exception("subscriber %r failed on event %s v%d of session %s",
                                                 callback, str(event.event), event.version, event.session_id,
                                                 extra={"session_id": str(event.session_id),
                                                        "record_id": str(event.record_id)})
            finally:
                self._deliver_lock.release()
