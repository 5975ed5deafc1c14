"""Write the frozen data set of the current release: the same story told on each store, and what the library
reads back from each.

    .venv/bin/python -m tests.data.frozen.make_frozen --out tests/data/frozen/<version>

It starts a throwaway PostgreSQL and a throwaway ``redis-server`` of its own (see ``tests/support``), plays
:func:`write_story` on an SQLite file, a PostgreSQL database and a Redis server with the public API only, on a
manual clock, and writes under ``--out``:

* ``lifecycle/``: the custom lifecycle the story uses (a copy of ``tests/lifecycles/review.lifecycle.yaml``
  and its guards), so the data set stands alone;
* ``sqlite/sessionflow.db``: the SQLite file, checkpointed (no ``-wal`` or ``-shm`` beside it);
* ``postgres/dump.sql``: ``pg_dump --no-owner --no-privileges`` of the whole database (``alembic_version``
  included), plain SQL for ``psql``;
* ``redis/appendonlydir/``: the server's append-only files (a multi-part AOF with its manifest; plain AOF
  text, no RDB preamble), complete: the server was shut down cleanly;
* ``<store>/audit/``: the JSONL audit trail the live sink wrote while the story was played (purged sessions
  included: the trail is a copy, purge does not touch it); ``<store>/archive/``: what the purge archived;
  ``<store>/export/``: ``export`` of what the store holds at the end;
* ``manifest.json``: per store, every session as :meth:`SessionManager.get` reads it and every history (with
  feed positions), the feed, ``last_position``, the consumers' positions, the pages of a few list filters
  with the cursors that led to them, the events after a few positions, the counts, what was purged and
  archived, and the trail's files and line count.

Ids and record ids are random (the manifest records them); every time comes from the manual clock, so the
content is otherwise the same on every store and on every run. A data set is written once, for a release,
and never rewritten afterwards: ``--force`` replaces an existing one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.postgres import PostgresUnavailable, find_binaries, free_port, throwaway_postgres
from tests.support.redis import find_redis_server

import sessionflow
from sessionflow import SessionEvent, SessionManager, SessionNotFound
from sessionflow.adapters.jsonl import JsonlAuditTrail, export
from sessionflow.adapters.sqlalchemy.migrations import head_revision
from sessionflow.domain.definitions import SESSION_DEFINITION, LifecycleDefinition, LifecycleRegistry
from sessionflow.loader import load_definition, registered_guards
from sessionflow.testing import ManualClock

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[2]
STORES = ("sqlite", "postgres", "redis")

#: The custom lifecycle of the story, copied into each data set's ``lifecycle/`` folder.
LIFECYCLE_SOURCE = REPOSITORY / "tests" / "lifecycles"
LIFECYCLE_DIR = "lifecycle"
LIFECYCLE_FILE = "review.lifecycle.yaml"
GUARDS_FILE = "review_guards.py"
LIFECYCLE_NAME = "review"

SQLITE_FILE = "sqlite/sessionflow.db"
POSTGRES_DUMP = "postgres/dump.sql"
REDIS_AOF_DIR = "redis/appendonlydir"
MANIFEST = "manifest.json"

#: When the story starts. The sessions closed on its first day are purged at the end.
STARTED_AT = datetime(2030, 1, 1, tzinfo=UTC)
PURGE_CUTOFF = STARTED_AT + timedelta(days=1)
#: The TTL of the live sessions: long enough that none falls due while a test reads or writes the data.
LIVE_TTL = timedelta(days=7)

#: The list filters whose pages (and cursors) the manifest records, with the page size.
LIST_FILTERS: list[dict[str, Any]] = [
    {"limit": 4},
    {"status": "pending", "limit": 2},
    {"status": ["completed", "failed", "expired"], "limit": 2},
    {"user_id": "alice", "limit": 3},
    {"user_id": "alice", "status": "in_progress", "limit": 1},
    {"workspace_id": "ws-1", "limit": 2},
    {"workspace_id": "ws-4", "limit": 2},
    {"module_name": "auth", "limit": 2},
    {"lifecycle": LIFECYCLE_NAME, "limit": 2},
    {"lifecycle": LIFECYCLE_NAME, "status": ["draft", "in_review", "changes_requested"], "limit": 1},
    {"user_id": "bob", "created_after": "2030-02-10T00:00:00+00:00", "created_before": "2030-02-11T00:00:00+00:00",
     "limit": 2},
]


# --------------------------------------------------------------------------- the lifecycle of the data set


def copy_lifecycle(out: Path) -> None:
    """Copy the review lifecycle into ``out/lifecycle``: the document without its ``imports`` (the guards are
    loaded from the copy beside it, see :func:`load_lifecycle`) and its guards module as it is."""
    target = out / LIFECYCLE_DIR
    target.mkdir(parents=True, exist_ok=True)
    lines = (LIFECYCLE_SOURCE / LIFECYCLE_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("imports:")]
    header = (f"# Frozen copy of tests/lifecycles/{LIFECYCLE_FILE}; its guards are those of {GUARDS_FILE}\n"
              "# beside it, which the data set's readers import before loading this file.\n")
    (target / LIFECYCLE_FILE).write_text(header + "".join(kept), encoding="utf-8")
    shutil.copyfile(LIFECYCLE_SOURCE / GUARDS_FILE, target / GUARDS_FILE)


def load_lifecycle(dataset: Path) -> LifecycleDefinition:
    """The custom lifecycle of the data set in ``dataset``: the guards module of the copy imported (once per
    process), then the document loaded with the guards that module registered (they take precedence over
    any other guard registered under the same name)."""
    folder = dataset / LIFECYCLE_DIR
    guards = (folder / GUARDS_FILE).resolve()
    if guards not in _GUARDS:
        name = "sessionflow_frozen_guards_" + hashlib.sha256(str(guards).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, guards)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        before = registered_guards()
        spec.loader.exec_module(module)
        _GUARDS[guards] = {k: f for k, f in registered_guards().items() if before.get(k) is not f}
    return load_definition(folder / LIFECYCLE_FILE, guards=_GUARDS[guards])


#: The guards each data set's guards module registered, by the module's path.
_GUARDS: dict[Path, dict[str, Callable[..., Any]]] = {}


def registry_for(dataset: Path) -> LifecycleRegistry:
    """A registry of the lifecycles the data set's sessions run under."""
    return LifecycleRegistry(SESSION_DEFINITION, load_lifecycle(dataset))


