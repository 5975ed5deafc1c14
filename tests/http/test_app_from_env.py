"""app_from_env: settings and tokens from the environment; the manager lives as long as the app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sessionflow.entrypoints.http import app_from_env
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
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": 1}'}, "non-empty"),
    ({"SESSIONFLOW_HTTP_TOKENS": '{"t": "a"}', "SESSIONFLOW_HTTP_TOKENS_FILE": "x"}, "not both"),
    ({"SESSIONFLOW_HTTP_TOKENS_FILE": "/nonexistent/tokens.json"}, "cannot read"),
])
def test_bad_token_configuration_is_refused_before_the_database_opens(environ: dict[str, str], problem: str,
                                                                      tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    with pytest.raises(InvalidInput, match=problem):
        app_from_env(Settings(database_url=f"sqlite:///{database}"), environ=environ)
    assert not database.exists()
