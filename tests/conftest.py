"""Shared fixtures: the store backends every contract test runs on, and a manual clock.

``make_manager(**options)`` builds a :class:`SessionManager` over the backend of the current parameter
(``memory``, ``sqlite`` on a temporary file, ``postgres`` on the test server) and closes it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.testing import ManualClock
from tests.support.backends import BACKENDS, open_store

MakeManager = Callable[..., SessionManager]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_manager(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[MakeManager]:
    managers: list[SessionManager] = []

    def factory(**options: Any) -> SessionManager:
        store = open_store(backend, request, tmp_path)
        manager = SessionManager(store, **options)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()
