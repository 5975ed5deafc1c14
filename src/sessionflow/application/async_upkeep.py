"""``AsyncUpkeep``: the timeouts and the maintenance of
:class:`~sessionflow.application.async_manager.AsyncManagerCore`.

The sweeps, the waker's start and stop — the waker is bound to a target whose sweeps run through the runner, on
the loop (:mod:`~sessionflow.application.async_support`) —, rebuilding and verifying the projection, purging
closed sessions, and the store's readiness check.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sessionflow.application.async_base import AsyncManagerBase
from sessionflow.application.async_support import LoopTarget, UnboundWaker
from sessionflow.application.maintenance import Difference
from sessionflow.application.ports import Waker
from sessionflow.application.retention import Archive, PurgeResult, purge_arguments
from sessionflow.application.timeouts import SweepResult
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["AsyncUpkeep"]


class AsyncUpkeep(AsyncManagerBase):
    """The timeouts and the maintenance of the asyncio facade, as coroutines."""

    _waker: Waker | None
    _proxy: UnboundWaker | None
    _target: LoopTarget
    _timeouts_lock: asyncio.Lock

    def _new_waker(self, cleanup_interval: timedelta, loop: asyncio.AbstractEventLoop) -> Waker:
        """The waker :meth:`start_timeouts` builds when none was given (here: none; a subclass picks one)."""
        raise InvalidInput("waker", "no waker given: pass one to the constructor or to start_timeouts()")

    async def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000, *,
                              limit: int | None = None) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction (at most about
        ``limit``: see ``SessionManager.expire_sessions``)."""
        return await self._call(self._sync.expire_sessions, now, batch_size, limit=limit)

    async def sweep(self, now: datetime | None = None, batch_size: int = 1000, *,
                    limit: int | None = None) -> SweepResult:
        """:meth:`expire_sessions`, and then the earliest deadline left (see ``SessionManager.sweep``)."""
        return await self._call(self._sync.sweep, now, batch_size, limit=limit)

    async def next_deadline(self) -> datetime | None:
        """The earliest deadline of any live session, or ``None``."""
        return await self._call(self._sync.next_deadline)

    @property
    def waker(self) -> Waker | None:
        """What wakes this manager at its deadlines (see :meth:`start_timeouts`), or ``None``."""
        return self._waker

    async def start_timeouts(self, waker: Waker | None = None, *,
                             cleanup_interval: timedelta = timedelta(minutes=5)) -> Waker:
        """Expire sessions at their deadlines from now on, in the background; returns the waker.

        Without ``waker``: the one given to the constructor, else a new default one
        (:class:`sessionflow.AsyncSessionManager`: an ``ApschedulerWaker`` on an ``AsyncIOScheduler`` of the
        running loop) sweeping every ``cleanup_interval`` as a safety net. A waker with ``bind`` is bound to a
        target whose sweeps run through this manager's runner, on the loop. Sessions that fell due while nothing
        ran are expired before this returns. Stopped by :meth:`stop_timeouts`, :meth:`close` or leaving the
        ``async with`` block. Idempotent.
        """
        if self._closed:
            raise StoreError("the manager is closed")
        loop = asyncio.get_running_loop()
        async with self._timeouts_lock:
            current = waker if waker is not None else self._waker
            if current is None:
                current = self._new_waker(cleanup_interval, loop)
            if self._waker is not None and current is not self._waker:
                await self._stop_waker()
            self._waker = current
            if self._proxy is None or self._proxy.waker is not current:
                self._proxy = UnboundWaker(current)
            self._target.loop = loop
            bind = getattr(current, "bind", None)
            if callable(bind):
                bind(self._target)
            follow = getattr(current, "follow", None)
            if callable(follow):  # deadlines written by other processes wake it too
                follow(self._new_watcher)
            await self._call(self._sync.start_timeouts, self._proxy)  # the delivery tells it the deadlines
            # Its catch-up sweep goes through the runner; its scheduler is made on the running loop.
            await self._runner.run_here(current.start)
            return current

    async def stop_timeouts(self) -> None:
        """Stop the waker (if any); sessions still expire lazily on reads and on :meth:`expire_sessions`."""
        async with self._timeouts_lock:
            await self._stop_waker()

    async def _stop_waker(self) -> None:
        # Off the loop: stopping joins the waker's worker, which may be waiting for a sweep on the loop.
        waker = self._waker
        if waker is not None and self._proxy is not None:
            await asyncio.to_thread(waker.stop)

    # ------------------------------------------------------------------ maintenance

    async def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Drop the projection and rebuild it from the events; returns how many sessions were rebuilt."""
        return await self._call(self._sync.rebuild, progress)

    async def verify(self, progress: Callable[[int], object] | None = None) -> builtins.list[Difference]:
        """Fold every history and list each difference from the stored projection (empty: all agree)."""
        return await self._call(self._sync.verify, progress)

    async def purge(self, *, closed_before: datetime, archive: Path | Archive | None = None, batch_size: int = 500,
                    progress: Callable[[int], object] | None = None) -> PurgeResult:
        """Remove the closed sessions last changed before ``closed_before``, archiving them first when
        ``archive`` is given: :meth:`SessionManager.purge <sessionflow.application.manager.ManagerCore.purge>`,
        run where the manager's work runs (the archive's files too)."""
        cutoff, root, size = purge_arguments(closed_before, archive, batch_size, progress)

        def run() -> PurgeResult:
            writer = self._new_archive(root) if root is not None else archive
            return self._sync.purge(closed_before=cutoff, archive=writer, batch_size=size, progress=progress)

        return await self._call(run)

    async def drop_expired_keys(self, now: datetime | None = None, limit: int = 10_000) -> int:
        """Remove up to ``limit`` idempotency keys whose window ended at or before ``now`` (see
        ``SessionManager.drop_expired_keys``)."""
        return await self._call(self._sync.drop_expired_keys, now, limit)

    def _new_archive(self, root: Path) -> Archive:
        """The archive :meth:`purge` writes under ``root`` (here: none; :class:`sessionflow.AsyncSessionManager`
        writes JSONL files)."""
        raise InvalidInput("archive", "this manager has no archive format: use sessionflow.AsyncSessionManager")

    async def ping(self) -> bool:
        """True when the store answers (for readiness checks)."""
        if self._closed:
            return False
        return await self._call(self._sync.ping)
