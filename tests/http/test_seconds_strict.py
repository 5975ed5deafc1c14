"""Every ``*_seconds`` field of a request body is a JSON number, as the OpenAPI document says: ``true``, a string
(``"60"``, ``" 60 "``, ``"1e2"``) or any other non-number is a 400 naming the field, and nothing is created."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager

#: Each route taking a ``*_seconds`` body field, with a body that is valid without it.
ROUTES = {
    "create": ("/sessions", {"performer_id": "alice"}),
    "seed start": ("/session_manager/sessions.start", {"user_id": "alice", "performer_id": "alice"}),
}
NOT_NUMBERS = [True, False, "60", " 60 ", "1e2", "60s", "", [60], {"seconds": 60}]


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_a_seconds_field_that_is_not_a_json_number_is_refused(client: TestClient, manager: SessionManager,
                                                              route: str, value: Any) -> None:
    path, body = ROUTES[route]
    response = client.post(path, json={**body, "ttl_seconds": value})
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["error"], error["code"], error["field"]) == ("InvalidInput", "invalid_input", "ttl_seconds")
    assert manager.count() == 0
    assert manager.last_position() == 0


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize(("value", "seconds"), [(60, 60), (60.5, 60.5), (1, 1), (1e2, 100)])
def test_a_seconds_field_that_is_a_number_is_taken(client: TestClient, manager: SessionManager, route: str,
                                                   value: float, seconds: float) -> None:
    path, body = ROUTES[route]
    response = client.post(path, json={**body, "ttl_seconds": value})
    assert response.status_code in (200, 201), response.text
    (session,) = manager.list()
    assert session.ttl_seconds == seconds


def test_every_seconds_field_of_a_request_body_is_a_number_in_the_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    bodies = {option["$ref"].rsplit("/", 1)[-1]
              for item in document["paths"].values() for operation in item.values()
              for media in operation.get("requestBody", {}).get("content", {}).values()
              for option in media["schema"].get("anyOf", [media["schema"]]) if "$ref" in option}
    assert len(bodies) >= 9
    found = []
    for body in sorted(bodies):
        for name, field in schemas[body].get("properties", {}).items():
            if name.endswith("_seconds"):
                found.append((body, name))
                types = {option.get("type") for option in field.get("anyOf", [field])}
                assert types <= {"number", "integer", "null"}, (body, name, field)
    assert found == [("CreateSessionBody", "ttl_seconds"), ("SeedStartBody", "ttl_seconds")]
