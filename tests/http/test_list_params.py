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


def test_newest_first_pages_by_offset_and_cursor(client: TestClient, manager: SessionManager) -> None:
    ids = [str(manager.create(performer_id="p").id) for _ in range(5)]  # one millisecond: creation order still
    body = client.get("/sessions", params={"newest_first": "true"}).json()
    assert [s["id"] for s in body["items"]] == ids[::-1]
    assert [s["id"] for s in client.get("/sessions", params={"newest_first": "true", "limit": 2, "offset": 2})
            .json()["items"]] == ids[2:0:-1]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "newest_first": "true", **({"cursor": cursor} if cursor else {})}
        page = client.get("/sessions", params=params).json()
        seen.extend(s["id"] for s in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    forwards = client.get("/sessions", params={"limit": 2}).json()["next_cursor"]
    crossed = client.get("/sessions", params={"cursor": forwards, "newest_first": "true"})
    assert crossed.status_code == 400, crossed.text
    assert crossed.json()["code"] == "invalid_input"
    assert "restart paging" in crossed.json()["message"]


def test_a_cursor_whose_session_was_purged_is_400_restart_paging(client: TestClient, manager: SessionManager,
                                                                 clock: ManualClock) -> None:
    made = [manager.create(performer_id="p") for _ in range(3)]
    manager.fail(made[0].id, reason="r", performer_id="p")
    cursor = client.get("/sessions", params={"limit": 1}).json()["next_cursor"]
    assert [s["id"] for s in client.get("/sessions", params={"cursor": cursor}).json()["items"]] == [
        str(s.id) for s in made[1:]]
    clock.advance(timedelta(days=2))
    manager.create(performer_id="p")
    assert manager.purge(closed_before=clock.now() - timedelta(days=1)).sessions == 1
    response = client.get("/sessions", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_input"
    assert "restart paging" in response.json()["message"]
