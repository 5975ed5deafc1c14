"""Every frozen data set opens with today's code and reads back as it was written.

``tests/data/frozen/<version>/`` holds what a release's stores hold — an SQLite file, a PostgreSQL dump and a
Redis append-only folder, each with the live JSONL trail, the purge archive and an export written beside it —
and ``manifest.json``, what that release read back from each (see ``tests/data/frozen/make_frozen.py``). Each
test works on a copy (a copied SQLite file; a fresh database on the suite's PostgreSQL, a copy of one restored
from the dump with ``psql``; a ``redis-server`` of its own started on a copied append-only folder), opens it with
``SessionManager.open(url)`` — migrations run — on a clock set to when the data set was written, and checks
that nothing an existing deployment relies on moved: sessions, histories and feed positions, consumers' positions,
list cursors, ``Last-Event-ID``s, the archive, the trail, new writes. The last test checks the table of the locks
each PostgreSQL migration takes in docs/upgrading.md against the locks measured.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from sessionflow import InvalidInput, SessionEvent, SessionManager, SessionNotFound, SessionPage
from sessionflow.adapters.archive import read_archive, restore_archive
from sessionflow.adapters.jsonl import JsonlAuditTrail, export
from sessionflow.adapters.sqlalchemy.migrations import alembic_config
from sessionflow.entrypoints.http import create_app
from sessionflow.testing import ManualClock
from tests.data.frozen.make_frozen import (
    MANIFEST,
    POSTGRES_DUMP,
    REDIS_AOF_DIR,
    SQLITE_FILE,
    STORES,
    event_json,
    files_under,
    list_arguments,
    pg_tool,
    registry_for,
)
from tests.support.backends import postgres_database
from tests.support.redis import RedisServer, RedisUnavailable, require_redis

with warnings.catch_warnings():  # Starlette's note about httpx's future; nothing the tests can act on
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from fastapi.testclient import TestClient

FROZEN = Path(__file__).resolve().parents[1] / "data" / "frozen"
DATASETS = sorted(path.parent for path in FROZEN.glob(f"*/{MANIFEST}"))
_MARKS = {"postgres": [pytest.mark.postgres], "redis": [pytest.mark.redis]}


@cache
def _manifest(dataset: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((dataset / MANIFEST).read_text(encoding="utf-8"))
    return loaded


def _cases() -> list[Any]:
    return [pytest.param((dataset, store), id=f"{dataset.name}-{store}", marks=_MARKS.get(store, []))
            for dataset in DATASETS for store in STORES]


def test_there_is_a_frozen_data_set() -> None:
    assert DATASETS, f"no data set under {FROZEN}"
    for dataset in DATASETS:  # what opening the file in place leaves behind would change the data set
        for suffix in ("-wal", "-shm", "-journal"):
            assert not (dataset / f"{SQLITE_FILE}{suffix}").exists(), f"{dataset / SQLITE_FILE}{suffix}"


def _as_before(value: Any, before: Any) -> Any:
    """``value`` (a session or an event, or a list of them) cut down to the fields of ``before``: a field a newer
    release added is left out (what was there must read back equal; what is new cannot be known from old data).
    Inside a field, nothing is left out: metadata and payloads must read back exactly."""
    if isinstance(before, list) and isinstance(value, list):
        return [_as_before(v, b) for v, b in zip(value, before, strict=False)] + value[len(before):]
    if isinstance(before, dict) and isinstance(value, dict):
        return {key: value.get(key, "<missing>") for key in before}
    return value


@dataclass
class Frozen:
    """A copy of one store of one data set, ready to open."""

    dataset: Path
    store: str
    url: str
    folder: Path  # the copy of ``<dataset>/<store>``: its trail (audit/), archive/ and export/
    expected: dict[str, Any]  # the store's part of the manifest
    written_at: datetime

    def open(self, clock: ManualClock | None = None) -> SessionManager:
        return SessionManager.open(self.url, clock=clock or ManualClock(self.written_at),
                                   registry=registry_for(self.dataset))

    def named(self, name: str) -> str:
        return str(self.expected["named"][name])


# --------------------------------------------------------------------------- the copies


@contextlib.contextmanager
def _fresh_database(server: URL, template: str | None = None) -> Iterator[URL]:
    """A new database on the PostgreSQL server of ``server`` (empty, or a copy of ``template``); dropped
    afterwards."""
    with postgres_database(server.render_as_string(hide_password=False), "frozen", template) as url:
        yield make_url(url)


class _RestoredDumps(dict[tuple[URL, Path], str]):
    """The database each ``(server, dump)`` was restored into with ``psql``, restored on first use."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        super().__init__()
        self._stack = stack

    def __missing__(self, key: tuple[URL, Path]) -> str:
        server, dump = key
        url = self._stack.enter_context(_fresh_database(server))
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        restored = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), libpq],
                                  capture_output=True, text=True, timeout=60, check=False)
        assert restored.returncode == 0, restored.stderr
        self[key] = str(url.database)
        return self[key]


