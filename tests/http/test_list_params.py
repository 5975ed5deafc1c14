"""``GET /sessions``: the lifecycle and creation-time filters and the cursor pages."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sessionflow import SessionManager
from sessionflow.testing import ManualClock

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _made(manager: SessionManager, clock: ManualClock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(str(manager.create(user_id=f"u{i % 2}", performer_id="p").id))
        clock.advance(timedelta(seconds=1))
    return ids


def test_cursor_pages_walk_every_session(client: TestClient, manager: SessionManager, clock: ManualClock) -> None:
    ids = _made(manager, clock, 5)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/sessions", params=params).json()
        seen.extend(s["id"] for s in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    last = client.get("/sessions", params={"limit": 5}).json()
    assert last["next_cursor"] is not None  # a full page: there may be more (like next_offset)
    assert client.get("/sessions", params={"cursor": last["next_cursor"]}).json()["items"] == []


def test_lifecycle_and_creation_range(client: TestClient, manager: SessionManager, clock: ManualClock) -> None:
    ids = _made(manager, clock, 4)
    created = [manager.get(i).created_at for i in ids]
    params = {"created_after": created[1].isoformat(), "created_before": created[3].isoformat().replace(
        "+00:00", "Z"), "lifecycle": "session"}
    assert [s["id"] for s in client.get("/sessions", params=params).json()["items"]] == ids[1:3]
    assert client.get("/sessions", params={"lifecycle": "jobs"}).json()["items"] == []


def test_bad_list_parameters_are_400(client: TestClient, manager: SessionManager, clock: ManualClock) -> None:
    _made(manager, clock, 2)
    for params in ({"cursor": "not-a-cursor"}, {"created_after": "2030-01-01T00:00:00"},
                   {"created_after": "2030-01-02T00:00:00Z", "created_before": "2030-01-01T00:00:00Z"},
                   {"created_after": "yesterday"}):
        response = client.get("/sessions", params=params)
        assert response.status_code in (400, 422), (params, response.text)
