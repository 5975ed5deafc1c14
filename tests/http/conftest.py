"""Fixtures for the HTTP tests: an app over an in-memory manager on a manual clock, and its client (the apps' routers
built once per set of arguments)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # Starlette's note about httpx's future; nothing the tests can act on
    warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
    from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.entrypoints.http.routers import events, health, seed, sessions
from sessionflow.testing import ManualClock

MakeClient = Callable[..., TestClient]


@pytest.fixture(scope="package", autouse=True)
def _routers_built_once() -> Iterator[None]:
    """The routers of ``create_app``, built once per set of arguments for these tests: building them (FastAPI
    analysing every route's parameters) took most of an app's making, and nearly every test here makes an app or
    two. Each router function builds its routes from its arguments alone, and the routes find the manager, the
    tokens and the metrics on the request's app, so apps can share them (as apps share a router defined once in a
    module). The tests of the other folders, and ``serve``, still build them for each app."""
    with pytest.MonkeyPatch.context() as patch:
        for module in (sessions, events, seed, health):
            patch.setattr(module, "router", functools.cache(module.router))
        yield


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
