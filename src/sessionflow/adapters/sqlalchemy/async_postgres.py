"""``AsyncPostgresEventStore``: the PostgreSQL recorder on psycopg 3's asyncio driver.

The store of :class:`sessionflow.AsyncSessionManager` on PostgreSQL. It is
:class:`~sessionflow.adapters.sqlalchemy.PostgresEventStore` — the same SQL, the same one-statement append
(a data-modifying CTE in autocommit mode: one round trip per transition, a write's idempotency key in it), the
same advisory lock, snapshots, retry rules and sweep — run over an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`
(``create_async_engine("postgresql+psycopg://...")``, psycopg's ``AsyncConnection``) through SQLAlchemy's
greenlet bridge, the way SQLAlchemy's own ``AsyncSession`` runs its synchronous core: every method is called
inside :func:`sqlalchemy.util.greenlet_spawn` (the manager's runner sees to it, see
:mod:`sessionflow.adapters.aio`), and every driver call made through the engine's ``sync_engine`` awaits the
asyncio driver with ``await_only`` instead of blocking. Nothing of the recorder is written twice.

What differs from the synchronous recorder, and why:

* **Kept connections, per operation rather than per thread.** The synchronous recorder lets a thread keep a
  connection between operations; here every task of the event loop runs on the loop's one thread, so a
  connection per thread would be shared by concurrent tasks (and their transactions interleaved). Instead the
  store keeps up to half the pool's connections idle between the operations of its hot path (appends, reads by
  key): an operation takes one of them if there is one, else checks one out of the pool (SQLAlchemy's
  ``AsyncAdaptedQueuePool``, which awaits when the pool is exhausted), and leaves it kept afterwards while fewer
  than that are — a pool checkout and check-in cost a tenth of a transition. The other half of the pool
  always circulates, so the generic path (transactions, queries) never waits for a kept one.
* **The driver connection is a thin synchronous face of psycopg's ``AsyncConnection``** (:class:`_Driver`). The
  recorder's hot path calls the driver connection directly (``execute(...).rowcount``); here each such call
  awaits psycopg's coroutine with ``await_only`` on one cursor kept with the pooled connection. (SQLAlchemy's own
  adapted connection does the same with more work per statement: a new cursor, a mutex, the rows prefetched —
  some forty microseconds per statement, a sixth of a transition.)
* **Sweeps send their round trips through psycopg, not libpq's blocking ``PQexec``.** The synchronous
  recorder's sweep sends each of its round trips (several statements in one query string) with one blocking
  libpq call (it saves GIL hand-offs between threads), which would block the event loop; here the same query
  string goes through psycopg's client-side-binding cursor, awaited (:meth:`_Driver.run_script`). A batch is
  written as one JSON statement whatever its size (no pipeline mode on the awaited connection).

Measured alternatives (50 tasks on one loop, create + start + complete per session; see ``docs/async.md``):

* the generic SQLAlchemy Core path of :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore` over the
  same async engine (``BEGIN``, the projection write, the events, ``COMMIT``: four round trips and the Core
  compilation per transition): about four times slower (164 against 667 sessions/s in one run, 4.9 ms against
  0.9 ms of CPU per session);
* psycopg's own ``AsyncConnectionPool`` instead of the engine's pool: cheaper when awaited natively (about 110
  against 160 µs of CPU per pooled statement) but dearer once awaited from a greenlet (190 µs), which reusing
  the synchronous pipeline requires — so the engine's pool stays, and the kept connections skip it.
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

    __slots__ = ("_connection", "_cursor")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._cursor: Any = None

    def execute(self, query: Any, params: Any = None) -> _Result:
        cursor = self._cursor
        if cursor is None or cursor.closed:
            cursor = self._cursor = self._connection.cursor()
        await_only(cursor.execute(query, params))
        return _Result(cursor)

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
