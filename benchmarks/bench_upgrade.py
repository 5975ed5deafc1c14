"""The schema upgrade of a database of 1,000,000 sessions (quick: 2,000), PostgreSQL and SQLite: its time, per
revision and whole, and how long other processes wait meanwhile.

The database is built at revision ``0003``, the oldest schema a user may still have (the revision of the 0.1.0
dump, ``tests/data/sessionflow-0.1.0.sql``): its schema by sessionflow's own migrations (``upgrade(engine,
"0003")``), its rows by set-based SQL (PostgreSQL ``generate_series``, SQLite a recursive ``WITH``), secondary
indexes and constraints dropped during the inserts and recreated from their own definitions afterwards. The
sessions have the shape of the ``scale`` section's 1,000,000-session set (`benchmarks/population.py`): live
sessions with a one-hour TTL, a third pending (one event, ``created``) and two thirds in progress (``created``,
``started``), due one millisecond apart in the recent past, spread over 1,000 users, 50 workspaces and 10
modules; every row is a copy of a template session that sessionflow wrote itself, each timestamp (the deadline
in its ``created`` payload included) shifted by the same amount. Rows are stored in creation order, as a
store that received them over time holds them. PostgreSQL: ``VACUUM ANALYZE`` and a ``CHECKPOINT`` before
the upgrade (a settled database); SQLite: WAL mode, no statistics (sessionflow never runs ``ANALYZE`` there).

The upgrade is timed as users run it: ``SessionManager.open(url)`` on the database, which upgrades every
pending revision (``0004`` to ``0008``) in **one transaction** (PostgreSQL: behind the advisory lock; SQLite:
``BEGIN IMMEDIATE``) and commits once — except on PostgreSQL ``0007``, which commits the transaction with its
column and trigger, then fills the column and builds its indexes ``CONCURRENTLY`` on transactions of their own
(``0008``, a new table, then runs in the transaction begun after them).
Each revision's share is read from the same run: every statement of the upgrading thread is timestamped
(SQLAlchemy cursor events), and a revision ends when Alembic records it in ``alembic_version``. One run per
database (the build dominates the time): the figures are single measurements, not medians.

While it runs, other processes' work is probed from threads with their own connections, a pause of 20 ms
between operations, from one second before the upgrade until after its commit:

* PostgreSQL: a writer of the version upgraded from (a session's row and its ``created`` event in one
  statement, as its stores wrote them, naming no column the upgrade adds), a reader of
  ``sessions`` (``get``, same kind of manager, no read cache), a reader of ``session_events`` (a session's
  history with 0.1.0's columns: sessionflow's own ``history`` reads the column ``0005`` adds) and a second
  ``SessionManager.open(url)``, started once the upgrade holds its lock;
* SQLite: the write lock taken as every write takes it (``BEGIN IMMEDIATE``, then ``ROLLBACK``; busy timeout
  10 minutes, so the probe waits rather than fails), readers of both tables, and a second
  ``SessionManager.open(url)`` with sessionflow's default busy timeout (30 s).

Each figure is the longest single operation that overlapped the upgrade, next to the median of the same
operation before it. Checked afterwards: row counts (the population plus the writer's sessions), every event
numbered once in the feed (positions 1..n), no schema drift from the tables' definition, and a sample of 200
sessions equal to the fold of their histories.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from benchmarks.dataset import MODULES, USERS, WORKSPACES, _ms
from benchmarks.environment import conninfo, load_average
from benchmarks.framework import Benchmark, Context, Measurement, Section
from benchmarks.population import _OVERDUE_END, _templates
from sessionflow import SessionManager, replay
from sessionflow.adapters.sqlalchemy.migrations import HEAD_REVISION, schema_drift, upgrade
from sessionflow.bootstrap import create_engine

__all__ = ["BENCHMARK", "FROM_REVISION"]

#: The oldest schema revision users may still have: that of the 0.1.0 dump (tests/data/sessionflow-0.1.0.sql).
FROM_REVISION = "0003"
#: The population's template kinds (benchmarks/population.py), by status.
_KINDS = {"pending": "pending-short", "in_progress": "in_progress-short"}
_TIME_COLUMNS = ("created_at", "updated_at", "expires_at", "max_expires_at", "closed_at", "deleted_at", "due_at")
_TEMPLATE_USER = "template-user"
_PAUSE = 0.02
_SQLITE_PROBE_BUSY_MS = 600_000
#: Alembic recording a revision: ``UPDATE alembic_version SET version_num='0004' WHERE ...`` (the new one first).
_REVISION_WRITE = re.compile(r"^\s*(?:UPDATE|INSERT INTO) alembic_version\b.*?'(\w+)'", re.IGNORECASE | re.DOTALL)
_PG_ISO = "to_char(timestamp '1970-01-01' + ({}) * interval '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_SQLITE_ISO = "strftime('%Y-%m-%dT%H:%M:%fZ', ({}) / 1000.0, 'unixepoch')"


# ---------------------------------------------------------------------------------------------- the database


@dataclass
class Built:
    url: str
    sessions: int
    events: int
    seconds: float
    settings: str = ""  # the server settings the upgrade runs with (PostgreSQL)


#: Columns the templates (written by today's code) have and a database at revision 0003 has not: the feed position
#: (0005), the list order (0007), the trace context (0009).
_LATER_COLUMNS = frozenset({"position", "created_position", "traceparent", "tracestate"})


def _template_rows(ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The population's two live templates as rows: sessions (with ``kind``) and events (with ``kind`` and the
    deadlines of the ``created`` payload in milliseconds, ``p_expires``/``p_max_expires``)."""
    templates = _templates(ctx.workdir)
    sessions, events = [], []
    for status, kind in _KINDS.items():
        row, history = templates[kind]
        if row["status"] != status:
            raise AssertionError(f"template {kind} is {row['status']}")
        sessions.append({"kind": status, **{k: v for k, v in row.items() if k not in _LATER_COLUMNS}})
        for e in history:
            payload = json.loads(e["payload"])
            created = e["event"] == "created"
            events.append({"kind": status, **{k: v for k, v in e.items() if k not in _LATER_COLUMNS},
                           "p_expires": _ms(payload["expires_at"]) if created and payload.get("expires_at") else None,
                           "p_max_expires": (_ms(payload["max_expires_at"])
                                             if created and payload.get("max_expires_at") else None)})
    return sessions, events