@pytest.fixture(scope="module")
def restored_dumps() -> Iterator[_RestoredDumps]:
    """Each dump restored once, into a database each test's copy is made from (``CREATE DATABASE … TEMPLATE``:
    a file copy, much faster than restoring again); dropped after the module's tests."""
    with contextlib.ExitStack() as stack:
        yield _RestoredDumps(stack)


@contextlib.contextmanager
def _postgres_copy(request: pytest.FixtureRequest, dump: Path) -> Iterator[str]:
    """A fresh database on the suite's PostgreSQL holding what ``dump`` holds (restored with ``psql``)."""
    server = make_url(str(request.getfixturevalue("postgres_url")))
    template = request.getfixturevalue("restored_dumps")[server, dump]
    with _fresh_database(server, template) as url:
        yield url.render_as_string(hide_password=False)


@contextlib.contextmanager
def _redis_copy(aof: Path, directory: Path) -> Iterator[str]:
    """A ``redis-server`` of its own on a copy of the append-only folder ``aof``."""
    directory.mkdir()
    shutil.copytree(aof, directory / aof.name)
    try:
        server = RedisServer(directory)
    except RedisUnavailable as error:
        require_redis(error)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture(params=_cases())
def frozen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Frozen]:
    dataset, store = request.param
    manifest = _manifest(dataset)
    folder = tmp_path / store
    shutil.copytree(dataset / store, folder)
    with contextlib.ExitStack() as stack:
        if store == "sqlite":
            url = f"sqlite:///{tmp_path / SQLITE_FILE}"
        elif store == "postgres":
            url = stack.enter_context(_postgres_copy(request, dataset / POSTGRES_DUMP))
        else:
            url = stack.enter_context(_redis_copy(dataset / REDIS_AOF_DIR, tmp_path / "redis-server"))
        yield Frozen(dataset, store, url, folder, manifest["stores"][store],
                     datetime.fromisoformat(manifest["written_at"]))


# --------------------------------------------------------------------------- helpers


def _history(manager: SessionManager, session_id: str) -> list[dict[str, Any]]:
    return [event_json(e) for e in manager.history(session_id)]


def _feed(manager: SessionManager, after: int = 0) -> list[list[Any]]:
    return [[e.position, str(e.record_id)] for e in manager.events(after=after, limit=10_000)]


