"""The PostgreSQL store's hand-written SQL, built from the row layout (``layout.py``) once: the hot path's
statements (:class:`PostgresSql`), the sweep's claim and batch statements, and the one-round-trip execution
of a query string on libpq (:func:`pg_exec`, :func:`pg_rows`), which the store's sweep uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sessionflow.adapters.sqlalchemy.driver import active_query
from sessionflow.adapters.sqlalchemy.layout import (
    EVENT_COLUMNS,
    EXPIRY_SETS,
    KEY_COLUMNS,
    KEY_SETS,
    SESSION_COLUMNS,
    EventRow,
    ExpiryUpdate,
    KeyRow,
    casts,
)
from sessionflow.adapters.sqlalchemy.rows import FastSql
from sessionflow.domain.models import SessionEvent

__all__ = ["CHUNK", "CLAIM", "CLAIM_NEXT", "EXPIRE", "EXPIRE_AND_COMMIT", "EXPIRE_ARRAYS", "JSON_WRITES",
           "KEY_CONSTRAINT", "WRITTEN", "PostgresSql", "by_id", "by_record", "pg_exec", "pg_rows", "send_chunk"]

#: Each column's type (the casts of the statements built from the row layout).
_CAST = casts("postgresql")


def _param(column: str) -> str:
    """A positional parameter for ``column`` (JSON text is cast to ``jsonb``)."""
    return "%s::jsonb" if _CAST[column] == "jsonb" else "%s"


#: The primary key of ``idempotency_keys``: a keyed append that violates it met a live key of its scope.
KEY_CONSTRAINT = "pk_idempotency_keys"

_KEY_NAMES = ", ".join(KEY_COLUMNS)
#: A keyed append's key, as CTEs that follow the session's write ``w`` (its parameters: a :class:`KeyRow`): ``kv``
#: holds the key's row only if ``w`` wrote (a version check that failed writes no key); ``k`` inserts it, or
#: writes it over a stored key that expired by the row's ``created_at``; when ``k`` wrote nothing (a live key is
#: stored), ``kx`` inserts it once more — a unique violation on :data:`KEY_CONSTRAINT` (also when the live key is
#: another transaction's, once that one commits), which aborts the whole statement: nothing is written.
_KEEP_KEY = (
    ", kv AS (SELECT " + ", ".join(f"%s::{_CAST[c]} AS {c}" for c in KEY_COLUMNS) + " WHERE EXISTS (SELECT 1 FROM w))"
    f", k AS (INSERT INTO idempotency_keys ({_KEY_NAMES}) SELECT {_KEY_NAMES} FROM kv "
    f"ON CONFLICT (scope, key) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in KEY_SETS)} "
    "WHERE idempotency_keys.expires_at <= EXCLUDED.created_at RETURNING 1)"
    f", kx AS (INSERT INTO idempotency_keys ({_KEY_NAMES}) SELECT {_KEY_NAMES} FROM kv "
    "WHERE NOT EXISTS (SELECT 1 FROM k))")

#: The feed position a create takes for its session's ``created`` event: the feed's advisory lock first (held to
#: the commit, so positions follow commit order), then the sequence — what the events' trigger does for an
#: event inserted without one (revision 0005's ``sessionflow_event_position``).
_TAKE_POSITION = ("WITH p AS (SELECT nextval('session_events_position_seq') AS position "
                  "FROM (SELECT pg_advisory_xact_lock(1936942450, 1) OFFSET 0) AS feed_lock)")


class PostgresSql(FastSql):
    """The hot path's SQL on PostgreSQL (``%s`` parameters, native UUIDs)."""

    dialect = "postgresql"

    def __init__(self) -> None:
        cols = ", ".join(SESSION_COLUMNS)
        self.select_session = f"SELECT {cols} FROM sessions WHERE id = %s"
        self.select_version = "SELECT version FROM sessions WHERE id = %s"
        self.select_active = active_query("%s")
        #: Two transactions checking the same user's sessions at once would both see none: one waits here.
        self.lock_user = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
        #: A new session's row with its list order (``created_position``): a feed position the statement takes
        #: itself, as the events' trigger would (the feed's lock, then the sequence: revision 0005), and gives
        #: to the session's ``created`` event — so the row is written once (see revision 0007).
        self._insert_session = (
            f"INSERT INTO sessions ({cols}, created_position) VALUES ("
            + ", ".join(_param(c) for c in SESSION_COLUMNS)
            + ", (SELECT position FROM p)) RETURNING created_position AS position")
        self.select_key = ("SELECT fingerprint, session_id, version, expires_at FROM idempotency_keys "
                           "WHERE scope = %s AND key = %s")
        self._statements: dict[tuple[tuple[str, ...] | None, int, bool], str] = {}

    def uuid(self, value: Any) -> Any:
        return value

    def append_statement(self, update_columns: tuple[str, ...] | None, events: int, keyed: bool = False) -> str:
        """One statement that inserts the projection row (``update_columns`` None) or updates just
        ``update_columns`` with a version compare-and-set, and — only if that matched — ``events`` event rows and,
        when ``keyed``, the change's idempotency key (:data:`_KEEP_KEY`).

        Positional parameters, in the order :meth:`append_params` gives them.
        """
        key = (update_columns, events, keyed)
        statement = self._statements.get(key)
        if statement is None:
            rows = ", ".join(
                "(" + ", ".join(f"%s::{_CAST[c]}" for c in EVENT_COLUMNS) + ")" for _ in range(events))
            values = f"FROM (VALUES {rows}) AS v({', '.join(EVENT_COLUMNS)})"
            if update_columns is None:  # the created event (version 1) takes the row's position
                write = f"{_TAKE_POSITION}, w AS ({self._insert_session})"
                position = ", CASE WHEN v.version = 1 THEN w.position END"
                values += ", w"
            else:
                sets = ", ".join(f"{c} = {_param(c)}" for c in update_columns)
                write = f"WITH w AS (UPDATE sessions SET {sets} WHERE id = %s AND version = %s RETURNING 1)"
                position = ""
                values += " WHERE EXISTS (SELECT 1 FROM w)"
            if keyed:
                write += _KEEP_KEY
            statement = (
                f"{write} INSERT INTO session_events ({', '.join(EVENT_COLUMNS)}{', position' if position else ''}) "
                f"SELECT {', '.join('v.' + c for c in EVENT_COLUMNS)}{position} {values}")
            self._statements[key] = statement
        return statement

    def append_params(self, session_id: Any, columns: dict[str, Any], events: Sequence[SessionEvent],
                      expected_version: int, *, create: bool, key: KeyRow | None = None) -> list[Any]:
        """The parameters of :meth:`append_statement`: :meth:`row_params`, the key's row (when keyed), then each
        event's values."""
        params = self.row_params(session_id, columns, expected_version, create=create)
        if key is not None:
            params += key
        for event in events:
            params += self.event_values(event)
        return params


