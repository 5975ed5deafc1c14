"""Functions run in child processes by the exactly-once tests (importable, so they work with spawn).

Each opens its own manager on the shared database, waits at the barrier so that all start together, does
its part and returns what it did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sessionflow import ConcurrencyConflict, InvalidTransition, SessionManager
from sessionflow.testing import ManualClock


def warm_up() -> None:
    """Pool initializer: import what the workers use once per process, not in each test."""
    import sessionflow.adapters.apscheduler
    import sessionflow.bootstrap  # noqa: F401


def _open(url: str, at: str) -> SessionManager:
    return SessionManager.open(url, migrate=False, clock=ManualClock(datetime.fromisoformat(at)))


def sweep(url: str, at: str, batch_size: int, barrier: Any) -> int:
    """Expire what is due at ``at`` with ``expire_sessions``; returns how many this process expired."""
    with _open(url, at) as manager:
        barrier.wait(30)
        return manager.expire_sessions(batch_size=batch_size)


def start_waker(url: str, at: str, barrier: Any) -> int:
    """Start the real waker at ``at`` (its first sweep is the restart catch-up); returns what it expired."""
    with _open(url, at) as manager:
        barrier.wait(30)
        waker = manager.start_timeouts()
        expired = int(waker.expired)  # type: ignore[attr-defined]
        manager.stop_timeouts()
        return expired


def finish(url: str, at: str, jobs: list[tuple[str, str]], barrier: Any) -> list[tuple[str, str, str]]:
    """Complete, fail or touch each session (``jobs``: ``(session_id, action)``) at ``at``, just before its
    deadline. Returns ``(session_id, action, outcome)``, outcome ``done``, ``refused`` (already expired) or
    ``conflict``."""
    outcomes: list[tuple[str, str, str]] = []
    with _open(url, at) as manager:
        barrier.wait(30)
        for sid, action in jobs:
            try:
                if action == "complete":
                    manager.complete(UUID(sid), performer_id="worker")
                elif action == "fail":
                    manager.fail(UUID(sid), reason="gave up", performer_id="worker")
                else:
                    manager.touch(UUID(sid), performer_id="worker")
                outcomes.append((sid, action, "done"))
            except InvalidTransition:
                outcomes.append((sid, action, "refused"))
            except ConcurrencyConflict:
                outcomes.append((sid, action, "conflict"))
    return outcomes