def _select_sessions(columns: list[str], new_id: str) -> list[str]:
    """The select list of a cloned session, from ``r`` (``due``, ``u``, ``w``, ``m``) and its template ``t``."""
    shift = "(r.due - t.expires_at)"
    exprs = []
    for c in columns:
        if c == "id":
            exprs.append(new_id)
        elif c == "user_id":
            exprs.append("r.u")
        elif c == "workspace_id":
            exprs.append("r.w")
        elif c == "module_name":
            exprs.append("r.m")
        elif c == "closed_by":
            exprs.append("CASE WHEN t.closed_by = t.user_id THEN r.u ELSE t.closed_by END")
        elif c in _TIME_COLUMNS:
            exprs.append(f"t.{c} + {shift}")
        else:
            exprs.append(f"t.{c}")
    return exprs


def _select_events(columns: list[str], iso: str, new_id: str, set_json: Callable[[str, list[tuple[str, str]]], str]
                   ) -> list[str]:
    """The select list of a cloned event, from its session ``s``, the session template ``t`` and event ``e``."""
    shift = "(s.expires_at - t.expires_at)"
    exprs = []
    for c in columns:
        if c == "record_id":
            exprs.append(new_id)
        elif c == "session_id":
            exprs.append("s.id")
        elif c == "performer_id":
            exprs.append(f"CASE WHEN e.performer_id = '{_TEMPLATE_USER}' THEN s.user_id ELSE e.performer_id END")
        elif c == "timestamp":
            exprs.append(f"e.timestamp + {shift}")
        elif c == "payload":
            changes = [("user_id", "s.user_id"), ("workspace_id", "s.workspace_id"),
                       ("module_name", "s.module_name")]
            created = set_json("e.payload", changes)
            for key, ms in (("expires_at", "e.p_expires"), ("max_expires_at", "e.p_max_expires")):
                created = (f"CASE WHEN {ms} IS NULL THEN {created} "
                           f"ELSE {set_json(created, [(key, iso.format(f'{ms} + {shift}'))])} END")
            exprs.append(f"CASE WHEN e.event = 'created' THEN {created} ELSE e.payload END")
        else:
            exprs.append(f"e.{c}")
    return exprs