def by_id(update: ExpiryUpdate) -> Any:
    return update.id


def by_record(event: EventRow) -> Any:
    return event.record_id


def send_chunk(conn: Any, updates: list[ExpiryUpdate], events: list[EventRow]) -> Any:
    """Send one chunk of a large batch (:data:`EXPIRE_ARRAYS`) on ``conn``, in pipeline mode; its cursor."""
    updates.sort(key=by_id)
    events.sort(key=by_record)
    columns = [list(column) for column in zip(*updates, strict=True)]
    columns += [list(column) for column in zip(*events, strict=True)]
    return conn.execute(EXPIRE_ARRAYS, columns, prepare=True)


def pg_exec(conn: Any, query: str, params: Sequence[Any] | None = None) -> Any:
    """Run ``query`` (statements separated by ``;``, ``%s`` parameters quoted client-side by psycopg) in ONE
    call of libpq's blocking ``PQexec`` on psycopg connection ``conn``; the last statement's result (a
    ``psycopg.pq.PGresult``). Errors are raised as psycopg's, a broken connection as ``OperationalError``."""
    import psycopg
    from psycopg import pq

    text_ = psycopg.ClientCursor(conn).mogrify(query, params) if params is not None else query
    encoding = conn.info.encoding
    pgconn = conn.pgconn
    with conn.lock:
        result = pgconn.exec_(text_.encode(encoding))
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return result
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(pq.error_message(pgconn, encoding=encoding))
    raise psycopg.errors.error_from_result(result, encoding=encoding)


def pg_rows(conn: Any, result: Any) -> list[tuple[Any, ...]]:
    """The rows of a ``PGresult``, loaded as psycopg's cursors load them."""
    from psycopg.adapt import Transformer

    loader = Transformer(conn)
    loader.set_pgresult(result)
    rows: list[tuple[Any, ...]] = loader.load_rows(0, result.ntuples, tuple)
    return rows


# ---------------------------------------------------------------------- the sweep's SQL

_EVENT_NAMES = ", ".join(EVENT_COLUMNS)
_UPDATE_NAMES = ", ".join(ExpiryUpdate._fields)
# ``data`` as text: psycopg would build a dict of lists per row, alive for the whole batch.
CLAIM = (f"SELECT {', '.join('data::text' if c == 'data' else c for c in SESSION_COLUMNS)} FROM sessions "
          "WHERE due_at <= %s ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED")
