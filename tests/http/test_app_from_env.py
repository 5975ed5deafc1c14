"""app_from_env: settings and tokens from the environment; the manager lives as long as the app."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sessionflow.entrypoints.http import TokenFile, Unprotected, app_from_env, is_loopback
from sessionflow.errors import InvalidInput, StoreError
from sessionflow.settings import Settings


def test_the_app_serves_the_configured_database_and_closes_it(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'env.db'}")
    app = app_from_env(settings, environ={"SESSIONFLOW_HTTP_TOKENS": json.dumps({"tok": "alice"})},
                       timeouts=False)
    manager = app.state.manager
    try:
        with TestClient(app) as client:
            assert client.post("/sessions", json={}).status_code == 401
            auth = {"Authorization": "Bearer tok"}
            sid = client.post("/sessions", json={"user_id": "alice"}, headers=auth).json()["id"]
            assert client.get(f"/sessions/{sid}", headers=auth).json()["user_id"] == "alice"
            assert "sessionflow_sessions" in client.get("/metrics").text
        with pytest.raises(StoreError):  # the app's shutdown closed the manager
            manager.get(sid)
    finally:
        app.state.metrics.detach()
        app.state.metrics.unregister()


def test_a_stopped_app_leaves_the_process_registry_to_the_next_one(tmp_path: Path) -> None:
    """Its metrics leave prometheus_client's default registry when the app stops: an app built after it in the
    same process serves its own metrics there (not a private registry), and unregistering again does nothing."""
    from prometheus_client import REGISTRY

    for name in ("first", "second"):
        app = app_from_env(Settings(database_url=f"sqlite:///{tmp_path / name}.db"), environ={}, timeouts=False)
        assert app.state.metrics.registry is REGISTRY
        with TestClient(app, client=("127.0.0.1", 40000)) as client:
            assert client.post("/sessions", json={"performer_id": "u"}).status_code == 201
            assert REGISTRY.get_sample_value("sessionflow_sessions", {"status": "pending"}) == 1
        assert REGISTRY.get_sample_value("sessionflow_sessions", {"status": "pending"}) is None
    app.state.metrics.unregister()  # already done when it stopped: nothing more


def test_tokens_from_a_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tok-file": "bob"}), encoding="utf-8")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'file.db'}")
    app = app_from_env(settings, environ={"SESSIONFLOW_HTTP_TOKENS_FILE": str(tokens)}, timeouts=False)
    try:
        with TestClient(app) as client:
            created = client.post("/sessions", json={}, headers={"Authorization": "Bearer tok-file"})
            assert created.status_code == 201
    finally:
        app.state.metrics.detach()
        app.state.metrics.unregister()


@pytest.mark.parametrize(("environ", "problem"), [
    ({"SESSIONFLOW_HTTP_TOKENS": "not json"}, "JSON object"),
    ({"SESSIONFLOW_HTTP_TOKENS": "[]"}, "JSON object"),
    ({"SESSIONFLOW_HTTP_TOKENS": "{}"}, "non-empty"),
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": 1}'}, "expected a user id"),
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": "a", "t": "b"}'}, "repeats an earlier token"),
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": {"service": "w", "scopes": ["sessions:all"]}}'}, "unknown scope"),
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": "a"}', "SESSIONFLOW_HTTP_TOKENS_FILE": "x"}, "not both"),
    ({"SESSIONFLOW_HTTP_TOKENS_FILE": "/nonexistent/tokens.json"}, "cannot read"),
])
def test_bad_token_configuration_is_refused_before_the_database_opens(environ: dict[str, str], problem: str,
                                                                      tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    with pytest.raises(InvalidInput, match=problem):
        app_from_env(Settings(database_url=f"sqlite:///{database}"), environ=environ)
    assert not database.exists()


def test_principals_and_digests_from_the_environment(tmp_path: Path) -> None:
    tokens = {"tok-alice": "alice",
              "sha256:" + hashlib.sha256(b"tok-ops").hexdigest(): {"service": "ops", "scopes": ["sessions:read"]}}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'env.db'}")
    app = app_from_env(settings, environ={"SESSIONFLOW_HTTP_TOKENS": json.dumps(tokens)}, timeouts=False)
    try:
        with TestClient(app) as client:
            sid = client.post("/sessions", json={}, headers={"Authorization": "Bearer tok-alice"}).json()["id"]
            ops = {"Authorization": "Bearer tok-ops"}
            assert client.get(f"/sessions/{sid}", headers=ops).json()["user_id"] == "alice"
            assert client.post("/sessions", json={}, headers=ops).status_code == 403
    finally:
        app.state.metrics.detach()
        app.state.metrics.unregister()


def test_a_tokens_file_is_followed(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tok-file": "bob"}), encoding="utf-8")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'file.db'}")
    app = app_from_env(settings, environ={"SESSIONFLOW_HTTP_TOKENS_FILE": str(tokens)}, timeouts=False)
    try:
        assert isinstance(app.state.auth.source, TokenFile)
        assert app.state.auth.source.path == tokens
    finally:
        app.state.metrics.detach()
        app.state.metrics.unregister()
        app.state.manager.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org", "[::]"])
def test_listening_beyond_loopback_without_tokens_is_refused_before_the_database_opens(
        tmp_path: Path, host: str) -> None:
    database = tmp_path / "never.db"
    with pytest.raises(Unprotected, match="without authentication") as refused:
        app_from_env(Settings(database_url=f"sqlite:///{database}"), environ={}, host=host)
    assert "--insecure-no-auth" in refused.value.message
    assert "SESSIONFLOW_HTTP_TOKENS" in refused.value.message
    assert not database.exists()
    assert not is_loopback(host)


@pytest.mark.parametrize(("host", "environ", "insecure"), [
    ("127.0.0.1", {}, False), ("localhost", {}, False), ("::1", {}, False), ("127.0.0.2", {}, False),
    ("0.0.0.0", {"SESSIONFLOW_HTTP_TOKENS": '{"t": "alice"}'}, False), ("0.0.0.0", {}, True),
])
def test_loopback_tokens_or_the_explicit_flag_may_serve(tmp_path: Path, host: str, environ: dict[str, str],
                                                        insecure: bool) -> None:
    app = app_from_env(Settings(database_url=f"sqlite:///{tmp_path / 'ok.db'}"), environ=environ,
                       timeouts=False, host=host, insecure_no_auth=insecure)
    try:
        assert (app.state.auth is not None) is bool(environ)
    finally:
        app.state.metrics.detach()
        app.state.metrics.unregister()
        app.state.manager.close()


def test_tokens_the_managers_policy_contradicts_leave_nothing_open(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'strict.db'}", policies={"enforce_owner": True})
    environ = {"SESSIONFLOW_HTTP_TOKENS": json.dumps({"t": {"service": "worker", "scopes": ["sessions:write"]}})}
    with pytest.raises(InvalidInput, match="could not change users' sessions"):
        app_from_env(settings, environ=environ, timeouts=False)
    again = app_from_env(settings, environ={"SESSIONFLOW_HTTP_TOKENS": '{"t": "alice"}'}, timeouts=False)
    try:  # the refused app left no metrics registered (a second registration would have failed quietly)
        assert again.state.metrics is not None
    finally:
        again.state.metrics.detach()
        again.state.metrics.unregister()
        again.state.manager.close()
