"""A large SQLite database of sessions for the read benchmarks, built quickly and cached between runs.

Building 1,000,000 sessions through the manager would take longer than the whole suite, so the rows are
cloned from *templates*: a few sessions written by sessionflow itself into a scratch database (one per
status: pending; in progress; completed; failed), read back as raw rows and copied with new ids, users,
workspaces, modules and times (every timestamp of a clone, including the deadline inside its ``created``
payload, is shifted by the same amount). Each clone has its full history in ``session_events``. The file
gets its schema from sessionflow's migrations; secondary indexes are dropped during the bulk insert and
recreated from their own SQL afterwards, so the schema is exactly the migrated one.

Live sessions (pending, in progress) have a ten-year TTL, so no read ever expires one (a read that finds
an overdue session would write). After building, a random sample is read back through a manager and
checked against the rows it was cloned from and against the fold of its history.

The file is cached under the temporary directory, keyed by the size, the schema revision, the schema's SQL
and :data:`FORMAT`; delete the directory (or bump :data:`FORMAT`) to rebuild.

An equivalent database for the ``eventsourcing`` peer (the same statuses, as its stored events) is built
the same way by :func:`eventsourcing_dataset`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.adapters.sqlalchemy.migrations import head_revision
from sessionflow.domain.values import MAX_TTL

__all__ = ["FORMAT", "Dataset", "eventsourcing_dataset", "sessions_dataset"]

#: Bump when the way the data set is generated changes: cached files of another format are not reused.
FORMAT = 2  # 2: each clone's list order (created_position) is its own created event's position
USERS = 1000
WORKSPACES = 50
MODULES = 10
#: Status of the sessions, with weights (out of 10).
MIX: tuple[tuple[str, int], ...] = (("pending", 2), ("in_progress", 3), ("completed", 4), ("failed", 1))
_SEED = 20_261_121
_CHUNK = 50_000
_SPAN_MS = 30 * 86_400_000  # creation times spread over 30 days
_SESSION_TIMES = ("created_at", "updated_at", "expires_at", "max_expires_at", "closed_at", "deleted_at", "due_at")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def user_name(i: int) -> str:
    return f"user-{i:04d}"


@dataclass(frozen=True)
class Dataset:
    """A built database file and what is in it."""

    path: Path
    size: int
    built_seconds: float  # 0 when it came from the cache

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def random_ids(self, count: int, rng: random.Random, table: str = "sessions", column: str = "id") -> list[str]:
        """``count`` distinct stored values of ``column`` (ids as stored: 32 hex digits), drawn at random."""
        values: list[str] = []
        seen: set[str] = set()
        with sqlite3.connect(self.path) as conn:
            (rows,) = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()
            while len(values) < min(count, self.size):
                rowids = rng.sample(range(1, rows + 1), min(count, rows))
                for (value,) in conn.execute(
                        f"SELECT {column} FROM {table} WHERE rowid IN ({','.join(map(str, rowids))})"):
                    if value not in seen:
                        seen.add(value)
                        values.append(value)
        rng.shuffle(values)
        return values[:count]


def _log_progress(log: Callable[[str], None], what: str, done: int, total: int, started: float) -> None:
    log(f"    {what}: {done:,}/{total:,} ({time.perf_counter() - started:.0f} s)")


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _ms(iso: str) -> int:
    delta = datetime.fromisoformat(iso.replace("Z", "+00:00")) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# ---------------------------------------------------------------------------------------------- sessionflow


def _templates(workdir: Path) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One session per status written by sessionflow: ``status -> (sessions row, event rows)``."""
    path = workdir / "templates.db"
    with SessionManager.open(f"sqlite:///{path}") as manager:
        ids: dict[str, Any] = {}
        for status, _ in MIX:
            s = manager.create(user_id="template-user", workspace_id="template-ws", module_name="template-module",
                               metadata={"source": "benchmarks", "priority": 2}, ttl=MAX_TTL,
                               performer_id="template-user")
            if status != "pending":
                manager.start(s.id, performer_id="template-user")
            if status == "completed":
                manager.complete(s.id, performer_id="template-user")
            if status == "failed":
                manager.fail(s.id, reason="worker lost", performer_id="template-user")
            ids[status] = s.id.hex
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {
            status: (
                dict(conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()),
                [dict(r) for r in conn.execute(
                    "SELECT * FROM session_events WHERE session_id = ? ORDER BY version", (sid,))],
            )
            for status, sid in ids.items()
        }
    finally:
        conn.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return [(t, n, s) for t, n, s in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name")]


def _clone_session(template: dict[str, Any], sid: str, user: str, ws: str, module: str, shift: int,
                   created_position: int | None = None) -> tuple[Any, ...]:
    row = dict(template)
    row["id"] = sid
    if "created_position" in row:  # the list order: the clone's own created event's feed position
        row["created_position"] = created_position
    row["user_id"] = user
    row["workspace_id"] = ws
    row["module_name"] = module
    if row.get("closed_by") == template["user_id"]:
        row["closed_by"] = user
    for name in _SESSION_TIMES:
        if row.get(name) is not None:
            row[name] += shift
    return tuple(row.values())


def _clone_events(template: list[dict[str, Any]], payloads: list[dict[str, Any] | None], record_ids: Iterator[str],
                  sid: str, user: str, ws: str, module: str, shift: int,
                  positions: Iterator[int] | None = None) -> list[tuple[Any, ...]]:
    """The event rows of one cloned session; ``positions`` numbers them in the feed (in insertion order)."""
    rows = []
    for event, payload in zip(template, payloads, strict=True):
        row = dict(event)
        row["record_id"] = next(record_ids)
        if "position" in row:
            row["position"] = None if positions is None else next(positions)
        row["session_id"] = sid
        row["timestamp"] += shift
        if row["performer_id"] == "template-user":
            row["performer_id"] = user
        if payload is not None:  # the created event: who, and the deadline
            changed = dict(payload)
            changed.update(user_id=user, workspace_id=ws, module_name=module)
            if changed.get("expires_at"):
                changed["expires_at"] = _iso(_ms(changed["expires_at"]) + shift)
            if changed.get("max_expires_at"):
                changed["max_expires_at"] = _iso(_ms(changed["max_expires_at"]) + shift)
            row["payload"] = json.dumps(changed, ensure_ascii=False, separators=(",", ":"))
        rows.append(tuple(row.values()))
    return rows


def _build_sessions(path: Path, size: int, workdir: Path, log: Callable[[str], None]) -> None:
    templates = _templates(workdir)
    rng = random.Random(_SEED)
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=size)
    session_ids = sorted(uuid.uuid4().hex for _ in range(size))
    events_total = sum(len(templates[k][1]) for k in kinds)
    record_ids = iter(sorted(uuid.uuid4().hex for _ in range(events_total)))
    next_position = 1
    payloads = {k: [json.loads(e["payload"]) if e["event"] == "created" else None for e in events]
                for k, (_, events) in templates.items()}
    session_columns = list(next(iter(templates.values()))[0])
    event_columns = list(next(iter(templates.values()))[1][0])
    insert_session = (f"INSERT INTO sessions ({', '.join(session_columns)}) "
                      f"VALUES ({', '.join('?' for _ in session_columns)})")
    insert_event = (f"INSERT INTO session_events ({', '.join(event_columns)}) "
                    f"VALUES ({', '.join('?' for _ in event_columns)})")
    now_ms = int(time.time() * 1000)
    first_ms = now_ms - _SPAN_MS

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
        for chunk in range(0, size, _CHUNK):
            sessions: list[tuple[Any, ...]] = []
            events: list[tuple[Any, ...]] = []
            for i in range(chunk, min(size, chunk + _CHUNK)):
                kind = kinds[i]
                session_template, event_templates = templates[kind]
                sid = session_ids[i]
                user = user_name(rng.randrange(USERS))
                ws = f"ws-{rng.randrange(WORKSPACES):02d}"
                module = f"module-{rng.randrange(MODULES)}"
                # creation times spread evenly, in random order with respect to the ids
                created = first_ms + rng.randrange(_SPAN_MS)
                shift = created - session_template["created_at"]
                first = next_position  # (the clone's created event comes first)
                next_position += len(event_templates)
                sessions.append(_clone_session(session_template, sid, user, ws, module, shift, first))
                events.extend(_clone_events(event_templates, payloads[kind], record_ids, sid, user, ws, module,
                                            shift, iter(range(first, next_position))))
            conn.executemany(insert_session, sessions)
            conn.executemany(insert_event, events)
            if size > _CHUNK:
                _log_progress(log, "sessions", min(size, chunk + _CHUNK), size, started)
        conn.execute("COMMIT")
        for name, sql in indexes:
            log(f"    index {name}")
            conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _check_sessions(dataset: Dataset, sample: int) -> None:
    """Read a random sample back through a manager: each equals the fold of its history and its row."""
    rng = random.Random()
    ids = dataset.random_ids(sample, rng)
    conn = sqlite3.connect(dataset.path)
    try:
        with SessionManager.open(dataset.url, migrate=False, cache_size=0) as manager:
            for sid in ids:
                session = manager.get(sid)
                status, user_id, version = conn.execute(
                    "SELECT status, user_id, version FROM sessions WHERE id = ?", (sid,)).fetchone()
                if (session.status.value, session.user_id, session.version) != (status, user_id, version):
                    raise AssertionError(f"session {sid} reads back as {session!r}, stored as {status}/{user_id}")
                if session.status in (SessionStatus.PENDING, SessionStatus.IN_PROGRESS) and session.is_overdue(
                        datetime.now(UTC)):
                    raise AssertionError(f"session {sid} is overdue: reads would expire it")
                if replay(manager.history(sid)) != session:
                    raise AssertionError(f"session {sid}: the projection differs from the fold of its events")
    finally:
        conn.close()


