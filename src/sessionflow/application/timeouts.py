"""Timeouts: the sweep that expires overdue sessions, and the waker that runs it at the deadlines.

The deadlines live in the store. :class:`Timeouts` sweeps in batches (each overdue session gets exactly one
``expired`` event however many processes sweep: the store's compare-and-set sees to it), delivers the
expired events, and tells what the next deadline is. It also owns the waker's wiring: which waker runs,
binding it to its manager, starting and stopping it. Which waker to build when none is given is the
caller's choice (``waker_factory``): this layer imports no scheduler.

A traced sweep's span is a root of its own (see ``ManagerUpkeep.sweep``); once the sweep is done it is linked to
the spans that last wrote the sessions it expired (their events' ``trace_context``): the first
:data:`~sessionflow.application.tracing.MAX_LINKS` sessions' last events are read back for that, only while
tracing is active, and ``sessionflow.links.count`` says how many sessions it expired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import EventStore, ExpiredBatch, ExpiryDecider, SweepsToNextDeadline, Waker
from sessionflow.application.tracing import MAX_LINKS, Tracing
from sessionflow.application.validation import check_int
from sessionflow.domain.models import TraceContext
from sessionflow.domain.values import to_utc, truncate_to_ms
from sessionflow.errors import InvalidInput, OutcomeUnknown, SessionflowError

__all__ = ["MAX_BATCH_SIZE", "SweepResult", "Timeouts", "WakerFactory", "last_writers"]

#: The largest batch a sweep accepts.
MAX_BATCH_SIZE = 100_000

#: Builds the waker :meth:`Timeouts.start` uses when none was given, from the safety-net interval.
WakerFactory = Callable[[timedelta], Waker]


class SweepResult(NamedTuple):
    """What :meth:`SessionManager.sweep` did: how many sessions it expired, and the earliest deadline of a live
    session afterwards (``None``: none has one)."""

    expired: int
    next_deadline: datetime | None


def last_writers(store: EventStore, writers: Sequence[tuple[UUID, int]]) -> list[TraceContext]:
    """The trace contexts recorded by the events ``writers`` name (a session id and a version each), in their
    order; an event that recorded none, or that cannot be read (purged meanwhile), is left out."""
    found: list[TraceContext] = []
    for session_id, version in writers:
        try:
            history = store.history(session_id)
        except SessionflowError:
            continue
        if 0 < version <= len(history) and history[version - 1].version == version:
            recorded = history[version - 1].trace_context
        else:
            recorded = next((e.trace_context for e in history if e.version == version), None)
        if recorded is not None:
            found.append(recorded)
    return found


class Timeouts:
    """Sweeps the overdue sessions of one pipeline's store and runs its waker."""

    __slots__ = ("_pipeline", "_waker_factory", "_with_next")

    def __init__(self, pipeline: WritePipeline, waker_factory: WakerFactory | None) -> None:
        self._pipeline = pipeline
        self._waker_factory = waker_factory
        store = pipeline.store
        #: The store, when its batches also tell the next deadline (checked once, here).
        self._with_next = store if isinstance(store, SweepsToNextDeadline) else None

    @property
    def waker(self) -> Waker | None:
        return self._pipeline.delivery.waker

    def sweep(self, now: datetime | None, batch_size: int, *, next_deadline: bool,
              limit: int | None = None) -> SweepResult:
        """Expire every session due at ``now`` (default: the clock), ``batch_size`` per transaction; with
        ``limit``, stop after the batch that reaches it (the next deadline is then the store's)."""
        pipeline = self._pipeline
        at = pipeline.now() if now is None else truncate_to_ms(to_utc(now, "now"))
        check_int(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        if limit is not None:
            check_int(limit, "limit", 1, 2**62)
        decide: ExpiryDecider = pipeline.sweep_change
        store = pipeline.store
        delivery = pipeline.delivery
        with_next = self._with_next if next_deadline else None
        total = 0
        tracing: Tracing | None = pipeline.tracing
        if tracing is not None and not tracing.active():
            tracing = None
        #: The expired sessions whose last writers the sweep's span links to, with the version that wrote last.
        writers: list[tuple[UUID, int]] = []
        while True:
            try:
                if with_next is not None:
                    batch: ExpiredBatch = with_next.expire_due_next(at, batch_size, decide)
                    changes = batch.changes
                else:
                    changes = store.expire_due(at, batch_size, decide)
                    batch = ExpiredBatch(changes)
            except OutcomeUnknown as unknown:  # say what the earlier batches did (they were delivered)
                raise unknown.with_applied(total) from unknown
            total += len(changes)
            if tracing is not None and len(writers) < MAX_LINKS:
                writers += [(c.session.id, c.session.version - 1) for c in changes[:MAX_LINKS - len(writers)]]
            if changes:
                delivery.committed(changes)
            if len(changes) < batch_size:
                break
            if limit is not None and total >= limit:
                batch = ExpiredBatch(changes)  # (not known: sessions were left due)
                break
        if tracing is not None and total:
            tracing.link(last_writers(store, writers))
            tracing.annotate({"sessionflow.links.count": total})
        if not next_deadline:
            return SweepResult(total, None)
        # Delivered first: the deadline is read (if the batch could not tell it) only after the subscribers ran.
        return SweepResult(total, batch.next_deadline if batch.known else store.next_deadline())

    def start(self, manager: Any, waker: Waker | None, cleanup_interval: timedelta) -> Waker:
        """Run ``waker`` (or the current one, or a new one from the factory) for ``manager``; returns it.

        A waker with ``bind(manager)`` is bound first; one with ``follow(factory)`` is offered the manager's
        change watcher (``manager._new_watcher``, which builds it once; ``None`` when the store has none), so
        deadlines written by other processes wake it too.
        """
        delivery = self._pipeline.delivery
        if waker is not None and waker is not delivery.waker:
            if delivery.waker is not None:
                delivery.waker.stop()
            delivery.waker = waker
        if delivery.waker is None:
            if self._waker_factory is None:
                raise InvalidInput("waker", "no waker given and none to build: pass one to start_timeouts()")
            delivery.waker = self._waker_factory(cleanup_interval)
        current = delivery.waker
        bind = getattr(current, "bind", None)
        if callable(bind):
            bind(manager)
        # A waker that can follow a change watcher (writes of other processes) is offered the manager's,
        # built only if the waker needs it.
        follow = getattr(current, "follow", None)
        if callable(follow):
            follow(manager._new_watcher)
        current.start()
        return current

    def stop(self) -> None:
        """Stop the waker, if any."""
        waker = self._pipeline.delivery.waker
        if waker is not None:
            waker.stop()