def _pg_set_json(target: str, changes: list[tuple[str, str]]) -> str:
    pairs = ", ".join(f"'{k}', {v}" for k, v in changes)
    return f"({target} || jsonb_build_object({pairs}))"


def _sqlite_set_json(target: str, changes: list[tuple[str, str]]) -> str:
    pairs = ", ".join(f"'$.{k}', {v}" for k, v in changes)
    return f"json_set({target}, {pairs})"


def _first_deadline(n: int) -> int:
    """As in the population: n deadlines one millisecond apart, the last ten minutes before now."""
    return int((datetime.now(UTC) - _OVERDUE_END).timestamp() * 1000) - n


@contextlib.contextmanager
def _postgres_database(ctx: Context, n: int) -> Iterator[Built]:
    import psycopg

    with ctx.postgres.fresh_database("sfbench_upgrade") as url:
        started = time.perf_counter()
        engine = create_engine(url)
        try:
            upgrade(engine, FROM_REVISION)
        finally:
            engine.dispose()
        tmpl_sessions, tmpl_events = _template_rows(ctx)
        with psycopg.connect(**conninfo(url), autocommit=True) as conn:
            def columns(table: str) -> list[str]:
                return [r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position", (table,))]

            session_columns, event_columns = columns("sessions"), columns("session_events")
            if "position" in event_columns:
                raise AssertionError("the database is not at revision 0003")
            settings = ", ".join(f"{name} {conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
                                 for name in ("shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size"))
            conn.execute("SET work_mem = '256MB'")
            conn.execute("SET maintenance_work_mem = '256MB'")
            conn.execute("CREATE TEMP TABLE t_sessions AS SELECT ''::text AS kind, * FROM sessions WITH NO DATA")
            conn.execute("CREATE TEMP TABLE t_events AS SELECT ''::text AS kind, *, 0::bigint AS p_expires, "
                         "0::bigint AS p_max_expires FROM session_events WITH NO DATA")
            for table, rows in (("t_sessions", tmpl_sessions), ("t_events", tmpl_events)):
                names = list(rows[0])
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) "
                                    f"VALUES ({', '.join('%s' for _ in names)})", [list(r.values()) for r in rows])
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('sessions', 'session_events') "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)").fetchall()
            constraints = conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid IN ('sessions'::regclass, 'session_events'::regclass) AND contype IN ('p', 'u')"
            ).fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            for table, name, _ in constraints:
                conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            conn.execute("SELECT setseed(0.4242)")
            select = _select_sessions(session_columns, "gen_random_uuid()")
            conn.execute(
                f"INSERT INTO sessions ({', '.join(session_columns)}) SELECT {', '.join(select)} FROM ("
                f"SELECT g, %s::bigint + g AS due, random() AS k, "
                f"'user-' || lpad(floor(random() * {USERS})::int::text, 4, '0') AS u, "
                f"'ws-' || lpad(floor(random() * {WORKSPACES})::int::text, 2, '0') AS w, "
                f"'module-' || floor(random() * {MODULES})::int AS m "
                f"FROM generate_series(0, %s - 1) AS g) AS r "
                "JOIN t_sessions AS t ON t.kind = CASE WHEN r.k < 1.0 / 3 THEN 'pending' ELSE 'in_progress' END "
                "ORDER BY r.g", (_first_deadline(n), n))
            ctx.log(f"    sessions inserted ({time.perf_counter() - started:.0f} s)")
            select = _select_events(event_columns, _PG_ISO, "gen_random_uuid()", _pg_set_json)
            conn.execute(
                f"INSERT INTO session_events ({', '.join(event_columns)}) SELECT {', '.join(select)} "
                "FROM sessions AS s JOIN t_sessions AS t ON t.kind = s.status "
                "JOIN t_events AS e ON e.kind = s.status ORDER BY s.expires_at, s.id, e.version")
            ctx.log(f"    events inserted ({time.perf_counter() - started:.0f} s)")
            for table, name, definition in constraints:
                conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            for _, definition in indexes:
                conn.execute(definition)
            ctx.log(f"    constraints and indexes rebuilt ({time.perf_counter() - started:.0f} s)")
            conn.execute("VACUUM ANALYZE sessions")
            conn.execute("VACUUM ANALYZE session_events")
            conn.execute("CHECKPOINT")
            (sessions,) = conn.execute("SELECT count(*) FROM sessions").fetchone()  # type: ignore[misc]
            (events,) = conn.execute("SELECT count(*) FROM session_events").fetchone()  # type: ignore[misc]
            (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()  # type: ignore[misc]
        if (sessions, revision) != (n, FROM_REVISION):
            raise AssertionError(f"built {sessions} sessions at {revision}, expected {n} at {FROM_REVISION}")
        yield Built(url, sessions, events, time.perf_counter() - started, settings)


@contextlib.contextmanager
def _sqlite_database(ctx: Context, n: int) -> Iterator[Built]:
    path = ctx.workdir / f"upgrade-{n}.db"
    url = f"sqlite:///{path}"
    started = time.perf_counter()
    engine = create_engine(url)
    try:
        upgrade(engine, FROM_REVISION)
    finally:
        engine.dispose()
    tmpl_sessions, tmpl_events = _template_rows(ctx)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        def columns(table: str) -> list[str]:
            return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]

        session_columns, event_columns = columns("sessions"), columns("session_events")
        if "position" in event_columns:
            raise AssertionError("the database is not at revision 0003")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        for table, rows in (("t_sessions", tmpl_sessions), ("t_events", tmpl_events)):
            names = list(rows[0])
            conn.execute(f"CREATE TEMP TABLE {table} ({', '.join(names)})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in names)})",
                             [list(r.values()) for r in rows])
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                               "AND tbl_name IN ('sessions', 'session_events')").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        new_id = "lower(hex(randomblob(16)))"
        conn.execute("BEGIN")
        select = _select_sessions(session_columns, new_id)
        conn.execute(
            f"WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < ? - 1) "
            f"INSERT INTO sessions ({', '.join(session_columns)}) SELECT {', '.join(select)} FROM ("
            f"SELECT i, ? + i AS due, abs(random()) % 3 AS k, "
            f"'user-' || substr('000' || (abs(random()) % {USERS}), -4) AS u, "
            f"'ws-' || substr('0' || (abs(random()) % {WORKSPACES}), -2) AS w, "
            f"'module-' || (abs(random()) % {MODULES}) AS m FROM g) AS r "
            "JOIN t_sessions AS t ON t.kind = CASE WHEN r.k = 0 THEN 'pending' ELSE 'in_progress' END "
            "ORDER BY r.i", (n, _first_deadline(n)))
        ctx.log(f"    sessions inserted ({time.perf_counter() - started:.0f} s)")
        select = _select_events(event_columns, _SQLITE_ISO, new_id, _sqlite_set_json)
        conn.execute(
            f"INSERT INTO session_events ({', '.join(event_columns)}) SELECT {', '.join(select)} "
            "FROM sessions AS s JOIN t_sessions AS t ON t.kind = s.status "
            "JOIN t_events AS e ON e.kind = s.status ORDER BY s.rowid, e.version")
        conn.execute("COMMIT")
        ctx.log(f"    events inserted ({time.perf_counter() - started:.0f} s)")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")
        (sessions,) = conn.execute("SELECT count(*) FROM sessions").fetchone()
        (events,) = conn.execute("SELECT count(*) FROM session_events").fetchone()
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        conn.close()
    if (sessions, revision) != (n, FROM_REVISION):
        raise AssertionError(f"built {sessions} sessions at {revision}, expected {n} at {FROM_REVISION}")
    try:
        yield Built(url, sessions, events, time.perf_counter() - started)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- probes