# --------------------------------------------------------------------------- the story


def write_story(manager: SessionManager, clock: ManualClock, trail_root: Path) -> dict[str, str]:
    """Play the story on ``manager`` (a fresh, empty store; ``clock`` at :data:`STARTED_AT`) up to the purge
    (:func:`retire`); return the names of its sessions (name → id). ``trail_root``: where a second manager's
    live trail writes (the first manager's is attached by the caller)."""
    named: dict[str, str] = {}

    def tick(seconds: float = 1) -> None:
        clock.advance(timedelta(seconds=seconds))

    def new(name: str, *, by: SessionManager | None = None, performer_id: str | None = None, **fields: Any) -> str:
        who = performer_id or fields.get("user_id") or "ops"
        session = (by or manager).create(performer_id=who, **fields)
        named[name] = str(session.id)
        tick()
        return str(session.id)

    m = manager
    # Day 1: sessions that close at once (purged at the end) and one that stays live for weeks.
    sid = new("old-completed", user_id="ana", workspace_id="ws-1", module_name="auth", file_paths=["old/a.py"])
    m.start(sid, performer_id="ana")
    m.record_file(sid, "old/a.py", performer_id="ana")
    m.consume("laggard", lambda event: None, follow=False, max_events=3)  # stops inside the purged range
    m.complete(sid, performer_id="ana")
    sid = new("old-failed", user_id="bo", workspace_id="ws-2")
    m.fail(sid, reason="upstream down", performer_id="bo")
    sid = new("old-deleted", user_id="cy", workspace_id="ws-1")
    m.delete(sid, performer_id="cy")
    new("old-expired", ttl=timedelta(minutes=5), performer_id="cron")
    sid = new("old-live", user_id="ana", workspace_id="ws-1", module_name="auth", file_paths=["big.csv"],
              ttl=timedelta(days=60))
    m.start(sid, performer_id="ana")
    clock.advance(timedelta(minutes=5))
    assert m.sweep().expired == 1
    clock.advance(timedelta(days=40))

    # Forty days later: every state of the default lifecycle.
    new("pending-files", user_id="alice", workspace_id="ws-1", module_name="auth",
        file_paths=["src/a.py", "src/b.py"],
        metadata={"ticket": "T-1", "tags": ["x", "y"],
                  "nested": {"ratio": 1.5, "none": None, "deep": [1, {"k": True}]}})
    sid = new("pending-note", user_id="bob", workspace_id="ws-2", module_name="billing")
    m.add_note(sid, file_path="inbox", status="queued", performer_id="bob")
    new("pending-anonymous", metadata={"title": "Grüße ✓ — ünïcode"}, performer_id="cron")

    sid = new("in-progress-files", user_id="alice", workspace_id="ws-1", module_name="auth",
              file_paths=["a.py", "b.py", "c.py"])
    m.start(sid, performer_id="alice")
    m.record_file(sid, "a.py", performer_id="alice")
    m.record_file(sid, "b.py", error="parse error", performer_id="alice")
    m.update(sid, current_file="c.py", performer_id="alice")
    m.add_note(sid, file_path="a.py", memory_id="m-1", status="stored", performer_id="alice")
    tick()
    m.touch(sid, performer_id="alice")
    started = m.create(user_id="carol", workspace_id="ws-2", file_paths=["one.txt"], start=True, performer_id="carol")
    named["in-progress-created-started"] = str(started.id)
    tick()
    m.update(started.id, metadata={"stage": 2, "owner": "carol"}, performer_id="carol")
    # Another manager on the same store, with a sliding deadline capped by a maximum lifetime.
    with SessionManager(m.store, owns_store=False, clock=clock, registry=m.registry, default_ttl=LIVE_TTL,
                        sliding=True, max_lifetime=timedelta(days=10)) as sliding:
        trail = JsonlAuditTrail.attach(sliding, trail_root)
        sid = new("in-progress-sliding", by=sliding, user_id="bob", workspace_id="ws-1", module_name="billing")
        sliding.start(sid, performer_id="bob")
        tick()
        sliding.touch(sid, performer_id="bob")
        trail.detach()

    sid = new("completed-files", user_id="alice", workspace_id="ws-2", module_name="billing",
              file_paths=["r1.csv", "r2.csv"])
    m.start(sid, performer_id="alice")
    m.record_file(sid, "r1.csv", performer_id="alice")
    m.record_file(sid, "r2.csv", error="timeout", performer_id="alice")
    m.add_note(sid, file_path="r1.csv", memory_id="m-2", status="stored", performer_id="alice")
    m.add_note(sid, file_path="r2.csv", status="skipped", performer_id="alice")
    m.complete(sid, performer_id="alice")
    sid = new("completed-by-update", user_id="bob", workspace_id="ws-1", module_name="auth")
    m.update(sid, status="in_progress", performer_id="bob")
    m.update(sid, metadata={"result": "ok"}, status="completed", performer_id="bob")
    sid = new("failed-pending", user_id="carol", workspace_id="ws-3")
    m.fail(sid, reason="cancelled by user", performer_id="carol")
    sid = new("failed-in-progress", user_id="alice", workspace_id="ws-1", module_name="auth", file_paths=["z.py"])
    m.start(sid, performer_id="alice")
    m.record_file(sid, "z.py", error="bad input", performer_id="alice")
    m.fail(sid, reason="  bad input  ", performer_id="alice")

    # A batch, and three sessions created in the same millisecond (listed in id order).
    batch = m.create_many([{"user_id": "dave", "workspace_id": "ws-3", "module_name": "import"},
                           {"user_id": "dave", "workspace_id": "ws-3"},
                           {"user_id": "erin", "workspace_id": "ws-3", "metadata": {"batch": 1}}],
                          performer_id="importer")
    for name, session in zip(("batch-completed", "batch-in-progress", "batch-pending"), batch, strict=True):
        named[name] = str(session.id)
    tick()
    m.send_many([(batch[0].id, "start"), (batch[1].id, "start"), (batch[0].id, "complete")], performer_id="importer")
    for k in range(3):
        named[f"same-millisecond-{k}"] = str(m.create(user_id="frank", workspace_id="ws-4", module_name="auth",
                                                      performer_id="frank").id)
    tick()

    sid = new("deleted-pending", user_id="alice", workspace_id="ws-1")
    m.delete(sid, performer_id="alice")
    sid = new("deleted-completed", user_id="bob", workspace_id="ws-2")
    m.start(sid, performer_id="bob")
    m.complete(sid, performer_id="bob")
    m.delete(sid, performer_id="bob")

    m.consume("billing", lambda event: None, follow=False)  # a consumer that stopped mid-way

    # Timeouts: expired by a sweep at their deadline.
    new("expired-pending", user_id="alice", workspace_id="ws-2", ttl=timedelta(minutes=10))
    sid = new("expired-in-progress", user_id="bob", workspace_id="ws-1", module_name="auth", file_paths=["q.py"],
              ttl=timedelta(minutes=10))
    m.start(sid, performer_id="bob")
    m.record_file(sid, "q.py", performer_id="bob")
    clock.advance(timedelta(minutes=10))
    assert m.sweep().expired == 2

    # The custom lifecycle: a state timeout fired by the sweep, then every other state.
    review = {"lifecycle": LIFECYCLE_NAME, "workspace_id": "ws-5"}
    sid = new("review-timed-out", user_id="alice", metadata={"title": "Old spec", "author": "alice"}, **review)
    m.send(sid, "submit", performer_id="alice")
    clock.advance(timedelta(hours=2))
    assert m.sweep().expired == 1
    new("review-draft", user_id="alice", metadata={"title": "Spec", "author": "alice"}, **review)
    sid = new("review-in-review", user_id="bob", metadata={"title": "Plan", "author": "bob"}, **review)
    m.send(sid, "submit", performer_id="bob")
    sid = new("review-approved", user_id="bob", metadata={"title": "Notes", "author": "bob"}, **review)
    m.send(sid, "submit", performer_id="bob")
    m.send(sid, "approve", reviewer="carol", performer_id="carol")
    sid = new("review-changes-requested", user_id="carol", metadata={"title": "Draft", "author": "carol"}, **review)
    m.send(sid, "submit", performer_id="carol")
    m.send(sid, "request_changes", performer_id="alice")
    sid = new("review-abandoned", user_id="carol", metadata={"title": "Idea", "author": "carol"}, **review)
    m.send(sid, "abandon", performer_id="carol")

    return named


