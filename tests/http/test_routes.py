"""The routes over an app without authentication: every route, filters, pagination, ETag and If-Match."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.testing import ManualClock

U = {"performer_id": "u1"}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"performer_id": "u1", "user_id": "u1", **fields}
    response = client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_full_lifecycle_through_every_route(client: TestClient, manager: SessionManager) -> None:
    created = client.post("/sessions", json={
        "performer_id": "u1", "user_id": "u1", "workspace_id": "ws", "module_name": "auth",
        "file_paths": ["a.py", "b.py"], "metadata": {"k": [1, 2]}, "ttl_seconds": 1800})
    assert created.status_code == 201
    session = created.json()
    sid = session["id"]
    assert created.headers["location"] == f"/sessions/{sid}"
    assert created.headers["etag"] == '"1"'
    assert session["status"] == "pending"
    assert session["ttl_seconds"] == 1800
    assert session["created_at"].endswith("Z")

    assert client.post(f"/sessions/{sid}/start", json=U).json()["status"] == "in_progress"
    assert client.post(f"/sessions/{sid}/files", json={**U, "path": "a.py"}).json()["progress"][
        "processed_files"] == 1
    failed_file = client.post(f"/sessions/{sid}/files", json={**U, "path": "b.py", "error": "parse error"})
    assert failed_file.json()["progress"]["failed_files"] == ["b.py"]
    noted = client.post(f"/sessions/{sid}/notes", json={**U, "file_path": "a.py", "memory_id": "m-1",
                                                         "status": "stored"})
    assert noted.json()["notes"][0]["memory_id"] == "m-1"
    touched = client.post(f"/sessions/{sid}/touch", json=U)
    assert touched.status_code == 200
    assert touched.headers["etag"] == '"6"'
    patched = client.patch(f"/sessions/{sid}", json={**U, "current_file": "b.py", "metadata": {"x": 1}})
    assert patched.json()["progress"]["current_file"] == "b.py"
    assert patched.json()["metadata"] == {"x": 1}
    done = client.post(f"/sessions/{sid}/complete", json=U)
    assert done.json()["status"] == "completed"
    assert done.json()["closed_by"] == "u1"

    got = client.get(f"/sessions/{sid}")
    assert got.json() == done.json()
    assert got.headers["etag"] == '"8"'
    history = client.get(f"/sessions/{sid}/history").json()
    assert history["session_id"] == sid
    assert [e["event"] for e in history["events"]] == [
        "created", "started", "file_recorded", "file_recorded", "note_added", "touched", "updated", "completed"]
    assert history["events"] == [e.model_dump(mode="json") for e in manager.history(sid)]

    deleted = client.delete(f"/sessions/{sid}", params=U)
    assert deleted.status_code == 200
    assert deleted.json()["deleted_at"] is not None
    assert client.get(f"/sessions/{sid}").status_code == 404
    assert client.get(f"/sessions/{sid}/history").json()["events"][-1]["event"] == "deleted"


def test_fail_and_patch_status_run_through_the_lifecycle(client: TestClient) -> None:
    sid = create(client)["id"]
    failed = client.post(f"/sessions/{sid}/fail", json={**U, "reason": "upstream down"})
    assert failed.json()["status"] == "failed"
    assert failed.json()["failure_reason"] == "upstream down"

    other = create(client, file_paths=["x"])["id"]
    started = client.patch(f"/sessions/{other}", json={**U, "status": "in_progress"})
    assert started.json()["status"] == "in_progress"
    refused = client.patch(f"/sessions/{other}", json={**U, "status": "completed"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "InvalidTransition"
    assert client.patch(f"/sessions/{other}", json={**U, "status": "failed", "reason": "gave up"}).json()[
        "failure_reason"] == "gave up"
    cleared = create(client)["id"]
    client.patch(f"/sessions/{cleared}", json={**U, "current_file": "a"})
    assert client.patch(f"/sessions/{cleared}", json={**U, "current_file": None}).json()["progress"][
        "current_file"] is None
    nothing = client.patch(f"/sessions/{cleared}", json=U)
    assert nothing.status_code == 400
    assert nothing.json()["field"] == "update"


def test_list_filters_and_pagination(client: TestClient, clock: ManualClock) -> None:
    ids = []
    for index in range(5):
        ids.append(create(client, user_id=f"u{index % 2}", workspace_id="ws" if index < 3 else "other",
                          module_name="m")["id"])
        clock.advance(timedelta(milliseconds=5))
    client.post(f"/sessions/{ids[0]}/start", json={"performer_id": "u0"})

    def listed(**params: Any) -> list[str]:
        response = client.get("/sessions", params=params)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert listed() == ids
    assert listed(user_id="u0") == [ids[0], ids[2], ids[4]]
    assert listed(workspace_id="other") == ids[3:]
    assert listed(status="in_progress") == [ids[0]]
    assert listed(status=["in_progress", "pending"], user_id="u1") == [ids[1], ids[3]]
    assert listed(module_name="nope") == []
    first = client.get("/sessions", params={"limit": 2}).json()
    assert [s["id"] for s in first["items"]] == ids[:2]
    assert first["next_offset"] == 2
    last = client.get("/sessions", params={"limit": 2, "offset": 4}).json()
    assert [s["id"] for s in last["items"]] == ids[4:]
    assert last["next_offset"] is None
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "sleeping"}, {"limit": "x"}):
        response = client.get("/sessions", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_input"


def test_if_match_stale_is_412_and_current_applies(client: TestClient) -> None:
    sid = create(client)["id"]
    assert client.post(f"/sessions/{sid}/start", json=U, headers={"If-Match": '"1"'}).status_code == 200
    stale = client.patch(f"/sessions/{sid}", json={**U, "metadata": {"a": 1}}, headers={"If-Match": "1"})
    assert stale.status_code == 412
    body = stale.json()
    assert body["error"] == "ConcurrencyConflict"
    assert body["session_id"] == sid
    assert body["expected_version"] == 1
    assert body["actual_version"] == 2
    current = client.patch(f"/sessions/{sid}", json={**U, "metadata": {"a": 1}}, headers={"If-Match": '"2"'})
    assert current.status_code == 200
    assert current.headers["etag"] == '"3"'
    assert client.post(f"/sessions/{sid}/touch", json=U, headers={"If-Match": "*"}).status_code == 200
    for route, kwargs in ((f"/sessions/{sid}/touch", {"json": U}), (f"/sessions/{sid}/notes", {
            "json": {**U, "file_path": "a", "status": "s"}})):
        assert client.post(route, headers={"If-Match": "2"}, **kwargs).status_code == 412
    assert client.delete(f"/sessions/{sid}", params=U, headers={"If-Match": "3"}).status_code == 412
    malformed = client.post(f"/sessions/{sid}/touch", json=U, headers={"If-Match": 'W/"4"'})
    assert malformed.status_code == 400
    assert malformed.json()["field"] == "If-Match"
    assert client.delete(f"/sessions/{sid}", params=U, headers={"If-Match": "4"}).status_code == 200


def test_a_conflict_without_if_match_is_409(client: TestClient, manager: SessionManager,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionflow import ConcurrencyConflict

    sid = create(client)["id"]

    def racing(*args: Any, **kwargs: Any) -> Any:
        raise ConcurrencyConflict(manager.get(sid).id, expected_version=1, actual_version=2)

    monkeypatch.setattr(manager, "touch", racing)
    response = client.post(f"/sessions/{sid}/touch", json=U)
    assert response.status_code == 409
    assert response.json()["code"] == "concurrency_conflict"


def test_health_and_readiness(client: TestClient, manager: SessionManager,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    monkeypatch.setattr(manager, "ping", lambda: False)
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable"}
    assert client.get("/healthz").status_code == 200


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = client.put("/sessions")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
    assert "allow" in wrong.headers
