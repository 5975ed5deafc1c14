"""``AsyncPostgresEventStore``: the PostgreSQL recorder on psycopg 3's asyncio driver.

The store of :class:`sessionflow.AsyncSessionManager` on PostgreSQL: :class:`PostgresEventStore` — the same
SQL, one-statement append, locks, snapshots, retry rules and sweep — run over an
:class:`~sqlalchemy.ext.asyncio.AsyncEngine` through SQLAlchemy's greenlet bridge, as its own ``AsyncSession``
runs its synchronous core: every method is called inside :func:`sqlalchemy.util.greenlet_spawn` (the
manager's runner sees to it, see :mod:`sessionflow.adapters.aio`), and each driver call awaits psycopg with
``await_only``. What differs:

* **Connections kept per operation, not per thread** (the loop's tasks share one thread): up to half the pool
  stays idle between hot-path operations, the other half always circulates (see ``connections.py``).
* **The driver connection is a thin synchronous face of psycopg's ``AsyncConnection``** (:class:`_Driver`),
  its statements on one kept cursor. (SQLAlchemy's adapted connection does more per statement — a new cursor,
  a mutex, the rows prefetched: some forty microseconds, a sixth of a transition.)
* **The sweep's round trips go through psycopg's client-side-binding cursor, awaited** (never a blocking call
  on the loop); a batch is one JSON statement whatever its size (no pipeline mode on the awaited connection).

Measured alternatives (50 tasks on one loop, create + start + complete per session; see ``docs/async.md``): the
generic SQLAlchemy Core path over the same engine is about four times slower (164 against 667 sessions/s in
one run); psycopg's own ``AsyncConnectionPool`` is dearer once awaited from a greenlet (190 against 160 µs of
CPU per pooled statement).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from psycopg import AsyncClientCursor
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from sessionflow.adapters._sqlalchemy_compat import pool_capacity
from sessionflow.adapters.sqlalchemy.connections import ConnectionPolicy
from sessionflow.adapters.sqlalchemy.postgres import PostgresEventStore

__all__ = ["AsyncPostgresEventStore"]


class AsyncPostgresEventStore(PostgresEventStore):
    """The PostgreSQL store over an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (psycopg's asyncio driver).

    Every method must be called inside :func:`sqlalchemy.util.greenlet_spawn` (on the event loop's thread):
    use it through :class:`sessionflow.AsyncSessionManager`, which does. Build the engine with
    ``isolation_level="AUTOCOMMIT"`` (as :meth:`sessionflow.AsyncSessionManager.open` does): single statements
    then cost one round trip, and the store begins its write transactions itself.

    Args:
        engine: the async engine (or its ``sync_engine``).
        owns_engine: dispose of the engine on :meth:`close`.
        cache_size: as for :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore`.
    """

    #: The store's I/O awaits an asyncio driver: call it only inside ``greenlet_spawn`` on the loop.
    awaits_io: ClassVar[bool] = True
    _pipelines = False

    def __init__(self, engine: AsyncEngine | Engine, *, owns_engine: bool = True, cache_size: int = 10_000,
                 **options: Any) -> None:
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        options.setdefault("autocommit_engine", True)
        super().__init__(sync_engine, owns_engine=owns_engine, cache_size=cache_size, **options)

    def _policy(self, hold: int) -> ConnectionPolicy:
        """Tasks share the loop's thread: no connection kept per thread, but up to half the pool kept idle
        between operations, each used through its synchronous face (see the module's docstring)."""
        return ConnectionPolicy(self._engine, keep=pool_capacity(self._engine.pool) // 2,
                                autocommit_switch=not self._autocommit, wrap=_Driver)

    def _exec(self, conn: Any, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = conn.run_script(query, params)
        return rows

    def _pause(self, seconds: float) -> None:
        await_only(asyncio.sleep(seconds))  # a retry's back-off lets the loop run

    def __repr__(self) -> str:
        return f"AsyncPostgresEventStore({self._engine.url.render_as_string(hide_password=True)!r})"


#: libpq's ``PQTRANS_IDLE``: connected, in no transaction, running nothing.
_IDLE = 0


class _Driver:
    """psycopg's ``AsyncConnection`` as the recorder's driver-level path calls it: synchronous methods that await
    its coroutines (``await_only``, inside ``greenlet_spawn``), statements on one cursor kept with the connection.
    The errors are psycopg's own, as on the synchronous driver."""

    __slots__ = ("_connection", "_cursor", "rowcount")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._cursor: Any = None
        #: The row count of the last :meth:`executemany`.
        self.rowcount = -1

    def cursor(self) -> _Driver:
        """Itself: its statements run on the one cursor it keeps."""
        return self

    def _kept(self) -> Any:
        cursor = self._cursor
        if cursor is None or cursor.closed:
            cursor = self._cursor = self._connection.cursor()
        return cursor

    def execute(self, query: Any, params: Any = None) -> _Result:
        cursor = self._kept()
        await_only(cursor.execute(query, params))
        return _Result(cursor)

    def executemany(self, query: Any, params_seq: Any) -> None:
        cursor = self._kept()
        await_only(cursor.executemany(query, params_seq))
        self.rowcount = cursor.rowcount

    @property
    def autocommit(self) -> bool:
        return bool(self._connection.autocommit)

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        await_only(self._connection.set_autocommit(value))

    @property
    def closed(self) -> bool:
        return bool(self._connection.closed)

    @property
    def idle(self) -> bool:
        """Open, sound, in no transaction and running nothing: fit for another operation as it is."""
        connection = self._connection
        return not connection.closed and not connection.broken and connection.info.transaction_status == _IDLE

    def run_script(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``query`` (statements separated by ``;``, parameters bound client-side) in one round trip; the
        rows of its last statement."""
        cursor = AsyncClientCursor(self._connection)
        try:
            await_only(cursor.execute(query, params))
            while cursor.nextset():
                pass
            if cursor.description is None:
                return []
            rows: list[tuple[Any, ...]] = await_only(cursor.fetchall())
            return rows
        finally:
            await_only(cursor.close())

    def rollback(self) -> None:
        await_only(self._connection.rollback())


class _Result:
    """The outcome of :meth:`_Driver.execute`: ``rowcount`` and the rows (read on demand)."""

    __slots__ = ("_cursor", "rowcount")

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount: int = cursor.rowcount

    def fetchone(self) -> Any:
        return await_only(self._cursor.fetchone())

    def fetchall(self) -> list[Any]:
        rows: list[Any] = await_only(self._cursor.fetchall())
        return rows
