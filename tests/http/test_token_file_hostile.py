"""Hostile token tables: JSON nested too deeply to read (``[`` a hundred thousand times), or a reload that fails
in a way nobody foresaw. At start-up it is invalid configuration (``InvalidInput``; ``serve`` exits 6); on a
reload the tokens in force stay, a warning is logged, and every request is answered as before (never a 500)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sessionflow import SessionManager
from sessionflow.entrypoints.cli import ExitCode, app
from sessionflow.entrypoints.http import TokenFile, TokenTable, User, create_app
from sessionflow.entrypoints.http.environment import TOKENS_ENV, TOKENS_FILE_ENV, tokens_from_env
from sessionflow.errors import InvalidInput

#: Token tables no parser should be made to recurse through, and one deep but readable.
HOSTILE = {
    "open brackets": "[" * 100_000,
    "open braces": '{"t":' * 100_000,
    "deep value": '{"t": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "deep but readable value": '{"t": ' + "[" * 500 + "]" * 500 + "}",
    "deep scopes": '{"t": {"service": "w", "scopes": ' + "[" * 500 + "]" * 500 + "}}",
}


def _write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))  # a distinct modification time, however coarse the file system's


@pytest.fixture
def following(tmp_path: Path) -> tuple[Path, TokenFile, list[float]]:
    """A tokens file with ``old-token`` for alice, followed by a :class:`TokenFile` on a hand-moved clock."""
    path = tmp_path / "tokens.json"
    _write(path, '{"old-token": "alice"}', 1_000_000_000)
    seconds = [0.0]
    return path, TokenFile(path, check_every=1.0, clock=lambda: seconds[0]), seconds


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_table_at_start_up_is_invalid_input(tmp_path: Path, case: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(HOSTILE[case], encoding="utf-8")
    with pytest.raises(InvalidInput) as from_file:
        TokenFile(path)
    assert from_file.value.field == TOKENS_FILE_ENV
    with pytest.raises(InvalidInput) as from_env:
        tokens_from_env({TOKENS_ENV: HOSTILE[case]})
    assert from_env.value.field == TOKENS_ENV
    with pytest.raises(InvalidInput) as from_file_env:
        tokens_from_env({TOKENS_FILE_ENV: str(path)})
    assert from_file_env.value.field == TOKENS_FILE_ENV


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_reload_keeps_the_tokens_in_force_and_warns(
        following: tuple[Path, TokenFile, list[float]], caplog: pytest.LogCaptureFixture, case: str) -> None:
    path, tokens, seconds = following
    with caplog.at_level(logging.WARNING, logger="sessionflow.http"):
        _write(path, HOSTILE[case], 2_000_000_000)
        seconds[0] += 1.0
        assert tokens.current().find("old-token") == User("alice")
        seconds[0] += 1.0  # looked at again (it may have been half-written): still the old tokens
        assert tokens.current().find("old-token") == User("alice")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert all("previous tokens stay in force" in message for message in warnings)
    assert "[[[[" not in caplog.text
    # A good file afterwards is taken as usual.
    _write(path, '{"new-token": "alice"}', 3_000_000_000)
    seconds[0] += 1.0
    assert tokens.current().find("new-token") == User("alice")
    assert tokens.current().find("old-token") is None


def test_a_reload_failing_unexpectedly_keeps_the_tokens_in_force(
        following: tuple[Path, TokenFile, list[float]], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, tokens, seconds = following

    def broken(*args: Any, **kwargs: Any) -> TokenTable:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(TokenTable, "parse", broken)
    with caplog.at_level(logging.WARNING, logger="sessionflow.http"):
        _write(path, '{"new-token": "bob"}', 2_000_000_000)
        seconds[0] += 1.0
        assert tokens.current().find("old-token") == User("alice")
        assert tokens.current().find("new-token") is None
    assert "previous tokens stay in force" in caplog.text
    assert "new-token" not in caplog.text


def test_requests_are_answered_with_the_old_tokens_after_a_hostile_reload(
        following: tuple[Path, TokenFile, list[float]]) -> None:
    path, tokens, seconds = following
    with SessionManager.in_memory() as manager, \
            TestClient(create_app(manager, tokens=tokens, metrics=False), raise_server_exceptions=False) as client:
        alice = {"Authorization": "Bearer old-token"}
        assert client.post("/sessions", json={}, headers=alice).status_code == 201
        _write(path, HOSTILE["open brackets"], 2_000_000_000)
        seconds[0] += 5.0
        listed = client.get("/sessions", headers=alice)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == 1
        assert client.get("/sessions", headers={"Authorization": "Bearer other"}).status_code == 401


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What ``serve`` handed to uvicorn, instead of running a server (and no ``SESSIONFLOW_…`` variable)."""
    calls: list[Any] = []

    def run(self: uvicorn.Server, sockets: Any = None) -> None:
        application: Any = self.config.app
        calls.append(application)
        application.state.manager.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    return calls


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("variable", [TOKENS_ENV, TOKENS_FILE_ENV])
def test_serve_with_a_hostile_table_exits_as_invalid_configuration(
        tmp_path: Path, served: list[Any], variable: str, workers: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(HOSTILE["open brackets"], encoding="utf-8")
    value = str(path) if variable == TOKENS_FILE_ENV else HOSTILE["open brackets"]
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{tmp_path / 'served.db'}", "serve", "--workers", workers],
                                env={variable: value})
    assert result.exit_code == int(ExitCode.INVALID_INPUT) == 6, result.output
    assert "unexpected" not in result.output.lower()
    assert "RecursionError" not in result.output
    assert variable in result.output
    assert served == []
