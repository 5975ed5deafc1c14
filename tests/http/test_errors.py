"""The error table: each sessionflow error maps to one status, with a JSON body naming the error and session."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import status_for
from sessionflow.entrypoints.http.errors import HTTP_ERROR_NAMES, http_error_name
from sessionflow.errors import (
    ActiveSessionExists,
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    LifecycleDefinitionError,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
    UnknownState,
)
from tests.http.conftest import MakeClient

U = {"performer_id": "u1"}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    error: str
    manager_options: dict[str, Any]
    act: Callable[[TestClient, str], Any]  # (client, id of a pending session of u1) -> response
    names_session: bool = True


def _start_twice(client: TestClient, sid: str) -> Any:
    client.post(f"/sessions/{sid}/start", json=U)
    return client.post(f"/sessions/{sid}/start", json=U)


def _second_active(client: TestClient, sid: str) -> Any:
    client.post(f"/sessions/{sid}/start", json=U)
    other = client.post("/sessions", json={**U, "user_id": "u1"}).json()["id"]
    return client.post(f"/sessions/{other}/start", json=U)


CASES = [
    Case("not found", 404, "SessionNotFound", {}, lambda c, sid: c.get(f"/sessions/{uuid4()}")),
    Case("not found on write", 404, "SessionNotFound", {},
         lambda c, sid: c.post(f"/sessions/{uuid4()}/touch", json=U)),
    Case("history of nothing", 404, "SessionNotFound", {}, lambda c, sid: c.get(f"/sessions/{uuid4()}/history")),
    Case("another user's session", 403, "SessionUserMismatch", {"enforce_owner": True},
         lambda c, sid: c.post(f"/sessions/{sid}/touch", json={"performer_id": "mallory"})),
    Case("invalid transition", 409, "InvalidTransition", {}, _start_twice),
    Case("guard refused", 409, "InvalidTransition", {},
         lambda c, sid: c.post(f"/sessions/{sid}/fail", json={**U, "reason": "  "})),
    Case("active session exists", 409, "ActiveSessionExists", {"single_active_per_user": True}, _second_active),
    Case("stale If-Match", 412, "ConcurrencyConflict", {},
         lambda c, sid: c.post(f"/sessions/{sid}/touch", json=U, headers={"If-Match": "7"})),
    Case("blank performer", 400, "InvalidInput", {},
         lambda c, sid: c.post(f"/sessions/{sid}/touch", json={"performer_id": "   "})),
    Case("missing performer", 400, "InvalidInput", {}, lambda c, sid: c.post(f"/sessions/{sid}/touch")),
    Case("file not in the session", 400, "InvalidInput", {},
         lambda c, sid: c.post(f"/sessions/{sid}/files", json={**U, "path": "nope"})),
    Case("unknown field", 400, "InvalidInput", {},
         lambda c, sid: c.post(f"/sessions/{sid}/touch", json={**U, "colour": "red"})),
    Case("wrong type", 400, "InvalidInput", {},
         lambda c, sid: c.post(f"/sessions/{sid}/fail", json={**U, "reason": 42})),
    Case("malformed JSON", 400, "InvalidInput", {},
         lambda c, sid: c.post(f"/sessions/{sid}/fail", content=b"{nope",
                               headers={"content-type": "application/json"})),
    Case("malformed session id", 400, "InvalidInput", {}, lambda c, sid: c.get("/sessions/not-a-uuid"),
         names_session=False),
    Case("metadata too deep", 400, "InvalidInput", {},
         lambda c, sid: c.patch(f"/sessions/{sid}", json={**U, "metadata": _nested(40)})),
    Case("ttl out of bounds", 400, "InvalidInput", {},
         lambda c, sid: c.post("/sessions", json={**U, "ttl_seconds": 0.5}), names_session=False),
]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_error_table(case: Case, make_client: MakeClient) -> None:
    client = make_client(manager_options=case.manager_options)
    sid = client.post("/sessions", json={**U, "user_id": "u1", "file_paths": ["a"]}).json()["id"]
    response = case.act(client, sid)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == case.error
    assert body["code"]
    assert body["message"]
    assert "session_id" in body
    if case.names_session:
        assert body["session_id"] is not None


def test_store_failure_is_503(make_client: MakeClient, manager: SessionManager) -> None:
    client = make_client(manager)
    sid = client.post("/sessions", json=U).json()["id"]
    manager.store.close()
    response = client.get(f"/sessions/{sid}")
    assert response.status_code == 503
    assert response.json()["error"] == "StoreError"
    assert response.json()["session_id"] == sid
    assert client.get("/readyz").status_code == 503


def test_error_bodies_carry_the_error_context(make_client: MakeClient) -> None:
    client = make_client()
    sid = client.post("/sessions", json=U).json()["id"]
    refused = _start_twice(client, sid).json()
    assert refused == {
        "error": "InvalidTransition", "code": "invalid_transition", "message": refused["message"],
        "session_id": sid, "state": "in_progress", "event": "start", "reason": refused["reason"]}
    unknown = client.post("/sessions", json={**U, "colour": "red", "shade": 3}).json()
    assert unknown["field"] == "colour"
    assert unknown["problem"] == "unknown field"
    assert [e["field"] for e in unknown["errors"]] == ["colour", "shade"]


def test_status_for_covers_every_error() -> None:
    sid = uuid4()
    assert status_for(SessionNotFound(sid)) == 404
    assert status_for(SessionUserMismatch(sid, owner="a", performer_id="b")) == 403
    assert status_for(InvalidTransition(sid, state="pending", event="complete", reason="r")) == 409
    assert status_for(ActiveSessionExists(sid, user_id="u", active_session_id=None)) == 409
    conflict = ConcurrencyConflict(sid, expected_version=1, actual_version=2)
    assert (status_for(conflict), status_for(conflict, if_match=True)) == (409, 412)
    assert status_for(InvalidInput("f", "p")) == 400
    assert status_for(StoreError("down")) == 503
    assert status_for(LifecycleDefinitionError("no lifecycle 'x' is registered")) == 400
    assert status_for(UnknownState(sid, lifecycle="session", version=1, state="limbo")) == 500


SNAKE_CASE = re.compile(r"^[a-z]+(_[a-z]+)*$")


@pytest.mark.parametrize(("name", "status", "code"), [
    ("unknown route", 404, "not_found"),
    ("wrong method", 405, "method_not_allowed"),
    ("body too large", 413, "payload_too_large"),
    ("no token", 401, "unauthorized"),
    ("missing scope", 403, "forbidden"),
    ("malformed JSON", 400, "invalid_json"),
    ("100,000 nested brackets", 400, "invalid_json"),
    ("100,000 nested brackets in a field", 400, "invalid_json"),
    ("not UTF-8", 400, "invalid_json"),
])
def test_every_error_code_is_a_readable_name(make_client: MakeClient, name: str, status: int, code: str) -> None:
    client = make_client(tokens={"tok-r": {"service": "r", "scopes": ["sessions:read"]},
                                 "tok-w": {"service": "w", "scopes": ["sessions:write"]}}, max_body_bytes=10**6)
    reader = {"Authorization": "Bearer tok-r"}
    as_json = {"Authorization": "Bearer tok-w", "content-type": "application/json"}
    act: dict[str, Callable[[], Any]] = {
        "unknown route": lambda: client.get("/nowhere"),
        "wrong method": lambda: client.put("/sessions"),
        "body too large": lambda: client.post("/sessions", content=b" " * (10**6 + 1), headers=as_json),
        "no token": lambda: client.get("/sessions"),
        "missing scope": lambda: client.post("/sessions", json={}, headers=reader),
        "malformed JSON": lambda: client.post("/sessions", content=b"{nope", headers=as_json),
        "100,000 nested brackets": lambda: client.post("/sessions", content=b"[" * 100_000, headers=as_json),
        "100,000 nested brackets in a field": lambda: client.post(
            "/sessions", content=b'{"metadata": {"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", headers=as_json),
        "not UTF-8": lambda: client.post("/sessions", content=b'{"user_id": "\xff\xfe"}', headers=as_json),
    }
    response = act[name]()
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert SNAKE_CASE.match(body["code"])
    assert body["message"]
    if code == "invalid_json":
        assert (body["error"], body["field"]) == ("InvalidInput", "body")
        if "nested" in name:
            assert body["problem"] == "nested too deeply to read"


def test_a_status_without_a_name_of_its_own_is_http_error() -> None:
    assert http_error_name(418) == ("HTTPError", "http_error")
    assert http_error_name(404) == ("NotFound", "not_found")
    for error, code in HTTP_ERROR_NAMES.values():
        assert SNAKE_CASE.match(code)
        assert "h_t_t_p" not in code
        assert error[0].isupper()
