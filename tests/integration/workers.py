"""Functions run in child processes by the multi-process tests (importable, so they work with spawn)."""

from __future__ import annotations

import random
import time
from typing import Any
from uuid import UUID

from sessionflow import ConcurrencyConflict, InvalidTransition, SessionManager


def hammer(url: str, session_ids: list[str], operations: int, seed: int, start_at: float = 0.0) -> dict[str, Any]:
    """Write to the shared sessions as fast as possible; report every acknowledged event.

    Returns ``{"acked": [(session_id, version, event, file_path)], "conflicts": n}``: an operation is
    acknowledged when the manager returned, and then the history must hold exactly the event it wrote.
    """
    rng = random.Random(seed)
    acked: list[tuple[str, int, str, str]] = []
    conflicts = 0
    with SessionManager.open(url, migrate=False) as manager:
        time.sleep(max(0.0, start_at - time.time()))  # start together with the other processes
        for i in range(operations):
            sid = UUID(rng.choice(session_ids))
            try:
                if rng.random() < 0.5:
                    # Read-then-write with the version read, as a careful client does: a race is a conflict.
                    seen = manager.get(sid).version
                    session = manager.add_note(sid, file_path=f"f{i}", status=f"p{seed}", performer_id=f"w{seed}",
                                               expected_version=seen)
                    acked.append((str(sid), session.version, "note_added", f"f{i}"))
                else:
                    session = manager.touch(sid, performer_id=f"w{seed}")
                    acked.append((str(sid), session.version, "touched", ""))
            except ConcurrencyConflict:
                conflicts += 1
                continue
            except InvalidTransition:
                continue
    return {"acked": acked, "conflicts": conflicts}


def open_and_create(url: str, count: int) -> list[str]:
    """Open the database (migrating it) and create ``count`` sessions; used to race schema upgrades."""
    with SessionManager.open(url) as manager:
        return [str(manager.create(performer_id="racer").id) for _ in range(count)]


def contend(url: str, operations: int, seed: int, busy_timeout: float, start_at: float) -> dict[str, Any]:
    """Create and advance sessions on a shared SQLite file with a tiny busy timeout.

    Returns the acknowledged ``(session_id, version)`` pairs and the names of the errors raised.
    """
    from sessionflow import SessionflowError

    acked: list[tuple[str, int]] = []
    errors: list[str] = []
    with SessionManager.open(url, migrate=False, sqlite_busy_timeout=busy_timeout) as manager:
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(operations):
            try:
                s = manager.create(performer_id=f"c{seed}")
                acked.append((str(s.id), 1))
                s = manager.start(s.id, performer_id=f"c{seed}")
                acked.append((str(s.id), 2))
            except SessionflowError as error:
                errors.append(type(error).__name__)
    return {"acked": acked, "errors": errors}
