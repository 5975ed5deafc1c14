"""Databases of sessions with chosen deadlines, for the timeout benchmarks (sweep, pending memory).

Like :mod:`benchmarks.dataset`, rows are cloned from *templates* that sessionflow itself wrote into a scratch
database, then bulk-inserted with ``executemany`` into a schema created by sessionflow's migrations (secondary
indexes dropped during the insert and recreated from their own SQL). Every timestamp of a clone, including the
deadline inside its ``created`` payload, is shifted by the same amount, so a clone is exactly the row and the
history sessionflow would have written at that time.

A population has three parts:

* ``overdue``: live sessions (pending and in progress, 2:3) with a one-hour TTL whose deadlines fell due in
  the past, one per millisecond (``first_deadline_ms + k`` for k = 0, 1, ...), assigned to the ids in random
  order. Sweeping "as of" the k-th deadline therefore finds exactly k + 1 sessions due.
* ``live``: pending and in-progress sessions whose deadlines are years ahead (a ten-year TTL).
* ``closed``: completed and failed sessions (no deadline).

The SQLite file is cached under the cache directory, keyed by the sizes, the schema and :data:`FORMAT`
(overdue deadlines stay in the past and live ones years ahead, so a cached file stays valid). A PostgreSQL
copy is loaded from it with ``COPY`` (:func:`load_postgres`).
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.dataset import _clone_events, _clone_session, _schema, user_name
from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.adapters.sqlalchemy.migrations import head_revision
from sessionflow.domain.values import MAX_TTL

__all__ = ["FORMAT", "Population", "load_postgres", "population"]

#: Bump when the way populations are generated changes.
FORMAT = 2  # 2: each clone's list order (created_position) is its own created event's position
_SEED = 4_242_026
_CHUNK = 50_000
_SHORT_TTL = timedelta(hours=1)
#: Overdue deadlines end this long before the build (so a sweep "as of" the last one is in the past).
_OVERDUE_END = timedelta(minutes=10)
_USERS = 1000


class _FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class Population:
    """A built SQLite file: ``overdue`` sessions due at ``first_deadline_ms + k`` ms, ``live`` and ``closed``."""

    path: Path
    overdue: int
    live: int
    closed: int
    first_deadline_ms: int
    built_seconds: float

    @property
    def size(self) -> int:
        return self.overdue + self.live + self.closed

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def due_at(self, count: int) -> datetime:
        """The instant "as of" which exactly ``count`` overdue sessions are due (1 <= count <= overdue)."""
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.first_deadline_ms + count - 1)


_KINDS = ("pending-short", "in_progress-short", "pending-long", "in_progress-long", "completed", "failed")


def _templates(workdir: Path) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    path = workdir / "population-templates.db"
    path.unlink(missing_ok=True)
    clock = _FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    ids: dict[str, str] = {}
    with SessionManager.open(f"sqlite:///{path}", clock=clock) as manager:
        for kind in _KINDS:
            status, _, length = kind.partition("-")
            ttl = MAX_TTL if length == "long" else _SHORT_TTL
            s = manager.create(user_id="template-user", workspace_id="template-ws", module_name="template-module",
                               metadata={"source": "benchmarks", "priority": 2}, ttl=ttl,
                               performer_id="template-user")
            if status != "pending":
                manager.start(s.id, performer_id="template-user")
            if status == "completed":
                manager.complete(s.id, performer_id="template-user")
            if status == "failed":
                manager.fail(s.id, reason="worker lost", performer_id="template-user")
            ids[kind] = s.id.hex
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {
            kind: (
                dict(conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()),
                [dict(r) for r in conn.execute(
                    "SELECT * FROM session_events WHERE session_id = ? ORDER BY version", (sid,))],
            )
            for kind, sid in ids.items()
        }
    finally:
        conn.close()


def _build(path: Path, overdue: int, live: int, closed: int, first_deadline_ms: int, workdir: Path,
           log: Callable[[str], None]) -> None:
    import json

    templates = _templates(workdir)
    rng = random.Random(_SEED)
    size = overdue + live + closed
    kinds = ([rng.choice(("pending-short", "in_progress-short", "in_progress-short")) for _ in range(overdue)]
             + [rng.choice(("pending-long", "in_progress-long")) for _ in range(live)]
             + [rng.choice(("completed", "completed", "completed", "failed")) for _ in range(closed)])
    deadlines = list(range(first_deadline_ms, first_deadline_ms + overdue))
    rng.shuffle(deadlines)
    order = list(range(size))
    rng.shuffle(order)  # kinds spread over the id range (ids are sorted)
    session_ids = sorted(uuid.uuid4().hex for _ in range(size))
    events_total = sum(len(templates[k][1]) for k in kinds)
    record_ids = iter(sorted(uuid.uuid4().hex for _ in range(events_total)))
    next_position = 1
    payloads = {k: [json.loads(e["payload"]) if e["event"] == "created" else None for e in events]
                for k, (_, events) in templates.items()}
    session_columns = list(templates["completed"][0])
    event_columns = list(templates["completed"][1][0])
    insert_session = (f"INSERT INTO sessions ({', '.join(session_columns)}) "
                      f"VALUES ({', '.join('?' for _ in session_columns)})")
    insert_event = (f"INSERT INTO session_events ({', '.join(event_columns)}) "
                    f"VALUES ({', '.join('?' for _ in event_columns)})")
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        indexes = [(name, sql) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('sessions', 'session_events')")]
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        conn.execute("BEGIN")
        next_deadline = iter(deadlines)
        for chunk in range(0, size, _CHUNK):
            session_rows: list[tuple[Any, ...]] = []
            event_rows: list[tuple[Any, ...]] = []
            for position in range(chunk, min(size, chunk + _CHUNK)):
                i = order[position]
                kind = kinds[i]
                session_template, event_templates = templates[kind]
                if kind.endswith("-short"):  # overdue: its deadline is given
                    shift = next(next_deadline) - session_template["expires_at"]
                else:  # created within the last 30 days
                    shift = now_ms - rng.randrange(30 * 86_400_000) - session_template["created_at"]
                user = user_name(rng.randrange(_USERS))
                ws = f"ws-{rng.randrange(50):02d}"
                module = f"module-{rng.randrange(10)}"
                sid = session_ids[position]
                first = next_position  # (the clone's created event comes first)
                next_position += len(event_templates)
                session_rows.append(_clone_session(session_template, sid, user, ws, module, shift, first))
                event_rows.extend(_clone_events(event_templates, payloads[kind], record_ids, sid, user, ws, module,
                                                shift, iter(range(first, next_position))))
            conn.executemany(insert_session, session_rows)
            conn.executemany(insert_event, event_rows)
            if size > _CHUNK:
                log(f"    sessions: {min(size, chunk + _CHUNK):,}/{size:,} ({time.perf_counter() - started:.0f} s)")
        conn.execute("COMMIT")
        for _name, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _check(pop: Population, sample: int) -> None:
    """A random sample read back through sessionflow (without expiring anything): each session equals the
    fold of its history; the overdue ones are live and due exactly where the population says."""
    conn = sqlite3.connect(pop.path)
    try:
        rows = conn.execute("SELECT id, due_at FROM sessions ORDER BY random() LIMIT ?", (sample,)).fetchall()
        (due,) = conn.execute("SELECT count(*) FROM sessions WHERE due_at <= ?",
                              (pop.first_deadline_ms + pop.overdue - 1,)).fetchone()
        (total,) = conn.execute("SELECT count(*) FROM sessions").fetchone()
    finally:
        conn.close()
    if (due, total) != (pop.overdue, pop.size):
        raise AssertionError(f"population {pop.path}: {due} due of {total}, expected {pop.overdue} of {pop.size}")
    with SessionManager.open(pop.url, migrate=False, cache_size=0) as manager:
        for sid, due_at in rows:
            session = manager.store.get(uuid.UUID(sid))
            if session is None:
                raise AssertionError(f"session {sid} does not read back")
            if replay(manager.history(session.id)) != session:
                raise AssertionError(f"session {sid}: the projection differs from the fold of its events")
            live = session.status in (SessionStatus.PENDING, SessionStatus.IN_PROGRESS)
            if live != (due_at is not None):
                raise AssertionError(f"session {sid}: {session.status} with due_at {due_at}")


def population(overdue: int, live: int, closed: int, *, cache_dir: Path, workdir: Path,
               log: Callable[[str], None]) -> Population:
    """The SQLite population of these sizes: from the cache, or built (and cached) now."""
    probe = workdir / "population-schema-probe.db"
    probe.unlink(missing_ok=True)
    SessionManager.open(f"sqlite:///{probe}").close()
    key = hashlib.sha256(f"{FORMAT}|{overdue}|{live}|{closed}|{head_revision()}|{_schema(probe)}".encode()
                         ).hexdigest()[:16]
    path = cache_dir / f"population-{overdue}-{live}-{closed}-{key}.db"
    size = overdue + live + closed
    if path.exists():
        conn = sqlite3.connect(path)
        try:
            (first,) = conn.execute("SELECT coalesce(min(due_at), 0) FROM sessions WHERE ttl_seconds = ?",
                                    (_SHORT_TTL.total_seconds(),)).fetchone()
        finally:
            conn.close()
        pop = Population(path, overdue, live, closed, first, 0.0)
        _check(pop, 20)
        log(f"  population: {size:,} sessions ({overdue:,} overdue), cached at {path}")
        return pop
    log(f"  building a population of {size:,} sessions ({overdue:,} overdue; cached afterwards at {path})")
    for leftover in cache_dir.glob(f"population-{overdue}-{live}-{closed}-*.db*"):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    building = path.with_suffix(f".building-{os.getpid()}")
    SessionManager.open(f"sqlite:///{building}").close()
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    end_ms = int((datetime.now(UTC) - _OVERDUE_END).timestamp() * 1000)
    first_deadline_ms = end_ms - overdue
    try:
        _build(building, overdue, live, closed, first_deadline_ms, workdir, log)
        pop = Population(building, overdue, live, closed, first_deadline_ms, 0.0)
        _check(pop, 200)
        for suffix in ("-wal", "-shm"):
            Path(f"{building}{suffix}").unlink(missing_ok=True)
        building.rename(path)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - started
    log(f"  built in {elapsed:.0f} s")
    return Population(path, overdue, live, closed, first_deadline_ms, elapsed)


def load_postgres(pop: Population, conninfo: dict[str, Any], log: Callable[[str], None]) -> None:
    """Copy the population's rows into the (migrated, empty) PostgreSQL database at ``conninfo``.

    Secondary indexes are dropped during the ``COPY`` and recreated from their definitions; the tables are
    analysed and vacuumed afterwards, so every round starts from the same settled state.
    """
    import psycopg

    started = time.perf_counter()
    source = sqlite3.connect(pop.path)
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('sessions', 'session_events') "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)").fetchall()
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            for table in ("sessions", "session_events"):
                columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
                cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
                with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    while True:
                        rows = cursor.fetchmany(10_000)
                        if not rows:
                            break
                        for row in rows:
                            copy.write_row(row)
            for _, definition in indexes:
                conn.execute(definition)
            # The copied events keep their feed positions: new ones continue after them.
            conn.execute("SELECT setval('session_events_position_seq', "
                         "(SELECT coalesce(max(position), 0) + 1 FROM session_events), false)")
            conn.execute("VACUUM ANALYZE sessions")
            conn.execute("VACUUM ANALYZE session_events")
    finally:
        source.close()
    log(f"  loaded into PostgreSQL in {time.perf_counter() - started:.0f} s")
