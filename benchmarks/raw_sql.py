"""The ceilings: the same lifecycle written directly on the drivers (sqlite3, psycopg 3).

They write exactly the rows sessionflow writes, into the schema sessionflow's migrations created: for
``create``, the ``sessions`` row and the ``created`` event (same columns, same JSON payload and ``data``
document, UUIDs as sessionflow stores them); for ``start`` and ``complete``, an ``UPDATE`` of the row with a
version compare-and-set (``WHERE id = ? AND version = ?``, checked) and the event insert. The benchmark
checks afterwards that sessionflow reads these sessions back and that ``verify`` finds no difference, so
the rows really are sessionflow's. What the raw code does not do is everything sessionflow adds on top:
argument validation, the lifecycle decision, immutable models, the read cache, retries and error mapping.

PostgreSQL has two patterns: three explicit transactions per session (``BEGIN``; ``INSERT``/``UPDATE`` and
``INSERT``; ``COMMIT``) and one statement per step in autocommit (a data-modifying CTE that writes the row
and the event in one round trip).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, user_for

__all__ = ["RawPostgresLifecycle", "RawSqliteLifecycle"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TTL_MS = int(TTL.total_seconds() * 1000)
_SESSION_COLUMNS = ("id", "status", "version", "user_id", "workspace_id", "module_name", "total_files",
                    "processed_files", "failed_files", "current_file", "ttl_seconds", "created_at", "updated_at",
                    "expires_at", "max_expires_at", "closed_at", "closed_by", "failure_reason", "deleted_at",
                    "due_at", "data")
#: An event's feed position on SQLite, computed in its INSERT as sessionflow's own SQL does (the same work).
NEXT_POSITION = "(SELECT coalesce(max(position), 0) + 1 FROM session_events)"
_EVENT_COLUMNS = ("record_id", "session_id", "version", "event", "source_state", "target_state", "performer_id",
                  "timestamp", "payload")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_DATA = _dumps({"file_paths": [], "file_results": [], "notes": [], "metadata": METADATA})


def _now_ms() -> int:
    delta = datetime.now(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _created_payload(user: str, expires_ms: int) -> str:
    return _dumps({"user_id": user, "workspace_id": WORKSPACE, "module_name": MODULE, "file_paths": [],
                   "metadata": METADATA, "ttl_seconds": TTL.total_seconds(), "expires_at": _iso(expires_ms),
                   "max_expires_at": None})


def _session_values(sid: Any, user: str, now: int, expires: int) -> tuple[Any, ...]:
    return (sid, "pending", 1, user, WORKSPACE, MODULE, 0, 0, 0, None, TTL.total_seconds(), now, now, expires,
            None, None, None, None, None, expires, _DATA)


class ConflictError(Exception):
    """The compare-and-set found another version."""


class RawSqliteLifecycle:
    """The lifecycle on one sqlite3 connection: WAL, the given ``synchronous``, ``BEGIN IMMEDIATE`` writes.

    Each step's ``UPDATE`` sets only the columns the step changes.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.last_session_id: str | None = None
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.insert_session = (f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
                               f"VALUES ({', '.join('?' for _ in _SESSION_COLUMNS)})")
        # The same work as sessionflow's: each event takes the next position of the global feed.
        self.insert_event = (f"INSERT INTO session_events ({', '.join(_EVENT_COLUMNS)}, position) "
                             f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}, {NEXT_POSITION})")
        self.start_row = "UPDATE sessions SET status = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?"
        self.complete_row = ("UPDATE sessions SET status = ?, version = ?, updated_at = ?, closed_at = ?, "
                             "closed_by = ?, due_at = NULL WHERE id = ? AND version = ?")

    def _step_update(self, row: list[Any], version: int, changes: dict[str, Any]) -> tuple[str, tuple[Any, ...], bool]:
        """The compare-and-set ``UPDATE`` for one step (``row`` is the current row, updated in place)."""
        sid = row[0]
        for name, value in changes.items():
            row[_SESSION_COLUMNS.index(name)] = value
        if "closed_at" in changes:
            return self.complete_row, (changes["status"], changes["version"], changes["updated_at"],
                                       changes["closed_at"], changes["closed_by"], sid, version), True
        return self.start_row, (changes["status"], changes["version"], changes["updated_at"], sid, version), True

    def _transaction(self, *statements: tuple[str, tuple[Any, ...], bool]) -> None:
        execute = self.conn.execute
        execute("BEGIN IMMEDIATE")
        try:
            for sql, params, checked in statements:
                if execute(sql, params).rowcount != 1 and checked:
                    raise ConflictError(params)
            execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                execute("ROLLBACK")
            raise

    def run(self, n: int) -> None:
        insert_session, insert_event = self.insert_session, self.insert_event
        for i in range(n):
            user = user_for(i)
            sid = self.last_session_id = uuid.uuid4().hex
            now = _now_ms()
            expires = now + _TTL_MS
            row = _session_values(sid, user, now, expires)
            self._transaction(
                (insert_session, row, False),
                (insert_event, (uuid.uuid4().hex, sid, 1, "created", None, "pending", user, now,
                                _created_payload(user, expires)), False),
            )
            current = list(row)
            now = _now_ms()
            self._transaction(
                self._step_update(current, 1, {"status": "in_progress", "version": 2, "updated_at": now}),
                (insert_event, (uuid.uuid4().hex, sid, 2, "started", "pending", "in_progress", user, now, "{}"),
                 False),
            )
            now = _now_ms()
            self._transaction(
                self._step_update(current, 2, {"status": "completed", "version": 3, "updated_at": now,
                                               "closed_at": now, "closed_by": user, "due_at": None}),
                (insert_event, (uuid.uuid4().hex, sid, 3, "completed", "in_progress", "completed", user, now,
                                "{}"), False),
            )

    def close(self) -> None:
        self.conn.close()


