"""The store backends the contract suite runs on. SQLite and PostgreSQL join when the SQL store lands."""

from __future__ import annotations

from typing import Any

import pytest

from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.ports import EventStore

BACKENDS = ["memory"]


def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> EventStore:
    if backend == "memory":
        return InMemoryEventStore()
    raise ValueError(f"unknown backend {backend!r}")
