"""The SQLite recorder: everything SQLite-specific about the store.

* the connection's configuration (:func:`install_sqlite_pragmas`: WAL, ``synchronous``, the busy timeout,
  ``BEGIN IMMEDIATE`` for writes) and the "database is locked" rule (waited out, see ``_run``);
* the hot path: ``BEGIN IMMEDIATE``; insert or compare-and-set update of the projection; insert the events;
  with an idempotency key, insert it or replace an expired one (:attr:`SqliteSql.insert_key`: a live one, which
  another write holding the write lock before this one committed, refuses the change); ``COMMIT`` — on the
  thread's own connection, a file handle kept between operations (no round trips);
* the sweep batch, in two statements (:meth:`SqliteEventStore._expire_on`);
* the feed position of each event, computed by its ``INSERT`` (:data:`NEXT_POSITION`): a write holds the
  database's write lock from ``BEGIN IMMEDIATE`` to ``COMMIT``, so positions follow commit order.

The row formats are those of :mod:`sessionflow.adapters.sqlalchemy.tables` (UUIDs as 32-digit hex text, JSON
as text, times as epoch milliseconds).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event

from sessionflow.adapters.sqlalchemy.connections import ConnectionPolicy
from sessionflow.adapters.sqlalchemy.driver import DUE, DriverRecorder, active_query, decide_claimed, expiry_update
from sessionflow.adapters.sqlalchemy.driver import payload_text as _payload_text
from sessionflow.adapters.sqlalchemy.layout import (
    EVENT_COLUMNS,
    EXPIRY_SETS,
    KEY_COLUMNS,
    KEY_SETS,
    SESSION_COLUMNS,
    EventRow,
    ExpiryUpdate,
)
from sessionflow.adapters.sqlalchemy.rows import FastSql, _dt, event_values, session_changes, session_row
from sessionflow.adapters.sqlalchemy.tables import to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider
from sessionflow.domain.values import compact_json
from sessionflow.errors import ConcurrencyConflict, IdempotencyKeyInFlight

__all__ = ["NEXT_POSITION", "SqliteEventStore", "SqliteSql", "install_sqlite_pragmas"]

T = TypeVar("T")

#: An event's feed position, computed in its ``INSERT`` (the highest so far, plus one; an index lookup). Each
#: execution evaluates it anew, so the rows of an ``executemany`` and of a trigger get one position each.
NEXT_POSITION = "(SELECT coalesce(max(position), 0) + 1 FROM session_events)"

#: The execution option that makes SQLAlchemy's ``begin`` emit ``BEGIN IMMEDIATE`` (see install_sqlite_pragmas).
_WRITE = "sessionflow_write"


class SqliteSql(FastSql):
    """The hot path's SQL on SQLite (``?`` parameters, UUIDs as hex text)."""

    dialect = "sqlite"

    def __init__(self) -> None:
        cols = ", ".join(SESSION_COLUMNS)
        self.select_session = f"SELECT {cols} FROM sessions WHERE id = ?"
        #: A new session's row, with its list order: the position its ``created`` event, inserted next under the
        #: same write lock, is about to take (so the row is written once; see revision 0007).
        self.insert_session = (f"INSERT INTO sessions ({cols}, created_position) "
                               f"VALUES ({', '.join('?' for _ in SESSION_COLUMNS)}, {NEXT_POSITION})")
        self._updates: dict[tuple[str, ...], str] = {}
        self.insert_event = (f"INSERT INTO session_events ({', '.join(EVENT_COLUMNS)}, position) VALUES "
                             f"({', '.join('?' for _ in EVENT_COLUMNS)}, {NEXT_POSITION})")
        self.select_version = "SELECT version FROM sessions WHERE id = ?"
        self.select_active = active_query("?")
        #: A keyed write's key: inserted, or written over a stored one that expired by the record's ``created_at``;
        #: a live one is left as it is (no row changed: the change is refused).
        self.insert_key = (
            f"INSERT INTO idempotency_keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join('?' for _ in KEY_COLUMNS)}) "
            f"ON CONFLICT (scope, key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in KEY_SETS)} "
            "WHERE idempotency_keys.expires_at <= excluded.created_at")
        self.select_key = ("SELECT fingerprint, session_id, version, expires_at FROM idempotency_keys "
                           "WHERE scope = ? AND key = ?")

    def uuid(self, value: Any) -> Any:
        return value.hex

    def update_statement(self, columns: tuple[str, ...]) -> str:
        """A compare-and-set ``UPDATE`` of just ``columns`` (the version always changes); parameters as
        :meth:`row_params` gives them."""
        statement = self._updates.get(columns)
        if statement is None:
            sets = ", ".join(f"{c} = ?" for c in columns)
            statement = f"UPDATE sessions SET {sets} WHERE id = ? AND version = ?"
            self._updates[columns] = statement
        return statement


