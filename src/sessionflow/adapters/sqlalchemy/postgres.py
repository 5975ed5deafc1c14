"""The PostgreSQL recorder: everything PostgreSQL-specific about the store (its SQL: ``postgres_sql.py``).

* Appends: ONE statement in autocommit mode — a data-modifying CTE inserts or updates the projection
  (``WHERE version = expected``) and the events are inserted only if it matched — so a transition costs one
  round trip and is still atomic. A keyed change's idempotency key is written by the same statement, only if
  the projection's write matched; a live key of its scope aborts the statement with a unique violation of the
  key's primary key (``postgres_sql.KEY_CONSTRAINT``), raised as ``IdempotencyKeyInFlight``.
* Kept connections: up to ``min(pool_size, (pool_size + max_overflow) // 2)`` threads each keep one
  connection checked out of the pool, so the number of server connections never exceeds ``pool_size +
  max_overflow`` (plus the one a sweeping store keeps), and at least half of them always circulate among the
  other threads, which check one out per operation as usual (an idle holder can never starve them).
* Sweeps: on one connection the store keeps for them (no pool checkout nor reset per wake-up).

Row formats: those of :mod:`sessionflow.adapters.sqlalchemy.tables` (native UUIDs, JSONB, epoch milliseconds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from sessionflow.adapters._sqlalchemy_compat import pool_capacity
from sessionflow.adapters.sqlalchemy.connections import ConnectionPolicy
from sessionflow.adapters.sqlalchemy.driver import DriverRecorder, decide_claimed, expiry_update
from sessionflow.adapters.sqlalchemy.driver import payload_text as _payload_text
from sessionflow.adapters.sqlalchemy.layout import SESSION_COLUMNS, EventRow, ExpiryUpdate
from sessionflow.adapters.sqlalchemy.postgres_sql import (
    CHUNK,
    CLAIM,
    CLAIM_NEXT,
    EXPIRE_AND_COMMIT,
    JSON_WRITES,
    KEY_CONSTRAINT,
    WRITTEN,
    PostgresSql,
    by_id,
    by_record,
    pg_rows,
    send_chunk,
)
from sessionflow.adapters.sqlalchemy.postgres_sql import pg_exec as _pg_exec
from sessionflow.adapters.sqlalchemy.rows import _dt, event_values, session_changes, session_row
from sessionflow.adapters.sqlalchemy.tables import to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider
from sessionflow.domain.values import compact_json
from sessionflow.errors import ActiveSessionExists, ConcurrencyConflict, IdempotencyKeyInFlight

__all__ = ["PostgresEventStore", "PostgresSql"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")


class _RunMismatch(Exception):
    """A run of a batch wrote fewer rows than its changes carry: some version moved (see ``_append_many_on``)."""


class PostgresEventStore(DriverRecorder, dialect="postgresql"):
    """The store on a PostgreSQL engine (see :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore`).

    The store runs every statement in autocommit mode (single statements need no BEGIN/COMMIT round trips;
    write transactions begin explicitly). With ``autocommit_engine`` (the engine
    :func:`~sessionflow.bootstrap.create_engine` makes) its connections are so already, and threads keep
    connections (see the module's docstring). On an engine configured otherwise the store uses a copy of it
    sharing its pool (``execution_options(isolation_level="AUTOCOMMIT")``), and switches each driver
    connection it checks out to autocommit mode and back (its connection policy): the engine's other users
    get their connections as they configured them.
    """

    _sql: PostgresSql
    #: A large sweep batch is sent in pipelined chunks (:meth:`_write_overlapped`); else as one JSON statement.
    _pipelines: bool = True

    def __init__(self, engine: Engine, *, autocommit_engine: bool = False, **options: Any) -> None:
        super().__init__(engine, autocommit_engine=autocommit_engine, **options)
        self._fast = self._sql = PostgresSql()
        self._autocommit = bool(autocommit_engine)
        if not self._autocommit:
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        limit = 0
        capacity = pool_capacity(engine.pool)
        if self._autocommit and capacity:
            # At most half the pool is held, so threads that hold none always have a share of their own
            # (a holder may sit idle for as long as its thread lives).
            limit = min(engine.pool.size(), capacity // 2)  # type: ignore[attr-defined]
        self._operational_error: type[BaseException] = engine.dialect.loaded_dbapi.OperationalError
        self._use(self._policy(limit))

    def _policy(self, hold: int) -> ConnectionPolicy:
        """Threads keep up to ``hold`` connections; the sweeps, one of their own (no checkout nor reset per
        wake-up); on an engine not in autocommit mode each operation's connection is switched to it and back."""
        return ConnectionPolicy(self._engine, hold=hold, autocommit_switch=not self._autocommit, sweeper=True,
                                local=self._local)

    # ------------------------------------------------------------------ the backend's rules

    def _lost_connection(self, error: BaseException) -> bool:
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        driver = getattr(error, "orig", None) or error
        return isinstance(driver, self._operational_error)

    def _transaction(self, conn: Connection, work: Callable[[Connection], T]) -> T:
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

    def _check_exclusive(self, execute: Callable[..., Any], change: Change, key: Any) -> None:
        if change.exclusive_user is not None:
            execute(self._sql.lock_user, (f"sessionflow:active-user:{change.exclusive_user}",))
            super()._check_exclusive(execute, change, key)

    def _snapshot(self, conn: Connection) -> None:
        """Stream from one snapshot: a REPEATABLE READ transaction (server-side cursors need one anyway)."""
        conn.execution_options(isolation_level="REPEATABLE READ")

    # ------------------------------------------------------------------ the hot path

    def _prepare(self, change: Change) -> tuple[str, Any]:
        """The one statement appending ``change`` and its parameters."""
        sql = self._sql
        create = change.expected_version == 0
        session = change.session
        columns = session_row(session) if create else session_changes(change.previous, session)
        record = change.idempotency
        key = None if record is None else sql.key_values(record, session.id, session.version)
        return (sql.append_statement(None if create else tuple(columns), len(change.events), key is not None),
                sql.append_params(session.id, columns, change.events, change.expected_version, create=create,
                                  key=key))

    def _write_on(self, execute: Any, change: Change, prepared: tuple[str, Any]) -> None:
        """Run ``change``'s one statement; :class:`ConcurrencyConflict` when the version did not match,
        :class:`IdempotencyKeyInFlight` when a live key of the change's key and scope is stored."""
        statement, params = prepared
        self._check_exclusive(execute, change, change.session.id)
        try:
            written = execute(statement, params).rowcount
        except self._integrity_error as error:
            record = change.idempotency
            if record is not None and getattr(getattr(error, "diag", None), "constraint_name", None) == KEY_CONSTRAINT:
                raise IdempotencyKeyInFlight(record.key) from error
            raise
        if written != len(change.events):
            found = execute(self._sql.select_version, (change.session.id,)).fetchone()
            raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                      actual_version=None if found is None else found[0])

    def _append_on(self, conn: Any, change: Change, cursor: Any) -> None:
        """One append as one statement on ``cursor`` in autocommit mode."""
        prepared = self._prepare(change)
        execute = cursor.execute
        if change.exclusive_user is None:
            self._write_on(execute, change, prepared)
        else:  # the check and the write in one transaction
            self._in_transaction(conn, execute, lambda: self._write_on(execute, change, prepared))

    def _append_many_on(self, conn: Any, changes: list[Change], cursor: Any) -> None:
        """Every change's one-statement append inside one transaction on ``conn``.

        The changes that share a statement and follow each other go to the server together (psycopg's
        ``executemany``, pipelined: one round trip for the run instead of one per change), their total row count
        checked; when it does not add up (a version moved) or the database refuses a row, the transaction is
        rolled back and the batch is run again one statement at a time, which names the change refused.
        """
        prepared = [self._prepare(change) for change in changes]
        execute = cursor.execute
        if len(changes) > 1:
            try:
                self._in_transaction(conn, execute, lambda: self._write_runs(cursor, changes, prepared))
                return
            except (_RunMismatch, ConcurrencyConflict, ActiveSessionExists, IdempotencyKeyInFlight,
                    self._integrity_error):
                pass  # (rolled back) find which change it was, one statement at a time

        def one_by_one() -> None:
            for index, change in enumerate(changes):
                try:
                    self._write_on(execute, change, prepared[index])
                except BaseException as error:
                    raise self._rejected(index, change, error) from error

        self._in_transaction(conn, execute, one_by_one)

    def _write_runs(self, cursor: Any, changes: list[Change], prepared: list[tuple[str, Any]]) -> None:
        """Each run of consecutive changes with one statement in one ``executemany`` (:class:`_RunMismatch`)."""
        start = 0
        while start < len(changes):
            statement = prepared[start][0]
            end = start + 1
            while (end < len(changes) and prepared[end][0] == statement and changes[start].exclusive_user is None
                   and changes[end].exclusive_user is None):
                end += 1
            if end - start == 1:
                self._write_on(cursor.execute, changes[start], prepared[start])
            else:
                cursor.executemany(statement, [params for _, params in prepared[start:end]])
                if cursor.rowcount != sum(len(change.events) for change in changes[start:end]):
                    raise _RunMismatch
            start = end

    def _in_transaction(self, conn: Any, execute: Any, work: Callable[[], None]) -> None:
        """``work()`` between ``BEGIN`` and ``COMMIT`` on an autocommit driver connection; rolled back if it fails."""
        execute("BEGIN")
        try:
            work()
            execute("COMMIT")
        except BaseException:
            if not conn.closed:
                try:
                    execute("ROLLBACK")
                except self._driver_error:
                    logger.debug("rollback after a failed batch failed", exc_info=True)
            raise

    # ------------------------------------------------------------------ the sweep

    def _expire_on(self, conn: Any, now: datetime, limit: int, decide: ExpiryDecider,
                   with_next: bool) -> ExpiredBatch:
        """Two round trips. ``BEGIN`` and the claim (``FOR UPDATE SKIP LOCKED``; with ``with_next`` the same
        statement reads the earliest deadline of the sessions it did not claim, :data:`CLAIM_NEXT`), then ONE
        statement over the batch as two JSON documents (:data:`EXPIRE`: the compare-and-set updates, and the
        events of the sessions whose update matched), ``COMMIT`` and a count of the events written. (A batch of
        more than :data:`JSON_WRITES` sessions is written by :meth:`_write_overlapped` instead.)

        Each round trip is one query string (:meth:`_exec`)."""
        claim = (to_millis(now), limit)
        statement = CLAIM_NEXT if with_next else CLAIM
        try:
            rows = self._exec(conn, f"BEGIN; {statement}", claim)
            later: int | None = None
            if with_next:
                later = rows[0][-1]
                if rows[0][0] is None:  # nothing claimed: the one row only carries the deadline
                    rows = []
            claimed_all = len(rows) < limit
            earliest: list[int | None] = [later]
            width = len(SESSION_COLUMNS) if with_next else None
            rows.reverse()
            changes: list[Change] = []
            if len(rows) > JSON_WRITES and self._pipelines:
                applied, changes = self._write_overlapped(conn, rows, decide, now, earliest, width)
                known = with_next and claimed_all and len(applied) == len(changes)
                return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)
            # A small batch (a waker's wake-up): its updates and events as two JSON documents.
            updates: list[ExpiryUpdate] = []
            events: list[EventRow] = []
            for change, due in decide_claimed(rows, decide, now, earliest, width):
                sid = change.session.id.hex
                updates.append(expiry_update(change, due, sid))
                events += [event_values(e, e.record_id.hex, sid, e.payload) for e in change.events]
                changes.append(change)
            if not changes:
                self._exec(conn, "COMMIT")
                applied = changes
            else:
                # In key order (sessions by id, events by record id): the server walks each index once.
                updates.sort(key=by_id)
                events.sort(key=by_record)
                batch = (compact_json(updates), compact_json(events))
                # The statement, COMMIT, and how many of the batch's events are there, in one round trip. The
                # statement writes a session's events only if its row matched, so each session's expiry is whole;
                # a session that did not match (none can: the rows are locked) is left out of what was applied.
                written = self._exec(conn, EXPIRE_AND_COMMIT, (*batch, batch[1]))[0][0]
                if written == len(events):
                    applied = changes
                else:
                    found = {r[0] for r in self._exec(conn, WRITTEN, (batch[1],))}
                    applied = [c for c in changes if c.session.id in found]
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        known = with_next and claimed_all and len(applied) == len(changes)
        return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)

    def _exec(self, conn: Any, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``query`` (statements separated by ``;``) in one round trip on driver connection ``conn``; the
        rows of its last statement. Here one call of libpq's blocking ``PQexec``, its parameters quoted
        client-side (:func:`_pg_exec`): the GIL is given away once per round trip, where psycopg's own
        execution gives it away a dozen times, and with other threads busy in Python getting it back may cost
        a switch interval each time. Measured (``python -m benchmarks expiry-lateness``, a CPU-bound thread in
        the process, one run each): expiries p50 19.0 ms, p99 28.0 ms late this way; p50 40.1 ms, p99 84.9 ms
        through psycopg's client-side-binding cursor (the asyncio store's way, which must not block its loop)."""
        return pg_rows(conn, _pg_exec(conn, query, params))

    def _write_overlapped(self, conn: Any, rows: list[Any], decide: ExpiryDecider, now: datetime,
                          earliest: list[int | None], width: int | None) -> tuple[list[Change], list[Change]]:
        """A large batch (a sweep of many sessions, not a waker's wake-up), in the transaction its claim opened:
        decided in chunks of :data:`CHUNK` sessions, each chunk's statement (:data:`EXPIRE_ARRAYS`, arrays in
        binary, in key order) sent in pipeline mode as soon as it is decided, so that the server writes one
        chunk while Python decides the next; then ``COMMIT``, sent behind the last chunk. Nothing is committed
        unless every chunk was sent. Returns ``(applied, changes)``: the changes whose session the
        compare-and-set matched (all of them: the rows are locked), and every change decided."""
        changes: list[Change] = []
        cursors: list[Any] = []
        updates: list[ExpiryUpdate] = []
        events: list[EventRow] = []
        with conn.pipeline():
            for change, due in decide_claimed(rows, decide, now, earliest, width):
                sid = change.session.id
                updates.append(expiry_update(change, due, sid))
                events += [event_values(e, e.record_id, sid, _payload_text(e.payload)) for e in change.events]
                changes.append(change)
                if len(updates) == CHUNK:
                    cursors.append(send_chunk(conn, updates, events))
                    updates, events = [], []
            if updates:
                cursors.append(send_chunk(conn, updates, events))
            conn.execute("COMMIT")
            found = {row[0] for cursor in cursors for row in cursor.fetchall()}
        if len(found) == len(changes):
            return changes, changes
        return [c for c in changes if c.session.id in found], changes
