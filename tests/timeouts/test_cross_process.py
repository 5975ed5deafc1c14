"""Deadlines written by another process wake this process's waker (not its five-minute safety net).

Process A runs a manager with its waker started and a safety-net sweep every 300 s; process B (a real
subprocess: the ``sessionflow create`` command) creates a session due in 2 s. A must expire it within a second
of its deadline, on SQLite (its change watcher polls ``PRAGMA data_version``) and on PostgreSQL (``NOTIFY``).
The same holds with the ``sessionflow worker`` command as process A.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionflow import EventType, SessionEvent, SessionManager
from sessionflow.adapters.apscheduler import ApschedulerWaker
from sessionflow.adapters.sqlalchemy.notifications import SqliteChangeWatcher

ROOT = Path(__file__).resolve().parents[2]
SAFETY_NET = timedelta(seconds=300)
#: How late an expiry may be, from the deadline to its delivery in process A.
ALLOWED_LATENESS = 1.0


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def create_in_another_process(url: str, ttl: str = "2s") -> tuple[str, datetime]:
    """``sessionflow create`` in a subprocess; the new session's id and deadline."""
    done = subprocess.run(
        [sys.executable, "-m", "sessionflow", "create", "--db", url, "--user", "u1", "--ttl", ttl,
         "--performer", "u1", "--json"],
        capture_output=True, text=True, timeout=60, env=_environment(), cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    session = json.loads(done.stdout)
    return session["id"], datetime.fromisoformat(session["expires_at"].replace("Z", "+00:00"))


class Expiries:
    """Notes the wall-clock time at which each ``expired`` event reaches a subscriber."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    def __call__(self, event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED:
            with self.changed:
                self.at[str(event.session_id)] = time.time()
                self.changed.notify_all()

    def wait(self, session_id: str, timeout: float) -> float | None:
        with self.changed:
            self.changed.wait_for(lambda: session_id in self.at, timeout)
            return self.at.get(session_id)


@pytest.fixture
def process_a(sql_url: str) -> Iterator[tuple[SessionManager, Expiries]]:
    """A manager with its default waker started (safety net: 300 s) and listening for other processes."""
    with SessionManager.open(sql_url) as manager:
        expiries = Expiries()
        manager.subscribe(expiries)
        waker = manager.start_timeouts(cleanup_interval=SAFETY_NET)
        assert isinstance(waker, ApschedulerWaker)
        watcher: Any = waker.watcher
        assert watcher is not None, "the default waker follows no change watcher"
        assert watcher.wait_listening(10)
        yield manager, expiries


def test_a_session_created_by_another_process_expires_at_its_deadline(
        process_a: tuple[SessionManager, Expiries], sql_url: str) -> None:
    manager, expiries = process_a
    session_id, deadline = create_in_another_process(sql_url)
    expired_at = expiries.wait(session_id, timeout=deadline.timestamp() - time.time() + 3)
    assert expired_at is not None, "the session was not expired by this process's waker"
    lateness = expired_at - deadline.timestamp()
    assert 0 <= lateness <= ALLOWED_LATENESS
    assert manager.get(session_id).status == "expired"


def test_an_earlier_deadline_from_another_process_rearms_the_armed_waker(
        process_a: tuple[SessionManager, Expiries], sql_url: str) -> None:
    manager, expiries = process_a
    later = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=30))
    assert manager.waker is not None
    assert getattr(manager.waker, "armed_at", None) == later.expires_at
    session_id, deadline = create_in_another_process(sql_url)
    expired_at = expiries.wait(session_id, timeout=deadline.timestamp() - time.time() + 3)
    assert expired_at is not None
    assert expired_at - deadline.timestamp() <= ALLOWED_LATENESS
    assert manager.get(later.id).status == "pending"


def test_the_worker_command_expires_sessions_created_by_another_process(sql_url: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "sessionflow", "worker", "--db", sql_url, "--json", "--for", "20s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(), cwd=ROOT)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(worker.stdout.readline, "")),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        time.sleep(1.5)  # the worker's start: its catch-up sweep and its watcher
        with SessionManager.open(sql_url) as other:
            session = other.create(user_id="u1", performer_id="u1", ttl=timedelta(seconds=1))
        assert session.expires_at is not None
        deadline = session.expires_at.timestamp()
        while time.time() < deadline + 3 and not any(session.id.hex in line.replace("-", "") for line in lines):
            time.sleep(0.02)
        seen = time.time()
        assert any(str(session.id) in line for line in lines), "the worker did not expire the session"
        assert seen - deadline <= ALLOWED_LATENESS + 0.1
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert worker.returncode == 0


def test_the_http_service_expires_sessions_created_by_another_process(sql_url: str) -> None:
    """``sessionflow serve``'s app (its lifespan starts the default waker) beside a writer process."""
    from fastapi.testclient import TestClient

    from sessionflow.entrypoints.http import app_from_env
    from sessionflow.settings import Settings

    app = app_from_env(Settings(database_url=sql_url), environ={})
    with TestClient(app) as client:
        manager: SessionManager = app.state.manager
        expiries = Expiries()
        manager.subscribe(expiries)
        watcher: Any = getattr(manager.waker, "watcher", None)
        assert watcher is not None
        assert watcher.wait_listening(10)
        session_id, deadline = create_in_another_process(sql_url)
        expired_at = expiries.wait(session_id, timeout=deadline.timestamp() - time.time() + 3)
        assert expired_at is not None, "the service's waker did not expire the session"
        assert expired_at - deadline.timestamp() <= ALLOWED_LATENESS
        assert manager.get(session_id).status == "expired"
        assert client.get("/readyz").status_code == 200


def test_a_write_of_this_process_still_rearms_the_waker_at_once(sql_url: str) -> None:
    """The watcher's notices come on top of the in-process path, which stays as it was."""
    with SessionManager.open(sql_url) as manager:
        expiries = Expiries()
        manager.subscribe(expiries)
        waker = manager.start_timeouts(cleanup_interval=SAFETY_NET)
        session = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(seconds=1))
        assert session.expires_at is not None
        expired_at = expiries.wait(str(session.id), timeout=4)
        assert expired_at is not None
        assert expired_at - session.expires_at.timestamp() <= ALLOWED_LATENESS
        watcher: Any = getattr(waker, "watcher", None)
        assert watcher is not None
        assert watcher.running
    assert not watcher.running  # closing the manager stopped its watcher


def test_an_in_memory_manager_has_no_watcher() -> None:
    with SessionManager.in_memory() as manager:
        waker = manager.start_timeouts(cleanup_interval=SAFETY_NET)
        assert isinstance(waker, ApschedulerWaker)
        assert waker.watcher is None
    with SessionManager.open("sqlite://") as manager:
        assert manager._new_watcher() is None


def test_a_closed_manager_stops_its_watcher(tmp_path: Path) -> None:
    manager = SessionManager.open(f"sqlite:///{tmp_path / 'w.db'}")
    watcher = manager._new_watcher()
    assert isinstance(watcher, SqliteChangeWatcher)
    assert watcher is not None
    assert watcher.running
    assert manager._new_watcher() is watcher  # built once
    manager.start_timeouts(cleanup_interval=SAFETY_NET)
    manager.stop_timeouts()
    assert watcher.running  # the waker unsubscribes; it does not stop what it did not build
    manager.close()
    assert not watcher.running
    assert manager._new_watcher() is None