@dataclass
class Probe:
    """An operation repeated in a thread of its own (or once, ``once=True``) until stopped; each operation's
    start, end and error (``None``: it succeeded)."""

    label: str
    operation: Callable[[], object]
    once: bool = False
    after: threading.Event | None = None  # start only once this is set
    spans: list[tuple[float, float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"probe {self.label}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self.after is not None:
            while not self.after.wait(0.05):
                if self._stop.is_set():
                    return
        while not self._stop.is_set():
            began = time.perf_counter()
            error: str | None = None
            try:
                self.operation()
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
            self.spans.append((began, time.perf_counter(), error))
            if self.once:
                return
            self._stop.wait(_PAUSE)

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError(f"probe {self.label} did not stop within {timeout:g} s")

    def before(self, t0: float) -> list[float]:
        return [end - begin for begin, end, error in self.spans if end < t0 and error is None]

    def during(self, t0: float, t1: float) -> list[tuple[float, float, str | None]]:
        return [s for s in self.spans if s[1] > t0 and s[0] < t1]


# ---------------------------------------------------------------------------------------------- the upgrade


@dataclass
class Timed:
    """One upgrade: its statements (start, end, SQL) and its bounds, all on the ``perf_counter`` clock."""

    opened: float = 0.0
    returned: float = 0.0
    statements: list[tuple[float, float, str]] = field(default_factory=list)
    locked: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return self.returned - self.opened

    def revisions(self) -> tuple[float, list[tuple[str, float, list[tuple[float, str]]]], float]:
        """Time before the first revision (open, revision checks, lock), each revision with its statements
        (duration, SQL), and the time from the last revision to the return of ``open`` (the commit)."""
        writes = [i for i, (_, _, sql) in enumerate(self.statements) if _REVISION_WRITE.match(sql)]
        if not writes:
            raise AssertionError("the upgrade recorded no revision")
        reads = [i for i, (_, _, sql) in enumerate(self.statements[:writes[0]])
                 if "from alembic_version" in sql.lower()]
        start = reads[-1] if reads else -1
        boundary = self.statements[start][1] if start >= 0 else self.opened
        before = boundary - self.opened
        revisions = []
        for i in writes:
            match = _REVISION_WRITE.match(self.statements[i][2])
            assert match is not None
            inside = [(end - begin, sql) for begin, end, sql in self.statements[start + 1:i + 1]]
            revisions.append((match.group(1), self.statements[i][1] - boundary, inside))
            boundary, start = self.statements[i][1], i
        return before, revisions, self.returned - boundary


@contextlib.contextmanager
def _recording(timed: Timed) -> Iterator[Timed]:
    """Timestamps of every statement the calling thread runs (its upgrade) into ``timed``, for the duration of
    the block."""
    me = threading.get_ident()
    pending: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == me:
            pending[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == me:
            began = pending.pop(id(cursor), None)
            if began is not None:
                timed.statements.append((began, time.perf_counter(), " ".join(statement.split())))
                if "pg_advisory_xact_lock" in statement or statement.strip().upper() == "BEGIN IMMEDIATE":
                    timed.locked.set()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield timed
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def _upgrade_with_probes(ctx: Context, url: str, probes: list[Probe], warmup: float) -> Timed:
    timed = Timed()
    for probe in probes:
        if probe.once:
            probe.after = timed.locked
        probe.start()
    try:
        time.sleep(warmup)
        with _recording(timed):
            timed.opened = time.perf_counter()
            SessionManager.open(url).close()
            timed.returned = time.perf_counter()
        time.sleep(min(1.0, warmup))
    finally:
        errors = []
        for probe in probes:
            try:
                probe.stop()
            except AssertionError as error:
                errors.append(str(error))
        if errors:
            raise AssertionError("; ".join(errors))
    ctx.log(f"    upgraded in {timed.seconds:.1f} s")
    return timed


def _old_writer(url: str, stack: contextlib.ExitStack) -> Callable[[], uuid.UUID]:
    """A writer of the version being upgraded from: each call stores a new session as its stores did — the row
    and its ``created`` event in one statement, naming no column nor object the upgrade adds (the position,
    the list order: the database's triggers give them, once the revisions that add them have run)."""
    import psycopg

    from sessionflow.adapters.sqlalchemy.layout import EVENT_COLUMNS, SESSION_COLUMNS
    from sessionflow.adapters.sqlalchemy.postgres_sql import PostgresSql
    from sessionflow.adapters.sqlalchemy.rows import session_row

    conn = stack.enter_context(psycopg.connect(**conninfo(url), autocommit=True))
    source = stack.enter_context(SessionManager.in_memory())
    sql = PostgresSql()
    old_events = [c for c in EVENT_COLUMNS if c not in _LATER_COLUMNS]
    marks = {c: "%s::jsonb" if c in ("data", "payload") else "%s" for c in (*SESSION_COLUMNS, *EVENT_COLUMNS)}
    statement = (f"WITH w AS (INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES "
                 f"({', '.join(marks[c] for c in SESSION_COLUMNS)}) RETURNING 1) "
                 f"INSERT INTO session_events ({', '.join(old_events)}) SELECT * FROM (VALUES "
                 f"({', '.join(marks[c] for c in old_events)})) AS v WHERE EXISTS (SELECT 1 FROM w)")

    def write() -> uuid.UUID:
        session = source.create(user_id="upgrade-probe", performer_id="upgrade-probe")
        (created,) = source.history(session.id)
        event = dict(zip(EVENT_COLUMNS, sql.event_values(created), strict=True))
        conn.execute(statement, [*sql.row_params(session.id, session_row(session), 0, create=True),
                                 *(event[c] for c in old_events)])
        return session.id

    return write


def _postgres_probes(url: str, stack: contextlib.ExitStack) -> list[Probe]:
    import psycopg

    writer = _old_writer(url, stack)
    reader = stack.enter_context(SessionManager.open(url, migrate=False, cache_size=0))
    known = writer()
    raw = stack.enter_context(psycopg.connect(**conninfo(url), autocommit=True))

    def history() -> object:
        return raw.execute("SELECT version, event, payload FROM session_events WHERE session_id = %s "
                           "ORDER BY version", (known,)).fetchall()

    return [
        Probe("write (a create as the version upgraded from writes it)", writer),
        Probe("read of sessions (sessionflow get)", lambda: reader.get(known)),
        Probe("read of session_events (a history)", history),
        Probe("second SessionManager.open", lambda: SessionManager.open(url).close(), once=True),
    ]


def _sqlite_probes(url: str, stack: contextlib.ExitStack) -> list[Probe]:
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (known,) = conn.execute("SELECT id FROM sessions ORDER BY rowid LIMIT 1").fetchone()
    locker = stack.enter_context(contextlib.closing(
        sqlite3.connect(path, isolation_level=None, check_same_thread=False)))
    locker.execute(f"PRAGMA busy_timeout = {_SQLITE_PROBE_BUSY_MS}")
    reader = stack.enter_context(contextlib.closing(
        sqlite3.connect(path, isolation_level=None, check_same_thread=False)))

    def write_lock() -> None:
        locker.execute("BEGIN IMMEDIATE")
        locker.execute("ROLLBACK")

    def read() -> object:
        return (reader.execute("SELECT * FROM sessions WHERE id = ?", (known,)).fetchone(),
                reader.execute("SELECT version, event, payload FROM session_events WHERE session_id = ? "
                               "ORDER BY version", (known,)).fetchall())

    return [
        Probe("write lock (BEGIN IMMEDIATE, as every write)", write_lock),
        Probe("read of sessions and session_events", read),
        Probe("second SessionManager.open (busy timeout 30 s)", lambda: SessionManager.open(url).close(),
              once=True),
    ]


def _check(url: str, built: Built, sample: int) -> str:
    """Counts, feed positions, schema drift and a sample folded; a one-line account of what was checked."""
    engine = create_engine(url)
    try:
        drift = schema_drift(engine)
        with engine.connect() as conn:
            from sqlalchemy import text

            sessions, events, positions, low, high = conn.execute(text(
                "SELECT (SELECT count(*) FROM sessions), count(*), count(DISTINCT position), min(position), "
                "max(position) FROM session_events")).one()
            ids = [r[0] for r in conn.execute(text(
                "SELECT id FROM sessions WHERE user_id <> 'upgrade-probe' ORDER BY random() LIMIT :n"), {"n": sample})]
            (revision,) = conn.execute(text("SELECT version_num FROM alembic_version")).one()
    finally:
        engine.dispose()
    if drift:
        raise AssertionError(f"schema drift after the upgrade: {drift[:3]}")
    if revision != HEAD_REVISION:
        raise AssertionError(f"upgraded to {revision}, not {HEAD_REVISION}")
    if (positions, low, high) != (events, 1, events) or sessions < built.sessions or events < built.events:
        raise AssertionError(f"{sessions} sessions, {events} events with {positions} positions {low}..{high}")
    with SessionManager.open(url, migrate=False, cache_size=0) as manager:
        for sid in ids:
            session = manager.store.get(sid if isinstance(sid, uuid.UUID) else uuid.UUID(sid))
            if session is None or replay(manager.history(session.id)) != session:
                raise AssertionError(f"session {sid} does not equal the fold of its history")
    return (f"{sessions:,} sessions ({sessions - built.sessions:,} written by the probe), {events:,} events numbered "
            f"1..{events:,} once each, no schema drift, {len(ids)} sampled sessions equal to their folds")


# ---------------------------------------------------------------------------------------------- report


@dataclass
class Outcome:
    db: str
    built: Built
    timed: Timed
    probes: list[Probe]
    checked: str


def _seconds(value: float) -> str:
    if value >= 0.1:
        return f"{value:.1f} s"
    return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1e6:.0f} µs"


def _short(sql: str) -> str:
    sql = re.sub(r"\s+", " ", sql).strip()
    return sql if len(sql) <= 72 else sql[:69] + "..."


def _report(section: Section, outcomes: list[Outcome], n: int) -> None:
    whole: dict[str, Measurement] = {}
    rows = ["| Database | Sessions | Events | Built at 0003 in | Whole upgrade (`SessionManager.open`) | "
            "Before the revisions | " + " | ".join(f"`{r}`" for r, _, _ in outcomes[0].timed.revisions()[1])
            + " | Commit and the rest of `open` |",
            "|---|---|---|---|---|---|" + "---|" * len(outcomes[0].timed.revisions()[1]) + "---|"]
    statements = ["| Database | Revision | Statement | Time |", "|---|---|---|---|"]
    blocking = ["| Database | Concurrent operation | Operations overlapping the upgrade | Longest | Median before "
                "the upgrade | Failed |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        before, revisions, commit = o.timed.revisions()
        total = o.timed.seconds
        whole[o.db] = section.add(Measurement(f"{o.db}: whole upgrade {FROM_REVISION} to {HEAD_REVISION}",
                                              "session", (total / n,), ops_per_round=n))
        for revision, seconds, _ in revisions:
            section.add(Measurement(f"{o.db}: revision {revision}", "session", (max(seconds, 1e-9) / n,),
                                    ops_per_round=n))
        rows.append(f"| {o.db} | {o.built.sessions:,} | {o.built.events:,} | {_seconds(o.built.seconds)} | "
                    f"**{_seconds(total)}** | {_seconds(before)} | "
                    + " | ".join(_seconds(s) for _, s, _ in revisions) + f" | {_seconds(commit)} |")
        for revision, seconds, inside in revisions:
            shown = [(d, sql) for d, sql in inside if d >= max(0.01 * total, 0.001)]
            if len(inside) == 1:  # only Alembic's own update of alembic_version
                statements.append(f"| {o.db} | `{revision}` | (nothing on this database but `alembic_version`) | "
                                  f"{_seconds(seconds)} |")
            elif not shown:
                statements.append(f"| {o.db} | `{revision}` | (no statement over 1% of the upgrade) | "
                                  f"{_seconds(seconds)} |")
            for d, sql in sorted(shown, key=lambda x: -x[0]):
                statements.append(f"| {o.db} | `{revision}` | `{_short(sql)}` | {_seconds(d)} |")
        for probe in o.probes:
            during = probe.during(o.timed.opened, o.timed.returned)
            typical = probe.before(o.timed.opened)
            failed = [error for _, _, error in during if error]
            longest = max((end - begin for begin, end, _ in during), default=0.0)
            blocking.append(f"| {o.db} | {probe.label} | {len(during)} | **{_seconds(longest)}** | "
                            f"{_seconds(statistics.median(typical)) if typical else 'n/a'} | "
                            + (f"{len(failed)}: {failed[0]}" if failed else "0") + " |")
            if not probe.once and typical and during and probe.label.startswith("write"):
                section.compare(
                    section.add(Measurement(f"{o.db}: longest {probe.label.split(' (')[0]} during the upgrade",
                                            "write", (longest,), ops_per_round=1)),
                    section.add(Measurement(f"{o.db}: {probe.label.split(' (')[0]} before the upgrade (median)",
                                            "write", (statistics.median(typical),), ops_per_round=len(typical))),
                    "latency")
    if len(whole) == 2:
        section.compare(whole["PostgreSQL"], whole["SQLite"], "latency")
    for o in outcomes:
        lock = next((p for p in o.probes if p.label.startswith("write lock")), None)
        spans = lock.during(o.timed.opened, o.timed.returned) if lock is not None else []
        if spans:
            begin, end, _ = max(spans, key=lambda s: s[1] - s[0])
            if begin < o.timed.opened + o.timed.revisions()[0] and end < o.timed.returned:
                section.notes.append(
                    f"{o.db}: the write lock was free again {_seconds(o.timed.returned - end)} before "
                    "`SessionManager.open` returned: the committing connection runs SQLite's automatic WAL "
                    "checkpoint after its commit, without the write lock.")
    section.blocks.append("The upgrade from revision `0003` to the head, as `SessionManager.open` runs it (one "
                          "transaction; the revisions' times from the same run):\n\n" + "\n".join(rows))
    section.blocks.append("Where the time goes (the statements of each revision taking over 1% of the upgrade):\n\n"
                          + "\n".join(statements))
    section.blocks.append("Other work during the upgrade (each operation from its own thread and connection, 20 ms "
                          "apart; \"longest\": the longest single operation that overlapped the upgrade):\n\n"
                          + "\n".join(blocking))


def run(ctx: Context) -> Section:
    section = Section(name="upgrade", title="Schema upgrade of 1,000,000 sessions from revision 0003",
                      description=__doc__ or "")
    n = ctx.scale(1_000_000, 2_000)
    sample = ctx.scale(200, 20)
    warmup = ctx.scale(1.0, 0.3)
    loads = [load_average()]
    outcomes: list[Outcome] = []
    for db, build, probes in (("PostgreSQL", _postgres_database, _postgres_probes),
                              ("SQLite", _sqlite_database, _sqlite_probes)):
        ctx.log(f"  {db}: building {n:,} sessions at revision {FROM_REVISION}")
        with build(ctx, n) as built:
            ctx.log(f"    built: {built.sessions:,} sessions, {built.events:,} events in {built.seconds:.0f} s")
            loads.append(load_average())
            with contextlib.ExitStack() as stack:
                running = probes(built.url, stack)
                timed = _upgrade_with_probes(ctx, built.url, running, warmup)
            loads.append(load_average())
            checked = _check(built.url, built, sample)
            ctx.log(f"    checked: {checked}")
            outcomes.append(Outcome(db, built, timed, running, checked))
    _report(section, outcomes, n)
    for block in section.blocks:
        ctx.log(block)
    for o in outcomes:
        section.notes.append(f"{o.db}: checked after the upgrade: {o.checked}.")
    section.notes.append(f"PostgreSQL server: {ctx.postgres.origin}, over loopback TCP; the upgrade ran with "
                         f"its settings {outcomes[0].built.settings}.")
    section.notes.append("Load average (1 min) at the start, after each build and after each upgrade: "
                         + " / ".join(f"{x:.2f}" for x in loads))
    return section


BENCHMARK = Benchmark(name="upgrade", title="Schema upgrade of 1,000,000 sessions from revision 0003", run=run,
                      order=75, needs_postgres=True,
                      summary="SessionManager.open on a 1M-session database at revision 0003: the whole upgrade, "
                              "each revision, and how long writers, readers and a second open wait")
