"""Fixtures of the asyncio facade's own tests: where each kind of store lives, and a way to open it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionflow import AsyncSessionManager
from tests.support.backends import reset_postgres

#: The stores the facade runs on: in memory (greenlets, no I/O), SQLite (a worker thread), PostgreSQL (greenlets
#: on psycopg's asyncio driver).
KINDS = ["memory", "sqlite", "postgres"]

Opener = Callable[..., Any]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """The test PostgreSQL, emptied."""
    url = str(request.getfixturevalue("postgres_url"))
    reset_postgres(url)
    return url


@pytest.fixture
def open_manager(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """``await open_manager(**options)``: a new manager over this test's store of ``kind`` (every manager of a
    test shares one database)."""
    url = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'async.db'}"
    elif kind == "postgres":
        url = request.getfixturevalue("pg_url")

    async def open_(**options: Any) -> AsyncSessionManager:
        if url is None:
            return AsyncSessionManager.in_memory(**options)
        return await AsyncSessionManager.open(url, **options)

    return open_
