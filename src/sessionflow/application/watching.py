"""Changes made by other processes: what a change watcher tells, and the protocol it offers.

A write in one process tells that process's waker its new deadline directly. A write in another process
does not; a :class:`ChangeWatcher` (built by the adapters for the store's database: PostgreSQL's
``LISTEN``/``NOTIFY``, SQLite's ``PRAGMA data_version``) reports such writes as :class:`Notice` values to
its subscribers, on its own thread. Notices are hints for waking up early, never data to trust: a notice
may be repeated or arrive for a write this process made itself, and a lost connection loses notices (the
watcher then sends ``"changed"``), so whoever listens still reads the store for the truth and keeps a
periodic safety net.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = ["ChangeWatcher", "NoticeKind", "Notice", "NoticeCallback"]

#: ``"deadline"``: a write set a session deadline (new, or earlier than it was), given in :attr:`Notice.deadline`.
#: ``"events"``: events were appended. ``"changed"``: something may have changed (the watcher cannot tell
#: what: a poll saw the database change, or notices were missed while a connection was down).
NoticeKind = Literal["deadline", "events", "changed"]


@dataclass(frozen=True, slots=True)
class Notice:
    """What a change watcher reports: the kind of change and, for ``"deadline"``, the deadline (UTC).

    Attributes:
        kind: ``"deadline"``, ``"events"`` or ``"changed"`` (see :data:`NoticeKind`).
        deadline: the new deadline for ``"deadline"`` notices (UTC-aware, millisecond precision); else ``None``.
    """

    kind: NoticeKind
    deadline: datetime | None = None


#: A subscriber: called with each notice, on the watcher's thread (keep it short; it must not block).
NoticeCallback = Callable[[Notice], object]


@runtime_checkable
class ChangeWatcher(Protocol):
    """Watches a store's database for writes made by any process and reports them as :class:`Notice` values.

    One watcher may serve several subscribers. ``subscribe`` and ``start`` may be called in either order;
    ``start`` and ``stop`` are idempotent, and ``stop`` joins the watcher's thread. A subscriber that raises
    is logged and skipped. Whoever built the watcher stops it; subscribers only unsubscribe.
    """

    def subscribe(self, callback: NoticeCallback) -> Callable[[], None]:
        """Call ``callback(notice)`` for each notice from now on; returns a function that unsubscribes."""
        ...

    def start(self) -> None:
        """Begin watching (on a daemon thread). Idempotent."""
        ...

    def stop(self) -> None:
        """Stop watching and join the thread. Idempotent; a stopped watcher may be started again."""
        ...