#: The claim, and in the same statement the earliest deadline of every session it did not claim (those another
#: transaction holds included): the claimed rows, each with that deadline as its last column; or, when none
#: was claimed, one row of NULLs with it.
CLAIM_NEXT = (
    f"WITH c AS ({CLAIM}) SELECT c.*, n.next FROM (SELECT min(s.due_at) AS next FROM sessions AS s "
    "WHERE s.due_at IS NOT NULL AND s.id NOT IN (SELECT id FROM c)) AS n LEFT JOIN c ON true ORDER BY c.due_at")


def _field(row: str, index: int, column: str) -> str:
    """Field ``index`` of the JSON array ``row``, as ``column``'s type."""
    cast = _CAST[column]
    if cast == "jsonb":
        return f"{row} -> {index}"
    return f"{row} ->> {index}" if cast in ("varchar", "text") else f"({row} ->> {index})::{cast}"


def _array(column: str) -> str:
    """A binary array parameter of ``column``'s values (JSON as text)."""
    return f"%b::{'text' if _CAST[column] == 'jsonb' else _CAST[column]}[]"


def _expire(updates: str, events: str) -> str:
    """The statement writing a batch: the compare-and-set updates (``updates``: a relation of
    :class:`ExpiryUpdate` rows named ``u``), then the events (``events``: of :class:`EventRow` rows named ``e``)
    of the sessions it updated; it returns their session ids."""
    return (f"WITH u AS ({updates}), w AS (UPDATE sessions AS s SET "
            + ", ".join(f"{c} = u.{c}" for c in EXPIRY_SETS)
            + " FROM u WHERE s.id = u.id AND s.version = u.expected RETURNING s.id) "
            f"INSERT INTO session_events ({_EVENT_NAMES}) SELECT "
            + ", ".join(f"e.{c}::jsonb" if _CAST[c] == "jsonb" else f"e.{c}" for c in EVENT_COLUMNS)
            + f" FROM ({events}) AS e WHERE e.session_id IN (SELECT id FROM w) RETURNING session_id")


def _from_json(fields: tuple[str, ...]) -> str:
    """The rows of a JSON array of arrays (a parameter) as a relation with ``fields``."""
    return ("SELECT " + ", ".join(f"{_field('j', i, f)} AS {f}" for i, f in enumerate(fields))
            + " FROM jsonb_array_elements(%s::jsonb) AS j")


#: One statement for a whole batch: the rows' compare-and-set updates, then the events of the rows it updated.
#: Parameters: the updates and the events, each one JSON array of arrays (dumped by the json module in C and
#: unpacked by the server: no per-value work in Python).
EXPIRE = _expire(_from_json(ExpiryUpdate._fields), _from_json(EVENT_COLUMNS))
#: The same over arrays, one per column of the updates then one per column of the events, sent in binary (a
#: large batch: psycopg dumps a 1,000-element array several times faster that way than as text, and the server
#: unpacks arrays faster than JSON).
EXPIRE_ARRAYS = _expire(
    f"SELECT * FROM unnest({', '.join(_array(f) for f in ExpiryUpdate._fields)}) AS u({_UPDATE_NAMES})",
    f"SELECT * FROM unnest({', '.join(_array(c) for c in EVENT_COLUMNS)}) AS e({_EVENT_NAMES})")
#: The record ids of a batch's events (parameter: the batch's events, as for EXPIRE).
_RECORDS = f"SELECT record_id FROM ({_from_json(EVENT_COLUMNS)}) AS e"
#: Batches larger than this are sent as arrays (EXPIRE_ARRAYS), in chunks, rather than as JSON. Per session the
#: arrays are faster at every batch size (a sweep of 6,000 overdue sessions, interleaved rounds, JSON time over
#: arrays time: batches of 25 1.47x, 50 1.16x, 100 1.09x, 200 1.06x; 20,000 in batches of 1,000: 1.39x), but a
#: small batch — a waker's wake-up, a few sessions — goes as one JSON statement in the round trip that commits
#: it (pipeline mode costs more calls into the driver, each a GIL hand-off: see ``docs/timeouts.md``).
JSON_WRITES = 100
#: How many sessions of a large batch one statement writes (see ``_write_overlapped``).
CHUNK = 200
#: Which sessions of a batch have their events (parameter: the batch's events, as for EXPIRE).
WRITTEN = f"SELECT DISTINCT session_id FROM session_events WHERE record_id IN ({_RECORDS})"
#: The batch statement, COMMIT, and how many of the batch's events are there, as one query string.
EXPIRE_AND_COMMIT = f"{EXPIRE}; COMMIT; SELECT count(*) FROM session_events WHERE record_id IN ({_RECORDS})"

