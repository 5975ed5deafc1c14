"""Bearer tokens and principals: the performer is the principal; users reach their own sessions only;
services act on any within their scopes; operations stay open; the OpenAPI document says which scope."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.errors import InvalidInput
from tests.http.conftest import MakeClient

TOKENS: dict[str, Any] = {
    "tok-alice": "alice", "tok-bob": "bob",
    "tok-ops": {"service": "orchestrator", "scopes": ["sessions:read", "sessions:write", "sessions:admin"]},
    "tok-reader": {"service": "dashboard", "scopes": ["sessions:read"]},
}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
OPS = {"Authorization": "Bearer tok-ops"}
READER = {"Authorization": "Bearer tok-reader"}


@pytest.fixture
def secured(make_client: MakeClient) -> TestClient:
    return make_client(tokens=TOKENS)


@pytest.mark.parametrize(("headers", "invalid"), [
    ({}, False),
    ({"Authorization": "Bearer"}, False),
    ({"Authorization": "Basic dXNlcjpwdw=="}, False),
    ({"Authorization": "Bearer tok-mallory"}, True),
    ({"Authorization": "Bearer tok-alice-but-longer"}, True),
    ({"Authorization": "Bearer sha256:" + "0" * 64}, True),
])
def test_a_missing_or_invalid_token_is_401_with_a_challenge(secured: TestClient, headers: dict[str, str],
                                                           invalid: bool) -> None:
    for method, url in (("GET", "/sessions"), ("POST", "/sessions"),
                        ("POST", "/session_manager/sessions.start")):
        response = secured.request(method, url, headers=headers, json={"user_id": "alice"})
        assert response.status_code == 401, (method, url)
        assert response.json()["code"] == "unauthorized"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="sessionflow"')
        assert ('error="invalid_token"' in challenge) is invalid


def test_operations_routes_need_no_token(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200
    assert secured.get("/metrics").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


def test_the_performer_is_the_principal(secured: TestClient) -> None:
    sid = secured.post("/sessions", json={"user_id": "alice"}, headers=ALICE).json()["id"]
    secured.post(f"/sessions/{sid}/start", headers=ALICE)
    assert secured.post(f"/sessions/{sid}/touch", json={"performer_id": "alice"}, headers=ALICE).status_code == 200
    other = secured.post(f"/sessions/{sid}/touch", json={"performer_id": "bob"}, headers=ALICE)
    assert (other.status_code, other.json()["field"]) == (400, "performer_id")
    as_system = secured.delete(f"/sessions/{sid}", params={"performer_id": "system"}, headers=OPS)
    assert as_system.status_code == 400
    assert secured.post(f"/sessions/{sid}/touch", headers=OPS).status_code == 200
    events = secured.get(f"/sessions/{sid}/history", headers=READER).json()["events"]
    assert [e["performer_id"] for e in events] == ["alice", "alice", "alice", "orchestrator"]


def test_without_user_id_a_user_creates_and_lists_its_own_and_a_service_an_ownerless_one(
        secured: TestClient) -> None:
    mine = secured.post("/sessions", json={}, headers=ALICE).json()
    assert mine["user_id"] == "alice"
    started = secured.post("/session_manager/sessions.start", json={"user_id": "bob"}, headers=BOB).json()
    ownerless = secured.post("/sessions", json={}, headers=OPS).json()
    assert ownerless["user_id"] is None
    assert [s["id"] for s in secured.get("/sessions", headers=ALICE).json()["items"]] == [mine["id"]]
    assert [s["id"] for s in secured.get("/sessions", headers=BOB).json()["items"]] == [started["session_id"]]
    every = secured.get("/sessions", headers=READER).json()["items"]
    assert {s["id"] for s in every} == {mine["id"], started["session_id"], ownerless["id"]}
    for user in (ALICE, BOB):  # a session of no user is nobody's: not found for users
        assert secured.get(f"/sessions/{ownerless['id']}", headers=user).status_code == 404
        assert secured.post(f"/sessions/{ownerless['id']}/start", headers=user).status_code == 404


def test_listing_another_users_sessions_is_refused_whether_or_not_there_are_any(secured: TestClient) -> None:
    secured.post("/sessions", json={}, headers=ALICE)
    for user_id in ("alice", "nobody-at-all"):
        refused = secured.get("/sessions", params={"user_id": user_id}, headers=BOB)
        assert refused.status_code == 403
        assert refused.json() == {"error": "Forbidden", "code": "forbidden", "message": refused.json()["message"]}
        assert user_id not in refused.text
    assert secured.get("/sessions", params={"user_id": "bob"}, headers=BOB).json()["items"] == []


def test_the_history_of_a_deleted_session_stays_its_owners(secured: TestClient) -> None:
    sid = secured.post("/sessions", json={}, headers=ALICE).json()["id"]
    assert secured.delete(f"/sessions/{sid}", headers=ALICE).status_code == 200
    events = secured.get(f"/sessions/{sid}/history", headers=ALICE).json()["events"]
    assert [e["event"] for e in events] == ["created", "deleted"]
    assert secured.get(f"/sessions/{sid}/history", headers=BOB).status_code == 404
    assert secured.get(f"/sessions/{sid}/history", headers=READER).status_code == 200


def test_a_service_without_the_scope_is_told_which_one(secured: TestClient) -> None:
    sid = secured.post("/sessions", json={"user_id": "alice"}, headers=OPS).json()["id"]
    refused = secured.delete(f"/sessions/{sid}", headers=READER)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "sessions:admin"
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="sessionflow", error="insufficient_scope", scope="sessions:admin"')
    assert secured.get(f"/sessions/{sid}", headers=OPS).json()["deleted_at"] is None


def test_enforce_owner_cannot_be_turned_off_with_tokens(manager: SessionManager) -> None:
    with pytest.raises(InvalidInput, match="enforce_owner"):
        create_app(manager, tokens=TOKENS, enforce_owner=False)
    create_app(manager, tokens=TOKENS, enforce_owner=True)  # what users get anyway


def test_a_managers_owner_policy_admits_only_a_system_service_that_writes(make_client: MakeClient) -> None:
    with SessionManager.in_memory(enforce_owner=True) as strict:
        with pytest.raises(InvalidInput, match="'orchestrator' could not change users' sessions"):
            create_app(strict, tokens=TOKENS)
        system = {"tok-alice": "alice", "tok-sys": {"service": "system", "scopes": ["sessions:write"]},
                  "tok-reader": {"service": "dashboard", "scopes": ["sessions:read"]}}
        client = make_client(strict, tokens=system)
        sid = client.post("/sessions", json={}, headers=ALICE).json()["id"]
        assert client.post(f"/sessions/{sid}/start", headers={"Authorization": "Bearer tok-sys"}).status_code == 200


def test_without_tokens_the_owner_check_is_as_before(make_client: MakeClient) -> None:
    open_app = make_client(enforce_owner=True)
    sid = open_app.post("/sessions", json={"user_id": "alice", "performer_id": "alice"}).json()["id"]
    refused = open_app.post(f"/sessions/{sid}/start", json={"performer_id": "bob"})
    assert (refused.status_code, refused.json()["code"]) == (403, "session_user_mismatch")
    assert open_app.post(f"/sessions/{sid}/start", json={"performer_id": "system"}).status_code == 200
    relaxed = make_client()
    sid = relaxed.post("/sessions", json={"user_id": "alice", "performer_id": "alice"}).json()["id"]
    assert relaxed.get(f"/sessions/{sid}").json()["user_id"] == "alice"
    assert relaxed.post(f"/sessions/{sid}/start", json={"performer_id": "bob"}).status_code == 200


def test_the_openapi_document_declares_the_scheme_and_each_routes_scope(secured: TestClient) -> None:
    document = secured.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for scope in ("sessions:read", "sessions:write", "sessions:admin", "events:read"):
        assert scope in scheme["description"]
    expected = {("get", "/sessions"): "sessions:read", ("get", "/sessions/{session_id}"): "sessions:read",
                ("get", "/sessions/{session_id}/history"): "sessions:read",
                ("delete", "/sessions/{session_id}"): "sessions:admin", ("get", "/events"): "events:read",
                ("get", "/events/stream"): "events:read"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation
                continue
            scope = expected.get((method, path), "sessions:write")
            assert operation["security"] == [{"bearer": [scope]}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), path


def test_no_token_reaches_a_log_or_a_body(secured: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for headers in (ALICE, BOB, OPS, READER, {"Authorization": "Bearer tok-wrong"}):
            for response in (secured.get("/sessions", headers=headers),
                             secured.post("/sessions", json={"user_id": "zed"}, headers=headers)):
                assert "tok-" not in response.text
    assert not any("tok-" in record.getMessage() for record in caplog.records)
    assert "tok-" not in repr(secured.app.state.auth.source)  # type: ignore[attr-defined]

