"""Functions run in child processes by the exactly-once tests (importable, so they work with spawn).

Each child opens its own manager on the shared database, waits at the barrier so all start together, does
its part, and puts a result on the queue.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sessionflow import ConcurrencyConflict, InvalidTransition, SessionManager
from sessionflow.testing import ManualClock


def _report(queue: Any, name: str, work: Any) -> None:
    try:
        queue.put((name, "ok", work()))
    except BaseException:
        queue.put((name, "error", traceback.format_exc()))


def sweep(url: str, at: str, batch_size: int, barrier: Any, queue: Any) -> None:
    """Expire what is due at ``at`` with ``expire_sessions``; reports how many this process expired."""

    def work() -> int:
        with SessionManager.open(url, migrate=False, clock=ManualClock(datetime.fromisoformat(at))) as manager:
            barrier.wait(60)
            return manager.expire_sessions(batch_size=batch_size)

    _report(queue, "sweep", work)


def start_waker(url: str, at: str, barrier: Any, queue: Any) -> None:
    """Start the real waker (its first sweep is the restart catch-up) at ``at``; reports what it expired."""

    def work() -> int:
        with SessionManager.open(url, migrate=False, clock=ManualClock(datetime.fromisoformat(at))) as manager:
            barrier.wait(60)
            waker = manager.start_timeouts()
            expired = int(waker.expired)  # type: ignore[attr-defined]
            manager.stop_timeouts()
            return expired

    _report(queue, "waker", work)


def finish(url: str, at: str, jobs: list[tuple[str, str]], barrier: Any, queue: Any) -> None:
    """Complete, fail or touch each session (``jobs``: ``(session_id, action)``) at ``at``, just before
    the deadline. Reports ``(session_id, action, outcome)`` with outcome ``done``, ``refused`` (the session
    was already expired) or ``conflict``."""

    def work() -> list[tuple[str, str, str]]:
        outcomes: list[tuple[str, str, str]] = []
        with SessionManager.open(url, migrate=False, clock=ManualClock(datetime.fromisoformat(at))) as manager:
            barrier.wait(60)
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

    _report(queue, "finish", work)


def iso(moment: datetime, delta: timedelta = timedelta(0)) -> str:
    return (moment + delta).isoformat()
