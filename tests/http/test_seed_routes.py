"""The compatibility routes of the seed design: sessions.start and sessions.end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.testing import ManualClock
from tests.http.conftest import MakeClient

START = "/session_manager/sessions.start"
END = "/session_manager/sessions.end"


def test_start_creates_and_starts_and_returns_the_started_record(client: TestClient, manager: SessionManager,
                                                               clock: ManualClock) -> None:
    response = client.post(START, json={
        "user_id": "u1", "performer_id": "agent-7", "session_notes": "nightly import", "workspace_id": "ws",
        "module_name": "auth", "file_paths": ["a.py"], "metadata": {"run": 3}, "ttl_seconds": 600,
        "is_training_data": True, "training_intent_label": "refactor", "source": "session_manager"})
    assert response.status_code == 200, response.text
    body = response.json()
    events = manager.history(body["session_id"])
    assert [e.event for e in events] == ["created", "started"]
    assert events[1].record_id.version == 4
    assert body == {"user_id": "u1", "session_id": body["session_id"], "performer_id": "agent-7",
                    "record_id": str(events[1].record_id), "timestamp": "2030-01-01T12:00:00.000Z",
                    "source": "session_manager", "status": "in_progress", "version": 2,
                    "session_notes": "nightly import", "is_training_data": True, "training_intent_label": "refactor"}
    session = manager.get(body["session_id"])
    assert session.user_id == "u1"
    assert session.metadata == {"run": 3, "session_notes": "nightly import", "is_training_data": True,
                                "training_intent_label": "refactor"}
    assert client.get(f"/sessions/{body['session_id']}").json()["metadata"]["training_intent_label"] == "refactor"
    assert session.expires_at == clock.now() + timedelta(seconds=600)
    assert events[0].performer_id == "agent-7"
    assert events[0].position is not None
    assert events[1].position == events[0].position + 1  # one commit


def test_the_boundary_fields_without_the_optional_seed_fields(client: TestClient, manager: SessionManager) -> None:
    body = client.post(START, json={"user_id": "u1", "performer_id": "u1"}).json()
    assert set(body) == {"user_id", "session_id", "performer_id", "record_id", "timestamp", "source", "status",
                         "version", "session_notes", "is_training_data", "training_intent_label"}
    assert body["source"] == "session_manager"
    assert body["is_training_data"] is None
    assert body["timestamp"].endswith("Z")
    for value in ("true", 1, "yes"):
        refused = client.post(START, json={"user_id": "u1", "performer_id": "u1", "is_training_data": value})
        assert refused.status_code == 400
        assert refused.json()["field"] == "is_training_data"
    given_twice = client.post(START, json={"user_id": "u2", "performer_id": "u2", "is_training_data": False,
                                           "metadata": {"is_training_data": True}})
    assert given_twice.status_code == 400
    assert manager.count() == 1


def test_end_completes_the_users_session(client: TestClient, manager: SessionManager, clock: ManualClock) -> None:
    sid = client.post(START, json={"user_id": "u1", "performer_id": "u1"}).json()["session_id"]
    clock.advance(timedelta(seconds=3))
    response = client.post(END, json={"user_id": "u1", "session_id": sid, "performer_id": "u1"})
    assert response.status_code == 200, response.text
    last = manager.history(sid)[-1]
    assert response.json() == {"user_id": "u1", "session_id": sid, "performer_id": "u1",
                               "record_id": str(last.record_id), "timestamp": "2030-01-01T12:00:03.000Z",
                               "source": "session_manager", "status": "completed", "version": 3,
                               "session_notes": None, "is_training_data": None, "training_intent_label": None}
    again = client.post(END, json={"user_id": "u1", "session_id": sid, "performer_id": "u1"})
    assert again.status_code == 409
    assert again.json()["error"] == "InvalidTransition"


@pytest.mark.parametrize(("extra", "field"), [
    ({"timestamp": "2030-01-01T00:00:00.000Z"}, "timestamp"),
    ({"record_id": "8d3c1a52-3f0e-4f4b-9d76-0c1f0a3e6f11"}, "record_id"),
    ({"source": "elsewhere"}, "source"),
    ({"source": ""}, "source"),
    ({"source": "sessionflow"}, "source"),
    ({"sessionNotes": "camelCase is not ours"}, "sessionNotes"),
])
def test_client_supplied_server_fields_and_unknown_fields_are_400(client: TestClient, manager: SessionManager,
                                                                  extra: dict[str, Any], field: str) -> None:
    for route, body in ((START, {"user_id": "u1", "performer_id": "u1"}),
                        (END, {"user_id": "u1", "performer_id": "u1",
                               "session_id": "8d3c1a52-3f0e-4f4b-9d76-0c1f0a3e6f11"})):
        response = client.post(route, json={**body, **extra})
        assert response.status_code == 400, (route, response.text)
        assert response.json()["error"] == "InvalidInput"
        assert response.json()["field"] == field
    assert manager.count() == 0


def test_end_refuses_another_users_session_and_unknown_ones(client: TestClient) -> None:
    sid = client.post(START, json={"user_id": "u1", "performer_id": "u1"}).json()["session_id"]
    mismatch = client.post(END, json={"user_id": "u2", "session_id": sid, "performer_id": "u2"})
    assert mismatch.status_code == 403
    assert mismatch.json()["session_id"] == sid
    missing = client.post(END, json={"user_id": "u1", "session_id": "8d3c1a52-3f0e-4f4b-9d76-0c1f0a3e6f11",
                                     "performer_id": "u1"})
    assert missing.status_code == 404
    assert client.post(END, json={"user_id": "u1", "session_id": sid}).status_code == 400  # no performer


def test_a_refused_start_records_nothing(make_client: MakeClient) -> None:
    client = make_client(manager_options={"single_active_per_user": True})
    first = client.post(START, json={"user_id": "u1", "performer_id": "u1"})
    assert first.status_code == 200
    feed = client.get("/events").json()["items"]
    second = client.post(START, json={"user_id": "u1", "performer_id": "u1"})
    assert second.status_code == 409
    assert second.json()["error"] == "ActiveSessionExists"
    assert second.json()["session_id"] is None  # no made-up session
    assert second.json()["active_session_id"] == first.json()["session_id"]
    listed = client.get("/sessions", params={"user_id": "u1"}).json()["items"]
    assert [s["id"] for s in listed] == [first.json()["session_id"]]
    assert client.get("/events").json()["items"] == feed  # no event anywhere


def test_seed_routes_with_tokens_follow_the_principal_rules(make_client: MakeClient,
                                                            manager: SessionManager) -> None:
    client = make_client(manager, tokens={
        "tok": "u1", "tok2": "u2", "tok-w": {"service": "worker", "scopes": ["sessions:write"]},
        "tok-r": {"service": "reader", "scopes": ["sessions:read"]}})
    auth, other = {"Authorization": "Bearer tok"}, {"Authorization": "Bearer tok2"}
    sid = client.post(START, json={"user_id": "u1"}, headers=auth).json()["session_id"]
    assert client.post(START, json={"user_id": "u1", "performer_id": "u2"}, headers=auth).status_code == 400
    refused = client.post(START, json={"user_id": "u1"}, headers=other)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")  # u2 starts only its own
    assert client.post(END, json={"user_id": "u1", "session_id": sid}, headers=other).status_code == 404
    assert client.post(END, json={"user_id": "u2", "session_id": sid}, headers=other).status_code == 404
    assert client.post(START, json={"user_id": "u1"}, headers={"Authorization": "Bearer tok-r"}).status_code == 403
    assert manager.count() == 1
    ended = client.post(END, json={"user_id": "u1", "session_id": sid}, headers=auth)
    assert (ended.status_code, ended.json()["status"]) == (200, "completed")
    by_worker = client.post(START, json={"user_id": "u2"}, headers={"Authorization": "Bearer tok-w"}).json()
    history = manager.history(by_worker["session_id"])
    assert [(e.event, e.performer_id) for e in history] == [("created", "worker"), ("started", "worker")]
    assert manager.get(by_worker["session_id"]).user_id == "u2"
