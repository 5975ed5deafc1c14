"""``SqlAlchemyEventStore``: the durable event store on SQLite or PostgreSQL (SQLAlchemy Core).

Each append is one transaction: the new events are inserted and the ``sessions`` projection row is
inserted or updated with a compare-and-set on its version. The database enforces
``UNIQUE(session_id, version)``; a lost race surfaces as :class:`~sessionflow.errors.ConcurrencyConflict`
chained to the driver error, and any failure leaves neither a new event nor a changed projection.

SQLite: WAL journal, a busy timeout, and ``BEGIN IMMEDIATE`` for every write so writers queue on the
database lock instead of failing on a read-to-write upgrade; a write that still meets ``database is
locked`` is retried. PostgreSQL (psycopg 3): the sweeper claims rows with ``FOR UPDATE SKIP LOCKED`` and
the single-active-user check takes a transaction-scoped advisory lock per user.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar
from uuid import UUID

from sqlalchemy import Connection, Engine, and_, delete, event, exists, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import QueuePool

from sessionflow.adapters.sqlalchemy.fastpath import PostgresSql, SqliteSql, fast_sql_for
from sessionflow.adapters.sqlalchemy.tables import from_millis, session_events, sessions, to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider, Query
from sessionflow.domain.models import (
    EventType,
    FileResult,
    Session,
    SessionEvent,
    SessionNote,
    SessionProgress,
    SessionStatus,
)
from sessionflow.domain.values import FrozenDict, FrozenList, compact_json
from sessionflow.errors import ActiveSessionExists, ConcurrencyConflict, SessionflowError, StoreError

__all__ = ["SqlAlchemyEventStore"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")

_WRITE = "sessionflow_write"
_LOCKED_RETRIES = 20
_LOST_RETRIES = 4
_SESSION_COLUMNS = tuple(sessions.c)
_VERSION = [c.name for c in sessions.c].index("version")
_EVENT_COLUMNS = tuple(session_events.c)


def _freeze(value: Any) -> Any:
    """Deep-freeze JSON read back from the database (already valid: it was validated on the way in)."""
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, dict | list):
                return FrozenDict({k: _freeze(v) for k, v in value.items()})
        return FrozenDict(value)  # flat: no copy of each value needed
    if isinstance(value, list):
        return FrozenList(_freeze(v) for v in value)
    return value


def _status(value: str, session_id: Any) -> str:
    """A stored state: the :class:`SessionStatus` member when it is one of the default lifecycle's. Whether
    it exists in the session's lifecycle is checked by the manager against the definition."""
    if not isinstance(value, str) or not value:
        raise StoreError(f"session {session_id} has an empty stored state")
    member: str = SessionStatus._value2member_map_.get(value, value)  # type: ignore[assignment]
    return member


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_millis(value)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


def _data(s: Session) -> dict[str, Any]:
    return {
        "file_paths": list(s.file_paths),
        "file_results": [[r.path, r.error, to_millis(r.recorded_at)] for r in s.file_results],
        "notes": [[n.file_path, n.memory_id, n.status, to_millis(n.created_at)] for n in s.notes],
        "metadata": s.metadata,
    }


def session_row(s: Session, *, data: bool = True) -> dict[str, Any]:
    """The ``sessions`` row for a session (without its JSON ``data`` column when ``data`` is false)."""
    progress = s.progress
    row: dict[str, Any] = {
        "id": s.id,
        "status": str(s.status),
        "version": s.version,
        "user_id": s.user_id,
        "workspace_id": s.workspace_id,
        "module_name": s.module_name,
        "total_files": progress.total_files,
        "processed_files": progress.processed_files,
        "failed_files": progress.failed_files,
        "current_file": progress.current_file,
        "ttl_seconds": s.ttl_seconds,
        "created_at": to_millis(s.created_at),
        "updated_at": to_millis(s.updated_at),
        "expires_at": _ms(s.expires_at),
        "max_expires_at": _ms(s.max_expires_at),
        "closed_at": _ms(s.closed_at),
        "closed_by": s.closed_by,
        "failure_reason": s.failure_reason,
        "deleted_at": _ms(s.deleted_at),
        "due_at": _ms(s.due_at),
        "lifecycle": s.lifecycle,
        "lifecycle_version": s.lifecycle_version,
    }
    if data:
        row["data"] = _data(s)
    return row


#: Session fields stored as a column of the same name and value.
_PLAIN_FIELDS = frozenset({"version", "user_id", "workspace_id", "module_name", "ttl_seconds", "closed_by",
                           "failure_reason", "lifecycle", "lifecycle_version"})
#: Session fields stored as epoch milliseconds in a column of the same name.
_TIME_FIELDS = frozenset({"created_at", "updated_at", "expires_at", "max_expires_at", "closed_at", "deleted_at"})
#: Session fields kept in the JSON ``data`` column.
_DATA_FIELDS = frozenset({"file_paths", "file_results", "notes", "metadata"})
_PROGRESS_COLUMNS = ("total_files", "processed_files", "failed_files", "current_file")


def session_changes(previous: Session | None, s: Session) -> dict[str, Any]:
    """The columns of ``s``'s row that differ from ``previous``'s row (all but the id if ``previous`` is None).

    Compares the two sessions field by field (a transition copies the fields it does not change, so most
    are the very same objects); the JSON ``data`` column is rebuilt only when the files, results, notes or
    metadata changed.
    """
    if previous is None:
        row = session_row(s)
        del row["id"]  # the key of the update, never one of its columns
        return row
    old = previous.__dict__
    changed: dict[str, Any] = {}
    data = False
    for name, value in s.__dict__.items():
        before = old[name]
        if value is before or value == before:
            continue
        if name in _PLAIN_FIELDS:
            changed[name] = value
        elif name in _TIME_FIELDS:
            changed[name] = _ms(value)
        elif name == "status":
            changed["status"] = str(value)
        elif name in _DATA_FIELDS:
            data = True
        elif name == "progress":
            for column in _PROGRESS_COLUMNS:
                if getattr(value, column) != getattr(before, column):
                    changed[column] = getattr(value, column)
        elif name == "id":
            raise StoreError(f"a change cannot move session {before} to another id ({value})")
        else:  # a field this function does not know: a programming error, not a silent omission
            raise StoreError(f"session field {name!r} has no column mapping")
    due_at = s.due_at
    if due_at != previous.due_at:
        changed["due_at"] = _ms(due_at)
    if data:
        changed["data"] = _data(s)
    return changed


_COLUMN_NAMES = tuple(c.name for c in sessions.c)
_I = {name: i for i, name in enumerate(_COLUMN_NAMES)}


_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_EPOCH_TS = from_millis(0)


def _json_text(text: str | bytes) -> Any:
    """Parse a JSON column's text (the scanner straight away: the text was written by the engine)."""
    if isinstance(text, str):
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:
            value, end = None, -1
        if end == len(text):
            return value
    return json.loads(text)  # anything unusual (whitespace, bytes, an error to report) the usual way


def _time(ms: int, _epoch: datetime = _EPOCH_TS, _delta: type[timedelta] = timedelta) -> datetime:
    return _epoch + _delta(0, 0, 0, ms)


#: The progress of a session without files (immutable, so every such session can share it).
_NO_PROGRESS = SessionProgress.trusted(total_files=0, processed_files=0, failed_files=0, current_file=None)


def session_from_row(row: Any, session_id: UUID | None = None) -> Session:
    """The session a ``sessions`` row holds (a SQLAlchemy row or a raw driver tuple, in column order).

    ``session_id``: the row's id when the caller already has it as a UUID (saves parsing it).
    """
    (sid, status, version, user_id, workspace_id, module_name, total_files, processed_files, failed_files,
     current_file, ttl_seconds, created_at, updated_at, expires_at, max_expires_at, closed_at, closed_by,
     failure_reason, deleted_at, _due_at, data, lifecycle, lifecycle_version) = row
    if session_id is not None:
        sid = session_id
    elif not isinstance(sid, UUID):
        sid = UUID(str(sid))
    if not isinstance(data, dict):
        data = _json_text(data)
    created = _time(created_at)
    results = data["file_results"]
    notes = data["notes"]
    return Session.trusted(
        id=sid,
        status=_status(status, sid),
        version=version,
        user_id=user_id,
        workspace_id=workspace_id,
        module_name=module_name,
        file_paths=tuple(data["file_paths"]),
        progress=_NO_PROGRESS if not (total_files or processed_files or failed_files or current_file is not None)
        else SessionProgress.trusted(total_files=total_files, processed_files=processed_files,
                                     failed_files=failed_files, current_file=current_file),
        file_results=tuple(FileResult.trusted(path=p, error=e, recorded_at=_time(t))
                           for p, e, t in results) if results else (),
        notes=tuple(SessionNote.trusted(file_path=f, memory_id=m, status=st, created_at=_time(t))
                    for f, m, st, t in notes) if notes else (),
        metadata=_freeze(data["metadata"]),
        ttl_seconds=float(ttl_seconds),
        created_at=created,
        updated_at=created if updated_at == created_at else _time(updated_at),
        expires_at=None if expires_at is None else _time(expires_at),
        max_expires_at=None if max_expires_at is None else _time(max_expires_at),
        closed_at=None if closed_at is None else _time(closed_at),
        closed_by=closed_by,
        failure_reason=failure_reason,
        deleted_at=None if deleted_at is None else _time(deleted_at),
        lifecycle=lifecycle,
        lifecycle_version=lifecycle_version,
    )


