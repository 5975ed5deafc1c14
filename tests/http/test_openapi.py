"""The served OpenAPI document is complete: every operation documents its success and error responses."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

ROUTES = {
    ("post", "/sessions"), ("get", "/sessions"), ("get", "/sessions/{session_id}"),
    ("patch", "/sessions/{session_id}"), ("delete", "/sessions/{session_id}"),
    ("post", "/sessions/{session_id}/start"), ("post", "/sessions/{session_id}/complete"),
    ("post", "/sessions/{session_id}/fail"), ("post", "/sessions/{session_id}/touch"),
    ("post", "/sessions/{session_id}/files"), ("post", "/sessions/{session_id}/notes"),
    ("get", "/sessions/{session_id}/history"), ("post", "/sessions/{session_id}/events/{event}"),
    ("post", "/session_manager/sessions.start"),
    ("post", "/session_manager/sessions.end"), ("get", "/events"), ("get", "/events/stream"), ("get", "/healthz"),
    ("get", "/readyz"), ("get", "/metrics"),
}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items()
            for method, operation in item.items()}


def test_every_route_is_documented_with_its_responses(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    operations = _operations(document)
    assert set(operations) == ROUTES
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"Session", "SessionEvent", "SessionPage", "SessionHistory", "SeedRecord", "ErrorBody"} <= set(schemas)
    for key, operation in operations.items():
        assert operation["operationId"]
        assert operation["summary"]
        assert operation["tags"]
        responses = operation["responses"]
        # Invalid input is 400; the only 422 is a write's reused Idempotency-Key (an ErrorBody, checked below).
        assert ("422" in responses) == (key[0] != "get"), key
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, key
        content = responses[success[0]]["content"]
        assert any(media["schema"] for media in content.values()), key
        for code, response in responses.items():
            if code.startswith("4") or code == "503":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref in ("#/components/schemas/ErrorBody", "#/components/schemas/Health"), key
        if key[1].startswith("/sessions/{session_id}"):
            assert {"400", "404"} <= set(responses), key
        if key[0] != "get" and key[1].startswith("/sessions/{session_id}"):
            assert {"403", "409", "412", "503"} <= set(responses), key
            assert "If-Match" in [p["name"] for p in operation["parameters"]], key


def test_the_document_links_created_sessions_to_their_routes(client: TestClient) -> None:
    operations = _operations(client.get("/openapi.json").json())
    links = operations[("post", "/sessions")]["responses"]["201"]["links"]
    assert links["get_session"] == {"operationId": "get_session", "parameters": {"session_id": "$response.body#/id"},
                                    "description": links["get_session"]["description"]}
    ids = {op["operationId"] for key, op in operations.items() if key[1].startswith("/sessions/{session_id}")}
    assert set(links) == ids


def test_the_session_schema_matches_what_is_served(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    session_fields = set(document["components"]["schemas"]["Session"]["properties"])
    served = client.post("/sessions", json={"performer_id": "u1"}).json()
    assert set(served) == session_fields