def _is_locked(error: BaseException) -> bool:
    message = str(getattr(error, "orig", error)).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


class SqliteEventStore(DriverRecorder, dialect="sqlite"):
    """The store on an SQLite engine (see :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore`).

    Every thread keeps a connection of its own to a database file, detached from the pool (an in-process
    file handle, configured like every pooled one); an in-memory database has one connection, so none is
    kept. Writes begin with ``BEGIN IMMEDIATE``, so a writer waits for the lock (the busy timeout, then
    back-off) instead of failing at commit.
    """

    _sql: SqliteSql

    def __init__(self, engine: Engine, **options: Any) -> None:
        super().__init__(engine, **options)
        self._fast = self._sql = SqliteSql()
        file = engine.url.database not in (None, "", ":memory:")
        self._use(ConnectionPolicy(engine, hold=sys.maxsize if file else 0, detach=True, local=self._local))
        self._operational_error: type[BaseException] = engine.dialect.loaded_dbapi.OperationalError

    def _locked(self, error: BaseException) -> bool:
        return _is_locked(error)

    def _transaction(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            return work(conn)

    # ------------------------------------------------------------------ the hot path

    def _prepare(self, change: Change) -> tuple[str | None, list[Any]]:
        """The projection's statement for ``change`` (``None``: the insert of a new session) and its parameters."""
        sql = self._sql
        session = change.session
        if change.expected_version == 0:
            return None, sql.row_params(session.id, session_row(session), 0, create=True)
        changes = session_changes(change.previous, session)
        return (sql.update_statement(tuple(changes)),
                sql.row_params(session.id, changes, change.expected_version, create=False))

    def _write_on(self, conn: Any, change: Change, cursor: Any, prepared: tuple[str | None, list[Any]]) -> None:
        """The statements of one append, inside the caller's transaction."""
        sql = self._sql
        events = change.events
        session = change.session
        key = session.id.hex
        update, session_params = prepared
        execute = cursor.execute
        self._check_exclusive(execute, change, key)
        if update is None:
            execute(sql.insert_session, session_params)
        elif execute(update, session_params).rowcount != 1:
            found = execute(sql.select_version, (key,)).fetchone()
            raise ConcurrencyConflict(session.id, expected_version=change.expected_version,
                                      actual_version=None if found is None else found[0])
        # (the session's key, already in hand, for the events that carry the very same id object)
        if len(events) == 1:
            event_ = events[0]
            execute(sql.insert_event, sql.event_values(event_, key if event_.session_id is session.id else None))
        else:
            cursor.executemany(sql.insert_event, [
                sql.event_values(e, key if e.session_id is session.id else None) for e in events])
        record = change.idempotency
        if record is not None and execute(sql.insert_key, sql.key_values(record, key, session.version)).rowcount != 1:
            raise IdempotencyKeyInFlight(record.key)  # a live key of that scope is stored

    def _append_on(self, conn: Any, change: Change, cursor: Any) -> None:
        """One append in one ``BEGIN IMMEDIATE`` transaction on ``conn`` (its statements on ``cursor``)."""
        prepared = self._prepare(change)
        execute = cursor.execute
        execute("BEGIN IMMEDIATE")
        try:
            self._write_on(conn, change, cursor, prepared)
            execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                execute("ROLLBACK")
            raise

    def _append_many_on(self, conn: Any, changes: list[Change], cursor: Any) -> None:
        """Every change in one ``BEGIN IMMEDIATE`` transaction on ``conn``."""
        prepared = [self._prepare(change) for change in changes]
        execute = cursor.execute
        execute("BEGIN IMMEDIATE")
        try:
            for index, change in enumerate(changes):
                try:
                    self._write_on(conn, change, cursor, prepared[index])
                except BaseException as error:
                    raise self._rejected(index, change, error) from error
            execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ the sweep

    def _expire_on(self, conn: Any, now: datetime, limit: int, decide: ExpiryDecider,
                   with_next: bool) -> ExpiredBatch:
        """ONE statement reads the due rows (as one JSON value, :data:`_CLAIM_SCRIPT`) and the earliest deadline
        after them; ONE statement writes the whole batch (:data:`_EXPIRE`): an ``INSERT`` into a temporary view
        whose ``INSTEAD OF`` trigger (:data:`_EXPIRY_SETUP`) updates each session with a compare-and-set on the
        version read and inserts its event only if that update matched. A statement outside a transaction is
        its own transaction, so the batch is written whole or not at all, under the database's write lock (the
        busy timeout waits for it). The read takes no lock: a session another sweeper or a writer changed in
        between is skipped, its event never written.

        Both run through ``executescript``, which gives the GIL away once per statement (``execute`` and
        ``fetchone`` give it away some five times each, around every small SQLite call): the read hands its one
        row to a function of the connection (``sessionflow_claimed``) and the write takes its batch as a
        quoted literal. (``BEGIN IMMEDIATE``, the reads, the writes and ``COMMIT`` as statements of their own
        cost some thirty releases; each one, in a process with other threads busy in Python, may cost a switch
        interval.)
        """
        now_ms = to_millis(now)
        claimed, later = self._claim(conn, now_ms, limit)
        rows: list[Any] = json.loads(claimed)
        rows.sort(key=_by_deadline, reverse=True)
        claimed_all = len(rows) < limit
        # The batch holds as few objects as it can until it commits: each row is dropped once decoded, and a
        # change keeps its new state and events, not the state it was decided on (fewer garbage-collector
        # passes on large sweeps).
        changes: list[Change] = []
        updates: list[ExpiryUpdate] = []
        events: list[EventRow] = []
        earliest: list[int | None] = [later]  # of the sessions left live: unclaimed, refused, or rescheduled
        dumps = _payload_text
        for change, due in decide_claimed(rows, decide, now, earliest):
            key = change.session.id.hex
            updates.append(expiry_update(change, due, key))
            events += [event_values(e, e.record_id.hex, key, dumps(e.payload)) for e in change.events]
            changes.append(change)
        if not changes:
            applied = changes
        elif len(changes) <= _MANY and len(events) == len(changes):
            applied = self._write_batch(conn, changes, updates, events)
        else:
            applied = self._write_rows(conn, changes, updates, events)
        known = with_next and claimed_all and len(applied) == len(changes)
        return ExpiredBatch(applied, _dt(earliest[0]) if known else None, known)

    def _claim(self, conn: Any, now_ms: int, limit: int) -> tuple[str, int | None]:
        """The claim (:data:`_CLAIM_SCRIPT`) as a script: its row goes to ``sessionflow_claimed``, registered on
        the connection by its first sweep."""
        local = self._local
        local.claimed = None
        script = _CLAIM_SCRIPT % (int(now_ms), int(now_ms), int(limit))
        try:
            conn.executescript(script)
        except self._operational_error as error:
            if _CLAIMED not in str(error):
                raise

            def claimed(batch: str, later: int | None) -> None:
                local.claimed = (batch, later)

            conn.create_function(_CLAIMED, 2, claimed)
            conn.executescript(script)
        result: tuple[str, int | None] = local.claimed
        local.claimed = None
        return result

    def _write_batch(self, conn: Any, changes: list[Change], updates: list[ExpiryUpdate], events: list[EventRow]
                     ) -> list[Change]:
        """A small batch of one event per session (a waker's wake-up): ONE statement; returns the changes it
        applied (all, unless some session changed since it was read)."""
        # The batch as a literal: JSON text has no NUL (the encoder escapes control characters) and a quote in
        # a SQLite literal is escaped by doubling it, the only escape there is.
        rows = [u + e for u, e in zip(updates, events, strict=True)]
        script = _EXPIRE_HEAD + compact_json(rows).replace("'", "''") + _EXPIRE_TAIL
        before = conn.total_changes
        try:
            conn.executescript(script)
        except self._operational_error as error:
            if _EXPIRY_VIEW not in str(error):
                raise
            # A connection's first sweep: its temporary view and trigger (connection-local, created once).
            for statement in _EXPIRY_SETUP:
                conn.execute(statement)
            before = conn.total_changes
            conn.executescript(script)
        if conn.total_changes - before == 2 * len(changes):  # each session: its update and its event
            return changes
        # Some session changed since it was read (its update did not match, nor was its event written): keep
        # the changes whose event is there. (Other triggers on the tables would bring us here too.)
        records = json.dumps([c.events[0].record_id.hex for c in changes])
        written = {r[0] for r in conn.execute(_WRITTEN, (records,)).fetchall()}
        return [c for c in changes if c.events[0].record_id.hex in written]

    def _write_rows(self, conn: Any, changes: list[Change], updates: list[ExpiryUpdate], events: list[EventRow]
                    ) -> list[Change]:
        """Any other batch (a sweep of many sessions, or changes of several events), in one
        ``BEGIN IMMEDIATE`` transaction: ``executemany`` of the updates and of the events, which SQLite runs
        faster than the trigger — in key order (sessions by id, events by record id), which walks each index
        once instead of jumping around it. When some session changed since it was read (fewer updates matched),
        the transaction is rolled back and the batch written again session by session, each session's events
        only if its compare-and-set matched. Returns the changes applied."""
        updates.sort(key=_by_id)
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.cursor()
            try:
                cursor.executemany(_EXPIRE_ROW, updates)
                if cursor.rowcount == len(updates):
                    cursor.executemany(_EXPIRE_EVENT, sorted(events, key=_by_record))
                    applied = changes
                else:
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    by_session: dict[Any, list[EventRow]] = {}
                    for e in events:
                        by_session.setdefault(e.session_id, []).append(e)
                    matched = [u.id for u in updates if cursor.execute(_EXPIRE_ROW, u).rowcount == 1]
                    cursor.executemany(_EXPIRE_EVENT, [e for key in matched for e in by_session[key]])
                    kept = set(matched)
                    applied = [c for c in changes if c.session.id.hex in kept]
            finally:
                cursor.close()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return applied


def _by_deadline(row: list[Any]) -> Any:
    return row[DUE]


def _by_id(update: ExpiryUpdate) -> Any:
    return update.id


def _by_record(event: EventRow) -> Any:
    return event.record_id


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


# ---------------------------------------------------------------------- the sweep's SQL

_COLUMNS = ", ".join(SESSION_COLUMNS)
_EVENT_NAMES = ", ".join(EVENT_COLUMNS)
#: ONE statement reads the batch — every column of the due rows, as one JSON array of arrays
#: (``data`` as JSON) — and the earliest deadline after it, as a script (``executescript`` binds no parameters:
#: the two integers are written in), its row handed to the connection's function ``sessionflow_claimed``.
#: (JSON renders REAL with 15 significant digits: exact for any TTL of at most microsecond precision, the only
#: REAL column.)
_CLAIMED = "sessionflow_claimed"
_CLAIM_SCRIPT = (f"SELECT {_CLAIMED}(json_group_array(json_array("
                 f"{', '.join('json(data)' if c == 'data' else c for c in SESSION_COLUMNS)})), "
                 "(SELECT min(due_at) FROM sessions WHERE due_at > %d)) "
                 f"FROM (SELECT {_COLUMNS} FROM sessions WHERE due_at <= %d ORDER BY due_at LIMIT %d)")
#: The batch's ONE write: a row per session into a temporary view (connection-local, created by a connection's
#: first sweep) whose ``INSTEAD OF`` trigger updates the session with a compare-and-set on the version read
#: (``expected``) and inserts its event only if that update matched (``changes() = 1``). A timeout may close
#: the session (the default lifecycle's expiry) or move it to a state with a deadline of its own (a custom
#: lifecycle's), so the deadline and the failure reason are written too. A row of the view is an
#: :class:`ExpiryUpdate` followed by an :class:`EventRow` (its fields prefixed ``e_``).
_EXPIRY_VIEW = "sessionflow_expiry"
_EXPIRY_FIELDS = ExpiryUpdate._fields + tuple(f"e_{c}" for c in EVENT_COLUMNS)
_EXPIRY_SETUP = (
    f"CREATE TEMP VIEW IF NOT EXISTS {_EXPIRY_VIEW} AS SELECT "
    + ", ".join(f"NULL AS {name}" for name in _EXPIRY_FIELDS),
    f"CREATE TEMP TRIGGER IF NOT EXISTS {_EXPIRY_VIEW}_write INSTEAD OF INSERT ON {_EXPIRY_VIEW} BEGIN "
    f"UPDATE sessions SET {', '.join(f'{c} = NEW.{c}' for c in EXPIRY_SETS)} "
    "WHERE id = NEW.id AND version = NEW.expected; "
    f"INSERT INTO session_events ({_EVENT_NAMES}, position) "
    f"SELECT {', '.join(f'NEW.e_{c}' for c in EVENT_COLUMNS)}, {NEXT_POSITION} WHERE changes() = 1; "
    "END",
)
_EXPIRE_HEAD = (f"INSERT INTO temp.{_EXPIRY_VIEW} ({', '.join(_EXPIRY_FIELDS)}) SELECT "
                + ", ".join(f"json_extract(j.value, '$[{i}]')" for i in range(len(_EXPIRY_FIELDS)))
                + " FROM json_each('")
_EXPIRE_TAIL = "') AS j"
#: Batches larger than this are written with executemany (see _write_rows). Per session executemany is faster at
#: every batch size (a sweep of 4,000 overdue sessions, interleaved rounds, its time over the trigger's: batches
#: of 10 0.77, 50 0.88, 100 0.98, 200 0.74), but it makes many more calls into the driver, each a GIL hand-off:
#: with a CPU-bound thread in the process, a waker's expiries (1,000 deadlines over 20 s) were p99 200-228 ms
#: late with executemany for every batch against 43-47 ms with the trigger for small ones (two runs each).
_MANY = 100
_WRITTEN = "SELECT record_id FROM session_events WHERE record_id IN (SELECT value FROM json_each(?))"
#: The per-row statements (an :class:`ExpiryUpdate`, an :class:`EventRow`).
_EXPIRE_ROW = (f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in EXPIRY_SETS)} WHERE id = ? AND version = ?")
_EXPIRE_EVENT = (f"INSERT INTO session_events ({_EVENT_NAMES}, position) "
                 f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)}, {NEXT_POSITION})")
