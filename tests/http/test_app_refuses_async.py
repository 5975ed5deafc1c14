"""``create_app`` refuses an ``AsyncSessionManager`` when it is called, in one line saying what to pass, instead
of serving an app whose first ``POST /sessions`` fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import AsyncSessionManager, InvalidInput
from sessionflow.entrypoints.http import create_app


@pytest.mark.parametrize("options", [{}, {"tokens": {"t-alice": "alice"}}, {"metrics": False}],
                         ids=["plain", "tokens", "no-metrics"])
def test_an_async_manager_is_refused_at_construction(options: dict[str, Any]) -> None:
    manager = AsyncSessionManager.in_memory()
    try:
        with pytest.raises(InvalidInput) as refused:
            create_app(manager, **options)  # type: ignore[arg-type]
    finally:
        asyncio.run(manager.close())
    message = str(refused.value)
    assert "\n" not in message
    assert "AsyncSessionManager" in message
    assert "SessionManager.open(url)" in message
    assert refused.value.field == "manager"


def test_a_session_manager_is_still_served(client: TestClient) -> None:
    created = client.post("/sessions", json={"user_id": "u1", "performer_id": "u1"})
    assert created.status_code == 201, created.text
    assert client.get(f"/sessions/{created.json()['id']}").json()["status"] == "pending"
