"""``GET /events`` and ``GET /events/stream``: the global feed over HTTP, pages and Server-Sent Events, with the
same principals as every route (a user sees only its own sessions' events; a service needs ``events:read``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app

TOKENS: dict[str, Any] = {"tok-alice": "alice", "tok-bob": "bob",
                          "tok-feed": {"service": "feed", "scopes": ["events:read"]},
                          "tok-rw": {"service": "rw", "scopes": ["sessions:read", "sessions:write"]}}
ALICE, BOB, FEED, RW = ({"Authorization": f"Bearer {t}"} for t in ("tok-alice", "tok-bob", "tok-feed", "tok-rw"))


@pytest.fixture
def manager() -> Any:
    with SessionManager.in_memory() as mgr:
        yield mgr


@pytest.fixture
def client(manager: SessionManager) -> Any:
    with TestClient(create_app(manager, tokens=TOKENS, metrics=False)) as c:
        yield c


def _messages(text: str) -> list[dict[str, str]]:
    """The SSE messages of a stream (comments left out)."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            found.append(fields)
    return found


def _sessions(client: TestClient) -> None:
    for who in (ALICE, BOB, ALICE):
        sid = client.post("/sessions", json={}, headers=who).json()["id"]
        assert client.post(f"/sessions/{sid}/start", headers=who).status_code == 200


def test_pages_of_the_feed_with_the_position_to_ask_for_next(client: TestClient) -> None:
    _sessions(client)
    page = client.get("/events", headers=FEED).json()
    assert [e["position"] for e in page["items"]] == [1, 2, 3, 4, 5, 6]
    assert (page["after"], page["next_after"]) == (0, 6)
    second = client.get("/events", params={"after": 2, "limit": 3}, headers=FEED).json()
    assert [e["position"] for e in second["items"]] == [3, 4, 5]
    assert second["next_after"] == 5
    empty = client.get("/events", params={"after": 6}, headers=FEED).json()
    assert (empty["items"], empty["next_after"]) == ([], 6)


def test_a_user_sees_only_its_own_sessions_events(client: TestClient, manager: SessionManager) -> None:
    _sessions(client)
    theirs = {str(s.id) for s in manager.list(user_id="bob")}
    alice = client.get("/events", headers=ALICE).json()["items"]
    assert [e["position"] for e in alice] == [1, 2, 5, 6]
    assert not {e["session_id"] for e in alice} & theirs
    bob = client.get("/events", headers=BOB).json()["items"]
    assert {e["session_id"] for e in bob} == theirs
    with client.stream("GET", "/events/stream", params={"follow": "false"}, headers=BOB) as response:
        assert {m["id"] for m in _messages(response.read().decode())} == {"3", "4"}


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (RW, 403)])
def test_the_feed_needs_a_token_and_for_a_service_the_events_scope(client: TestClient, headers: dict[str, str],
                                                                   status: int) -> None:
    _sessions(client)
    for path in ("/events", "/events/stream"):
        response = client.get(path, headers=headers)
        assert response.status_code == status
        assert "session_id" not in response.text or response.json()["session_id"] is None
    assert client.get("/events", headers=RW).json()["required_scope"] == "events:read"


@pytest.mark.parametrize("params", [{"after": -1}, {"after": "x"}, {"limit": 0}, {"limit": 1001}])
def test_bad_parameters_are_400(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/events", params=params, headers=FEED)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_the_stream_sends_each_event_with_its_position_as_id(client: TestClient) -> None:
    _sessions(client)
    with client.stream("GET", "/events/stream", params={"follow": "false"}, headers=FEED) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = _messages(response.read().decode())
    assert [m["id"] for m in messages] == ["1", "2", "3", "4", "5", "6"]
    assert [m["event"] for m in messages[:2]] == ["created", "started"]
    assert json.loads(messages[0]["data"])["position"] == 1


def test_a_reconnecting_client_resumes_after_its_last_event_id(client: TestClient) -> None:
    _sessions(client)
    with client.stream("GET", "/events/stream", params={"follow": "false"},
                       headers={**FEED, "Last-Event-ID": "4"}) as response:
        assert [m["id"] for m in _messages(response.read().decode())] == ["5", "6"]
    with client.stream("GET", "/events/stream", params={"after": 1, "limit": 2}, headers=FEED) as response:
        assert [m["id"] for m in _messages(response.read().decode())] == ["2", "3"]
    assert client.get("/events/stream", headers={**FEED, "Last-Event-ID": "four"}).status_code == 400


def test_a_following_stream_delivers_writes_made_while_it_is_open(client: TestClient,
                                                                  manager: SessionManager) -> None:
    def write_later() -> None:
        time.sleep(0.3)
        manager.create(performer_id="alice", user_id="alice")

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        with client.stream("GET", "/events/stream", params={"limit": 1}, headers=ALICE) as response:
            messages = _messages(response.read().decode())
    finally:
        writer.join(10)
    assert [(m["id"], m["event"]) for m in messages] == [("1", "created")]
