"""``ManagerUpkeep``: the timeouts and the maintenance of :class:`~sessionflow.application.manager.ManagerCore`.

The sweeps that expire overdue sessions and the waker that runs them at the deadlines
(:mod:`~sessionflow.application.timeouts`); rebuilding and verifying the projection
(:mod:`~sessionflow.application.maintenance`); purging closed sessions (:mod:`~sessionflow.application.retention`);
and the store's readiness check.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from sessionflow.application import validation as valid
from sessionflow.application.maintenance import Difference, rebuild_projection, verify_projection
from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import EventStore, KeepsIdempotencyKeys, Waker
from sessionflow.application.retention import Archive, PurgeResult, purge_arguments, purge_closed
from sessionflow.application.timeouts import SweepResult, Timeouts
from sessionflow.application.tracing import traced
from sessionflow.domain.values import to_utc, truncate_to_ms
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["ManagerUpkeep"]


class ManagerUpkeep:
    """The timeouts and the maintenance of the synchronous facade (a part of
    :class:`~sessionflow.application.manager.ManagerCore`, which builds what they use)."""

    _store: EventStore
    _timeouts: Timeouts
    _pipeline: WritePipeline
    _closed: bool

    @traced("expire_sessions", root=True)
    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000, *,
                        limit: int | None = None) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction.

        Each gets exactly one ``expired`` event by ``"system"``, even with other sweepers running.
        ``now`` defaults to the clock. ``limit``: stop after the batch that reaches this many (the rest is left
        for the next sweep). Returns how many this call expired.

        Traced, it is a root span (a trace of its own, as a waker's timer starts it) linked to the spans that
        last wrote the sessions it expired (at most 128; ``sessionflow.links.count``: how many it expired).
        """
        return self._timeouts.sweep(now, batch_size, next_deadline=False, limit=limit).expired

    @traced("sweep", root=True)
    def sweep(self, now: datetime | None = None, batch_size: int = 1000, *, limit: int | None = None) -> SweepResult:
        """:meth:`expire_sessions`, and then the earliest deadline left: what a waker re-arms at.

        The deadline comes from the sweep's own statements when the store can tell it
        (``expire_due_next``, see :class:`~sessionflow.application.ports.ExpiredBatch`), else from
        :meth:`next_deadline`, read after the expired events were delivered to the subscribers. Either way it
        may be earlier than the truth (a session completed since), never later, except for deadlines another
        process wrote after the sweep read them.
        """
        return self._timeouts.sweep(now, batch_size, next_deadline=True, limit=limit)

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of any live session, or ``None``."""
        return self._store.next_deadline()

    @property
    def waker(self) -> Waker | None:
        """What wakes this manager at its deadlines (see :meth:`start_timeouts`), or ``None``."""
        return self._timeouts.waker

    def start_timeouts(self, waker: Waker | None = None, *,
                       cleanup_interval: timedelta = timedelta(minutes=5)) -> Waker:
        """Expire sessions at their deadlines from now on, in the background; returns the waker.

        Without ``waker``, the one given to the constructor is used, else a new default one sweeping every
        ``cleanup_interval`` as a safety net (:class:`sessionflow.SessionManager`: an
        :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`). A waker with a ``bind(manager)``
        method is bound to this manager first. Starting sweeps at once, in the calling thread: sessions that
        fell due while nothing ran are expired when this returns. Stopped by :meth:`stop_timeouts`,
        :meth:`close` or leaving the ``with`` block. Idempotent. Raises :class:`~sessionflow.errors.StoreError`
        if the manager is closed or the store fails during the first sweep.
        """
        if self._closed:
            raise StoreError("the manager is closed")
        return self._timeouts.start(self, waker, cleanup_interval)

    def stop_timeouts(self) -> None:
        """Stop the waker (if any); sessions still expire lazily on reads and on :meth:`expire_sessions`."""
        self._timeouts.stop()

    # ------------------------------------------------------------------ maintenance

    @traced("rebuild")
    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Drop the projection and rebuild it from the events; returns how many sessions were rebuilt.

        ``progress(n)`` is called as sessions are folded. Run it while no other writer is active.
        """
        return rebuild_projection(self._store, progress)

    @traced("verify")
    def verify(self, progress: Callable[[int], object] | None = None) -> builtins.list[Difference]:
        """Fold every history and list each difference from the stored projection (empty: all agree)."""
        return verify_projection(self._store, progress)

    @traced("purge")
    def purge(self, *, closed_before: datetime, archive: Path | Archive | None = None, batch_size: int = 500,
              progress: Callable[[int], object] | None = None) -> PurgeResult:
        """Remove the closed sessions (final state, or deleted) last changed before ``closed_before`` (aware):
        their events and projection rows, ``batch_size`` sessions per transaction; ``progress(n)`` after each
        batch with the sessions it removed.

        With ``archive`` (a folder, created if missing) each whole history is first written there as a JSONL file
        (the format of ``export``), fsynced and renamed into place, before its batch is removed. A session changed
        meanwhile is skipped, never partly removed; live sessions are never touched, nor is the session holding
        the feed's newest event (so no feed position is ever reused). See
        :mod:`~sessionflow.application.retention`. Raises :class:`~sessionflow.errors.InvalidInput` (and changes
        nothing) for a bad argument.
        """
        cutoff, root, size = purge_arguments(closed_before, archive, batch_size, progress)
        writer = self._new_archive(root) if root is not None else cast("Archive | None", archive)
        result = purge_closed(self._store, closed_before=cutoff, archive=writer, batch_size=size, progress=progress)
        self.drop_expired_keys()
        return result

    @traced("drop_expired_keys")
    def drop_expired_keys(self, now: datetime | None = None, limit: int = 10_000) -> int:
        """Remove up to ``limit`` idempotency keys whose window ended at or before ``now`` (default: the clock);
        how many were removed (0 on a store that keeps no keys). :meth:`purge` and the waker's safety-net sweep
        (every ``cleanup_interval``) call it too. See :mod:`~sessionflow.application.idempotency`."""
        at = self._pipeline.now() if now is None else truncate_to_ms(to_utc(now, "now"))
        count = valid.check_int(limit, "limit", 1, 1_000_000)
        store = self._store
        return store.drop_expired_keys(at, count) if isinstance(store, KeepsIdempotencyKeys) else 0

    def _new_archive(self, root: Path) -> Archive:
        """The archive :meth:`purge` writes under ``root`` (here: none; :class:`sessionflow.SessionManager` writes
        JSONL files)."""
        raise InvalidInput("archive", "this manager has no archive format: use sessionflow.SessionManager")

    def ping(self) -> bool:
        """True when the store answers (for readiness checks)."""
        return self._store.ping()
