"""The lifecycle every durable benchmark runs, and helpers to run it from several threads.

One unit of work is one session: ``create`` (user, workspace, module, no files, a small metadata object,
a one-hour TTL), then ``start``, then ``complete``, each its own committed transaction. sessionflow, the raw
drivers and the eventsourcing peer all do exactly this. sessionflow's keyed variant gives every one of the three
writes a fresh idempotency key (what the store then looks up and keeps with the write).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from sessionflow import SessionManager

__all__ = ["METADATA", "MODULE", "TTL", "WORKSPACE", "SessionflowLifecycle", "spread", "threaded", "user_for"]

TTL = timedelta(hours=1)
WORKSPACE = "ws-bench"
MODULE = "bench"
METADATA: dict[str, Any] = {"client": "benchmarks", "attempt": 1}


def user_for(i: int) -> str:
    return f"user-{i % 100:03d}"


class SessionflowLifecycle:
    """``run(n)``: ``n`` sessions created, started and completed through ``manager``; with ``keyed``, each write
    given a fresh idempotency key (never sent before: no write is answered from a stored key)."""

    def __init__(self, manager: SessionManager, *, keyed: bool = False) -> None:
        self.manager = manager
        self.keyed = keyed
        self.last_session_id: UUID | None = None
        prefix = uuid.uuid4().hex  # (keys as long as a client's UUID, unique across runs and lifecycles)
        self._keys = (f"{prefix}-{i}" for i in itertools.count())

    def run(self, n: int) -> None:
        if self.keyed:
            self._run_keyed(n)
            return
        manager = self.manager
        create, start, complete = manager.create, manager.start, manager.complete
        for i in range(n):
            user = user_for(i)
            session = create(user_id=user, workspace_id=WORKSPACE, module_name=MODULE, metadata=METADATA,
                             ttl=TTL, performer_id=user)
            start(session.id, performer_id=user)
            complete(session.id, performer_id=user)
            self.last_session_id = session.id

    def _run_keyed(self, n: int) -> None:
        manager = self.manager
        create, start, complete = manager.create, manager.start, manager.complete
        keys = self._keys
        for i in range(n):
            user = user_for(i)
            session = create(user_id=user, workspace_id=WORKSPACE, module_name=MODULE, metadata=METADATA,
                             ttl=TTL, performer_id=user, idempotency_key=next(keys))
            start(session.id, performer_id=user, idempotency_key=next(keys))
            complete(session.id, performer_id=user, idempotency_key=next(keys))
            self.last_session_id = session.id


def threaded(workers: list[Callable[[int], object]]) -> Callable[[int], None]:
    """``run(n)``: the ``n`` units split evenly over one thread per worker, all started together.

    The caller's timer covers thread start-up too (a few hundred microseconds for eight threads).
    """

    def run(n: int) -> None:
        share, extra = divmod(n, len(workers))
        errors: list[BaseException] = []
        gate = threading.Barrier(len(workers))

        def body(worker: Callable[[int], object], count: int) -> None:
            try:
                gate.wait()
                worker(count)
            except BaseException as error:  # reported to the caller below
                errors.append(error)

        threads = [threading.Thread(target=body, args=(w, share + (1 if i < extra else 0)))
                   for i, w in enumerate(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    return run


def spread(workers: list[Callable[[int], object]]) -> Callable[[int], object]:
    """One worker runs as is; several run in one thread each (:func:`threaded`)."""
    return workers[0] if len(workers) == 1 else threaded(workers)