def _cache_key(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def sessions_dataset(size: int, *, cache_dir: Path, workdir: Path, log: Callable[[str], None]) -> Dataset:
    """The sessions database of ``size`` sessions: from the cache, or built (and cached) now."""
    probe = workdir / "schema-probe.db"
    SessionManager.open(f"sqlite:///{probe}").close()
    schema = _schema(probe)
    key = _cache_key(FORMAT, size, head_revision(), schema)
    path = cache_dir / f"sessions-{size}-{key}.db"
    if path.exists():
        dataset = Dataset(path, size, 0.0)
        _check_sessions(dataset, 20)
        log(f"  data set: {size:,} sessions, cached at {path}")
        return dataset
    log(f"  building the data set: {size:,} sessions (cached afterwards at {path})")
    started = time.perf_counter()
    building = path.with_suffix(f".building-{os.getpid()}")
    for leftover in cache_dir.glob(f"sessions-{size}-*.db*"):  # older schema revisions of this size
        leftover.unlink(missing_ok=True)
    SessionManager.open(f"sqlite:///{building}").close()  # the schema, by the migrations
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    try:
        _build_sessions(building, size, workdir, log)
        dataset = Dataset(building, size, 0.0)
        _check_sessions(dataset, 200)
        for suffix in ("-wal", "-shm"):
            Path(f"{building}{suffix}").unlink(missing_ok=True)
        building.rename(path)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - started
    log(f"  built in {elapsed:.0f} s")
    return Dataset(path, size, elapsed)


# ---------------------------------------------------------------------------------------------- eventsourcing


def _es_templates(workdir: Path) -> dict[str, list[tuple[Any, ...]]]:
    from benchmarks.peer_eventsourcing import sessions_app, sqlite_env

    path = workdir / "es-templates.db"
    with sessions_app(sqlite_env(str(path))) as app:
        ids: dict[str, Any] = {}
        for status, _ in MIX:
            sid = app.create(user_id="template-user", workspace_id="template-ws", module_name="template-module",
                             file_paths=[], metadata={"source": "benchmarks", "priority": 2}, ttl=MAX_TTL)
            if status != "pending":
                app.start(sid, "template-user")
            if status in ("completed", "failed"):  # the peer has no failure path: completed stands in
                app.complete(sid, "template-user")
            ids[status] = sid.hex
    with sqlite3.connect(path) as conn:
        return {status: [tuple(r) for r in conn.execute(
            "SELECT originator_version, topic, state FROM stored_events WHERE originator_id = ? "
            "ORDER BY originator_version", (sid,))] for status, sid in ids.items()}


def eventsourcing_dataset(size: int, *, cache_dir: Path, workdir: Path, log: Callable[[str], None]) -> Dataset:
    """The same population for the eventsourcing peer (its ``stored_events`` table), cached likewise."""
    from importlib.metadata import version

    key = _cache_key(FORMAT, size, version("eventsourcing"))
    path = cache_dir / f"eventsourcing-{size}-{key}.db"
    if path.exists():
        log(f"  eventsourcing data set: {size:,} aggregates, cached at {path}")
        return Dataset(path, size, 0.0)
    log(f"  building the eventsourcing data set: {size:,} aggregates (cached at {path})")
    for leftover in cache_dir.glob(f"eventsourcing-{size}-*.db*"):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    templates = _es_templates(workdir)
    rng = random.Random(_SEED)
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=size)
    ids = sorted(uuid.uuid4().hex for _ in range(size))
    building = path.with_suffix(f".building-{os.getpid()}")
    from benchmarks.peer_eventsourcing import sessions_app, sqlite_env

    with sessions_app(sqlite_env(str(building))):  # the library creates its own table
        pass
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        conn.execute("BEGIN")
        for chunk in range(0, size, _CHUNK):
            rows = [(ids[i], *event) for i in range(chunk, min(size, chunk + _CHUNK)) for event in templates[kinds[i]]]
            conn.executemany("INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                             "VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    except BaseException:
        conn.close()
        building.unlink(missing_ok=True)
        raise
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    building.rename(path)
    elapsed = time.perf_counter() - started
    log(f"  built in {elapsed:.0f} s")
    return Dataset(path, size, elapsed)
