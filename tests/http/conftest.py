"""Fixtures for the HTTP tests: an app over an in-memory manager on a manual clock, and its client."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # Starlette's note about httpx's future; nothing the tests can act on
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.testing import ManualClock

MakeClient = Callable[..., TestClient]


@pytest.fixture
def manager(clock: ManualClock) -> Iterator[SessionManager]:
    with SessionManager.in_memory(clock=clock) as mgr:
        yield mgr


@pytest.fixture
def make_client(clock: ManualClock) -> Iterator[MakeClient]:
    """``make_client(manager=None, **create_app_options)``: a client of a new app (new manager if none)."""
    managers: list[SessionManager] = []
    clients: list[TestClient] = []

    def factory(manager: SessionManager | None = None, *, manager_options: dict[str, Any] | None = None,
                **options: Any) -> TestClient:
        if manager is None:
            manager = SessionManager.in_memory(clock=clock, **(manager_options or {}))
            managers.append(manager)
        client = TestClient(create_app(manager, **options), raise_server_exceptions=True)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
    for mgr in managers:
        mgr.close()


@pytest.fixture
def client(manager: SessionManager, make_client: MakeClient) -> TestClient:
    """A client of an app without authentication over ``manager``."""
    return make_client(manager)
