"""Custom lifecycles over HTTP: create in a lifecycle, send any event with arguments, filter by its states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from tests.lifecycles.jobs import JOBS_V1, register

register()


@pytest.fixture
def jobs_client() -> Iterator[TestClient]:
    with SessionManager.in_memory(lifecycle=JOBS_V1) as manager:
        yield TestClient(create_app(manager, metrics=False))


def test_events_with_arguments_and_their_errors(jobs_client: TestClient) -> None:
    created = jobs_client.post("/sessions", json={"performer_id": "u", "file_paths": []})
    assert created.status_code == 201
    assert created.json()["status"] == "queued"
    sid = created.json()["id"]
    refused = jobs_client.post(f"/sessions/{sid}/events/begin", json={"performer_id": "u"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "InvalidTransition"
    begun = jobs_client.post(f"/sessions/{sid}/events/begin", json={"performer_id": "u", "args": {"worker": "w1"}},
                             headers={"If-Match": '"1"'})
    assert begun.status_code == 200
    assert begun.json()["status"] == "running"
    stale = jobs_client.post(f"/sessions/{sid}/events/pause", json={"performer_id": "u"}, headers={"If-Match": "1"})
    assert stale.status_code == 412
    for args in ({"session": "fake"}, {"now": 1}, {"performer_id": "x"}):
        hostile = jobs_client.post(f"/sessions/{sid}/events/pause", json={"performer_id": "u", "args": args})
        assert hostile.status_code == 400, args
    assert jobs_client.post(f"/sessions/{sid}/events/bad-name", json={"performer_id": "u"}).status_code == 400
    unknown = jobs_client.post(f"/sessions/{sid}/events/fly", json={"performer_id": "u"})
    assert unknown.status_code == 409
    listed = jobs_client.get("/sessions", params={"status": "running"}).json()
    assert [s["id"] for s in listed["items"]] == [sid]
    history = jobs_client.get(f"/sessions/{sid}/history").json()
    assert [e["event"] for e in history["events"]] == ["created", "begin"]


def test_create_in_another_registered_lifecycle(jobs_client: TestClient) -> None:
    plain = jobs_client.post("/sessions", json={"performer_id": "u", "lifecycle": "session"})
    assert plain.json()["status"] == "pending"
    missing = jobs_client.post("/sessions", json={"performer_id": "u", "lifecycle": "nope"})
    assert missing.status_code == 400
