"""How a recorder gets the driver connection of one hot-path operation, and gives it back: one policy object.

A pool checkout and check-in cost more Python than a whole transition's own work, so the recorders keep
connections between operations. :class:`ConnectionPolicy` says which, once per store, and hands out
:class:`Lease` objects — ``driver_connection``, a kept ``cursor()``, ``close()`` when the operation is done,
``invalidate()`` when the connection broke — whatever the policy:

* ``hold``: up to that many threads each keep one connection (SQLite: every thread, detached from the pool —
  an in-process file handle; PostgreSQL: half the pool, so the other half always circulates). Its ``close()``
  keeps it; it is given back when its thread ends (the thread-local slot is dropped) or the store closes.
  Other threads get a connection from the pool per operation.
* ``keep``: up to that many idle connections kept in a list for any caller (the asyncio store: its tasks share
  one thread, so a connection per thread would interleave their transactions).
* ``autocommit``: the engine's connections are not in autocommit mode (an engine the user configured): each
  operation switches its connection to autocommit and back before it returns to the pool.
* ``sweeper``: one connection kept for the sweeps, used by one sweep at a time (PostgreSQL, whose sweeps then
  pay no checkout nor reset per wake-up); a sweep that finds it busy takes an ordinary lease.
* ``wrap``: the face a driver connection is used through (the asyncio store's synchronous face of psycopg's
  ``AsyncConnection``), made once per connection and kept in the pool's ``info`` for it.

The pool, its checkout and its reset stay SQLAlchemy's.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

__all__ = ["ConnectionPolicy", "Lease"]

logger = logging.getLogger("sessionflow.store")

_HELD, _POOLED, _SWEEPER = 0, 1, 2
#: Where a pooled connection keeps its wrapped face (the pool's ``info`` of the connection).
_FACE = "sessionflow_driver"


class Lease:
    """A driver connection for hot-path operations (see the module's docstring)."""

    __slots__ = ("__weakref__", "_busy", "_cursor", "_finalizer", "_kind", "_policy", "_released", "_restore",
                 "driver_connection", "fairy")

    def __init__(self, policy: ConnectionPolicy, fairy: Any, kind: int) -> None:
        self._policy = policy
        self.fairy = fairy
        self._kind = kind
        self._cursor: Any = None
        self._finalizer: Any = None
        self._restore = False
        #: An operation runs on it (a held connection): the store's ``close`` leaves it to that operation.
        self._busy = False
        self._released = False
        wrap = policy.wrap
        if wrap is None:  # (the driver's own connection for pysqlite and psycopg, also once detached)
            self.driver_connection: Any = fairy.dbapi_connection
        else:
            face = fairy.info.get(_FACE)
            if face is None:
                face = fairy.info[_FACE] = wrap(fairy.driver_connection)
            self.driver_connection = face
        if policy.autocommit_switch and kind == _POOLED and not self.driver_connection.autocommit:
            try:
                self.driver_connection.autocommit = True
            except BaseException:
                fairy.invalidate()
                raise
            self._restore = True

    @property
    def held(self) -> bool:
        """Whether a thread keeps this connection between operations (its statements then go on :meth:`cursor`)."""
        return self._kind == _HELD

    def cursor(self) -> Any:
        """One driver cursor kept with the lease for its statements: a cursor per statement (what the
        connection's ``execute`` makes) costs psycopg some thirty microseconds of Python."""
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = self.driver_connection.cursor()
        return cursor

    def begin(self) -> bool:
        """Mark a held connection in use by an operation of its thread; False (not marked) once the store is
        closing. (Marked first, checked second, where ``ConnectionPolicy.close`` does the reverse: one of the
        two always sees the other.)"""
        self._busy = True
        if self._policy._closed:
            self._busy = False
            return False
        return True

    def close(self) -> None:
        """The operation is done: a held connection stays with its thread, the sweeper with the store (each
        given back now if the store closed meanwhile); a pooled one is kept idle (``keep``) or goes back to the
        pool, switched back from autocommit."""
        kind = self._kind
        policy = self._policy
        if kind == _HELD:
            self._busy = False
            if policy._closed:
                self.release()
            return
        if kind == _SWEEPER:
            policy._sweeper_lock.release()
            if policy._closed:
                self.release()
            return
        connection = self.driver_connection
        if not self._restore and policy._offer(self):
            return
        try:
            if self._restore and not connection.closed:
                connection.rollback()  # (nothing to roll back unless an operation failed half-way)
                connection.autocommit = False
        except Exception:  # a broken connection is discarded, not given back
            self.fairy.invalidate()
            return
        self.fairy.close()

    def invalidate(self) -> None:
        """The connection broke: discard it (the thread, or the next sweep, gets another)."""
        policy = self._policy
        if self._kind == _HELD and getattr(policy._local, "connection", None) is self:
            policy._local.connection = None
        elif self._kind == _SWEEPER and policy._sweeper is self:
            policy._sweeper = None
        try:
            if self._kind == _SWEEPER:
                self.driver_connection.close()  # detached and broken: closed as it is (a reset would fail)
            else:
                self.fairy.invalidate()
        except Exception:  # discarding a broken connection must not hide the original error
            logger.debug("discarding a kept connection failed", exc_info=True)
        if self._finalizer is not None:
            self._finalizer()

    def release(self) -> None:
        """Give the connection back for good (the store closes)."""
        if self._finalizer is not None:
            self._finalizer()
        elif not self._released:
            self._released = True
            self.fairy.close()


class ConnectionPolicy:
    """Which driver connections a store's hot path uses (see the module's docstring); one per store."""

    def __init__(self, engine: Engine, *, hold: int = 0, detach: bool = False, keep: int = 0,
                 autocommit_switch: bool = False, sweeper: bool = False,
                 wrap: Callable[[Any], Any] | None = None, local: threading.local | None = None) -> None:
        self.engine = engine
        self.hold = hold
        self.detach = detach
        self.keep = keep
        self.autocommit_switch = autocommit_switch
        self.wrap = wrap
        self._own_sweeper = sweeper
        #: The thread-local slot of a thread's kept connection (``connection``): the store's own, if given.
        self._local = local if local is not None else threading.local()
        self._lock = threading.Lock()
        self._holders = 0
        self._kept: list[Lease] = []
        #: Every lease the store keeps beyond one operation, given back by :meth:`close`.
        self._kept_for_good: weakref.WeakSet[Lease] = weakref.WeakSet()
        self._sweeper: Lease | None = None
        self._sweeper_lock = threading.Lock()
        self._closed = False

    @property
    def holders(self) -> int:
        """How many threads keep a connection now."""
        return self._holders

    @property
    def sweeper(self) -> Lease | None:
        """The connection kept for the sweeps, once a sweep made it."""
        return self._sweeper

    def held(self) -> Lease | None:
        """The calling thread's own connection, if it keeps one."""
        lease: Lease | None = getattr(self._local, "connection", None)
        return lease

    def lease(self) -> Lease:
        """A connection for one operation: the thread's own (or a new one it keeps, while fewer than ``hold``
        threads do), an idle kept one, or one from the pool."""
        lease: Lease | None = getattr(self._local, "connection", None)
        if lease is not None and lease.begin():
            return lease
        kept = self._kept
        if kept:
            return kept.pop()
        if self.hold and not self._closed:
            with self._lock:
                hold = self._holders < self.hold
                if hold:
                    self._holders += 1
            if hold:
                return self._new_held()
        return Lease(self, self.engine.raw_connection(), _POOLED)

    def _new_held(self) -> Lease:
        try:
            fairy = self.engine.raw_connection()
            if self.detach:
                fairy.detach()
        except BaseException:
            self._unhold()
            raise
        lease = Lease(self, fairy, _HELD)
        lease._busy = True
        # Runs once: on release(), on invalidate(), or when the thread's slot is garbage (the thread ended).
        lease._finalizer = weakref.finalize(lease, _give_back, fairy, self._unhold)
        lease._finalizer.atexit = False
        self._local.connection = lease
        with self._lock:
            self._kept_for_good.add(lease)
        return lease

    def _unhold(self) -> None:
        with self._lock:
            self._holders -= 1

    def _offer(self, lease: Lease) -> bool:
        """Keep ``lease`` idle for another operation if fewer than ``keep`` are and it is fit; whether it was."""
        if len(self._kept) >= self.keep or self._closed or not getattr(lease.driver_connection, "idle", False):
            return False
        self._kept.append(lease)
        return True

    def sweep_lease(self) -> Lease:
        """The connection a sweep batch runs on: the store's sweeper when it keeps one and no other sweep has
        it, else :meth:`lease`."""
        if self._own_sweeper and self._sweeper_lock.acquire(blocking=False):
            if self._closed:
                self._sweeper_lock.release()
                return self.lease()
            sweeper = self._sweeper
            if sweeper is None:
                try:
                    fairy = self.engine.raw_connection()
                    fairy.detach()
                    driver: Any = fairy.dbapi_connection
                    driver.autocommit = True
                    sweeper = self._sweeper = Lease(self, fairy, _SWEEPER)
                except BaseException:
                    self._sweeper_lock.release()
                    raise
                with self._lock:
                    self._kept_for_good.add(sweeper)
            return sweeper
        return self.lease()

    def close(self) -> None:
        """Give back every connection kept (held ones, idle ones, the sweeper) — but one an operation is running
        on, which that operation gives back when it ends: closing a connection another thread is using would
        wait for it (SQLite: for as long as its busy timeout)."""
        self._closed = True
        with self._lock:
            leases, self._kept_for_good = list(self._kept_for_good), weakref.WeakSet()
        leases += self._kept
        self._kept = []
        for lease in leases:
            if (lease._kind == _HELD and lease._busy) or (lease._kind == _SWEEPER and self._sweeper_lock.locked()):
                continue
            try:
                lease.release()
            except Exception:  # closing a broken connection must not hide the original error
                logger.debug("giving back a kept connection failed", exc_info=True)


def _give_back(fairy: Any, on_release: Callable[[], None]) -> None:
    try:
        if not fairy.is_valid:
            return
        fairy.close()
    except Exception:  # closing a broken connection must not hide the original error
        logger.debug("giving back a held connection failed", exc_info=True)
    finally:
        on_release()
