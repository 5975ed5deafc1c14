"""The token configuration: its forms, what it refuses (naming no token), digests, rotation with two tokens
valid at once, and a tokens file followed without a restart."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sessionflow import SessionManager
from sessionflow.entrypoints.http import Scope, Service, TokenFile, TokenTable, User, create_app
from sessionflow.errors import InvalidInput
from tests.http.conftest import MakeClient

SECRET = "s3cret-token-value"


def _digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def test_the_forms_of_a_principal() -> None:
    table = TokenTable.parse({
        "t-plain": "alice", "t-user": {"user": "bob"},
        "t-svc": {"service": "worker", "scopes": ["sessions:write", "sessions:read", "sessions:write"]},
        _digest("t-hashed"): {"service": "feed", "scopes": ["events:read"]},
    })
    assert table.find("t-plain") == User("alice")
    assert table.find("t-user") == User("bob")
    assert table.find("t-svc") == Service("worker", frozenset({Scope.SESSIONS_READ, Scope.SESSIONS_WRITE}))
    assert table.find("t-hashed") == Service("feed", frozenset({Scope.EVENTS_READ}))
    assert table.find(_digest("t-hashed")) is None  # a digest is not a token
    assert table.find("t-plain ") is None
    assert table.find("T-PLAIN") is None
    assert len(table) == 4
    assert "t-" not in repr(table)


@pytest.mark.parametrize(("tokens", "problem"), [
    ({}, "no tokens"),
    ({"t": " "}, "entry 1"),
    ({"t": ""}, "entry 1"),
    ({"t": 7}, "expected a user id"),
    ({"t": {"user": "a", "scopes": ["sessions:read"]}}, "expected a user id"),
    ({"t": {"service": "w"}}, "expected a user id"),
    ({"t": {"service": "w", "scopes": "sessions:read"}}, "expected a user id"),
    ({"t": {"service": "w", "scopes": []}}, "has no scope"),
    ({"t": {"service": "w", "scopes": ["sessions:everything"]}}, "unknown scope"),
    ({"t": "system"}, "library's own performer"),
    ({"t": "al\x00ice"}, "entry 1"),
    ({"t1": "alice", "t2": {"service": "alice", "scopes": ["sessions:read"]}}, "configured twice"),
    ({"t1": {"service": "w", "scopes": ["sessions:read"]}, "t2": {"service": "w", "scopes": ["sessions:write"]}},
     "configured twice"),
    ({SECRET: "alice", _digest(SECRET): "bob"}, "same token is given for two principals"),
    ({"sha256:abc": "alice"}, "64 hex digits"),
    ({"with space": "alice"}, "visible ASCII"),
    ({"": "alice"}, "non-empty"),
])
def test_a_malformed_configuration_is_refused_naming_no_token(tokens: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as refused:
        TokenTable.parse(tokens)
    for key in tokens:
        if key and len(key) > 3:
            assert key not in str(refused.value)


def test_a_token_and_its_digest_may_both_be_given_for_one_principal() -> None:
    table = TokenTable.parse({SECRET: "alice", _digest(SECRET): {"user": "alice"}})
    assert table.find(SECRET) == User("alice")


def test_rotation_two_tokens_of_one_principal_are_valid_at_once(make_client: MakeClient) -> None:
    client = make_client(tokens={"old-token": "alice", "new-token": "alice"})
    old, new = ({"Authorization": f"Bearer {t}"} for t in ("old-token", "new-token"))
    sid = client.post("/sessions", json={}, headers=old).json()["id"]
    assert client.post(f"/sessions/{sid}/start", headers=new).status_code == 200
    assert client.get(f"/sessions/{sid}", headers=old).json()["status"] == "in_progress"
    events = client.get(f"/sessions/{sid}/history", headers=new).json()["events"]
    assert [e["performer_id"] for e in events] == ["alice", "alice"]


def test_create_app_takes_principal_objects_and_tables(manager: SessionManager) -> None:
    ops = Service("ops", frozenset({Scope.SESSIONS_READ}))
    for tokens in ({"t": ops}, TokenTable.parse({"t": ops})):
        client = TestClient(create_app(manager, tokens=tokens, metrics=False))
        assert client.get("/sessions", headers={"Authorization": "Bearer t"}).status_code == 200
        assert client.post("/sessions", json={}, headers={"Authorization": "Bearer t"}).status_code == 403


def _write(path: Path, tokens: dict[str, Any], stamp: int) -> None:
    path.write_text(json.dumps(tokens), encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))  # a distinct modification time, however coarse the file system's


def test_a_tokens_file_is_followed_without_a_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    _write(path, {"old-token": "alice"}, 1_000_000_000)
    seconds = [0.0]
    tokens = TokenFile(path, check_every=1.0, clock=lambda: seconds[0])
    assert tokens.current().find("old-token") == User("alice")

    _write(path, {"old-token": "alice", "new-token": "alice"}, 2_000_000_000)  # step 1: add the new token
    assert tokens.current().find("new-token") is None  # not looked at again within a second
    seconds[0] += 1.0
    assert tokens.current().find("new-token") == User("alice")
    assert tokens.current().find("old-token") == User("alice")  # both valid while clients move

    _write(path, {"new-token": "alice"}, 3_000_000_000)  # step 2: remove the old one
    seconds[0] += 1.0
    assert tokens.current().find("old-token") is None
    assert tokens.current().find("new-token") == User("alice")

    with caplog.at_level(logging.INFO, logger="sessionflow.http"):
        path.write_text('{"new-token": "alice", "half-writ', encoding="utf-8")
        os.utime(path, ns=(4_000_000_000, 4_000_000_000))
        seconds[0] += 1.0
        assert tokens.current().find("new-token") == User("alice")  # a broken file keeps the tokens in force
        path.unlink()
        seconds[0] += 1.0
        assert tokens.current().find("new-token") == User("alice")
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "previous tokens stay in force" in messages
    assert "new-token" not in messages
    assert "half-writ" not in messages


def test_a_tokens_file_is_checked_on_the_first_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        TokenFile(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"t": "alice", "t": "bob"}', encoding="utf-8")
    with pytest.raises(InvalidInput, match="repeats an earlier token"):
        TokenFile(broken)


def test_a_reloaded_file_the_managers_policy_contradicts_is_not_used(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    _write(path, {"tok-alice": "alice"}, 1_000_000_000)
    seconds = [0.0]
    source = TokenFile(path, clock=lambda: seconds[0])
    with SessionManager.in_memory(enforce_owner=True) as strict:
        client = TestClient(create_app(strict, tokens=source, metrics=False))
        _write(path, {"tok-alice": "alice", "tok-w": {"service": "worker", "scopes": ["sessions:write"]}},
               2_000_000_000)
        seconds[0] += 5
        with caplog.at_level(logging.ERROR, logger="sessionflow.http"):
            refused = client.post("/sessions", json={}, headers={"Authorization": "Bearer tok-w"})
        assert refused.status_code == 401
        assert "could not change users' sessions" in caplog.text
        assert client.post("/sessions", json={}, headers={"Authorization": "Bearer tok-alice"}).status_code == 201
