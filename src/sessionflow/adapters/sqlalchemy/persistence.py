"""``SqlAlchemyEventStore``: the durable event store on SQLAlchemy, and the base class of its recorders.

Each append is one transaction: the new events are inserted and the ``sessions`` projection row is inserted or
updated with a compare-and-set on its version (``UNIQUE(session_id, version)`` in the database); a lost race is
:class:`~sessionflow.errors.ConcurrencyConflict` chained to the driver error, and a failure leaves neither a new
event nor a changed projection. A change's idempotency key is written by the same transaction.

One recorder per dialect (``SqlAlchemyEventStore(engine)`` builds the one registered for the engine's dialect,
``__new__``): ``sqlite.py`` and ``postgres.py`` (its SQL in ``postgres_sql.py``), each a subclass of
``driver.DriverRecorder`` declared with ``dialect="<name>"``; another dialect is :class:`ValueError`.

This module owns what every recorder shares: the constructor, the retry framework (:meth:`_run`, with the
backend's rules as hooks: :meth:`_locked`, :meth:`_lost_connection`, :meth:`_transaction`, :meth:`_snapshot`),
the read cache, and the port's operations — appends, reads by key and sweep batches through the driver-level
hooks of ``driver.py`` (on the connections of ``connections.py``), the rest on SQLAlchemy Core (``queries.py``).

Modules, each importing only those before it: ``tables``, ``layout``, ``rows``, ``statements``, ``queries``,
``persistence``, ``driver``, ``sqlite``, ``postgres_sql``, ``postgres``; the package ``__init__`` imports the
recorders, which registers them. A backend that is not SQL is a store of its own behind the ``EventStore`` port,
registered by URL scheme (:mod:`sessionflow.stores`) — see docs/architecture.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, NoReturn, Self, TypeVar, cast
from uuid import UUID

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from sessionflow.adapters.outcome import WriteOutcome, failure
from sessionflow.adapters.sqlalchemy import statements as sql
from sessionflow.adapters.sqlalchemy.queries import CoreOperations
from sessionflow.adapters.sqlalchemy.rows import FastSql, session_from_row
from sessionflow.application.idempotency import StoredKey
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider
from sessionflow.application.watching import ChangeWatcher
from sessionflow.domain.models import Session
from sessionflow.errors import ConcurrencyConflict, SessionflowError, StoreError

__all__ = ["SqlAlchemyEventStore"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")

_LOCKED_RETRIES = 20
#: How many times an operation is tried again on a new connection after a lost one, by default (back-off from
#: 0.1 s, doubling: about 1.5 s in all).
DEFAULT_RETRIES = 4


def _first_line(error: BaseException) -> str:
    driver = getattr(error, "orig", None) or error
    text_ = str(driver).strip().splitlines()
    return text_[0] if text_ else type(driver).__name__


class SqlAlchemyEventStore(CoreOperations):
    """An event store on a SQLAlchemy :class:`~sqlalchemy.Engine` (SQLite or PostgreSQL).

    Build one with :func:`sessionflow.bootstrap.create_store` (which configures SQLite and runs the
    migrations) or pass an engine you configured yourself; the store disposes of the engine on
    :meth:`close` only if ``owns_engine`` is true. The object built is the recorder of the engine's
    dialect, a subclass (see the module's docstring).

    Args:
        engine: the engine; SQLite engines should be made by :func:`sessionflow.bootstrap.create_engine`
            so that writes begin with ``BEGIN IMMEDIATE``.
        cache_size: how many sessions the read cache holds (0 turns it off). The cache is validated by
            version on every read, so it never serves a stale session.
        autocommit_engine: the engine's PostgreSQL connections are in autocommit mode
            (``isolation_level="AUTOCOMMIT"``); the store then begins write transactions itself.
        retries: how many times an operation is tried again on a new connection after a lost one (back-off
            from 0.1 s, doubling) before it fails. A write whose connection broke after it was sent is looked up
            (by its record ids) before it is tried again; when the retries run out before a lookup could tell,
            it raises :class:`~sessionflow.errors.OutcomeUnknown`, otherwise :class:`StoreError` (not applied).
    """

    #: The recorder class of each dialect name (filled by the subclasses declared with ``dialect=``).
    _recorders: ClassVar[dict[str, type[SqlAlchemyEventStore]]] = {}

    def __init_subclass__(cls, *, dialect: str | None = None, **options: Any) -> None:
        super().__init_subclass__(**options)
        if dialect is not None:
            SqlAlchemyEventStore._recorders[dialect] = cls

    def __new__(cls, engine: Engine, *args: Any, **kwargs: Any) -> Self:
        """Called on this class: an instance of the recorder registered for ``engine``'s dialect
        (:class:`ValueError` when none is); called on a subclass: an instance of that subclass."""
        recorder = cls._recorders.get(engine.dialect.name) if cls is SqlAlchemyEventStore else cls
        if recorder is None:
            raise ValueError(f"no sessionflow store for the SQL dialect {engine.dialect.name!r} (SQLite and "
                             "PostgreSQL are supported)")
        return cast(Self, object.__new__(recorder))

    def __init__(self, engine: Engine, *, owns_engine: bool = True, cache_size: int = 10_000,
                 autocommit_engine: bool = False, retries: int = DEFAULT_RETRIES) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ValueError("retries must be an integer from 0 to 100")
        self._retries = retries
        self._engine = engine
        self._owns_engine = owns_engine
        self.dialect = engine.dialect.name
        self._cache_size = cache_size
        self._cache: OrderedDict[UUID, Session] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        #: Reads may be served from the cache when the caller allows it (``get(fresh=False)``).
        self.caches_reads = cache_size > 0
        self._driver_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self._integrity_error: type[BaseException] = engine.dialect.loaded_dbapi.IntegrityError
        #: The hot path's SQL (each recorder's, see driver.py).
        self._fast: FastSql

    @property
    def engine(self) -> Engine:
        return self._engine

    # ------------------------------------------------------------------ plumbing, and the backends' rules

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _locked(self, error: BaseException) -> bool:
        """The database is locked by another writer: worth waiting for (none here; SQLite's recorder says)."""
        return False

    def _lost_connection(self, error: BaseException) -> bool:
        """The connection broke (server restarted, backend terminated, network): worth a new one."""
        return isinstance(error, DBAPIError) and error.connection_invalidated

    def _run(self, op: Callable[[], T], *, retry_lost: bool = True, outcome: WriteOutcome | None = None) -> T:
        """Run ``op`` (which opens its own connection), translating driver errors to :class:`StoreError`.

        Lock contention (:meth:`_locked`) is waited out with back-off (on top of SQLite's busy timeout). A
        lost connection (:meth:`_lost_connection`) is discarded and ``op`` tried again on a new one, up to
        ``retries`` times, when ``retry_lost`` is true — ``op`` must then be safe to repeat (see :meth:`append`).
        A write passes its ``outcome`` (which ``op`` keeps, see :meth:`_send`): when it fails for good while an
        attempt may have committed, the error is :class:`~sessionflow.errors.OutcomeUnknown`, not StoreError.
        """
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return op()  # (the first attempt, on the success path, pays for nothing else)
        except SessionflowError:
            raise
        except (DBAPIError, self._driver_error) as error:
            return self._retry(op, error, retry_lost, outcome)

    def _retry(self, op: Callable[[], T], error: BaseException, retry_lost: bool, outcome: WriteOutcome | None
               ) -> T:
        """Go on with :meth:`_run` after ``op``'s first attempt failed with the driver error ``error``."""
        delay = 0.005
        lost = 0
        for _ in range(_LOCKED_RETRIES + self._retries + 1):
            if self._locked(error) and delay < 2.0:
                self._pause(delay)
                delay *= 2
            elif retry_lost and self._lost_connection(error) and lost < self._retries and not self._closed:
                lost += 1
                logger.warning("database connection lost (%s); retrying on a new one", _first_line(error))
                self._pause(0.05 * 2**lost)
            else:
                raise failure(f"database error: {_first_line(error)}", outcome) from error
            try:
                return op()
            except SessionflowError:
                raise
            except (DBAPIError, self._driver_error) as again:
                error = again
        raise failure("database still locked or unreachable after retries", outcome)

    def _send(self, outcome: WriteOutcome, attempt: Callable[[], T]) -> T:
        """Run one attempt of a write whose connection is made (``outcome`` becomes unsure: it may commit) and
        keep what its end tells: answered (done, or refused by the database: nothing applied) clears it; a
        lost connection leaves it unsure."""
        outcome.unsure = True
        try:
            result = attempt()
        except BaseException as error:
            if not self._lost_connection(error):
                outcome.unsure = False
            raise
        outcome.unsure = False
        return result

    def _pause(self, seconds: float) -> None:
        """Wait before a retry (a recorder whose I/O awaits an event loop waits without blocking it)."""
        time.sleep(seconds)

    def _write(self, work: Callable[[Connection], T], *, retry_lost: bool = True,
               outcome: WriteOutcome | None = None) -> T:
        """Run ``work`` in one write transaction (see :meth:`_transaction`); with ``outcome``, a lost
        connection after it was sent makes the outcome unsure (see :meth:`_run`)."""

        def op() -> T:
            with self._engine.connect() as conn:
                if outcome is None:
                    return self._transaction(conn, work)
                return self._send(outcome, lambda: self._transaction(conn, work))

        return self._run(op, retry_lost=retry_lost, outcome=outcome)

    def _transaction(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        """``work`` in one write transaction on ``conn``."""
        with conn.begin():
            return work(conn)

    def _read(self, work: Callable[[Connection], T]) -> T:
        def op() -> T:
            with self._engine.connect() as conn:
                return work(conn)

        return self._run(op)

    def _snapshot(self, conn: Connection) -> None:
        """Make ``conn`` read from one consistent snapshot (as it does already, unless a recorder says)."""

    def _remember(self, session: Session) -> None:
        if not self._cache_size:
            return
        cache = self._cache
        sid = session.id
        with self._cache_lock:
            if sid in cache:
                cache.move_to_end(sid)
            cache[sid] = session  # a new key goes last
            if len(cache) > self._cache_size:
                cache.popitem(last=False)

    def _forget(self, session_id: UUID) -> None:
        with self._cache_lock:
            self._cache.pop(session_id, None)

    def _forget_all(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # ------------------------------------------------------------------ writes

    def append(self, change: Change) -> None:
        """Append ``change`` atomically (see :meth:`EventStore.append`); a lost connection is retried
        without applying the change twice. Raises :class:`StoreError` when the change is known not applied,
        :class:`~sessionflow.errors.OutcomeUnknown` when that cannot be established."""
        self._append([change], WriteOutcome("append", (change,)), many=False)

    def append_many(self, changes: Sequence[Change]) -> None:
        """Append every change, in order, in one transaction (see :meth:`EventStore.append_many`); a lost
        connection is retried without applying the batch twice (a batch commits whole: its first event tells).
        Raises as :meth:`append` does."""
        batch = list(changes)
        if batch:
            self._append(batch, WriteOutcome("append_many", batch), many=True)

    def _append(self, changes: list[Change], outcome: WriteOutcome, *, many: bool) -> None:
        first = changes[0].events[0].record_id

        def op() -> None:
            # A connection lost after the write was sent leaves its outcome unknown: before trying again, look
            # for its first event (its record id is unique). Found: it was applied, not applied twice.
            if outcome.unsure:
                if self._event_exists(first):
                    outcome.unsure = False
                    return
                outcome.unsure = False
            self._append_fast(changes, outcome, many)

        try:
            self._run(op, outcome=outcome)
        except ConcurrencyConflict as conflict:
            self._conflict(changes[0], conflict, conflict.__cause__)
        except BaseException:
            for change in changes:
                self._forget(change.session.id)
            raise
        for change in changes:
            self._remember(change.session)

    def _conflict(self, change: Change, conflict: ConcurrencyConflict, cause: BaseException | None) -> NoReturn:
        """Raise ``conflict`` (chained to the driver error ``cause``) for a lost append; with the version it
        lost to, read outside the failed transaction, when the conflict does not tell it."""
        self._forget(change.session.id)
        if conflict.actual_version is None and change.expected_version > 0:
            actual = self._read(lambda conn: sql.actual_version(conn, change.session.id))
            raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                      actual_version=actual) from cause
        raise conflict from cause

    def _event_exists(self, record_id: UUID) -> bool:
        with self._engine.connect() as conn:
            return sql.event_exists(conn, record_id)

    def _existing_events(self, record_ids: Sequence[UUID]) -> set[UUID]:
        """Which of ``record_ids`` the store holds."""
        with self._engine.connect() as conn:
            return sql.existing_events(conn, record_ids)

    # ------------------------------------------------------------------ the driver-level hooks (driver.py)

    _append_fast: Callable[[list[Change], WriteOutcome, bool], None]
    _get_fast: Callable[[UUID], Any]
    _row_fast: Callable[[str, tuple[Any, ...]], Any]
    _expire_due_fast: Callable[[datetime, int, ExpiryDecider, bool], ExpiredBatch]

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        """The stored projection of a session, or None (see :meth:`EventStore.get`)."""
        if not fresh and self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None:
                return cached
        row = self._get_fast(session_id)
        if row is None:
            self._forget(session_id)
            return None
        if self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None and cached.version == row[sql.VERSION]:
                return cached
        session = session_from_row(row, session_id)
        self._remember(session)
        return session

    def find_key(self, scope: str, key: str) -> StoredKey | None:
        """The stored idempotency key ``key`` of ``scope`` (expired or not), or ``None``: one primary-key read (see
        :class:`~sessionflow.application.ports.KeepsIdempotencyKeys`)."""
        return self._fast.stored_key(self._row_fast(self._fast.select_key, (scope, key)))

    # ------------------------------------------------------------------ sweeping

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        """Expire up to ``limit`` overdue sessions in one transaction (see :meth:`EventStore.expire_due`)."""
        return self._expire(now, limit, decide, with_next=False).changes

    def expire_due_next(self, now: datetime, limit: int, decide: ExpiryDecider) -> ExpiredBatch:
        """:meth:`expire_due`, and the earliest deadline left once the batch is written, read by the batch's own
        claim (see :class:`~sessionflow.application.ports.ExpiredBatch`), so that a waker re-arms with no
        further read."""
        return self._expire(now, limit, decide, with_next=True)

    def _expire(self, now: datetime, limit: int, decide: ExpiryDecider, *, with_next: bool) -> ExpiredBatch:
        # A batch whose connection broke after its changes were decided may have committed: before trying again,
        # the next attempt looks their events up, and reports those it finds as the batch (a batch commits whole;
        # a session it expired is no longer due, so it is never expired twice). Until a lookup could run, the
        # outcome is unknown (OutcomeUnknown names the sessions).
        decided: list[Change] = []
        outcome = WriteOutcome("expire", decided)

        def deciding(session: Session, at: datetime) -> Change | None:
            change = decide(session, at)
            if change is not None:
                decided.append(change)
            return change

        def op() -> ExpiredBatch:
            if outcome.unsure:
                found = self._existing_events([change.events[0].record_id for change in decided])
                outcome.unsure = False
                if found:
                    return ExpiredBatch([change for change in decided if change.events[0].record_id in found])
            decided.clear()
            try:
                return self._expire_due_fast(now, limit, deciding, with_next)
            except BaseException as error:
                outcome.unsure = bool(decided) and self._lost_connection(error)
                raise

        batch = self._run(op, outcome=outcome)
        self._remember_all(batch.changes)
        return batch

    def _remember_all(self, changes: list[Change]) -> None:
        """Refresh the cached copies of swept sessions; add none: a sweep of thousands of cold sessions must
        not evict the readers' working set (nor make every garbage collection scan them)."""
        if not self._cache_size or not changes:
            return
        with self._cache_lock:
            cache = self._cache
            for change in changes:
                sid = change.session.id
                if sid in cache:
                    cache[sid] = change.session

    def change_watcher(self, *, poll_interval: float | None) -> ChangeWatcher | None:
        """A new, unstarted watcher of the database's writes (``notifications.watcher_for_engine``): PostgreSQL's
        ``LISTEN``, an SQLite file polled every ``poll_interval`` seconds; ``None`` for an in-memory database."""
        from sessionflow.adapters.sqlalchemy.notifications import watcher_for_engine

        return watcher_for_engine(self._engine, sqlite_interval=poll_interval)

    def close(self) -> None:
        """Give back the connections the store keeps, and dispose of the engine if the store owns it."""
        if self._closed:
            return
        self._closed = True
        with self._cache_lock:
            self._cache.clear()
        self._release_connections()
        if self._owns_engine:
            self._engine.dispose()

    def _release_connections(self) -> None:
        """Give back the connections the store keeps between operations (a recorder's; see ``driver.py``)."""

    def __repr__(self) -> str:
        return f"SqlAlchemyEventStore({self._engine.url.render_as_string(hide_password=True)!r})"