def retire(manager: SessionManager, clock: ManualClock, named: dict[str, str], archive: Path) -> dict[str, int]:
    """The end of the story: the sessions closed on its first day are purged, archived; then a few more
    writes. Returns the purge's result."""
    purged = manager.purge(closed_before=PURGE_CUTOFF, archive=archive)
    assert (purged.sessions, purged.skipped) == (4, 0), purged
    clock.advance(timedelta(seconds=1))
    manager.touch(named["pending-files"], performer_id="alice")
    manager.add_note(named["in-progress-files"], file_path="c.py", memory_id="m-3", status="pending",
                     performer_id="alice")
    clock.advance(timedelta(seconds=1))
    return {"sessions": purged.sessions, "events": purged.events, "archive_files": purged.archive_files}


# --------------------------------------------------------------------------- what the library reads back


def event_json(event: SessionEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def files_under(root: Path) -> list[str]:
    """The files under ``root``, as sorted paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def list_arguments(spec: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``page``/``list`` for a :data:`LIST_FILTERS` entry (times parsed)."""
    arguments = {k: v for k, v in spec.items() if k != "limit"}
    for key in ("created_after", "created_before"):
        if key in arguments:
            arguments[key] = datetime.fromisoformat(arguments[key])
    return arguments


def walk_pages(manager: SessionManager, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of one filter: the cursor it was asked with, the ids it returned and its ``next_cursor``."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = manager.page(cursor=cursor, limit=spec["limit"], **list_arguments(spec))
        pages.append({"cursor": cursor, "ids": [str(s.id) for s in page.items], "next_cursor": page.next_cursor})
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def describe(manager: SessionManager, story: dict[str, Any], purged_histories: dict[str, list[dict[str, Any]]],
             folder: Path) -> dict[str, Any]:
    """What ``manager`` reads from its store, for the manifest."""
    feed = manager.events(after=0, limit=10_000)
    assert len(feed) < 10_000
    histories: dict[str, list[dict[str, Any]]] = {}
    for event in feed:
        histories.setdefault(str(event.session_id), [])
    sessions: dict[str, Any] = {}
    deleted: list[str] = []
    for sid in histories:
        histories[sid] = [event_json(e) for e in manager.history(sid)]
        try:
            sessions[sid] = manager.get(sid).model_dump(mode="json")
        except SessionNotFound:
            deleted.append(sid)
    statuses = sorted({*SESSION_DEFINITION.states, *manager.registry.get(LIFECYCLE_NAME).states})
    last = manager.last_position()
    consumers = {name: manager.consumer_position(name) for name in ("billing", "laggard")}
    positions = [e.position for e in feed]
    purged_positions = [e["position"] for history in purged_histories.values() for e in history]
    marks = sorted({0, 1, max(purged_positions, default=0), consumers["laggard"], consumers["billing"],
                    positions[len(positions) // 2], positions[-4], last})
    return {
        "named": story["named"],
        "sessions": sessions,
        "deleted": sorted(deleted),
        "histories": histories,
        "feed": [[e.position, str(e.record_id)] for e in feed],
        "last_position": last,
        "consumers": consumers,
        "counts": {"all": manager.count(), **{s: manager.count(s) for s in statuses}},
        "by_status": {s: [str(x.id) for x in manager.list(status=s, limit=1000)] for s in statuses},
        "pages": [{"filter": spec, "pages": walk_pages(manager, spec)} for spec in LIST_FILTERS],
        "after": [{"after": mark, "positions": [e.position for e in manager.events(after=mark, limit=10_000)]}
                  for mark in marks],
        "purged": {"closed_before": PURGE_CUTOFF.isoformat(), **story["purge"],
                   "ids": sorted(purged_histories), "histories": purged_histories,
                   "archive_files": files_under(folder / "archive")},
        "trail": {"files": files_under(folder / "audit"),
                  "lines": sum(len(p.read_bytes().splitlines()) for p in (folder / "audit").rglob("*.jsonl"))},
        "export": {"files": files_under(folder / "export")},
    }


def play(url: str, folder: Path, dataset: Path, *, before_purge: Callable[[], None] | None = None
         ) -> tuple[dict[str, Any], datetime]:
    """Play the story on the empty store at ``url``, writing its trail, archive and export under ``folder``;
    return the store's part of the manifest and the clock's time at the end. ``before_purge`` is called
    between the story and its end (:func:`retire`)."""
    clock = ManualClock(STARTED_AT)
    with SessionManager.open(url, clock=clock, registry=registry_for(dataset), default_ttl=LIVE_TTL) as manager:
        trail = JsonlAuditTrail.attach(manager, folder / "audit")
        named = write_story(manager, clock, folder / "audit")
        before: dict[str, list[dict[str, Any]]] = {}
        for event in manager.events(after=0, limit=10_000):
            before.setdefault(str(event.session_id), []).append(event_json(event))
        if before_purge is not None:
            before_purge()
        purge = retire(manager, clock, named, folder / "archive")
        trail.detach()
        archived = {Path(name).stem for name in files_under(folder / "archive")}
        export(manager, folder / "export")
        part = describe(manager, {"named": named, "purge": purge},
                        {sid: history for sid, history in before.items() if sid in archived}, folder)
        assert set(part["purged"]["ids"]) == {named[n] for n in ("old-completed", "old-failed", "old-deleted",
                                                                 "old-expired")}
        return part, clock.now()


# --------------------------------------------------------------------------- the stores


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[tuple[str, Any]]:
    """A private ``redis-server`` on ``directory`` with an append-only file of plain AOF text (no RDB
    preamble), fsynced on every write; yields its URL and process. The caller shuts it down cleanly."""
    import redis

    port = free_port()
    log = open(directory.parent / "redis-server.log", "ab")  # noqa: SIM115 - handed to the process
    process = subprocess.Popen(
        [str(find_redis_server()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no", "--save", "",
         "--protected-mode", "no", "--daemonize", "no", "--logfile", ""],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                    client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def rewrite_aof(url: str) -> None:
    """``BGREWRITEAOF``, waited for: the append-only file becomes a base (the data so far, as commands) and
    an empty increment that the writes after it go to, as on a server that has run for a while."""
    import redis

    client = redis.Redis.from_url(url)
    client.bgrewriteaof()
    deadline = time.monotonic() + 30
    while True:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.02)
    assert info["aof_last_bgrewrite_status"] == "ok", info
    client.close()


def shutdown_redis(url: str, process: Any) -> None:
    """``SHUTDOWN``: the server flushes and fsyncs its append-only file and exits."""
    import redis

    client = redis.Redis.from_url(url)
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
    process.wait(30)
    assert process.returncode == 0, process.returncode


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_tool(name: str) -> str:
    """A PostgreSQL client program (``pg_dump``, ``psql``) of the newest server installed, else from ``PATH``."""
    with contextlib.suppress(PostgresUnavailable):
        candidate = find_binaries().initdb.with_name(name)
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found")
    return found


def generate(out: Path) -> None:
    """Write the data set into the empty folder ``out``."""
    copy_lifecycle(out)
    stores: dict[str, Any] = {}
    ended: set[datetime] = set()
    with tempfile.TemporaryDirectory(prefix="sessionflow-frozen-") as scratch:
        work = Path(scratch)

        # SQLite: a file, checkpointed once every manager is closed.
        db = out / SQLITE_FILE
        db.parent.mkdir(parents=True)
        stores["sqlite"], end = play(f"sqlite:///{db}", out / "sqlite", out)
        ended.add(end)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for suffix in ("-wal", "-shm"):
            assert not Path(f"{db}{suffix}").exists(), f"{db}{suffix} left behind"

        # PostgreSQL: a database of its own on a throwaway server, dumped as plain SQL.
        with throwaway_postgres() as server_url:
            engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("CREATE DATABASE sessionflow"))
            engine.dispose()
            url = make_url(server_url).set(database="sessionflow").render_as_string(hide_password=False)
            (out / "postgres").mkdir()
            stores["postgres"], end = play(url, out / "postgres", out)
            ended.add(end)
            subprocess.run([pg_tool("pg_dump"), "--no-owner", "--no-privileges", "--file",
                            str(out / POSTGRES_DUMP), _libpq(url)], check=True)

        # Redis: its append-only files, complete once the server has shut down.
        data = work / "redis"
        data.mkdir()
        with redis_server(data) as (url, process):
            (out / "redis").mkdir()
            stores["redis"], end = play(url, out / "redis", out, before_purge=lambda: rewrite_aof(url))
            ended.add(end)
            shutdown_redis(url, process)
        shutil.copytree(data / "appendonlydir", out / REDIS_AOF_DIR)

    assert len(ended) == 1, ended
    manifest = {
        "sessionflow_version": sessionflow.__version__,
        "alembic_revision": head_revision(),
        "started_at": STARTED_AT.isoformat(),
        "written_at": ended.pop().isoformat(),
        "live_ttl_seconds": LIVE_TTL.total_seconds(),
        "lifecycle": {"name": LIFECYCLE_NAME, "files": files_under(out / LIFECYCLE_DIR)},
        "files": {"sqlite": SQLITE_FILE, "postgres": POSTGRES_DUMP, "redis": REDIS_AOF_DIR},
        "stores": stores,
    }
    (out / MANIFEST).write_text(to_json(manifest) + "\n", encoding="utf-8")


def to_json(value: Any, indent: str = "") -> str:
    """``value`` as JSON, one line per value that fits in a line (a session, an event), nested otherwise."""
    flat = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(flat) + len(indent) <= 1200 or not isinstance(value, dict | list) or not value:
        return flat
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}:{to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / sessionflow.__version__,
                        help="the data set's folder (default: tests/data/frozen/<version>)")
    parser.add_argument("--force", action="store_true", help="replace an existing data set")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists():
        if not args.force:
            parser.error(f"{out} exists: a released data set is never rewritten (--force replaces it)")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    generate(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