def event_row(e: SessionEvent) -> dict[str, Any]:
    """The ``session_events`` row for an event."""
    return {
        "record_id": e.record_id,
        "session_id": e.session_id,
        "version": e.version,
        "event": str(e.event),
        "source_state": None if e.source_state is None else str(e.source_state),
        "target_state": str(e.target_state),
        "performer_id": e.performer_id,
        "timestamp": to_millis(e.timestamp),
        "payload": e.payload,
    }


def event_from_row(row: Any) -> SessionEvent:
    """The event a ``session_events`` row holds."""
    kind: str = EventType._value2member_map_.get(row.event, row.event)
    return SessionEvent.trusted(
        record_id=row.record_id,
        session_id=row.session_id,
        version=row.version,
        event=kind,
        source_state=None if row.source_state is None else _status(row.source_state, row.session_id),
        target_state=_status(row.target_state, row.session_id),
        performer_id=row.performer_id,
        timestamp=from_millis(row.timestamp),
        payload=_freeze(row.payload),
    )


def _first_line(error: BaseException) -> str:
    driver = getattr(error, "orig", None) or error
    text_ = str(driver).strip().splitlines()
    return text_[0] if text_ else type(driver).__name__


def _is_locked(error: BaseException) -> bool:
    message = str(getattr(error, "orig", error)).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


