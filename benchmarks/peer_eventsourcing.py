"""The peer: the same session lifecycle written with the ``eventsourcing`` library (9.x).

``BenchSession`` is an ``Aggregate`` with ``Created``, ``Started`` and ``Completed`` events carrying the same
fields as sessionflow's (user, workspace, module, files, metadata, TTL and deadline); its commands check the
same guards (start only while pending and before the deadline, complete only while in progress with every
file accounted for). ``SessionsApp`` is an ``Application``: ``create`` saves a new aggregate, ``start`` and
``complete`` load it from its events and save the new event, each in its own transaction, with the
library's defaults (no aggregate cache, no snapshots).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks.environment import conninfo

__all__ = ["BenchSession", "SessionsApp", "lifecycle", "postgres_env", "postgres_missing", "sessions_app",
           "sqlite_env", "sqlite_synchronous"]


class GuardRefused(Exception):
    pass


class BenchSession(Aggregate):
    @event("Created")
    def __init__(self, user_id: str | None, workspace_id: str | None, module_name: str | None,
                 file_paths: list[str], metadata: dict[str, Any], ttl_seconds: float, expires_at: datetime) -> None:
        self.status = "pending"
        self.user_id = user_id
        self.workspace_id = workspace_id
        self.module_name = module_name
        self.file_paths = file_paths
        self.metadata = metadata
        self.ttl_seconds = ttl_seconds
        self.expires_at = expires_at
        self.processed_files = 0
        self.failed_files = 0
        self.closed_by: str | None = None

    def start(self, performer_id: str, now: datetime) -> None:
        if self.status != "pending" or self.expires_at <= now:
            raise GuardRefused(f"cannot start from {self.status}")
        self._started(performer_id=performer_id)

    @event("Started")
    def _started(self, performer_id: str) -> None:
        self.status = "in_progress"

    def complete(self, performer_id: str) -> None:
        if self.status != "in_progress" or self.processed_files + self.failed_files != len(self.file_paths):
            raise GuardRefused(f"cannot complete from {self.status}")
        self._completed(performer_id=performer_id)

    @event("Completed")
    def _completed(self, performer_id: str) -> None:
        self.status = "completed"
        self.closed_by = performer_id


class SessionsApp(Application[UUID]):
    name = "Sessions"

    def create(self, *, user_id: str, workspace_id: str, module_name: str, file_paths: list[str],
               metadata: dict[str, Any], ttl: timedelta) -> UUID:
        now = datetime.now(UTC)
        session = BenchSession(user_id, workspace_id, module_name, file_paths, metadata, ttl.total_seconds(),
                               now + ttl)
        self.save(session)
        return session.id

    def start(self, session_id: UUID, performer_id: str) -> None:
        session: BenchSession = self.repository.get(session_id)
        session.start(performer_id, datetime.now(UTC))
        self.save(session)

    def complete(self, session_id: UUID, performer_id: str) -> None:
        session: BenchSession = self.repository.get(session_id)
        session.complete(performer_id)
        self.save(session)

    def get_session(self, session_id: UUID) -> BenchSession:
        session: BenchSession = self.repository.get(session_id)
        return session


def sqlite_env(path: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}


def postgres_env(url: str, pool_size: int = 5) -> dict[str, str]:
    info = conninfo(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(info["dbname"]),
        "POSTGRES_HOST": str(info["host"]),
        "POSTGRES_PORT": str(info["port"]),
        "POSTGRES_USER": str(info["user"]),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "2",
    }


@contextmanager
def sessions_app(env: Mapping[str, str]) -> Iterator[SessionsApp]:
    """A ``SessionsApp`` configured by ``env`` only (variables of the process environment are ignored)."""
    saved = {key: os.environ.pop(key) for key in list(os.environ)
             if key.startswith(("PERSISTENCE_", "SQLITE_", "POSTGRES_", "AGGREGATE_CACHE"))}
    try:
        app = SessionsApp(env=dict(env))
    finally:
        os.environ.update(saved)
    try:
        yield app
    finally:
        app.close()


def sqlite_synchronous(app: SessionsApp) -> str:
    """The ``PRAGMA synchronous`` level the app's SQLite connections run with (as SQLite names it)."""
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        level = int(cursor.fetchone()[0])
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))


def lifecycle(app: SessionsApp) -> Callable[[int], None]:
    """``run(n)``: ``n`` sessions created, started and completed through the eventsourcing application."""
    from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, user_for

    def run(n: int) -> None:
        create, start, complete = app.create, app.start, app.complete
        for i in range(n):
            user = user_for(i)
            session_id = create(user_id=user, workspace_id=WORKSPACE, module_name=MODULE, file_paths=[],
                                metadata=METADATA, ttl=TTL)
            start(session_id, user)
            complete(session_id, user)

    return run


def postgres_missing() -> str | None:
    """Why eventsourcing's PostgreSQL module cannot load here (it needs ``psycopg_pool``), or ``None``."""
    try:
        import eventsourcing.postgres  # noqa: F401
    except ImportError as error:
        return f"eventsourcing's PostgreSQL module does not load ({error}); install eventsourcing[postgres]"
    return None