Pattern = Literal["transactions", "statement"]


class RawPostgresLifecycle:
    """The lifecycle on one psycopg connection, as three transactions or one statement per step."""

    def __init__(self, connect: dict[str, Any], pattern: Pattern) -> None:
        import psycopg

        self.pattern = pattern
        self.last_session_id: uuid.UUID | None = None
        self.conn = psycopg.connect(**connect, autocommit=pattern == "statement")
        session_placeholders = ", ".join("%s::jsonb" if c == "data" else "%s" for c in _SESSION_COLUMNS)
        event_placeholders = ", ".join("%s::jsonb" if c == "payload" else "%s" for c in _EVENT_COLUMNS)
        self.insert_session = f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) VALUES ({session_placeholders})"
        self.insert_event = f"INSERT INTO session_events ({', '.join(_EVENT_COLUMNS)}) VALUES ({event_placeholders})"
        self.start_row = ("UPDATE sessions SET status = %s, version = %s, updated_at = %s "
                          "WHERE id = %s AND version = %s")
        self.complete_row = ("UPDATE sessions SET status = %s, version = %s, updated_at = %s, closed_at = %s, "
                             "closed_by = %s, due_at = NULL WHERE id = %s AND version = %s")
        # One statement per step: the event is inserted from the CTE's row, so only if the row was written.
        event_select = ("SELECT %s::uuid, w.id, %s::integer, %s::varchar, %s::varchar, %s::varchar, %s::varchar, "
                        "%s::bigint, %s::jsonb FROM w")
        event_insert = f"INSERT INTO session_events ({', '.join(_EVENT_COLUMNS)}) {event_select}"
        self.create_statement = f"WITH w AS ({self.insert_session} RETURNING id) {event_insert}"
        self.start_statement = f"WITH w AS ({self.start_row} RETURNING id) {event_insert}"
        self.complete_statement = f"WITH w AS ({self.complete_row} RETURNING id) {event_insert}"

    def _transactions(self, user: str) -> None:
        conn = self.conn
        execute = conn.execute
        sid = self.last_session_id = uuid.uuid4()
        now = _now_ms()
        expires = now + _TTL_MS
        try:
            execute(self.insert_session, _session_values(sid, user, now, expires))
            execute(self.insert_event, (uuid.uuid4(), sid, 1, "created", None, "pending", user, now,
                                        _created_payload(user, expires)))
            conn.commit()
            now = _now_ms()
            if execute(self.start_row, ("in_progress", 2, now, sid, 1)).rowcount != 1:
                raise ConflictError(sid)
            execute(self.insert_event, (uuid.uuid4(), sid, 2, "started", "pending", "in_progress", user, now, "{}"))
            conn.commit()
            now = _now_ms()
            if execute(self.complete_row, ("completed", 3, now, now, user, sid, 2)).rowcount != 1:
                raise ConflictError(sid)
            execute(self.insert_event, (uuid.uuid4(), sid, 3, "completed", "in_progress", "completed", user, now,
                                        "{}"))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _statements(self, user: str) -> None:
        execute = self.conn.execute
        sid = self.last_session_id = uuid.uuid4()
        now = _now_ms()
        expires = now + _TTL_MS
        if execute(self.create_statement, (*_session_values(sid, user, now, expires), uuid.uuid4(), 1, "created",
                                           None, "pending", user, now, _created_payload(user, expires))
                   ).rowcount != 1:
            raise ConflictError(sid)
        now = _now_ms()
        if execute(self.start_statement, ("in_progress", 2, now, sid, 1, uuid.uuid4(), 2, "started", "pending",
                                          "in_progress", user, now, "{}")).rowcount != 1:
            raise ConflictError(sid)
        now = _now_ms()
        if execute(self.complete_statement, ("completed", 3, now, now, user, sid, 2, uuid.uuid4(), 3, "completed",
                                             "in_progress", "completed", user, now, "{}")).rowcount != 1:
            raise ConflictError(sid)

    def run(self, n: int) -> None:
        step = self._transactions if self.pattern == "transactions" else self._statements
        for i in range(n):
            step(user_for(i))

    def close(self) -> None:
        self.conn.close()