class SqlAlchemyEventStore:
    """An event store on a SQLAlchemy :class:`~sqlalchemy.Engine` (SQLite or PostgreSQL).

    Build one with :func:`sessionflow.bootstrap.create_store` (which configures SQLite and runs the
    migrations) or pass an engine you configured yourself; the store disposes of the engine on
    :meth:`close` only if ``owns_engine`` is true.

    Args:
        engine: the engine; SQLite engines should be made by :func:`sessionflow.bootstrap.create_engine`
            so that writes begin with ``BEGIN IMMEDIATE``.
        cache_size: how many sessions the read cache holds (0 turns it off). The cache is validated by
            version on every read, so it never serves a stale session.
        autocommit_engine: the engine's PostgreSQL connections are in autocommit mode
            (``isolation_level="AUTOCOMMIT"``); the store then begins write transactions itself.
    """

    def __init__(self, engine: Engine, *, owns_engine: bool = True, cache_size: int = 10_000,
                 autocommit_engine: bool = False) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._engine = engine
        self._owns_engine = owns_engine
        self.dialect = engine.dialect.name
        self._postgres = self.dialect == "postgresql"
        # A PostgreSQL engine whose connections are in autocommit mode (made so by bootstrap): single
        # statements need no BEGIN/COMMIT round trips, and write transactions begin explicitly.
        self._autocommit = bool(autocommit_engine) and self._postgres
        self._cache_size = cache_size
        self._cache: OrderedDict[UUID, Session] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._closed = False
        self._sane_multi_rowcount = bool(engine.dialect.supports_sane_multi_rowcount)
        self._fast = fast_sql_for(self.dialect)
        self._local = threading.local()
        self._held: weakref.WeakSet[_Held | _Sweeper] = weakref.WeakSet()
        # Connections threads keep between hot-path operations (see _checkout): how many threads may.
        if self.dialect == "sqlite":
            file = engine.url.database not in (None, "", ":memory:")
            self._hold_limit = sys.maxsize if file else 0
        elif self._autocommit and isinstance(engine.pool, QueuePool):
            # At most half the pool is held, so threads that hold none always have a share of their own
            # (a holder may sit idle for as long as its thread lives).
            capacity = engine.pool.size() + max(0, int(getattr(engine.pool, "_max_overflow", 0)))
            self._hold_limit = min(engine.pool.size(), capacity // 2)
        else:
            self._hold_limit = 0
        self._detach_held = self.dialect == "sqlite"
        self._holders = 0
        # Sweeps: PostgreSQL's kept connection (see _sweep_connection); SQLite 3.38+'s two-statement batch.
        self._sweeper: _Sweeper | None = None
        self._sweeper_lock = threading.Lock()
        self._sqlite_modern = self.dialect == "sqlite" and getattr(
            engine.dialect.loaded_dbapi, "sqlite_version_info", ()) >= (3, 38)
        #: Reads may be served from the cache when the caller allows it (``get(fresh=False)``).
        self.caches_reads = cache_size > 0
        self._driver_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self._integrity_error: type[BaseException] = engine.dialect.loaded_dbapi.IntegrityError
        #: Appends go straight to the thread's kept connection when it has one (see append and _checkout).
        self._direct = self._fast is not None and self._hold_limit > 0

    @property
    def engine(self) -> Engine:
        return self._engine

    # ------------------------------------------------------------------ plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _locked(self, error: BaseException) -> bool:
        return self.dialect == "sqlite" and _is_locked(error)

    def _lost_connection(self, error: BaseException) -> bool:
        """The connection broke (server restarted, backend terminated, network): worth a new one."""
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        driver = getattr(error, "orig", None) or error
        return self._postgres and isinstance(driver, self._engine.dialect.loaded_dbapi.OperationalError)

    def _run(self, op: Callable[[], T], *, retry_lost: bool = True) -> T:
        """Run ``op`` (which opens its own connection), translating driver errors to :class:`StoreError`.

        SQLite lock contention is waited out (with back-off, on top of the busy timeout). A lost
        PostgreSQL connection is discarded and ``op`` tried again on a new one, a few times, when
        ``retry_lost`` is true — ``op`` must then be safe to repeat (see :meth:`append`).
        """
        self._check_open()
        driver_error = self._engine.dialect.loaded_dbapi.Error
        delay = 0.005
        lost = 0
        for _ in range(_LOCKED_RETRIES + _LOST_RETRIES):
            try:
                return op()
            except SessionflowError:
                raise
            except (DBAPIError, driver_error) as error:
                if self._locked(error) and delay < 2.0:
                    time.sleep(delay)
                    delay *= 2
                    continue
                if retry_lost and self._lost_connection(error) and lost < _LOST_RETRIES:
                    lost += 1
                    logger.warning("database connection lost (%s); retrying on a new one", _first_line(error))
                    time.sleep(0.05 * 2**lost)
                    continue
                raise StoreError(f"database error: {_first_line(error)}") from error
        raise StoreError("database still locked or unreachable after retries")

    def _write(self, work: Callable[[Connection], T], *, retry_lost: bool = True) -> T:
        """Run ``work`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""

        def op() -> T:
            with self._engine.connect() as conn:
                return self._transaction(conn, work)

        return self._run(op, retry_lost=retry_lost)

    def _transaction(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        """``work`` in one write transaction on ``conn``."""
        if self._autocommit:
            conn.exec_driver_sql("BEGIN")
            try:
                result = work(conn)
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                if not conn.closed and not conn.invalidated:
                    try:
                        conn.exec_driver_sql("ROLLBACK")
                    except DBAPIError:
                        logger.debug("rollback after a failed transaction failed", exc_info=True)
                raise
            return result
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            return work(conn)

    def _read(self, work: Callable[[Connection], T]) -> T:
        def op() -> T:
            with self._engine.connect() as conn:
                return work(conn)

        return self._run(op)

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

    def _actual_version(self, conn: Connection, session_id: UUID) -> int | None:
        return conn.execute(select(sessions.c.version).where(sessions.c.id == session_id)).scalar()

    # ------------------------------------------------------------------ writes

    def _apply(self, conn: Connection, change: Change) -> None:
        session = change.session
        sid = session.id
        if change.exclusive_user is not None:
            self._check_exclusive(conn, sid, change.exclusive_user, change.decided_at)
        row = session_row(session)
        try:
            if change.expected_version == 0:
                conn.execute(insert(sessions), row)
            else:
                result = conn.execute(
                    update(sessions)
                    .where(and_(sessions.c.id == sid, sessions.c.version == change.expected_version))
                    .values(row))
                if result.rowcount != 1:
                    raise ConcurrencyConflict(sid, expected_version=change.expected_version,
                                              actual_version=self._actual_version(conn, sid))
            conn.execute(insert(session_events), [event_row(e) for e in change.events])
        except IntegrityError as error:
            raise ConcurrencyConflict(sid, expected_version=change.expected_version,
                                      actual_version=None) from error

    def _check_exclusive(self, conn: Connection, session_id: UUID, user_id: str, now: datetime | None) -> None:
        if self._postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                         {"key": f"sessionflow:active-user:{user_id}"})
        other = conn.execute(
            select(sessions.c.id).where(
                sessions.c.user_id == user_id,
                sessions.c.status == SessionStatus.IN_PROGRESS.value,
                sessions.c.deleted_at.is_(None),
                sessions.c.id != session_id,
                sessions.c.expires_at > (to_millis(now) if now is not None else -1),
            ).limit(1)
        ).scalar()
        if other is not None:
            raise ActiveSessionExists(session_id, user_id=user_id, active_session_id=other)

    def append(self, change: Change) -> None:
        retry = False
        if (self._direct and change.exclusive_user is None and not self._closed
                and getattr(self._local, "connection", None) is not None):
            # The common case first, with no retry machinery around it: the thread's kept connection (see
            # _checkout). A driver error goes on to the careful path below, which tries again as after any
            # failed attempt (looking first for the change's event, in case a lost connection hid a commit).
            try:
                self._append_fast(change)
            except self._driver_error:
                retry = True  # a lost connection was discarded by _append_fast
            except ConcurrencyConflict as conflict:
                self._conflict(change, conflict, conflict.__cause__)
            except BaseException:
                self._forget(change.session.id)
                raise
            else:
                self._remember(change.session)
                return
        # If a connection is lost mid-append the outcome is unknown: before trying again, look for the
        # change's first event (its record id is unique). Found: it was applied, so it is not applied twice.
        tried = retry

        def op() -> None:
            nonlocal tried
            if tried and self._event_exists(change.events[0].record_id):
                return
            tried = True
            if self._fast is not None and change.exclusive_user is None:
                self._append_fast(change)
            else:
                with self._engine.connect() as conn:
                    self._transaction(conn, lambda c: self._apply(c, change))

        try:
            self._run(op)
        except ConcurrencyConflict as conflict:
            self._conflict(change, conflict, conflict.__cause__)
        except BaseException:
            self._forget(change.session.id)
            raise
        self._remember(change.session)

    def _conflict(self, change: Change, conflict: ConcurrencyConflict, cause: BaseException | None) -> NoReturn:
        """Raise ``conflict`` (chained to the driver error ``cause``) for a lost append; with the version it
        lost to, read outside the failed transaction, when the conflict does not tell it."""
        self._forget(change.session.id)
        if conflict.actual_version is None and change.expected_version > 0:
            actual = self._read(lambda conn: self._actual_version(conn, change.session.id))
            raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                      actual_version=actual) from cause
        raise conflict from cause

    def _event_exists(self, record_id: UUID) -> bool:
        with self._engine.connect() as conn:
            found = conn.execute(select(session_events.c.version)
                                 .where(session_events.c.record_id == record_id)).first()
        return found is not None

    # ------------------------------------------------------------------ the hot path (driver level)

    def _checkout(self) -> Any:
        """A driver connection for the hot path, as a pool "fairy" (``driver_connection``, ``close()``).

        A pool checkout and check-in cost more Python than a whole transition's own work, so threads keep
        a connection between operations ("held"; ``close()`` on it is a no-op):

        * SQLite files: every thread keeps one connection of its own, detached from the pool (an
          in-process file handle, configured like every pooled one).
        * PostgreSQL (the autocommit engine :func:`~sessionflow.bootstrap.create_engine` makes): up to
          ``min(pool_size, (pool_size + max_overflow) // 2)`` threads each keep one connection checked out
          of the pool, so the number of server connections never exceeds ``pool_size + max_overflow`` (plus
          the one a sweeping store keeps, see :meth:`_sweep_connection`), and
          at least half of them always circulate among the other threads, which check one out per
          operation as usual (an idle holder can never starve them). A held connection goes back to the
          pool when its thread ends or the store closes, and is discarded (the thread gets another) when
          it breaks.

        Elsewhere: a checkout from the pool per operation.
        """
        held: _Held | None = getattr(self._local, "connection", None)
        if held is not None:
            return held
        if self._hold_limit == 0:
            return self._engine.raw_connection()
        with self._cache_lock:
            if self._holders >= self._hold_limit:
                hold = False
            else:
                self._holders += 1
                hold = True
        if not hold:
            return self._engine.raw_connection()
        try:
            fairy = self._engine.raw_connection()
            if self._detach_held:
                fairy.detach()
        except BaseException:
            with self._cache_lock:
                self._holders -= 1
            raise
        held = _Held(fairy, self._local, self._unhold)
        self._local.connection = held
        with self._cache_lock:
            self._held.add(held)
        return held

    def _unhold(self) -> None:
        with self._cache_lock:
            self._holders -= 1

    def _append_fast(self, change: Change) -> None:
        """One append on the driver connection (a kept one: on its cursor); a lost connection is discarded;
        driver errors propagate (to :meth:`_run`, or to the direct path of :meth:`append`)."""
        raw = self._checkout()
        cursor = raw.cursor() if isinstance(raw, _Held) else None
        try:
            if isinstance(self._fast, SqliteSql):
                self._append_sqlite(raw.driver_connection, self._fast, change, cursor)
            else:
                assert isinstance(self._fast, PostgresSql)
                self._append_postgres(raw.driver_connection, self._fast, change, cursor)
        except self._integrity_error as error:
            raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                      actual_version=None) from error
        except BaseException as error:
            if self._lost_connection(error):
                raw.invalidate()
            raise
        finally:
            raw.close()

    def _append_sqlite(self, conn: Any, sql: SqliteSql, change: Change, cursor: Any = None) -> None:
        """One append in one ``BEGIN IMMEDIATE`` transaction on ``conn`` (its statements on ``cursor``, if given)."""
        events = change.events
        session = change.session
        key = session.id.hex
        if change.expected_version == 0:
            update = None
            session_params = sql.row_params(session.id, session_row(session), 0, create=True)
        else:
            changes = session_changes(change.previous, session)
            update = sql.update_statement(tuple(changes))
            session_params = sql.row_params(session.id, changes, change.expected_version, create=False)
        execute = conn.execute if cursor is None else cursor.execute
        execute("BEGIN IMMEDIATE")
        try:
            if update is None:
                execute(sql.insert_session, session_params)
            elif execute(update, session_params).rowcount != 1:
                found = execute(sql.select_version, (key,)).fetchone()
                raise ConcurrencyConflict(session.id, expected_version=change.expected_version,
                                          actual_version=None if found is None else found[0])
            # (the session's key, already in hand, for the events that carry the very same id object)
            if len(events) == 1:
                event = events[0]
                execute(sql.insert_event, sql.event_values(event, key if event.session_id is session.id else None))
            else:
                (conn if cursor is None else cursor).executemany(sql.insert_event, [
                    sql.event_values(e, key if e.session_id is session.id else None) for e in events])
            execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                execute("ROLLBACK")
            raise

    def _append_postgres(self, conn: Any, sql: PostgresSql, change: Change, cursor: Any = None) -> None:
        """One append as one statement on ``conn`` in autocommit mode (on ``cursor``, if given)."""
        create = change.expected_version == 0
        columns = session_row(change.session) if create else session_changes(change.previous, change.session)
        params = sql.append_params(change.session.id, columns, change.events,
                                   change.expected_version, create=create)
        statement = sql.append_statement(None if create else tuple(columns), len(change.events))
        toggle = not self._autocommit
        if toggle:
            conn.autocommit = True
        execute = conn.execute if cursor is None else cursor.execute
        try:
            inserted = execute(statement, params).rowcount
            if inserted != len(change.events):
                found = execute(sql.select_version, (change.session.id,)).fetchone()
                raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                          actual_version=None if found is None else found[0])
        finally:
            if toggle and not conn.closed:
                conn.autocommit = False

    def _get_fast(self, session_id: UUID) -> Any:
        assert self._fast is not None
        sql = self._fast
        key = sql.uuid(session_id)
        held: _Held | None = getattr(self._local, "connection", None)
        if held is not None and not self._closed:
            # The thread's own connection, already in autocommit / outside a transaction: the SELECT as is.
            # Any failure falls through to the careful path below (retries, lost connections, errors).
            try:
                return held.cursor().execute(sql.select_session, (key,)).fetchone()
            except Exception:
                logger.debug("primary-key read on the held connection failed; retrying", exc_info=True)

        def op() -> Any:
            raw = self._checkout()
            try:
                conn: Any = raw.driver_connection
                if not self._postgres or self._autocommit:
                    return conn.execute(sql.select_session, (key,)).fetchone()
                conn.autocommit = True  # one statement, no BEGIN/ROLLBACK round trips
                try:
                    return conn.execute(sql.select_session, (key,)).fetchone()
                finally:
                    if not conn.closed:
                        conn.autocommit = False
            except BaseException as error:
                if self._lost_connection(error):
                    raw.invalidate()
                raise
            finally:
                raw.close()

        return self._run(op)

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        if not fresh and self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None:
                return cached
        if self._fast is not None:
            row = self._get_fast(session_id)
        else:
            row = self._read(lambda conn: conn.execute(
                select(*_SESSION_COLUMNS).where(sessions.c.id == session_id)).first())
        if row is None:
            self._forget(session_id)
            return None
        if self._cache_size:
            with self._cache_lock:
                cached = self._cache.get(session_id)
            if cached is not None and cached.version == row[_VERSION]:
                return cached
        session = session_from_row(row, session_id)
        self._remember(session)
        return session

    def history(self, session_id: UUID) -> list[SessionEvent]:
        rows = self._read(lambda conn: conn.execute(
            select(*_EVENT_COLUMNS).where(session_events.c.session_id == session_id)
            .order_by(session_events.c.version)).all())
        return [event_from_row(r) for r in rows]

    def query(self, query: Query) -> list[Session]:
        stmt = select(*_SESSION_COLUMNS)
        if not query.include_deleted:
            stmt = stmt.where(sessions.c.deleted_at.is_(None))
        if query.status is not None:
            stmt = stmt.where(sessions.c.status.in_(sorted(str(s) for s in query.status)))
        if query.user_id is not None:
            stmt = stmt.where(sessions.c.user_id == query.user_id)
        if query.workspace_id is not None:
            stmt = stmt.where(sessions.c.workspace_id == query.workspace_id)
        if query.module_name is not None:
            stmt = stmt.where(sessions.c.module_name == query.module_name)
        if query.live_after is not None:
            stmt = stmt.where((sessions.c.due_at.is_(None)) | (sessions.c.due_at > to_millis(query.live_after)))
        stmt = stmt.order_by(sessions.c.created_at, sessions.c.id).limit(query.limit).offset(query.offset)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [session_from_row(r) for r in rows]

    def count(self, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(sessions).where(sessions.c.deleted_at.is_(None))
        if status is not None:
            stmt = stmt.where(sessions.c.status == str(status))
        return int(self._read(lambda conn: conn.execute(stmt).scalar_one()))

    def count_by_status(self) -> dict[str, int]:
        """How many sessions (not deleted) are in each status."""
        stmt = (select(sessions.c.status, func.count()).where(sessions.c.deleted_at.is_(None))
                .group_by(sessions.c.status))
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return {_status(status, "?"): int(n) for status, n in rows}

    def next_deadline(self) -> datetime | None:
        value = self._read(lambda conn: conn.execute(select(func.min(sessions.c.due_at))).scalar())
        return None if value is None else from_millis(int(value))

    def has_due(self, now: datetime) -> bool:
        stmt = select(exists().where(sessions.c.due_at <= to_millis(now)))
        return bool(self._read(lambda conn: conn.execute(stmt).scalar()))

    def session_ids(self) -> list[UUID]:
        rows = self._read(lambda conn: conn.execute(
            select(session_events.c.session_id).distinct()).scalars().all())
        return list(rows)

    # ------------------------------------------------------------------ sweeping

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        return self._expire(now, limit, decide, with_next=False).changes

    def expire_due_next(self, now: datetime, limit: int, decide: ExpiryDecider) -> ExpiredBatch:
        """:meth:`expire_due`, and the earliest deadline left once the batch is written, read by the batch's own
        claim (see :class:`~sessionflow.application.ports.ExpiredBatch`), so that a waker re-arms with no
        further read."""
        return self._expire(now, limit, decide, with_next=True)

    def _expire(self, now: datetime, limit: int, decide: ExpiryDecider, *, with_next: bool) -> ExpiredBatch:
        if self._fast is not None:
            # A repeat after a lost connection is safe: a session expired by a batch that did commit is no
            # longer due, nor at the version the repeat would compare with, so it is not expired twice.
            batch = self._run(lambda: self._expire_due_fast(now, limit, decide, with_next))
            self._remember_all(batch.changes)
            return batch

        def work(conn: Connection) -> list[Change]:
            stmt = (select(*_SESSION_COLUMNS).where(sessions.c.due_at <= to_millis(now))
                    .order_by(sessions.c.due_at).limit(limit))
            if self._postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = conn.execute(stmt).all()
            changes: list[Change] = []
            for row in rows:
                change = decide(session_from_row(row), now)
                if change is not None:
                    changes.append(change)
            if not changes:
                return changes
            result = conn.execute(
                update(sessions)
                .where(and_(sessions.c.id == _bind("b_id"), sessions.c.version == _bind("b_expected")))
                .values({name: _bind(f"b_{name}") for name in _EXPIRY_COLUMNS}),
                [_expiry_params(c) for c in changes])
            if self._sane_multi_rowcount and result.rowcount != len(changes):
                raise StoreError("a claimed session changed during the sweep; the batch was rolled back")
            conn.execute(insert(session_events), [event_row(e) for c in changes for e in c.events])
            return changes

        changes = self._write(work)
        self._remember_all(changes)
        return ExpiredBatch(changes)

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

    def _sweep_connection(self) -> Any:
        """The driver connection a sweep batch runs on, as a pool "fairy" (``driver_connection``, ``close()``,
        ``invalidate()``). SQLite files: the thread's own, as on the write path (the waker sweeps from one
        thread). PostgreSQL: one connection the store keeps for its sweeps, so that a wake-up needs no pool
        checkout nor reset; a sweep that finds it in use by another one takes a connection from the pool."""
        if self._postgres and self._sweeper_lock.acquire(blocking=False):
            held = self._sweeper
            if held is None:
                try:
                    fairy = self._engine.raw_connection()
                    driver = fairy.driver_connection
                    fairy.detach()
                except BaseException:
                    self._sweeper_lock.release()
                    raise
                held = self._sweeper = _Sweeper(self, fairy, driver)
                with self._cache_lock:
                    self._held.add(held)  # closed with the store
            return held
        return self._checkout()

    def _expire_due_fast(self, now: datetime, limit: int, decide: ExpiryDecider, with_next: bool) -> ExpiredBatch:
        """One sweep batch on the driver connection; driver errors propagate to :meth:`_run`.

        A wake-up of the waker runs this once, and each driver call gives the GIL away (with other threads
        busy in Python, getting it back costs up to the interpreter's switch interval), so a batch makes as
        few as it can: SQLite, two statements (:meth:`_expire_sqlite`); PostgreSQL, two round trips
        (:meth:`_expire_postgres`). Either claim also reads the earliest deadline it leaves (``with_next``).
        """
        raw = self._sweep_connection()
        try:
            conn: Any = raw.driver_connection
            if isinstance(self._fast, SqliteSql):
                return self._expire_sqlite(conn, now, limit, decide, with_next)
            return self._expire_postgres(conn, now, limit, decide, with_next)
        except BaseException as error:
            if self._lost_connection(error):
                raw.invalidate()
            raise
        finally:
            raw.close()

    def _expire_sqlite(self, conn: Any, now: datetime, limit: int, decide: ExpiryDecider,
                       with_next: bool) -> ExpiredBatch:
        """SQLite: ONE statement reads the due rows (as one JSON value, :data:`_SQLITE_CLAIM`) and the
        earliest deadline after them; ONE statement writes the whole batch (:data:`_SQLITE_EXPIRE`): an
        ``INSERT`` into a temporary view whose ``INSTEAD OF`` trigger (:data:`_SQLITE_EXPIRY_SETUP`) updates each
        session with a compare-and-set on the version read and inserts its event only if that update matched.
        A statement outside a transaction is its own transaction, so the batch is written whole or not at
        all, under the database's write lock (the busy timeout waits for it). The read takes no lock: a
        session another sweeper or a writer changed in between is skipped, its event never written.

        Both run through ``executescript``, which gives the GIL away once per statement (``execute`` and
        ``fetchone`` give it away some five times each, around every small SQLite call): the read hands its one
        row to a function of the connection (``sessionflow_claimed``) and the write takes its batch as a
        quoted literal. (``BEGIN IMMEDIATE``, the reads, the writes and ``COMMIT`` as statements of their own,
        as before, cost some thirty releases; each one, in a process with other threads busy in Python, may
        cost a switch interval.)
        """
        now_ms = to_millis(now)
        modern = self._sqlite_modern
        if modern:
            claimed, later = self._sqlite_claim(conn, now_ms, limit)
            rows: list[Any] = json.loads(claimed)
            rows.sort(key=_by_deadline, reverse=True)
        else:  # before SQLite 3.38: the rows, then the deadline after them
            rows = conn.execute(_SQLITE_CLAIM_ROWS, (now_ms, limit)).fetchall()
            rows.reverse()
            later = conn.execute(_SQLITE_LATER, (now_ms,)).fetchone()[0] if with_next else None
        claimed_all = len(rows) < limit
        # The batch holds as few objects as it can until it commits: each row is dropped once decoded, and a
        # change keeps its new state and events, not the state it was decided on (fewer garbage-collector
        # passes on large sweeps).
        changes: list[Change] = []
        writes: list[tuple[Any, ...]] = []
        earliest: list[int | None] = [later]  # of the sessions left live: unclaimed, refused, or rescheduled
        single = True
        dumps = _payload_text
        for change, due in _decide_claimed(rows, decide, now, earliest):
            s = change.session
            events = change.events
            if len(events) == 1 and single:
                e = events[0]
                source = e.source_state
                writes.append((s.id.hex, change.expected_version, str(s.status), s.version, to_millis(s.updated_at),
                               _ms(s.closed_at), s.closed_by, _ms(s.expires_at), due, s.failure_reason,
                               e.record_id.hex, e.version, str(e.event), None if source is None else str(source),
                               str(e.target_state), e.performer_id, to_millis(e.timestamp), dumps(e.payload)))
            else:
                single = False
            changes.append(change)
        if changes:
            if not (single and modern):
                applied = self._sqlite_write_each(conn, changes)
            elif len(writes) <= _SQLITE_MANY or not self._sqlite_write_many(conn, writes):
                applied = self._sqlite_write(conn, changes, writes)
            else:
                applied = changes
        else:
            applied = changes
        known = with_next and claimed_all and len(applied) == len(changes)
        return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)

    def _sqlite_claim(self, conn: Any, now_ms: int, limit: int) -> tuple[str, int | None]:
        """The claim (:data:`_SQLITE_CLAIM`) as a script: its row goes to ``sessionflow_claimed``, registered on
        the connection by its first sweep."""
        local = self._local
        local.claimed = None
        script = _SQLITE_CLAIM_SCRIPT % (int(now_ms), int(now_ms), int(limit))
        try:
            conn.executescript(script)
        except self._engine.dialect.loaded_dbapi.OperationalError as error:
            if _SQLITE_CLAIMED not in str(error):
                raise

            def claimed(batch: str, later: int | None) -> None:
                local.claimed = (batch, later)

            conn.create_function(_SQLITE_CLAIMED, 2, claimed)
            conn.executescript(script)
        result: tuple[str, int | None] = local.claimed
        local.claimed = None
        return result

    def _sqlite_write(self, conn: Any, changes: list[Change], writes: list[tuple[Any, ...]]) -> list[Change]:
        """The batch's ONE write statement; returns the changes it applied (all, unless some session changed
        since it was read)."""
        # The batch as a literal: JSON text has no NUL (the encoder escapes control characters) and a quote in
        # a SQLite literal is escaped by doubling it, the only escape there is.
        script = _SQLITE_EXPIRE_HEAD + compact_json(writes).replace("'", "''") + _SQLITE_EXPIRE_TAIL
        before = conn.total_changes
        try:
            conn.executescript(script)
        except self._engine.dialect.loaded_dbapi.OperationalError as error:
            if _SQLITE_EXPIRY_VIEW not in str(error):
                raise
            # A connection's first sweep: its temporary view and trigger (connection-local, created once).
            for statement in _SQLITE_EXPIRY_SETUP:
                conn.execute(statement)
            before = conn.total_changes
            conn.executescript(script)
        if conn.total_changes - before == 2 * len(changes):  # each session: its update and its event
            return changes
        # Some session changed since it was read (its update did not match, nor was its event written): keep
        # the changes whose event is there. (Other triggers on the tables would bring us here too.)
        records = json.dumps([c.events[0].record_id.hex for c in changes])
        written = {r[0] for r in conn.execute(_SQLITE_WRITTEN, (records,)).fetchall()}
        return [c for c in changes if c.events[0].record_id.hex in written]

    def _sqlite_write_many(self, conn: Any, writes: list[tuple[Any, ...]]) -> bool | None:
        """A large batch (a sweep of many sessions, not a waker's wake-up): ``executemany`` of the updates and of
        the events in one ``BEGIN IMMEDIATE`` transaction, which SQLite runs faster than the trigger — in key
        order (sessions by id, events by record id), which walks each index once instead of jumping around it.
        True when written; None when some session changed since it was read (rolled back: the caller writes
        the batch with :meth:`_sqlite_write`, which skips it)."""
        ordered = sorted(writes)  # by session id, the first field
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.cursor()
            try:
                cursor.executemany(_SQLITE_EXPIRE_ROW, [w[2:10] + w[:2] for w in ordered])
                if cursor.rowcount != len(writes):
                    conn.execute("ROLLBACK")
                    return None
                cursor.executemany(_SQLITE_EXPIRE_EVENT, sorted((w[10], w[0], *w[11:]) for w in ordered))
            finally:
                cursor.close()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True

    def _sqlite_write_each(self, conn: Any, changes: list[Change]) -> list[Change]:
        """The general write (changes of several events, or SQLite before 3.38): in one ``BEGIN IMMEDIATE``
        transaction, per session a compare-and-set update, then its events if it matched."""
        applied: list[Change] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                sid = change.session.id.hex
                if conn.execute(_SQLITE_EXPIRE_ROW, _expiry_update(change, _ms(change.session.due_at), sid)
                                ).rowcount != 1:
                    continue
                conn.executemany(_SQLITE_EXPIRE_EVENT, [
                    _expiry_event(e, e.record_id.hex, sid, _payload_text(e.payload)) for e in change.events])
                applied.append(change)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return applied

    def _expire_postgres(self, conn: Any, now: datetime, limit: int, decide: ExpiryDecider,
                         with_next: bool) -> ExpiredBatch:
        """PostgreSQL: two round trips. ``BEGIN`` and the claim (``FOR UPDATE SKIP LOCKED``; with ``with_next``
        the same statement reads the earliest deadline of the sessions it did not claim,
        :data:`_PG_CLAIM_NEXT`), then ONE statement over the batch as two JSON documents (:data:`_PG_EXPIRE`:
        the compare-and-set updates, and the events of the sessions whose update matched), ``COMMIT`` and a
        count of the events written. (A batch of more than :data:`_PG_JSON_WRITES` sessions is written by
        :meth:`_pg_write_overlapped` instead.)

        Each round trip is one call of libpq's blocking ``PQexec`` on one query string, its parameters quoted
        client-side (:func:`_pg_exec`): the GIL is given away once per round trip, where psycopg's own
        execution gives it away a dozen times (each time, with other threads busy in Python, getting it back
        may cost a switch interval)."""
        claim = (to_millis(now), limit)
        statement = _PG_CLAIM_NEXT if with_next else _PG_CLAIM
        try:
            if self._autocommit:
                rows = _pg_rows(conn, _pg_exec(conn, f"BEGIN; {statement}", claim))
            else:
                rows = conn.execute(statement, claim).fetchall()
            later: int | None = None
            if with_next:
                later = rows[0][-1]
                if rows[0][0] is None:  # nothing claimed: the one row only carries the deadline
                    rows = []
            claimed_all = len(rows) < limit
            earliest: list[int | None] = [later]
            width = _COLUMN_COUNT if with_next else None
            rows.reverse()
            changes: list[Change] = []
            if len(rows) > _PG_JSON_WRITES and self._autocommit:
                applied, changes = self._pg_write_overlapped(conn, rows, decide, now, earliest, width)
                known = with_next and claimed_all and len(applied) == len(changes)
                return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)
            # A small batch (a waker's wake-up): its updates and events as two JSON documents.
            updates: list[tuple[Any, ...]] = []
            events: list[tuple[Any, ...]] = []
            for change, due in _decide_claimed(rows, decide, now, earliest, width):
                sid = change.session.id.hex
                updates.append(_expiry_update(change, due, sid))
                events += [_expiry_event(e, e.record_id.hex, sid, e.payload) for e in change.events]
                changes.append(change)
            if not changes:
                if self._autocommit:
                    _pg_exec(conn, "COMMIT")
                else:
                    conn.commit()
                applied = changes
            else:
                # In key order (sessions by id, events by record id): the server walks each index once.
                updates.sort(key=_by_id)
                events.sort(key=_by_record)
                batch = (_rows_json(updates), _rows_json(events))
                if self._autocommit:
                    # The statement, COMMIT, and how many of the batch's events are there, in one round trip
                    # (PQexec returns the last statement's result). The statement writes a session's events only
                    # if its row matched, so each session's expiry is whole; a session that did not match (none
                    # can: the rows are locked) is left out of what was applied.
                    written = _pg_rows(conn, _pg_exec(conn, _PG_EXPIRE_AND_COMMIT, (*batch, batch[1])))[0][0]
                    if written == len(events):
                        applied = changes
                    else:
                        found = {r[0] for r in _pg_rows(conn, _pg_exec(conn, _PG_WRITTEN, (batch[1],)))}
                        applied = [c for c in changes if c.session.id in found]
                else:
                    found = {r[0] for r in conn.execute(_PG_EXPIRE, batch).fetchall()}
                    conn.commit()
                    applied = changes if len(found) == len(changes) else [c for c in changes
                                                                         if c.session.id in found]
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        known = with_next and claimed_all and len(applied) == len(changes)
        return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)

    def _pg_write_overlapped(self, conn: Any, rows: list[Any], decide: ExpiryDecider, now: datetime,
                             earliest: list[int | None], width: int | None) -> tuple[list[Change], list[Change]]:
        """A large PostgreSQL batch (a sweep of many sessions, not a waker's wake-up), in the transaction its
        claim opened: decided in chunks of :data:`_PG_CHUNK` sessions, each chunk's statement
        (:data:`_PG_EXPIRE_ARRAYS`, arrays in binary, in key order) sent in pipeline mode as soon as it is
        decided, so that the server writes one chunk while Python decides the next; then ``COMMIT``, sent behind
        the last chunk. Nothing is committed unless every chunk was sent. Returns ``(applied, changes)``: the
        changes whose session the compare-and-set matched (all of them: the rows are locked), and every change
        decided."""
        changes: list[Change] = []
        cursors: list[Any] = []
        updates: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        with conn.pipeline():
            for change, due in _decide_claimed(rows, decide, now, earliest, width):
                sid = change.session.id
                updates.append(_expiry_update(change, due, sid))
                events += [_expiry_event(e, e.record_id, sid, _payload_text(e.payload)) for e in change.events]
                changes.append(change)
                if len(updates) == _PG_CHUNK:
                    cursors.append(_pg_send_chunk(conn, updates, events))
                    updates, events = [], []
            if updates:
                cursors.append(_pg_send_chunk(conn, updates, events))
            conn.execute("COMMIT")
            found = {row[0] for cursor in cursors for row in cursor.fetchall()}
        if len(found) == len(changes):
            return changes, changes
        return [c for c in changes if c.session.id in found], changes

    # ------------------------------------------------------------------ maintenance

    def _snapshot(self, conn: Connection) -> None:
        """Stream from one consistent snapshot (PostgreSQL: a REPEATABLE READ transaction, which server-side
        cursors need anyway)."""
        if self._postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        """Every session's full history, one list per session, streamed in session-id order."""
        self._check_open()
        with self._engine.connect() as conn:
            self._snapshot(conn)
            result = conn.execution_options(yield_per=batch_size).execute(
                select(*_EVENT_COLUMNS).order_by(session_events.c.session_id, session_events.c.version))
            current: list[SessionEvent] = []
            for row in result:
                event_ = event_from_row(row)
                if current and current[0].session_id != event_.session_id:
                    yield current
                    current = []
                current.append(event_)
            if current:
                yield current

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        """Every projection row (deleted ones included), streamed in id order."""
        self._check_open()
        with self._engine.connect() as conn:
            self._snapshot(conn)
            result = conn.execution_options(yield_per=batch_size).execute(
                select(*_SESSION_COLUMNS).order_by(sessions.c.id))
            for row in result:
                yield session_from_row(row)

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        """Delete every projection row and insert ``rebuilt`` instead, in one transaction."""

        def work(conn: Connection) -> int:
            conn.execute(delete(sessions))
            count = 0
            batch: list[dict[str, Any]] = []
            for session in rebuilt:
                batch.append(session_row(session))
                if len(batch) >= batch_size:
                    conn.execute(insert(sessions), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(insert(sessions), batch)
                count += len(batch)
            return count

        with self._cache_lock:
            self._cache.clear()
        return self._write(work, retry_lost=False)

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        """Projection and history in one read transaction (SQLite: one WAL snapshot; PostgreSQL:
        REPEATABLE READ), so a writer committing in between cannot make them look inconsistent."""

        def op() -> tuple[Session | None, list[SessionEvent]]:
            with self._engine.connect() as conn:
                self._snapshot(conn)
                with conn.begin():
                    row = conn.execute(select(*_SESSION_COLUMNS).where(sessions.c.id == session_id)).first()
                    events = conn.execute(select(*_EVENT_COLUMNS).where(session_events.c.session_id == session_id)
                                          .order_by(session_events.c.version)).all()
            return (None if row is None else session_from_row(row)), [event_from_row(r) for r in events]

        return self._run(op)

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self._read(lambda conn: conn.execute(select(1)).scalar())
        except StoreError:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cache_lock:
            self._cache.clear()
            held, self._held = list(self._held), weakref.WeakSet()
        for connection in held:
            connection.release()
        if self._owns_engine:
            self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlAlchemyEventStore({self._engine.url.render_as_string(hide_password=True)!r})"


class _Held:
    """A connection a thread keeps between hot-path operations (see ``SqlAlchemyEventStore._checkout``).

    ``close()`` keeps it; ``invalidate()`` (it broke) discards it and lets the thread get another;
    ``release()`` gives it back (closes a detached SQLite connection, returns a PostgreSQL one to the pool).
    It is released as well when the thread that keeps it ends (its thread-local slot is dropped).
    """

    __slots__ = ("__weakref__", "_cursor", "_finalizer", "_local", "driver_connection", "fairy")

    def __init__(self, fairy: Any, local: threading.local, on_release: Callable[[], None]) -> None:
        self.fairy = fairy
        self.driver_connection = fairy.dbapi_connection  # the driver's own connection for pysqlite and psycopg
        self._cursor: Any = None
        self._local = local
        # Runs once: on release(), on invalidate(), or when the thread's slot is garbage (thread ended).
        self._finalizer = weakref.finalize(self, _give_back, fairy, on_release)
        self._finalizer.atexit = False

    def cursor(self) -> Any:
        """One driver cursor kept with the connection for its statements: a cursor per statement (what the
        connection's ``execute`` makes) costs psycopg some thirty microseconds of Python."""
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = self.driver_connection.cursor()
        return cursor

    def close(self) -> None:
        """Kept for the next operation of this thread."""

    def invalidate(self) -> None:
        if getattr(self._local, "connection", None) is self:
            self._local.connection = None
        try:
            self.fairy.invalidate()
        except Exception:  # discarding a broken connection must not hide the original error
            logger.debug("discarding a held connection failed", exc_info=True)
        self._finalizer()

    def release(self) -> None:
        self._finalizer()


def _give_back(fairy: Any, on_release: Callable[[], None]) -> None:
    try:
        if not fairy.is_valid:
            return
        fairy.close()
    except Exception:  # closing a broken connection must not hide the original error
        logger.debug("giving back a held connection failed", exc_info=True)
    finally:
        on_release()


class _Sweeper:
    """The PostgreSQL connection a store keeps for its sweeps (a detached pool fairy), used by one sweep at a time
    (the store's ``_sweeper_lock``, taken by ``_sweep_connection``): ``close`` hands it back, ``invalidate`` drops
    it (the next sweep connects anew), ``release`` closes it (with the store)."""

    __slots__ = ("__weakref__", "driver_connection", "fairy", "store")

    def __init__(self, store: SqlAlchemyEventStore, fairy: Any, driver_connection: Any) -> None:
        self.store = store
        self.fairy = fairy
        self.driver_connection = driver_connection

    def close(self) -> None:
        self.store._sweeper_lock.release()

    def invalidate(self) -> None:
        if self.store._sweeper is self:
            self.store._sweeper = None
        self.release()

    def release(self) -> None:
        try:
            self.fairy.close()
        except Exception:  # closing a broken connection must not hide the original error
            logger.debug("closing the sweeps' PostgreSQL connection failed", exc_info=True)


_EXPIRY_COLUMNS = ("status", "version", "updated_at", "closed_at", "closed_by", "expires_at", "due_at",
                   "failure_reason")

# The sweep's SQL on the driver connections (see SqlAlchemyEventStore._expire_due_fast).
_EVENT_NAMES = ", ".join(c.name for c in session_events.c)
_COLUMN_COUNT = len(_COLUMN_NAMES)
_DUE = _I["due_at"]
#: SQLite 3.38+: ONE statement reads the batch — every column of the due rows, as one JSON array of arrays
#: (``data`` as JSON) — and the earliest deadline after it. (JSON renders REAL with 15 significant digits:
#: exact for any TTL of at most microsecond precision, the only REAL column.)
_SQLITE_CLAIM = (
    f"SELECT json_group_array(json_array({', '.join('json(data)' if c == 'data' else c for c in _COLUMN_NAMES)})), "
    "(SELECT min(due_at) FROM sessions WHERE due_at > ?1) "
    f"FROM (SELECT {', '.join(_COLUMN_NAMES)} FROM sessions WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2)")
#: The same as a script (``executescript`` binds no parameters: the two integers are written in), its row handed
#: to the connection's function ``sessionflow_claimed``.
_SQLITE_CLAIMED = "sessionflow_claimed"
_SQLITE_CLAIM_SCRIPT = (f"SELECT {_SQLITE_CLAIMED}(json_group_array(json_array("
                        f"{', '.join('json(data)' if c == 'data' else c for c in _COLUMN_NAMES)})), "
                        "(SELECT min(due_at) FROM sessions WHERE due_at > %d)) "
                        f"FROM (SELECT {', '.join(_COLUMN_NAMES)} FROM sessions WHERE due_at <= %d ORDER BY due_at "
                        "LIMIT %d)")
_SQLITE_CLAIM_ROWS = f"SELECT {', '.join(_COLUMN_NAMES)} FROM sessions WHERE due_at <= ? ORDER BY due_at LIMIT ?"
_SQLITE_LATER = "SELECT min(due_at) FROM sessions WHERE due_at > ?"
#: The batch's ONE write: a row per session into a temporary view (connection-local, created by a connection's
#: first sweep) whose ``INSTEAD OF`` trigger updates the session with a compare-and-set on the version read
#: (``expected``) and inserts its event only if that update matched (``changes() = 1``). A timeout may close
#: the session (the default lifecycle's expiry) or move it to a state with a deadline of its own (a custom
#: lifecycle's), so the deadline and the failure reason are written too.
_SQLITE_EXPIRY_VIEW = "sessionflow_expiry"
_SQLITE_EXPIRY_FIELDS = ("id", "expected", "status", "version", "updated_at", "closed_at", "closed_by", "expires_at",
                         "due_at", "failure_reason", "record_id", "event_version", "event", "source_state",
                         "target_state", "performer_id", "timestamp", "payload")
_SQLITE_EXPIRY_SETUP = (
    f"CREATE TEMP VIEW IF NOT EXISTS {_SQLITE_EXPIRY_VIEW} AS SELECT "
    + ", ".join(f"NULL AS {name}" for name in _SQLITE_EXPIRY_FIELDS),
    f"CREATE TEMP TRIGGER IF NOT EXISTS {_SQLITE_EXPIRY_VIEW}_write INSTEAD OF INSERT ON {_SQLITE_EXPIRY_VIEW} "
    "BEGIN "
    "UPDATE sessions SET status = NEW.status, version = NEW.version, updated_at = NEW.updated_at, "
    "closed_at = NEW.closed_at, closed_by = NEW.closed_by, expires_at = NEW.expires_at, due_at = NEW.due_at, "
    "failure_reason = NEW.failure_reason WHERE id = NEW.id AND version = NEW.expected; "
    f"INSERT INTO session_events ({_EVENT_NAMES}) SELECT NEW.record_id, NEW.id, NEW.event_version, NEW.event, "
    "NEW.source_state, NEW.target_state, NEW.performer_id, NEW.timestamp, NEW.payload WHERE changes() = 1; "
    "END",
)
_SQLITE_EXPIRE = (f"INSERT INTO temp.{_SQLITE_EXPIRY_VIEW} ({', '.join(_SQLITE_EXPIRY_FIELDS)}) SELECT "
                  + ", ".join(f"j.value ->> {i}" for i in range(len(_SQLITE_EXPIRY_FIELDS)))
                  + " FROM json_each(?) AS j")
_SQLITE_EXPIRE_HEAD, _SQLITE_EXPIRE_TAIL = _SQLITE_EXPIRE.removesuffix("json_each(?) AS j") + "json_each('", "') AS j"
#: Batches larger than this are written with executemany (see _sqlite_write_many).
_SQLITE_MANY = 100
_SQLITE_WRITTEN = "SELECT record_id FROM session_events WHERE record_id IN (SELECT value FROM json_each(?))"
# The general write (SQLite before 3.38, or changes of several events), per session.
_SQLITE_EXPIRE_ROW = ("UPDATE sessions SET status = ?, version = ?, updated_at = ?, closed_at = ?, closed_by = ?, "
                      "expires_at = ?, due_at = ?, failure_reason = ? WHERE id = ? AND version = ?")
_SQLITE_EXPIRE_EVENT = f"INSERT INTO session_events ({_EVENT_NAMES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
# ``data`` as text: psycopg would build a dict of lists per row, alive for the whole batch.
_PG_CLAIM = (f"SELECT {', '.join('data::text' if c == 'data' else c for c in _COLUMN_NAMES)} FROM sessions "
             "WHERE due_at <= %s ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED")
#: The claim, and in the same statement the earliest deadline of every session it did not claim (those another
#: transaction holds included): the claimed rows, each with that deadline as its last column; or, when none
#: was claimed, one row of NULLs with it.
_PG_CLAIM_NEXT = (
    f"WITH c AS ({_PG_CLAIM}) SELECT c.*, n.next FROM (SELECT min(s.due_at) AS next FROM sessions AS s "
    "WHERE s.due_at IS NOT NULL AND s.id NOT IN (SELECT id FROM c)) AS n LEFT JOIN c ON true ORDER BY c.due_at")
#: One statement for a whole batch: the rows' compare-and-set updates, then the events of the rows it updated.
#: Parameters: the updates and the events, each one JSON array of arrays (dumped by the json module in C and
#: unpacked by the server: no per-value work in Python).
_PG_EXPIRE = (
    "WITH u AS (SELECT u ->> 0 AS status, (u ->> 1)::integer AS version, (u ->> 2)::bigint AS updated_at, "
    "(u ->> 3)::bigint AS closed_at, u ->> 4 AS closed_by, (u ->> 5)::bigint AS expires_at, "
    "(u ->> 6)::bigint AS due_at, u ->> 7 AS failure_reason, (u ->> 8)::uuid AS id, (u ->> 9)::integer AS expected "
    "FROM jsonb_array_elements(%s::jsonb) AS u), "
    "w AS (UPDATE sessions AS s SET status = u.status, version = u.version, updated_at = u.updated_at, "
    "closed_at = u.closed_at, closed_by = u.closed_by, expires_at = u.expires_at, due_at = u.due_at, "
    "failure_reason = u.failure_reason FROM u "
    "WHERE s.id = u.id AND s.version = u.expected RETURNING s.id) "
    f"INSERT INTO session_events ({_EVENT_NAMES}) "
    "SELECT (e ->> 0)::uuid, (e ->> 1)::uuid, (e ->> 2)::integer, e ->> 3, e ->> 4, e ->> 5, e ->> 6, "
    "(e ->> 7)::bigint, e -> 8 FROM jsonb_array_elements(%s::jsonb) AS e "
    "WHERE (e ->> 1)::uuid IN (SELECT id FROM w) RETURNING session_id"
)
#: The same over arrays, one per column of the updates then one per column of the events, sent in binary (a
#: large batch: psycopg dumps a 1,000-element array several times faster that way than as text, and the server
#: unpacks arrays faster than JSON).
_PG_EXPIRE_ARRAYS = (
    "WITH u AS (SELECT * FROM unnest(%b::varchar[], %b::integer[], %b::bigint[], %b::bigint[], %b::varchar[], "
    "%b::bigint[], %b::bigint[], %b::text[], %b::uuid[], %b::integer[]) "
    "AS u(status, version, updated_at, closed_at, closed_by, expires_at, due_at, failure_reason, id, expected)), "
    "w AS (UPDATE sessions AS s SET status = u.status, version = u.version, updated_at = u.updated_at, "
    "closed_at = u.closed_at, closed_by = u.closed_by, expires_at = u.expires_at, due_at = u.due_at, "
    "failure_reason = u.failure_reason FROM u "
    "WHERE s.id = u.id AND s.version = u.expected RETURNING s.id) "
    f"INSERT INTO session_events ({_EVENT_NAMES}) "
    "SELECT e.record_id, e.session_id, e.version, e.event, e.source_state, e.target_state, e.performer_id, "
    "e.timestamp, e.payload::jsonb FROM unnest(%b::uuid[], %b::uuid[], %b::integer[], %b::varchar[], "
    "%b::varchar[], %b::varchar[], %b::varchar[], %b::bigint[], %b::text[]) "
    "AS e(record_id, session_id, version, event, source_state, target_state, performer_id, timestamp, payload) "
    "WHERE e.session_id IN (SELECT id FROM w) RETURNING session_id"
)
#: Batches larger than this are sent as arrays (_PG_EXPIRE_ARRAYS), in chunks, rather than as JSON.
_PG_JSON_WRITES = 100
#: How many sessions of a large batch one statement writes (see ``_pg_write_overlapped``).
_PG_CHUNK = 200
#: Which sessions of a batch have their events (parameter: the batch's events, as for _PG_EXPIRE).
_PG_WRITTEN = ("SELECT DISTINCT session_id FROM session_events WHERE record_id IN "
               "(SELECT (e ->> 0)::uuid FROM jsonb_array_elements(%s::jsonb) AS e)")
#: The batch statement, COMMIT, and how many of the batch's events are there, as one query string.
_PG_EXPIRE_AND_COMMIT = (_PG_EXPIRE + "; COMMIT; SELECT count(*) FROM session_events WHERE record_id IN "
                         "(SELECT (e ->> 0)::uuid FROM jsonb_array_elements(%s::jsonb) AS e)")


def _by_id(update: tuple[Any, ...]) -> Any:
    return update[8]


def _decide_claimed(rows: list[Any], decide: ExpiryDecider, now: datetime, earliest: list[int | None],
                    width: int | None = None) -> Iterator[tuple[Change, int | None]]:
    """Decide a sweep's claimed rows, popping each (so it is dropped once decoded; the list holds them last
    first). Yields each change the decider makes — keeping its new state and events, not the state it was
    decided on — with its new deadline in epoch ms; ``earliest[0]`` (given the unclaimed sessions' earliest)
    ends as the earliest deadline of every session left live. ``width``: the session columns of a longer row.
    """
    while rows:
        row = rows.pop()
        decided = decide(session_from_row(row if width is None else row[:width]), now)
        if decided is None:  # refused: it keeps its deadline
            due = row[_DUE]
        else:
            s = decided.session
            due = _ms(s.due_at)
            yield (decided if decided.previous is None else Change(
                s, decided.events, decided.expected_version, decided.exclusive_user, decided.decided_at)), due
        if due is not None and (earliest[0] is None or due < earliest[0]):
            earliest[0] = due


def _expiry_update(change: Change, due: int | None, key: Any) -> tuple[Any, ...]:
    """A swept session's compare-and-set update: its new columns, then its key and the version it was read at
    (the parameters of :data:`_SQLITE_EXPIRE_ROW`, a row of :data:`_PG_EXPIRE` / :data:`_PG_EXPIRE_ARRAYS`)."""
    s = change.session
    return (str(s.status), s.version, to_millis(s.updated_at), _ms(s.closed_at), s.closed_by, _ms(s.expires_at), due,
            s.failure_reason, key, change.expected_version)


def _expiry_event(e: SessionEvent, record: Any, key: Any, payload: Any) -> tuple[Any, ...]:
    """A swept session's event row, in ``session_events`` column order (its ids and payload as given)."""
    source = e.source_state
    return (record, key, e.version, str(e.event), None if source is None else str(source), str(e.target_state),
            e.performer_id, to_millis(e.timestamp), payload)


def _by_record(event: tuple[Any, ...]) -> Any:
    return event[0]


def _pg_send_chunk(conn: Any, updates: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> Any:
    """Send one chunk of a large batch (:data:`_PG_EXPIRE_ARRAYS`) on ``conn``, in pipeline mode; its cursor."""
    updates.sort(key=_by_id)
    events.sort(key=_by_record)
    columns = [list(column) for column in zip(*updates, strict=True)]
    columns += [list(column) for column in zip(*events, strict=True)]
    return conn.execute(_PG_EXPIRE_ARRAYS, columns, prepare=True)


def _rows_json(rows: list[tuple[Any, ...]]) -> str:
    return compact_json(rows)


def _pg_exec(conn: Any, query: str, params: Sequence[Any] | None = None) -> Any:
    """Run ``query`` (statements separated by ``;``, ``%s`` parameters quoted client-side by psycopg) in ONE
    call of libpq's blocking ``PQexec`` on psycopg connection ``conn``; the last statement's result (a
    ``psycopg.pq.PGresult``). Errors are raised as psycopg's, a broken connection as ``OperationalError``."""
    import psycopg
    from psycopg import pq

    text = psycopg.ClientCursor(conn).mogrify(query, params) if params is not None else query
    encoding = conn.info.encoding
    pgconn = conn.pgconn
    with conn.lock:
        result = pgconn.exec_(text.encode(encoding))
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return result
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(pq.error_message(pgconn, encoding=encoding))
    raise psycopg.errors.error_from_result(result, encoding=encoding)


def _pg_rows(conn: Any, result: Any) -> list[tuple[Any, ...]]:
    """The rows of a ``PGresult``, loaded as psycopg's cursors load them."""
    from psycopg.adapt import Transformer

    loader = Transformer(conn)
    loader.set_pgresult(result)
    rows: list[tuple[Any, ...]] = loader.load_rows(0, result.ntuples, tuple)
    return rows


def _by_deadline(row: list[Any]) -> Any:
    return row[_DUE]


def _payload_text(payload: Mapping[str, Any]) -> str:
    return compact_json(payload) if payload else "{}"


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


def _expiry_params(change: Change) -> Mapping[str, Any]:
    s = change.session
    return {
        "b_id": s.id,
        "b_expected": change.expected_version,
        "b_status": str(s.status),
        "b_version": s.version,
        "b_updated_at": to_millis(s.updated_at),
        "b_closed_at": _ms(s.closed_at),
        "b_closed_by": s.closed_by,
        "b_expires_at": _ms(s.expires_at),
        "b_due_at": _ms(s.due_at),
        "b_failure_reason": s.failure_reason,
    }


def install_sqlite_pragmas(engine: Engine, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000) -> None:
    """Configure an SQLite engine: WAL, ``synchronous``, a busy timeout, and ``BEGIN IMMEDIATE`` for writes.

    pysqlite's own transaction handling is turned off so SQLAlchemy's ``begin`` emits our ``BEGIN``.
    """
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous level {synchronous!r}")
    level = synchronous.upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {level}")
            cursor.execute("PRAGMA foreign_keys = OFF")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
