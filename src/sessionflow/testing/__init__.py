"""Helpers for testing code that uses sessionflow: a controllable clock, time travel, ready-made managers.

:class:`ManualClock` moves only when told to; :class:`TimeTravel` moves it and runs every timeout that falls
due meanwhile — synchronously, in deadline order, each session expired at its own deadline — without
sleeping and without threads; :func:`advance` does the same for any manager built on a :class:`ManualClock`.
For an :class:`~sessionflow.AsyncSessionManager`, :class:`AsyncTimeTravel` and ``await aadvance(manager, delta)``
do the same from a coroutine.
The engine's default clock (``SystemClock``) reads ``datetime.now(UTC)`` at each call, so
``freezegun.freeze_time`` and ``time_machine.travel`` move it too; this module imports neither.

The pytest fixtures built on these helpers (``sessionflow_clock``, ``sessionflow_time``,
``sessionflow_manager``, ``sessionflow_sqlite_manager``, ``sessionflow_async_time``) and the scenario files are in
:mod:`sessionflow.pytest_plugin`, which installing sessionflow registers with pytest.

Importing this module is cheap: it imports only the standard library and sessionflow's value helpers at
import time; managers and stores are imported when first used.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sessionflow.domain.values import to_utc

if TYPE_CHECKING:
    from sessionflow.application.async_manager import AsyncManagerCore
    from sessionflow.application.manager import ManagerCore
    from sessionflow.bootstrap import SessionManager

__all__ = ["AsyncTimeTravel", "ManualClock", "TimeTravel", "aadvance", "advance"]

#: Where a :class:`ManualClock` starts unless told otherwise.
DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told to. Thread-safe.

    >>> clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(minutes=5)).isoformat()
    '2030-01-01T00:05:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = to_utc(start, "start") if start is not None else DEFAULT_START

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (which may not be in the past)."""
        when = to_utc(when, "when")
        with self._lock:
            if when < self._now:
                raise ValueError(f"the clock does not go back: {when.isoformat()} < {self._now.isoformat()}")
            self._now = when
            return when

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time (runs no timeout: see
        :class:`TimeTravel`)."""
        if delta < timedelta(0):
            raise ValueError("the clock does not go back")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class TimeTravel:
    """Moves a :class:`ManualClock` and runs the timeouts of the managers on it, synchronously.

    :meth:`advance` stops the clock at each deadline on the way, in order, and expires the sessions due
    there (as the real waker would, at that instant): a session's ``expired`` event is stamped with its own
    deadline, and subscribers hear the expiries in deadline order. Nothing sleeps; no thread is started.

    Managers made by :meth:`manager` and :meth:`sqlite_manager` are closed by :meth:`close` (or leaving the
    ``with`` block); managers given to the constructor or :meth:`attach` are only driven. Subscribers hear
    the expiries swept through their own manager: with several managers on one store, subscribe on the
    first attached.
    """

    def __init__(self, clock: ManualClock | None = None, *managers: ManagerCore) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self._managers: list[ManagerCore] = []
        self._owned: list[ManagerCore] = []
        for manager in managers:
            self.attach(manager)

    @property
    def managers(self) -> tuple[ManagerCore, ...]:
        return tuple(self._managers)

    def attach(self, manager: ManagerCore) -> ManagerCore:
        """Drive ``manager`` too; it must run on this clock. Returns it."""
        _refuse_async(manager)
        if manager.clock is not self.clock:
            raise ValueError("the manager does not run on this TimeTravel's clock: build it with clock=")
        if manager not in self._managers:
            self._managers.append(manager)
        return manager

    def manager(self, **options: Any) -> SessionManager:
        """A new manager on an in-memory store and this clock (``options``: the manager's arguments)."""
        from sessionflow.bootstrap import SessionManager

        manager = SessionManager.in_memory(clock=self.clock, **options)
        self._owned.append(manager)
        self.attach(manager)
        return manager

    def sqlite_manager(self, path: str | Path, **options: Any) -> SessionManager:
        """A new manager on an SQLite file at ``path`` (created and migrated) and this clock."""
        from sessionflow.bootstrap import SessionManager

        manager = SessionManager.open(f"sqlite:///{Path(path)}", clock=self.clock, **options)
        self._owned.append(manager)
        self.attach(manager)
        return manager

    # ------------------------------------------------------------------ moving time

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta) -> int:
        """Move the clock forward by ``delta``, running every timeout due on the way; returns how many
        sessions expired."""
        return self.advance_to(self.clock.now() + _checked_delta(delta))

    def advance_to(self, when: datetime) -> int:
        """Move the clock to ``when`` (not in the past), running every timeout due by then, in order."""
        target = _checked_target(self.clock, when)
        expired = self.run_due()
        while True:
            deadline = self._next_deadline()
            if deadline is None or deadline > target:
                break
            if deadline > self.clock.now():
                self.clock.set(deadline)
            swept = self.run_due()
            if swept == 0 and (after := self._next_deadline()) is not None and after <= self.clock.now():
                raise RuntimeError(f"a session due at {after.isoformat()} could not be expired")
            expired += swept
        self.clock.set(target)
        return expired

    def run_due(self) -> int:
        """Expire what is due at the clock's current time; returns how many sessions expired."""
        return sum(manager.expire_sessions() for manager in self._managers)

    def _next_deadline(self) -> datetime | None:
        deadlines = [d for manager in self._managers if (d := manager.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the managers this object made."""
        owned, self._owned = self._owned, []
        for manager in owned:
            if manager in self._managers:
                self._managers.remove(manager)
            manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TimeTravel({self.clock.now().isoformat()}, managers={len(self._managers)})"


def advance(target: ManagerCore | TimeTravel, delta: timedelta) -> int:
    """Move the clock of ``target`` forward by ``delta`` and run every timeout due on the way (see
    :meth:`TimeTravel.advance`); returns how many sessions expired.

    ``target`` is a :class:`TimeTravel` or a manager built on a :class:`ManualClock`.
    """
    if isinstance(target, TimeTravel):
        return target.advance(delta)
    _refuse_async(target)
    return TimeTravel(_manual_clock(target, "advance"), target).advance(delta)


class AsyncTimeTravel:
    """:class:`TimeTravel` for :class:`~sessionflow.AsyncSessionManager`: moves a :class:`ManualClock` and runs
    the timeouts of the attached managers, from a coroutine.

    ``await travel.advance(delta)`` stops the clock at each deadline on the way, in order, and expires the
    sessions due there, each at its own deadline, exactly as :meth:`TimeTravel.advance` does; nothing sleeps.
    The managers are the test's: build them on :attr:`clock` and :meth:`attach` them (or pass them to the
    constructor); closing them stays with the test (``async with``).

    >>> travel = AsyncTimeTravel()
    >>> travel.now().isoformat()
    '2030-01-01T00:00:00+00:00'
    """

    def __init__(self, clock: ManualClock | None = None, *managers: AsyncManagerCore) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self._managers: list[AsyncManagerCore] = []
        for manager in managers:
            self.attach(manager)

    @property
    def managers(self) -> tuple[AsyncManagerCore, ...]:
        return tuple(self._managers)

    def attach(self, manager: AsyncManagerCore) -> AsyncManagerCore:
        """Drive ``manager`` too; it must be an ``AsyncSessionManager`` on this clock. Returns it."""
        from sessionflow.application.async_manager import AsyncManagerCore

        if not isinstance(manager, AsyncManagerCore):
            raise TypeError("AsyncTimeTravel drives AsyncSessionManager objects; for a SessionManager use "
                            "TimeTravel or advance(manager, delta)")
        if manager.clock is not self.clock:
            raise ValueError("the manager does not run on this AsyncTimeTravel's clock: build it with clock=")
        if manager not in self._managers:
            self._managers.append(manager)
        return manager

    def now(self) -> datetime:
        return self.clock.now()

    async def advance(self, delta: timedelta) -> int:
        """Move the clock forward by ``delta``, running every timeout due on the way; returns how many
        sessions expired."""
        return await self.advance_to(self.clock.now() + _checked_delta(delta))

    async def advance_to(self, when: datetime) -> int:
        """Move the clock to ``when`` (not in the past), running every timeout due by then, in order."""
        target = _checked_target(self.clock, when)
        expired = await self.run_due()
        while True:
            deadline = await self._next_deadline()
            if deadline is None or deadline > target:
                break
            if deadline > self.clock.now():
                self.clock.set(deadline)
            swept = await self.run_due()
            if swept == 0 and (after := await self._next_deadline()) is not None and after <= self.clock.now():
                raise RuntimeError(f"a session due at {after.isoformat()} could not be expired")
            expired += swept
        self.clock.set(target)
        return expired

    async def run_due(self) -> int:
        """Expire what is due at the clock's current time; returns how many sessions expired."""
        expired = 0
        for manager in list(self._managers):
            expired += await manager.expire_sessions()
        return expired

    async def _next_deadline(self) -> datetime | None:
        deadlines = [d for manager in list(self._managers) if (d := await manager.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def __repr__(self) -> str:
        return f"AsyncTimeTravel({self.clock.now().isoformat()}, managers={len(self._managers)})"


async def aadvance(target: AsyncManagerCore | AsyncTimeTravel, delta: timedelta) -> int:
    """``await aadvance(manager, delta)``: :func:`advance` for an :class:`~sessionflow.AsyncSessionManager` built
    on a :class:`ManualClock` (or an :class:`AsyncTimeTravel`): moves the clock forward by ``delta`` and runs
    every timeout due on the way, each at its own deadline; returns how many sessions expired."""
    if isinstance(target, AsyncTimeTravel):
        return await target.advance(delta)
    return await AsyncTimeTravel(_manual_clock(target, "aadvance"), target).advance(delta)


def _manual_clock(manager: ManagerCore | AsyncManagerCore, name: str) -> ManualClock:
    clock = manager.clock
    if not isinstance(clock, ManualClock):
        raise TypeError(f"{name} needs a manager built on a ManualClock, not on {clock!r} "
                        "(with the system clock, use freezegun or time-machine and call expire_sessions())")
    return clock


def _checked_delta(delta: timedelta) -> timedelta:
    if not isinstance(delta, timedelta) or delta < timedelta(0):
        raise ValueError("advance takes a timedelta of zero or more: the clock does not go back")
    return delta


def _checked_target(clock: ManualClock, when: datetime) -> datetime:
    target = to_utc(when, "when")
    if target < clock.now():
        raise ValueError(f"the clock does not go back: {target.isoformat()} < {clock.now().isoformat()}")
    return target


def _refuse_async(manager: object) -> None:
    """An ``AsyncSessionManager`` given where a ``SessionManager`` is expected: say what to use instead."""
    from sessionflow.application.async_manager import AsyncManagerCore

    if isinstance(manager, AsyncManagerCore):
        raise TypeError("advance and TimeTravel drive a SessionManager; for an AsyncSessionManager use "
                        "`await aadvance(manager, delta)` or AsyncTimeTravel")
