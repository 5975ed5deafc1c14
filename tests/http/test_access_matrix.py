"""Who may do what: every route of the app, every kind of principal, and the caller's own or another user's
session, asserting the status, that a refused request wrote nothing, and that no answer discloses another
user's session.

The expectations are the table of ``docs/http.md`` ("Who may do what"), written here as data: a route's kind
says which scope a service needs and how a user principal is limited. The requests go through one app whose
manager is replaced by a fresh one, holding one session of alice and one of bob, before every case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app
from sessionflow.testing import ManualClock

TOKENS: dict[str, Any] = {
    "tok-alice": "alice",  # the form of before principals: a user id
    "tok-bob": {"user": "bob"},
    "tok-reader": {"service": "reader", "scopes": ["sessions:read"]},
    "tok-writer": {"service": "writer", "scopes": ["sessions:write"]},
    "tok-admin": {"service": "admin", "scopes": ["sessions:admin"]},
    "tok-ops": {"service": "ops", "scopes": ["sessions:read", "sessions:write", "sessions:admin", "events:read"]},
    "tok-feed": {"service": "feed", "scopes": ["events:read"]},
}
USERS = ("alice", "bob")
SERVICES = {"reader": {"sessions:read"}, "writer": {"sessions:write"}, "admin": {"sessions:admin"},
            "ops": {"sessions:read", "sessions:write", "sessions:admin", "events:read"}, "feed": {"events:read"}}
PRINCIPALS = ("anonymous", *USERS, *SERVICES)

Kind = Literal["read", "list", "create", "write", "admin", "feed", "open"]
Prepared = Literal["pending", "in_progress", "ready"]
#: The scope a service principal needs for each kind of route.
SCOPE: dict[Kind, str] = {"read": "sessions:read", "list": "sessions:read", "create": "sessions:write",
                          "write": "sessions:write", "admin": "sessions:admin", "feed": "events:read"}


@dataclass(frozen=True)
class Route:
    """One route of the app, and how to call it about ``target``'s session (or on ``target``'s behalf)."""

    method: str
    path: str  # the OpenAPI path
    kind: Kind
    success: int = 200
    prepared: Prepared = "pending"
    body: Callable[[str, str], Any] | None = None  # (target user, target session id) -> JSON body
    query: Callable[[str], dict[str, str]] | None = None

    @property
    def writes(self) -> bool:
        return self.kind in ("create", "write", "admin")

    @property
    def about_a_session(self) -> bool:
        return "{session_id}" in self.path or self.path == "/session_manager/sessions.end"

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("POST", "/sessions", "create", 201,
          body=lambda user, sid: {"user_id": user, "metadata": {"secret": f"new-of-{user}"}}),
    Route("GET", "/sessions", "list", query=lambda user: {"user_id": user}),
    Route("GET", "/sessions/{session_id}", "read"),
    Route("GET", "/sessions/{session_id}/history", "read"),
    Route("PATCH", "/sessions/{session_id}", "write", body=lambda user, sid: {"metadata": {"k": 1}}),
    Route("DELETE", "/sessions/{session_id}", "admin"),
    Route("POST", "/sessions/{session_id}/start", "write"),
    Route("POST", "/sessions/{session_id}/complete", "write", prepared="ready"),
    Route("POST", "/sessions/{session_id}/fail", "write", prepared="in_progress",
          body=lambda user, sid: {"reason": "upstream down"}),
    Route("POST", "/sessions/{session_id}/touch", "write"),
    Route("POST", "/sessions/{session_id}/files", "write", prepared="in_progress",
          body=lambda user, sid: {"path": "a.py"}),
    Route("POST", "/sessions/{session_id}/notes", "write",
          body=lambda user, sid: {"file_path": "a.py", "status": "stored"}),
    Route("POST", "/sessions/{session_id}/events/{event}", "write"),
    Route("POST", "/session_manager/sessions.start", "create", body=lambda user, sid: {"user_id": user}),
    Route("POST", "/session_manager/sessions.end", "write", prepared="ready",
          body=lambda user, sid: {"user_id": user, "session_id": sid}),
    Route("GET", "/events", "feed"),
    Route("GET", "/events/stream", "feed", query=lambda user: {"limit": "1"}),
    Route("GET", "/healthz", "open"),
    Route("GET", "/readyz", "open"),
    Route("GET", "/metrics", "open"),
    Route("GET", "/openapi.json", "open"),
    Route("GET", "/docs", "open"),
    Route("GET", "/docs/oauth2-redirect", "open"),
    Route("GET", "/redoc", "open"),
]


def expected_status(route: Route, principal: str, target: str) -> int:
    """The table of docs/http.md, "Who may do what"."""
    if route.kind == "open":
        return 200
    if principal == "anonymous":
        return 401
    if principal in USERS:
        if principal == target or route.kind == "feed":  # the feed: its own sessions' events, whoever else asks
            return route.success
        return 404 if route.about_a_session else 403  # another's session is not found; another user refused
    return route.success if SCOPE[route.kind] in SERVICES[principal] else 403


def _headers(principal: str) -> dict[str, str]:
    token = {"anonymous": None, **{name: f"tok-{name}" for name in (*USERS, *SERVICES)}}[principal]
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    with SessionManager.in_memory() as first:
        yield create_app(first, tokens=TOKENS)


@dataclass
class World:
    manager: SessionManager
    sessions: dict[str, str]  # user -> the id of that user's session


def _world(app: FastAPI, prepared: Prepared) -> World:
    manager = SessionManager.in_memory(clock=ManualClock())
    sessions: dict[str, str] = {}
    for user in USERS:
        session = manager.create(performer_id=user, user_id=user, workspace_id=f"ws-of-{user}",
                                 file_paths=["a.py"], metadata={"secret": f"secret-of-{user}"})
        if prepared in ("in_progress", "ready"):
            manager.start(session.id, performer_id=user)
        if prepared == "ready":
            manager.record_file(session.id, "a.py", performer_id=user)
        sessions[user] = str(session.id)
    app.state.manager = manager
    return World(manager, sessions)


def _snapshot(manager: SessionManager, known: dict[str, str]) -> dict[str, Any]:
    histories = {user: [(e.version, e.event, e.performer_id) for e in manager.history(sid)]
                 for user, sid in known.items()}
    return {"histories": histories, "count": manager.count(),
            "ids": sorted(str(s.id) for s in manager.list(limit=1000))}


CASES = [(route, principal, target) for route in ROUTES for principal in PRINCIPALS for target in USERS]


def test_the_matrix_covers_every_route_of_the_app(app: FastAPI) -> None:
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    served = {(method, route.path) for route in app.router.routes for method in getattr(route, "methods", ())
              if method != "HEAD"}
    assert documented | served == {(route.method, route.path) for route in ROUTES}
    assert len(CASES) == len(ROUTES) * len(PRINCIPALS) * len(USERS)


@pytest.mark.parametrize(("route", "principal", "target"), CASES,
                         ids=[f"{r}-{p}-on-{t}" for r, p, t in CASES])
def test_who_may_do_what(app: FastAPI, route: Route, principal: str, target: str) -> None:
    world = _world(app, route.prepared)
    sid = world.sessions[target]
    before = _snapshot(world.manager, world.sessions)
    url = route.path.replace("{session_id}", sid).replace("{event}", "start")
    body = route.body(target, sid) if route.body is not None else None
    with TestClient(app) as client:
        response = client.request(route.method, url, headers=_headers(principal), json=body,
                                  params=route.query(target) if route.query else None)
    expected = expected_status(route, principal, target)
    assert response.status_code == expected, response.text
    after = _snapshot(world.manager, world.sessions)
    text = response.text

    if expected >= 400:
        assert after == before, "a refused request wrote something"
        assert "etag" not in response.headers
        assert response.json()["code"] in ("unauthorized", "forbidden", "session_not_found")
        for user in USERS:  # a refusal names no user and shows no session's data
            assert f"secret-of-{user}" not in text
            assert f"ws-of-{user}" not in text
            assert f'"{user}"' not in text
            assert f"'{user}'" not in text
        return

    if route.kind == "open":  # the operations routes and the documents show no session of anyone
        for user in USERS:
            assert f"secret-of-{user}" not in text
            assert world.sessions[user] not in text
            assert f'"{user}"' not in text
    if principal in USERS:  # a user sees nothing of another user's
        other = next(user for user in USERS if user != principal)
        assert f"secret-of-{other}" not in text
        assert f"ws-of-{other}" not in text
        assert world.sessions[other] not in text
    if not route.writes:
        assert after == before, "a read wrote something"
        return
    changed = {user for user in USERS if after["histories"][user] != before["histories"][user]}
    if route.kind == "create":
        assert changed == set()
        assert after["count"] == before["count"] + 1
        new = world.manager.get(response.json().get("id") or response.json()["session_id"])
        assert new.user_id == target
        events = world.manager.history(new.id)
    else:
        assert changed == {target}
        assert after["count"] == before["count"] - (1 if route.kind == "admin" else 0)
        events = world.manager.history(sid)[len(before["histories"][target]):]
    assert events, "a write recorded nothing"
    assert {e.performer_id for e in events} == {principal}, "the principal is the performer"


def test_another_users_session_is_answered_as_one_that_does_not_exist(app: FastAPI) -> None:
    world = _world(app, "in_progress")
    missing = "8d3c1a52-3f0e-4f4b-9d76-0c1f0a3e6f11"
    bob = _headers("bob")
    with TestClient(app) as client:
        for method, path, body in (("GET", "/sessions/{}", None), ("GET", "/sessions/{}/history", None),
                                   ("POST", "/sessions/{}/touch", None), ("DELETE", "/sessions/{}", None),
                                   ("POST", "/sessions/{}/fail", {"reason": "x"})):
            theirs = client.request(method, path.format(world.sessions["alice"]), headers=bob, json=body)
            nothing = client.request(method, path.format(missing), headers=bob, json=body)
            assert theirs.status_code == nothing.status_code == 404
            assert theirs.json() == {**nothing.json(), "session_id": world.sessions["alice"],
                                     "message": nothing.json()["message"].replace(missing, world.sessions["alice"])}
            assert set(theirs.headers) == set(nothing.headers)
