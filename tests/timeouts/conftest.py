"""Helpers for the timeout tests: clocks shifted from the real one, stores shared by several managers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionflow import InMemoryEventStore, SessionManager
from sessionflow.application.ports import Clock, EventStore
from tests.support.backends import open_store, reset_postgres


class ShiftedClock:
    """The real clock moved by a fixed offset: a writer on ``ShiftedClock(-(ttl - lead))`` sets deadlines
    ``lead`` from now (the minimum TTL is one second; real-time tests wait much less)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def thread_idents() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.ident is not None}


def threads_back_to(before: set[int], timeout: float = 2.0) -> bool:
    return wait_for(lambda: thread_idents() <= before, timeout)


SharedManagers = Callable[..., SessionManager]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def shared_managers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedManagers]:
    """``factory(clock=None, **options)``: managers over ONE store of the parametrised backend (as
    several processes would share one database). Closed after the test."""
    backend = str(request.param)
    url: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    elif backend == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        reset_postgres(url)
    yield from managers_over(backend, url)


def managers_over(backend: str, url: str | None) -> Iterator[SharedManagers]:
    """The ``shared_managers`` factory over ``backend`` at ``url``: in memory, every manager shares one store;
    otherwise each has a store of its own on the one database (``tests/support/backends.open_store``)."""
    stores: list[EventStore] = []
    managers: list[SessionManager] = []
    memory = InMemoryEventStore() if backend == "memory" else None

    def factory(clock: Clock | None = None, **options: Any) -> SessionManager:
        if memory is not None:
            manager = SessionManager(memory, clock=clock, owns_store=False, **options)
        else:
            store = open_store(backend, url)
            stores.append(store)
            manager = SessionManager(store, clock=clock, owns_store=False, **options)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()
    for store in stores:
        store.close()
    if memory is not None:
        memory.close()
