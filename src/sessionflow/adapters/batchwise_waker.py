"""``BatchwiseWaker``: an :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` whose stop waits for the
batch in hand, not for the whole sweep.

A sweep expires the overdue sessions ``batch_size`` per transaction until none is left; after a long outage that
may be many batches. A process told to stop (SIGTERM in a rolling deploy) should not run them all: this waker
sweeps one batch at a time and, once :meth:`~BatchwiseWaker.stop` was called, ends the sweep after the batch it
is committing — that batch is committed and its expired events delivered; the sessions left due are expired by
the next sweep of any process (exactly once, by the store's compare-and-set). ``sessionflow worker`` and
``sessionflow serve`` run it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sessionflow.adapters.apscheduler import ApschedulerWaker, SweepTarget
from sessionflow.application.ports import Clock

__all__ = ["BatchwiseWaker"]


class _OneBatchAtATime:
    """What the waker drives: ``manager``'s sweep, one batch per call of the manager, until a batch comes back
    short; none begins once ``halt`` is set."""

    def __init__(self, manager: Any, halt: threading.Event) -> None:
        self.manager = manager
        self._halt = halt

    @property
    def clock(self) -> Clock:
        clock: Clock = self.manager.clock
        return clock

    def next_deadline(self) -> datetime | None:
        deadline: datetime | None = self.manager.next_deadline()
        return deadline

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        total = 0
        while not self._halt.is_set():
            count: int = self.manager.expire_sessions(now, batch_size, limit=batch_size)
            total += count
            if count < batch_size:
                break
        return total

    def sweep(self, now: datetime | None = None, batch_size: int = 1000) -> tuple[int, datetime | None]:
        """Batches until one comes back short or the halt is set (then the deadline is unknown: ``None``)."""
        total = 0
        while not self._halt.is_set():
            count, deadline = self.manager.sweep(now, batch_size, limit=batch_size)
            total += count
            if count < batch_size:
                return total, deadline
        return total, None


class BatchwiseWaker(ApschedulerWaker):
    """An :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` (same arguments) that sweeps one batch per
    transaction and, when stopped, finishes the batch in hand and leaves the rest due.

    The manager it drives (``bind``, as ``SessionManager.start_timeouts`` does) must offer ``sweep`` and
    ``expire_sessions`` with a ``limit``, as :class:`~sessionflow.SessionManager` does.

    Args:
        halt: an event that, once set, ends a sweep under way after its batch, the start's catch-up sweep
            included (a signal handler may set it; :meth:`stop` sets it too). By default the waker's own,
            cleared by each :meth:`start`; one given is the caller's and never cleared.
    """

    def __init__(self, target: SweepTarget | None = None, *, halt: threading.Event | None = None,
                 **options: Any) -> None:
        self._owns_halt = halt is None
        self._halt = threading.Event() if halt is None else halt
        super().__init__(None, **options)
        if target is not None:
            self.bind(target)

    def bind(self, target: SweepTarget) -> None:
        """Drive ``target`` one batch at a time (see :meth:`ApschedulerWaker.bind`)."""
        current = self._target
        if isinstance(current, _OneBatchAtATime) and current.manager is target:
            return
        super().bind(_OneBatchAtATime(target, self._halt))

    def start(self) -> None:
        """Start waking (see :meth:`ApschedulerWaker.start`); its catch-up sweep stops early if :meth:`stop` is
        called meanwhile."""
        if self._owns_halt:
            self._halt.clear()
        super().start()

    def stop(self) -> None:
        """Stop: the sweep under way ends after the batch it is committing, then the waker stops as
        :meth:`ApschedulerWaker.stop` does. Idempotent."""
        self._halt.set()
        super().stop()