def _without_positions(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``history`` without the events' positions; an event read back today must have no trace context (none
    was recorded before the field existed), and is compared without it."""
    assert all(event.get("trace_context") is None for event in history)
    return [{k: v for k, v in event.items() if k not in ("position", "trace_context")} for event in history]


def _client(manager: SessionManager) -> TestClient:
    return TestClient(create_app(manager, metrics=False), raise_server_exceptions=True)


def _sse_ids(client: TestClient, headers: dict[str, str]) -> list[int]:
    with client.stream("GET", "/events/stream", params={"follow": "false"}, headers=headers) as response:
        assert response.status_code == 200, response.read()
        body = response.read().decode()
    return [int(line.removeprefix("id: ")) for line in body.splitlines() if line.startswith("id: ")]


def _list_params(spec: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    return {**spec, **({"cursor": cursor} if cursor is not None else {})}


def _page(manager: SessionManager, spec: dict[str, Any], cursor: str | None) -> SessionPage | InvalidInput:
    """The page ``manager`` gives for a list filter and a cursor, or the refusal of the cursor."""
    arguments = list_arguments({k: v for k, v in spec.items() if k != "limit"})
    try:
        return manager.page(cursor=cursor, limit=spec["limit"], **arguments)
    except InvalidInput as error:
        return error


# --------------------------------------------------------------------------- the tests


def test_it_reads_back_as_it_was_written(frozen: Frozen) -> None:
    expected = frozen.expected
    with frozen.open() as manager:
        assert manager.verify() == []
        for sid, session in expected["sessions"].items():
            assert _as_before(manager.get(sid).model_dump(mode="json"), session) == session, sid
        for sid in expected["deleted"]:
            with pytest.raises(SessionNotFound):
                manager.get(sid)
        for sid, history in expected["histories"].items():
            assert _as_before(_history(manager, sid), history) == history, sid
            assert [e.trace_context for e in manager.history(sid)] == [None] * len(history), sid
        for sid in expected["purged"]["ids"]:
            with pytest.raises(SessionNotFound):
                manager.history(sid)
        assert manager.count() == expected["counts"]["all"]
        for status, ids in expected["by_status"].items():
            assert manager.count(status) == expected["counts"][status], status
            assert [str(s.id) for s in manager.list(status=status, limit=1000)] == ids, status
        assert manager.last_position() == expected["last_position"]
        assert _feed(manager) == expected["feed"]
        for mark in expected["after"]:
            assert [e.position for e in manager.events(after=mark["after"], limit=10_000)] == mark["positions"]
        for name, position in expected["consumers"].items():
            assert manager.consumer_position(name) == position, name


def test_old_cursors_and_event_ids_give_the_same_pages(frozen: Frozen) -> None:
    """A cursor handed out before the upgrade gives the same page (or, should its format ever change, a clear
    400 ``invalid_input`` naming the cursor — never another page); a ``Last-Event-ID`` or ``after`` the same
    events."""
    with frozen.open() as manager, _client(manager) as client:
        for listing in frozen.expected["pages"]:
            spec = listing["filter"]
            for page in listing["pages"]:
                where = (spec, page["cursor"])
                response = client.get("/sessions", params=_list_params(spec, page["cursor"]))
                got = _page(manager, spec, page["cursor"])
                if isinstance(got, InvalidInput):
                    assert page["cursor"] is not None, where
                    assert got.field == "cursor", where
                    assert response.status_code == 400, (where, response.text)
                    assert response.json()["code"] == "invalid_input", where
                    continue
                assert [str(s.id) for s in got.items] == page["ids"], where
                assert (got.next_cursor is None) == (page["next_cursor"] is None), where
                assert response.status_code == 200, (where, response.text)
                assert [s["id"] for s in response.json()["items"]] == page["ids"], where
        for mark in frozen.expected["after"]:
            after = mark["after"]
            assert _sse_ids(client, {"Last-Event-ID": str(after)}) == mark["positions"], after
            page = client.get("/events", params={"after": after, "limit": 1000}).json()
            assert [e["position"] for e in page["items"]] == mark["positions"], after


def test_consumers_resume_where_they_stopped(frozen: Frozen) -> None:
    expected = frozen.expected
    clock = ManualClock(frozen.written_at)
    with frozen.open(clock) as manager:
        for name, position in expected["consumers"].items():
            handled: list[SessionEvent] = []
            assert manager.consume(name, handled.append, follow=False) == len(handled)
            assert [[e.position, str(e.record_id)] for e in handled] == _feed(manager, position), name
            assert [e[0] for e in _feed(manager, position)] == [p for p, _ in expected["feed"] if p > position]
            assert manager.consumer_position(name) == expected["last_position"], name
        created = manager.create(user_id="zoe", performer_id="zoe", ttl=timedelta(days=1))
        for name in expected["consumers"]:
            handled = []
            assert manager.consume(name, handled.append, follow=False) == 1, name
            assert handled[0].record_id == manager.history(created.id)[0].record_id
            assert handled[0].position is not None
            assert handled[0].position > expected["last_position"]


def test_new_writes_continue_the_feed_and_the_trail(frozen: Frozen) -> None:
    expected = frozen.expected
    audit = frozen.folder / "audit"
    old_files = {path: path.read_bytes() for path in audit.rglob("*.jsonl")}
    assert len(old_files) == len(expected["trail"]["files"])
    assert sum(len(data.splitlines()) for data in old_files.values()) == expected["trail"]["lines"]
    clock = ManualClock(frozen.written_at)
    with frozen.open(clock) as manager:
        trail = JsonlAuditTrail.attach(manager, audit)
        fresh = manager.create(user_id="alice", workspace_id="ws-1", file_paths=["n.py"], ttl=timedelta(days=1),
                               performer_id="alice")
        manager.start(fresh.id, performer_id="alice")
        manager.record_file(fresh.id, "n.py", performer_id="alice")
        manager.complete(fresh.id, performer_id="alice")
        short = manager.create(user_id="bob", ttl=timedelta(minutes=1), performer_id="bob")
        manager.touch(frozen.named("pending-files"), performer_id="alice")
        manager.record_file(frozen.named("in-progress-files"), "c.py", performer_id="alice")
        manager.complete(frozen.named("in-progress-files"), performer_id="alice")
        manager.send(frozen.named("review-in-review"), "approve", reviewer="carol", performer_id="carol")
        manager.send(frozen.named("review-draft"), "submit", performer_id="alice")
        clock.advance(timedelta(minutes=2))
        assert manager.sweep().expired == 1
        assert str(manager.get(short.id).status) == "expired"
        trail.detach()

        new_events = _feed(manager, expected["last_position"])
        positions = [p for p, _ in new_events]
        assert positions == sorted(positions)
        assert len(new_events) == 4 + 1 + 1 + 2 + 1 + 1 + 1  # fresh, short, touch, record+complete, 2 sends, sweep
        assert positions[0] > expected["last_position"]
        assert manager.last_position() == positions[-1]
        assert _feed(manager)[:len(expected["feed"])] == expected["feed"]
        written = {frozen.named(n) for n in ("pending-files", "in-progress-files", "review-in-review", "review-draft")}
        for sid, session in expected["sessions"].items():
            if sid not in written:
                assert _as_before(manager.get(sid).model_dump(mode="json"), session) == session, sid
            old = expected["histories"][sid]
            assert _as_before(_history(manager, sid)[:len(old)], old) == old, sid
        assert manager.verify() == []

    lines = 0
    for path in audit.rglob("*.jsonl"):
        data = path.read_bytes()
        if path in old_files:
            assert data.startswith(old_files[path]), path
        assert data.endswith(b"\n"), path
        for line in data.splitlines():
            record = json.loads(line)
            assert record["source"] == "sessionflow"
            lines += 1
    assert lines == expected["trail"]["lines"] + len(new_events)


def test_keyed_writes_work_once_upgraded(frozen: Frozen) -> None:
    """The upgraded database keeps idempotency keys (on SQL: revision 0008): a keyed write sent twice is applied
    once, on a session stored before the upgrade and on a new one."""
    with frozen.open() as manager:
        old = frozen.named("pending-files")
        before = len(_history(manager, old))
        touched = manager.touch(old, performer_id="alice", idempotency_key="touch-1")
        assert manager.touch(old, performer_id="alice", idempotency_key="touch-1") == touched
        fresh = manager.create(user_id="alice", performer_id="alice", idempotency_key="create-1")
        assert manager.create(user_id="alice", performer_id="alice", idempotency_key="create-1") == fresh
        assert len(_history(manager, old)) == before + 1
        assert len(_history(manager, str(fresh.id))) == 1
        stored: Any = manager.store
        assert stored.find_key("performer:alice", "touch-1")[1:3] == (touched.id, touched.version)


def test_the_archive_restores(frozen: Frozen, tmp_path: Path) -> None:
    purged = frozen.expected["purged"]
    archive = frozen.folder / "archive"
    assert files_under(archive) == purged["archive_files"]
    expected = {sid: _without_positions(history) for sid, history in purged["histories"].items()}
    assert sorted(expected) == purged["ids"]
    read = {str(h[0].session_id): _without_positions([event_json(e) for e in h]) for h in read_archive(archive)}
    assert read == expected

    with SessionManager.open(f"sqlite:///{tmp_path / 'restored.db'}", registry=registry_for(frozen.dataset),
                             clock=ManualClock(frozen.written_at)) as fresh:
        assert restore_archive(fresh.store, archive) == len(expected)
        for sid, history in expected.items():
            assert _without_positions(_history(fresh, sid)) == history, sid
        assert fresh.verify() == []

    with frozen.open() as manager:  # back into the upgraded store itself: new positions, above the old ones
        assert restore_archive(manager.store, archive) == len(expected)
        for sid, history in expected.items():
            restored = _history(manager, sid)
            assert _without_positions(restored) == history, sid
            assert min(e["position"] for e in restored) > frozen.expected["last_position"]
        assert manager.verify() == []


def test_export_writes_the_same_files(frozen: Frozen) -> None:
    root = frozen.folder / "export"
    before = {path: path.read_bytes() for path in root.rglob("*.jsonl")}
    assert files_under(root) == frozen.expected["export"]["files"]
    with frozen.open() as manager:
        result = export(manager, root)
    assert (result.files_written, result.files_unchanged) == (0, len(before))
    assert {path: path.read_bytes() for path in root.rglob("*.jsonl")} == before


# --------------------------------------------------------------------------- the migrations' locks

UPGRADING = Path(__file__).resolve().parents[2] / "docs" / "upgrading.md"
LOCKS_SECTION = "## Migrations and the locks they take"
LOCKS_COLUMN = "Locks on existing tables"
#: pg_locks' mode names as PostgreSQL's documentation (and docs/upgrading.md) spells them.
_MODES = {"AccessShareLock": "ACCESS SHARE", "RowShareLock": "ROW SHARE", "RowExclusiveLock": "ROW EXCLUSIVE",
          "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE", "ShareLock": "SHARE",
          "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE", "ExclusiveLock": "EXCLUSIVE",
          "AccessExclusiveLock": "ACCESS EXCLUSIVE"}
#: The tables and sequences of the schema (the version table aside), before a revision runs.
_TABLES = ("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') AND c.relname <> 'alembic_version'")
#: The relation locks this transaction holds.
_LOCKS = ("SELECT l.relation, c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
          "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'")


def _documented_locks() -> dict[str, dict[str, set[str]]]:
    """Revision → table → lock modes, from the table of docs/upgrading.md."""
    section = UPGRADING.read_text(encoding="utf-8").split(LOCKS_SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    column = rows[0].index(LOCKS_COLUMN)
    documented: dict[str, dict[str, set[str]]] = {}
    for cells in rows[2:]:
        locks: dict[str, set[str]] = {}
        if cells[column] != "none":
            for part in cells[column].split(";"):
                table, modes = part.split(":", 1)
                locks[table.strip().strip("`")] = {mode.strip() for mode in modes.split(",")}
        documented[cells[0].strip("`")] = locks
    return documented


@pytest.mark.postgres
def test_the_documented_migration_locks_are_the_measured_ones(request: pytest.FixtureRequest) -> None:
    """Each revision, run alone in a transaction on PostgreSQL: the locks it holds before its commit on the
    tables that existed before it are those docs/upgrading.md lists for it, and every revision is listed."""
    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    measured: dict[str, dict[str, set[str]]] = {}
    with _fresh_database(make_url(str(request.getfixturevalue("postgres_url")))) as url:
        engine = create_engine(url)
        try:
            for revision in revisions:
                with engine.connect() as conn, conn.begin():
                    existing = set(conn.execute(text(_TABLES)).scalars())
                    command.upgrade(alembic_config(connection=conn), revision)
                    locks: dict[str, set[str]] = {}
                    for oid, name, mode in conn.execute(text(_LOCKS)).all():
                        if oid in existing:
                            locks.setdefault(name, set()).add(_MODES[mode])
                    measured[revision] = locks
        finally:
            engine.dispose()
    assert measured == _documented_locks()
