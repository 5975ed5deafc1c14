"""Bearer-token authentication: tokens name performers; enforce_owner applies; operations stay open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.errors import InvalidInput
from tests.http.conftest import MakeClient

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-orchestrator": "system"}
ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
SYSTEM = {"Authorization": "Bearer tok-orchestrator"}


@pytest.fixture
def secured(make_client: MakeClient) -> TestClient:
    return make_client(tokens=TOKENS)


@pytest.mark.parametrize(("headers", "invalid"), [
    ({}, False),
    ({"Authorization": "Bearer"}, False),
    ({"Authorization": "Basic dXNlcjpwdw=="}, False),
    ({"Authorization": "Bearer tok-mallory"}, True),
    ({"Authorization": "Bearer tok-alice-but-longer"}, True),
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


def test_the_performer_comes_from_the_token(secured: TestClient, ) -> None:
    created = secured.post("/sessions", json={"user_id": "alice"}, headers=ALICE)
    assert created.status_code == 201
    sid = created.json()["id"]
    secured.post(f"/sessions/{sid}/start", headers=ALICE)
    same = secured.post(f"/sessions/{sid}/touch", json={"performer_id": "alice"}, headers=ALICE)
    assert same.status_code == 200
    other = secured.post(f"/sessions/{sid}/touch", json={"performer_id": "bob"}, headers=ALICE)
    assert other.status_code == 400
    assert other.json()["field"] == "performer_id"
    deleting_as_other = secured.delete(f"/sessions/{sid}", params={"performer_id": "system"}, headers=ALICE)
    assert deleting_as_other.status_code == 400
    events = secured.get(f"/sessions/{sid}/history", headers=BOB).json()["events"]
    assert [e["performer_id"] for e in events] == ["alice", "alice", "alice"]


def test_enforce_owner_is_on_with_tokens(secured: TestClient) -> None:
    sid = secured.post("/sessions", json={"user_id": "alice"}, headers=ALICE).json()["id"]
    refused = secured.post(f"/sessions/{sid}/start", headers=BOB)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "SessionUserMismatch", "code": "session_user_mismatch", "message": refused.json()["message"],
        "session_id": sid, "owner": "alice", "performer_id": "bob"}
    assert secured.patch(f"/sessions/{sid}", json={"metadata": {}}, headers=BOB).status_code == 403
    assert secured.delete(f"/sessions/{sid}", headers=BOB).status_code == 403
    assert secured.get(f"/sessions/{sid}", headers=BOB).status_code == 200  # reads are not restricted
    assert secured.post(f"/sessions/{sid}/start", headers=SYSTEM).status_code == 200  # "system" may
    assert secured.post(f"/sessions/{sid}/touch", headers=ALICE).status_code == 200
    ownerless = secured.post("/sessions", json={}, headers=ALICE).json()["id"]
    assert secured.post(f"/sessions/{ownerless}/start", headers=BOB).status_code == 200


def test_enforce_owner_can_be_turned_off_but_not_below_the_managers_policy(make_client: MakeClient) -> None:
    relaxed = make_client(tokens=TOKENS, enforce_owner=False)
    sid = relaxed.post("/sessions", json={"user_id": "alice"}, headers=ALICE).json()["id"]
    assert relaxed.post(f"/sessions/{sid}/start", headers=BOB).status_code == 200

    strict_manager = make_client(tokens=TOKENS, enforce_owner=False, manager_options={"enforce_owner": True})
    sid = strict_manager.post("/sessions", json={"user_id": "alice"}, headers=ALICE).json()["id"]
    assert strict_manager.post(f"/sessions/{sid}/start", headers=BOB).status_code == 403

    open_app = make_client(enforce_owner=True)
    sid = open_app.post("/sessions", json={"user_id": "alice", "performer_id": "alice"}).json()["id"]
    assert open_app.post(f"/sessions/{sid}/start", json={"performer_id": "bob"}).status_code == 403


def test_the_openapi_document_declares_the_bearer_scheme(secured: TestClient) -> None:
    document = secured.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"][
            "description"]}
    for path, item in document["paths"].items():
        for operation in item.values():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation
            else:
                assert operation["security"] == [{"bearer": []}], path
                assert "401" in operation["responses"], path


def test_token_configuration_is_checked() -> None:
    with SessionManager.in_memory() as manager:
        with pytest.raises(InvalidInput, match="tokens"):
            create_app(manager, tokens={})
        with pytest.raises(InvalidInput, match="tokens"):
            create_app(manager, tokens={"t": " "})
